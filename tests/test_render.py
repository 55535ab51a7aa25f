"""Renderer backends agree; videos have the right streams, frame count and audio in sync."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from adamesh.audio import SAMPLE_RATE
from adamesh.motion import ARKIT, Motion
from adamesh.render import RigView, contact_sheet, render_motion
from adamesh.testmotion import demo_motion


def _mask(img):
    """Pixels that are not background (the background is a smooth vertical gradient)."""
    bg = img[:, :3].astype(float).mean(1, keepdims=True)
    return np.abs(img.astype(float) - bg).sum(-1) > 30


def test_gl_and_torch_backends_agree(builtin):
    p = np.zeros((2, ARKIT.dim), np.float32)
    p[1, ARKIT.index("jawOpen")] = 1.0
    gl = list(RigView(builtin, 128, backend="auto").frames(p))
    sw = list(RigView(builtin, 128, backend="torch").frames(p))
    for a, b in zip(gl, sw):
        ma, mb = _mask(a), _mask(b)
        iou = (ma & mb).sum() / (ma | mb).sum()
        assert iou > 0.95
        assert np.abs(a.astype(float) - b.astype(float))[ma & mb].mean() < 12
    # the open jaw changes the lower half of the picture, not the upper
    diff = np.abs(gl[1].astype(float) - gl[0].astype(float)).sum(-1) > 40
    assert diff[64:].sum() > 10 * max(diff[:40].sum(), 1)


def _decode(path):
    import av

    with av.open(str(path)) as box:
        kinds = sorted(s.codec_context.name for s in box.streams)
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
    with av.open(str(path)) as box:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in box.decode(audio=0)])
        rate = box.streams.audio[0].rate
    return kinds, frames, audio, rate


def test_video_streams_frames_and_sync(builtin, tmp_path):
    motion, audio = demo_motion(seconds=3.0)
    wav = tmp_path / "voice.wav"
    sf.write(wav, audio, SAMPLE_RATE)
    out = tmp_path / "v.mp4"
    stats = render_motion(
        [motion, motion], builtin, out, audio=str(wav), captions=["a", "b"], size=96, progress=False
    )
    kinds, frames, decoded, rate = _decode(out)
    assert kinds == ["aac", "h264"]
    assert len(frames) == motion.n_frames == stats["frames"]
    assert frames[0].shape == (96, 192, 3)
    assert abs(len(decoded) / rate - motion.duration) < 0.05
    # the voice is loud when the jaw is open: per-frame loudness of the muxed track follows jawOpen
    hop = rate / motion.fps
    rms = np.array(
        [np.sqrt(np.mean(decoded[int(i * hop) : int((i + 1) * hop)] ** 2)) for i in range(motion.n_frames)]
    )
    jaw = motion.channel("jawOpen")
    assert np.corrcoef(rms, jaw)[0, 1] > 0.8
    lagged = np.corrcoef(rms[3:], jaw[:-3])[0, 1]  # three frames off is clearly worse
    assert lagged < np.corrcoef(rms, jaw)[0, 1] - 0.1


def test_video_without_audio_and_short_audio(builtin, tmp_path):
    motion = Motion(np.zeros((7, ARKIT.dim), np.float32), fps=30)
    out = tmp_path / "silent.mp4"
    render_motion(motion, builtin, out, size=64, progress=False)
    import av

    with av.open(str(out)) as box:
        assert [s.type for s in box.streams] == ["video"]
        assert sum(1 for _ in box.decode(video=0)) == 7
    wav = tmp_path / "short.wav"  # audio shorter than the motion is padded with silence
    sf.write(wav, np.zeros(1000, np.float32), 8000)
    render_motion(motion, builtin, tmp_path / "padded.mp4", audio=str(wav), size=64, progress=False)
    _, frames, decoded, rate = _decode(tmp_path / "padded.mp4")
    assert len(frames) == 7 and abs(len(decoded) / rate - 7 / 30) < 0.05


@pytest.mark.slow
def test_contact_sheet_tiles_differ(builtin):
    sheet = contact_sheet(builtin, tile=64)
    assert sheet.shape == (7 * 64, 8 * 64, 3)
    tiles = [
        sheet[r * 64 + 12 : (r + 1) * 64, c * 64 : (c + 1) * 64].astype(float)
        for r in range(7)
        for c in range(8)
    ][:53]
    neutral = tiles[0]
    for k, tile in enumerate(tiles[1:]):
        assert np.abs(tile - neutral).max() > 40, f"shape {k} is invisible in the contact sheet"


def test_a_caption_stays_readable_over_a_dark_head():
    from adamesh.render import caption

    dark = np.zeros((384, 384, 3), np.uint8)  # a head (or hair) that reaches the top of the frame
    out = caption(dark, "personalised")
    top = out[:40]
    assert np.median(top[top.any(-1)]) > 200  # the text sits on a light plate
    ys, xs = np.where(top.max(-1) > 200)
    plate = top[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert (plate.max(-1) < 100).sum() > 50  # and its dark letters show on it
    assert not out[60:].any()  # nothing else is drawn
