"""Reading talking-face video: frames with their times, the sound's clock, the motion frame grid.

Frame times come from each frame's pts and the stream's time_base, never from the nominal frame
rate: MPEG-1 files carry unreliable rate metadata (the 25 fps GRID clips declare a 50 fps base rate).
Motion frames follow `adamesh.audio`: frame i covers audio time [i/fps, (i+1)/fps) and is sampled at
its centre, (i+0.5)/fps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from adamesh.audio import frame_count, load_audio
from adamesh.errors import AdameshError
from adamesh.fileio import check_input_file


def read_video_frames(path: str | os.PathLike,
                      fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:  # fmt: skip
    """The frames of the first video stream of `path`, in presentation order.

    Yields (time, image): time in seconds from the start of the file (the container's start time, so
    it is on the same clock as the file's audio), computed from the frame's pts and the stream's
    time_base; image an RGB uint8 array of shape (height, width, 3).

    `fps` is used only for frames that carry no timestamp (some raw streams): such a frame is placed
    1/fps after the previous one; by default the stream's nominal rate, else 25.

    The file is opened and checked before this returns, so a missing, corrupt or video-less file
    raises AdameshError here rather than at the first frame.
    """
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise AdameshError(f"fps must be a positive number of frames per second, not {fps}")
    container = _open_video(path)
    return _decode_frames(container, os.fspath(path), fps)


def _open_video(path: str | os.PathLike) -> av.container.InputContainer:
    name = check_input_file(path, "video", "a video file", "give a video of a talking face")
    try:
        container = av.open(name)
    except av.error.FFmpegError as e:
        raise AdameshError(
            f"cannot read {name} ({e.strerror}): it is corrupt or not a video file; "
            "re-export it as mp4 (H.264)"
        ) from None
    if not container.streams.video:
        container.close()
        raise AdameshError(f"{name} has no video stream; give a video of a talking face")
    return container


def _container_start(container: av.container.InputContainer) -> float:
    # In microseconds (av.time_base); MPEG program streams often start well after 0.
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _decode_frames(container, name: str, fps: float | None) -> Iterator[tuple[float, np.ndarray]]:
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading: decoding is a good share of the tracking time
        origin = _container_start(container)
        rate = fps or (float(stream.average_rate) if stream.average_rate else 25.0)
        last, n = None, 0
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and frame.time_base is not None:
                    t = float(frame.pts * frame.time_base) - origin
                else:
                    t = 0.0 if last is None else last + 1.0 / rate
                last, n = t, n + 1
                yield t, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise AdameshError(
                f"cannot decode {name} after {n} frames ({e.strerror}): the file is corrupt; "
                "re-export it as mp4 (H.264)"
            ) from None
        if n == 0:
            raise AdameshError(f"{name} contains no decodable video frames; re-export it as mp4 (H.264)")


VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".webm", ".avi")


def video_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Video files named by `paths`: files as given, folders by their videos (sorted)."""
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise AdameshError(f"no videos at {p}: it does not exist; give video files or folders of videos")
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise AdameshError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {p}")
            out += found
        else:
            check_input_file(p, "video", "a video file", "give a video of a talking face")
            out.append(p)
    stems = [p.stem for p in out]
    if len(set(stems)) < len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise AdameshError(
            f"several videos are named {twice[0]}: their files would overwrite each other "
            "in one clip folder; rename them or track them into different folders"
        )
    return out


def check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise AdameshError(f"fps must be a positive number of frames per second, not {fps}")


def probe(name: str) -> tuple[bool, float, int | None]:
    """Whether the video has audio, its start time and its expected number of video frames."""
    with _open_video(name) as container:
        return bool(container.streams.audio), _container_start(container), _expected_frames(container)


def audio_grid(name: str, origin: float, fps: float) -> np.ndarray:
    """Motion frame times: starting at the audio's first sample and covering its length, as for any
    clip; frame i sampled at its centre."""
    try:
        samples, rate = load_audio(name, sample_rate=None)
    except AdameshError as e:
        raise AdameshError(
            f"cannot decode the audio track of {name}, which sets the number of motion frames: "
            "the file is damaged; re-export it as mp4 (H.264 + AAC)"
        ) from e
    return _audio_start(name, origin) + (np.arange(frame_count(len(samples), rate, fps)) + 0.5) / fps


def video_grid(times: np.ndarray, fps: float) -> np.ndarray:
    """Motion frame times for a video without sound: its own span, first frame to the end of the last."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
    n_frames = max(1, math.floor((times[-1] + step - times[0]) * fps + 0.5))
    return times[0] + (np.arange(n_frames) + 0.5) / fps


def _expected_frames(container) -> int | None:
    """Video frame count for the progress bar: from the header, else estimated from the duration."""
    video = container.streams.video[0]
    if video.frames:
        return video.frames
    if container.duration and video.average_rate:
        return round(container.duration / av.time_base * float(video.average_rate))
    return None


def _audio_start(name: str, origin: float) -> float:
    """Time of the first decoded audio sample: load_audio's sample 0 on the file's clock.

    The first decoded frame, not the stream's start_time: decoders drop encoder priming (AAC).
    """
    with av.open(name) as container:
        for frame in container.decode(audio=0):
            return float(frame.time) - origin if frame.time is not None else 0.0
    return 0.0


def frames_at(name: str, grid: np.ndarray) -> Iterator[np.ndarray]:
    """For each time of `grid`, the video frame on screen then (the first frame before it starts)."""
    frames = read_video_frames(name)
    current, upcoming = None, next(frames, None)
    for t in grid:
        while upcoming is not None and (current is None or upcoming[0] <= t):
            current, upcoming = upcoming, next(frames, None)
        yield current[1]
