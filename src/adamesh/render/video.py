"""H.264 + AAC mp4 writing with PyAV (FFmpeg inside the wheel), frames and audio interleaved."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from adamesh.audio import load_audio
from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output

AAC_RATE = 48000
AUDIO_FRAME = 1024  # AAC frame size


def write_video(
    out: str | os.PathLike,
    frames: Iterable[np.ndarray],
    n_frames: int,
    fps: float,
    audio: str | None = None,
    progress: bool = True,
    crf: int = 20,
) -> dict:
    """Encode `n_frames` RGB frames at `fps`; mux `audio` trimmed or padded to the same duration,
    so video and speech start together and end together. Written atomically."""
    import av
    from tqdm import tqdm

    duration = n_frames / fps
    samples = None
    if audio:
        samples, _ = load_audio(audio, AAC_RATE)
        n_audio = int(round(duration * AAC_RATE))
        samples = np.pad(samples[:n_audio], (0, max(0, n_audio - len(samples))))
    rate = Fraction(fps).limit_denominator(1001)
    t0 = time.perf_counter()
    with atomic_output(out) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as box:
            vs = None
            if samples is not None:
                aus = box.add_stream("aac", rate=AAC_RATE, layout="mono")
                aus.bit_rate = 96000
                aus.time_base = Fraction(1, AAC_RATE)
            a_pos = 0
            count = 0
            with tqdm(total=n_frames, desc="render", unit="frame", disable=not progress, leave=True) as bar:
                # the bar closes on errors too, so an error message starts on a clean line
                for img in frames:
                    if vs is None:
                        h, w = img.shape[:2]
                        if h % 2 or w % 2:
                            raise AdameshError(f"video size {w}x{h} must be even for H.264")
                        vs = box.add_stream("libx264", rate=rate)
                        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
                        vs.options = {"crf": str(crf), "preset": "veryfast"}
                        vs.codec_context.time_base = 1 / rate
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                    frame.pts = count
                    box.mux(vs.encode(frame))
                    count += 1
                    bar.update(1)
                    if samples is not None:  # interleave: audio up to the current video time
                        until = min(len(samples), int(round(count / fps * AAC_RATE)))
                        a_pos = _mux_audio(box, aus, samples, a_pos, until)
            if count != n_frames:
                raise AdameshError(f"renderer produced {count} frames, expected {n_frames}")
            box.mux(vs.encode(None))
            if samples is not None:
                _mux_audio(box, aus, samples, a_pos, len(samples), final=True)
                box.mux(aus.encode(None))
    elapsed = time.perf_counter() - t0
    return {
        "path": str(out),
        "frames": n_frames,
        "fps": fps,
        "seconds": duration,
        "render_seconds": elapsed,
        "render_fps": n_frames / max(elapsed, 1e-9),
        "audio": bool(audio),
    }


def _mux_audio(box, stream, samples, start, until, final=False):
    import av

    while start + AUDIO_FRAME <= until or (final and start < until):
        chunk = samples[start : start + AUDIO_FRAME]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = AAC_RATE
        frame.pts = start
        box.mux(stream.encode(frame))
        start += len(chunk)
    return start
