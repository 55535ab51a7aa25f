"""Mouth opening measured from real talking-face video, for the lip-sync benchmark.

`track_mouth_opening` runs MediaPipe Face Mesh on every frame of a video and returns the inner-lip
gap divided by the inter-ocular distance (so it does not depend on the face's size in the image),
resampled onto the motion frame grid of `adamesh.audio`: frame i covers audio time
[i/fps, (i+1)/fps) and is sampled at its centre, (i+0.5)/fps. `energy_envelope` gives the audio's
RMS energy on the same grid, the baseline that a lip-sync model has to beat.

Frame times come from each frame's pts and the stream's time_base, never from the nominal frame
rate: MPEG-1 files carry unreliable rate metadata (the 25 fps GRID clips declare a 50 fps base rate).

mediapipe is imported only when tracking is asked for: it is a large optional dependency (see the
Makefile's install rule for how it is installed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from adamesh.audio import frame_count, load_audio
from adamesh.errors import AdameshError
from adamesh.fileio import check_input_file

# MediaPipe Face Mesh landmark indices (canonical 468-point topology, same with refine_landmarks).
UPPER_INNER_LIP = 13
LOWER_INNER_LIP = 14
RIGHT_EYE_OUTER = 33  # the subject's right eye, on the left of the image
LEFT_EYE_OUTER = 263

_MEDIAPIPE_HINT = (
    "install it with `make install`, or `pip install --no-deps mediapipe==0.10.21` plus "
    "`pip install matplotlib absl-py attrs flatbuffers opencv-python-headless \"protobuf<5\"`"
)


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
            "re-export it as mp4 (H.264)") from None
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
                "re-export it as mp4 (H.264)") from None
        if n == 0:
            raise AdameshError(f"{name} contains no decodable video frames; re-export it as mp4 (H.264)")


def energy_envelope(audio: np.ndarray, sr: int, fps: float = 25.0, db: bool = False) -> np.ndarray:
    """RMS energy of mono `audio` (n_samples,) per motion frame: shape (frame_count(n_samples, sr, fps),).

    Frame i is the RMS of samples [round(i*sr/fps), round((i+1)*sr/fps)), the last one possibly
    shorter; the same grid as `track_mouth_opening`. With `db`, 20*log10(RMS) floored at -100 dB:
    loudness in dB follows mouth opening better than linear RMS, whose few loud vowels dominate
    (mean Pearson r over the five GRID clips 0.41 against 0.32).
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise AdameshError(f"energy_envelope needs mono audio of shape (n_samples,), not {x.shape}; "
                           "load it with adamesh.audio.load_audio")  # fmt: skip
    n = frame_count(len(x), sr, fps)
    step = Fraction(sr) / Fraction(fps).limit_denominator(1001)
    edges = np.array([min(len(x), math.floor(i * step + Fraction(1, 2))) for i in range(n + 1)])
    # Sums of squares from a running total: one pass, whatever the number of frames.
    total = np.concatenate([[0.0], np.cumsum(x * x)])
    width = np.maximum(edges[1:] - edges[:-1], 1)
    rms = np.sqrt(np.maximum(total[edges[1:]] - total[edges[:-1]], 0.0) / width)
    if db:
        rms = 20.0 * np.log10(np.maximum(rms, 1e-5))
    return rms.astype(np.float32)


def track_mouth_opening(video_path: str | os.PathLike, fps: float = 25.0,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Mouth opening of the face in `video_path`, per motion frame at `fps`.

    Returns (opening, valid), both of shape (n,): opening (float32) is the distance between the inner
    lips (landmarks 13 and 14) over the distance between the outer eye corners (33 and 263), measured
    in pixels on every video frame and linearly interpolated in time onto the motion frames, frame i
    at (i+0.5)/fps from the start of the audio. n = frame_count of the video's audio when it has
    audio, else round(video duration * fps). valid (bool) is False where the value had to be filled
    in: a video frame it depends on had no face found, or it lies outside the video's time span.

    Raises AdameshError when mediapipe is missing, the file cannot be read, or no frame shows a face.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise AdameshError(f"fps must be a positive number of frames per second, not {fps}")
    name = os.fspath(video_path)
    with _open_video(name) as container:  # checks the file before the slower decode and model load
        has_audio = bool(container.streams.audio)
        origin = _container_start(container)
        n_video = _expected_frames(container)
    if has_audio:
        # The motion grid starts at the audio's first sample and covers its length, as for any clip.
        try:
            samples, rate = load_audio(name, sample_rate=None)
        except AdameshError as e:
            raise AdameshError(
                f"cannot decode the audio track of {name}, which sets the number of motion frames: "
                "the file is damaged; re-export it as mp4 (H.264 + AAC)") from e
        start, n_frames = _audio_start(name, origin), frame_count(len(samples), rate, fps)
    face_mesh = _face_mesh_module()

    from tqdm import tqdm

    times, values = [], []
    with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True) as mesh:
        frames = read_video_frames(name)
        for t, image in tqdm(frames, total=n_video, desc="face mesh", unit="frame", disable=not progress,
                             leave=False):  # fmt: skip
            times.append(t)
            values.append(_opening(mesh.process(image), image.shape))
    times, values = np.asarray(times), np.asarray(values, dtype=np.float64)
    found = np.isfinite(values)
    if not found.any():
        raise AdameshError(f"no face found in any of the {len(times)} frames of {name}; "
                           "give a video of a face looking towards the camera")  # fmt: skip

    # Decoders emit presentation order, but a damaged stream can repeat or reorder a timestamp.
    times, first = np.unique(times, return_index=True)
    values, found = values[first], found[first]
    if not has_audio:
        # The video's own span: first frame to the end of the last one.
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
        start, n_frames = times[0], max(1, math.floor((times[-1] + step - times[0]) * fps + 0.5))
    grid = start + (np.arange(n_frames) + 0.5) / fps
    opening = np.interp(grid, times[found], values[found])
    return opening.astype(np.float32), _covered(grid, times, found)


def _face_mesh_module():
    try:
        import mediapipe as mp

        return mp.solutions.face_mesh
    except ImportError as e:
        raise AdameshError(f"face tracking needs mediapipe ({e}); {_MEDIAPIPE_HINT}") from None
    except AttributeError:
        # Releases after 0.10.21 ship no legacy Face Mesh model in the wheel.
        raise AdameshError(f"this mediapipe has no built-in Face Mesh model; {_MEDIAPIPE_HINT}") from None


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


def _opening(result, shape: tuple[int, ...]) -> float:
    """Inner-lip gap over inter-ocular distance, in pixels; NaN when no face was found."""
    if not result.multi_face_landmarks:
        return math.nan
    height, width = shape[:2]
    marks = result.multi_face_landmarks[0].landmark

    # Landmarks are normalised separately by width and height: scale back before measuring.
    def point(i):
        return np.array([marks[i].x * width, marks[i].y * height])

    eyes = np.linalg.norm(point(LEFT_EYE_OUTER) - point(RIGHT_EYE_OUTER))
    if eyes <= 0:
        return math.nan
    return float(np.linalg.norm(point(UPPER_INNER_LIP) - point(LOWER_INNER_LIP)) / eyes)


def _covered(grid: np.ndarray, times: np.ndarray, found: np.ndarray) -> np.ndarray:
    """True where every video frame that a motion frame's interpolated value leans on had a face."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    hi = np.clip(np.searchsorted(times, grid, side="right"), 0, len(times) - 1)
    lo = np.clip(hi - 1, 0, len(times) - 1)
    span = times[hi] - times[lo]
    w_hi = np.where(span > 0, (grid - times[lo]) / np.where(span > 0, span, 1.0), 0.0)
    ok = (found[lo] | (w_hi >= 1)) & (found[hi] | (w_hi <= 0))
    # Before the first frame or more than one frame after the last, the value is held, not measured.
    inside = (grid >= times[0] - step / 2) & (grid <= times[-1] + step)
    return ok & inside
