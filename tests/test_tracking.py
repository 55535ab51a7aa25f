"""Mouth-opening tracking on real GRID video, frame timing, the energy baseline and user errors."""

from __future__ import annotations

import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED

from adamesh.audio import frame_count, load_audio
from adamesh.errors import AdameshError
from adamesh.tracking import energy_envelope, read_video_frames, track_mouth_opening

GRID_CLIP = SHARED / "data" / "video" / "grid" / "lbax4n.mpg"  # "lay blue at x four now"


@pytest.fixture(scope="module")
def grid_clip():
    if not GRID_CLIP.is_file():
        pytest.skip(f"GRID clip not found at {GRID_CLIP} (../shared/data is absent)")
    return GRID_CLIP


@pytest.fixture(scope="module")
def mediapipe():
    return pytest.importorskip("mediapipe", reason="mediapipe is not installed: run `make install`")


@pytest.fixture(scope="module")
def grid_tracked(grid_clip, mediapipe):
    return track_mouth_opening(grid_clip, fps=25.0)


def write_video(path, images, pts=None, time_base=Fraction(1, 25), rate=25):
    """An H.264 mp4 of RGB uint8 `images`, with the given pts (in time_base units) if any."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = (pts[i] if pts is not None else i), time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


# Tracking a real talking face


def test_grid_clip_opening_follows_speech(grid_clip, grid_tracked):
    opening, valid = grid_tracked
    samples, rate = load_audio(grid_clip)
    assert opening.shape == valid.shape == (frame_count(len(samples), rate, 25.0),)  # 74: 2.98 s of audio
    assert opening.dtype == np.float32 and valid.dtype == bool
    assert valid.mean() > 0.9
    # Lips gap over eye-corner distance: about 0 closed, a few tenths wide open.
    assert opening.min() >= 0 and opening.min() < 0.02
    assert 0.1 < opening.max() < 0.6
    r = np.corrcoef(energy_envelope(samples, rate, 25.0), opening)[0, 1]
    assert r > 0.2


def test_grid_frame_times_come_from_timestamps(grid_clip):
    frames = list(read_video_frames(grid_clip))
    times = np.array([t for t, _ in frames])
    assert len(frames) == 75
    np.testing.assert_allclose(times, np.arange(75) / 25.0, atol=1e-6)
    image = frames[0][1]
    assert image.shape == (288, 360, 3) and image.dtype == np.uint8


def test_irregular_timestamps_are_kept(tmp_path):
    # Frames at 0, 0.12, 0.32 and 0.36 s in a 25 fps stream: times must follow pts, not the rate.
    path = tmp_path / "vfr.mp4"
    write_video(path, [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(4)], pts=[0, 3, 8, 9])
    times = [t for t, _ in read_video_frames(path)]
    np.testing.assert_allclose(times, [0.0, 0.12, 0.32, 0.36], atol=1e-6)


def test_video_without_audio_uses_its_own_duration(grid_clip, mediapipe, tmp_path):
    # The first 20 frames (0.8 s) of the GRID clip, re-encoded without its audio, tracked at 50 fps.
    path = tmp_path / "silent.mp4"
    images = [image for _, (_, image) in zip(range(20), read_video_frames(grid_clip))]
    write_video(path, images)
    opening, valid = track_mouth_opening(path, fps=50.0)
    assert opening.shape == valid.shape == (40,)
    assert valid.all()


# The energy baseline


def test_energy_envelope_is_rms_per_motion_frame():
    rate, fps = 16000, 25.0
    t = np.arange(rate) / rate  # 1 s: 0.5 s of a 0.5-amplitude tone, then silence
    x = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 200 * t), 0.0).astype(np.float32)
    env = energy_envelope(x, rate, fps)
    assert env.shape == (frame_count(len(x), rate, fps),) == (25,)
    np.testing.assert_allclose(env[:12], 0.5 / np.sqrt(2), rtol=1e-3)
    assert np.all(env[13:] == 0)
    db = energy_envelope(x, rate, fps, db=True)
    np.testing.assert_allclose(db[:12], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.01)
    assert np.all(db[13:] == -100)


# User errors


def test_grey_video_has_no_face(mediapipe, tmp_path):
    path = tmp_path / "grey.mp4"
    write_video(path, [np.full((128, 128, 3), 128, np.uint8)] * 5)
    with pytest.raises(AdameshError, match="no face found in any of the 5 frames"):
        track_mouth_opening(path)


@pytest.mark.parametrize("kind", ["text", "wav", "missing", "empty", "directory"])
def test_files_that_are_not_videos(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "text":
        path.write_text("not a video\n" * 100)
        message = "corrupt or not a video file"
    elif kind == "wav":
        path = tmp_path / "speech.wav"
        sf.write(path, np.zeros(16000, np.float32), 16000)
        message = "has no video stream"
    elif kind == "missing":
        message = "does not exist"
    elif kind == "empty":
        path.write_bytes(b"")
        message = "is empty"
    else:
        path.mkdir()
        message = "is a directory"
    with pytest.raises(AdameshError, match=message):
        read_video_frames(path)
    with pytest.raises(AdameshError, match=message):  # the file is checked before mediapipe is loaded
        track_mouth_opening(path)


def test_missing_mediapipe_says_how_to_install(monkeypatch, tmp_path):
    path = tmp_path / "grey.mp4"
    write_video(path, [np.full((64, 64, 3), 128, np.uint8)] * 2)
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(AdameshError, match="make install"):
        track_mouth_opening(path)
