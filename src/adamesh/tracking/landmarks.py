"""MediaPipe Face Mesh on every video frame, and the mouth opening measured from its landmarks.

mediapipe is imported only when tracking is asked for: it is a large optional dependency (see the
Makefile's install rule for how it is installed). Its C++ graph logs to the process's stderr from
threads of its own (TensorFlow Lite delegates, calculator warnings); those lines say nothing to a
user, so they are dropped unless ADAMESH_VERBOSE is set.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
from tqdm import tqdm

from adamesh.errors import AdameshError
from adamesh.tracking.video import audio_grid, check_fps, probe, read_video_frames, video_grid

# MediaPipe Face Mesh indices of the 68 Multi-PIE (iBUG) landmarks, in their order: jaw 0-16, brows
# 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67 (the subject's right side first).
MEDIAPIPE_68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 1, 98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 40, 37, 0, 267, 270, 291, 321, 405, 17, 181, 91,
    78, 81, 13, 311, 308, 402, 14, 178,
])  # fmt: skip

# Face Mesh landmark indices (canonical 468-point topology, same with refine_landmarks).
UPPER_INNER_LIP = 13
LOWER_INNER_LIP = 14
RIGHT_EYE_OUTER = 33  # the subject's right eye, on the left of the image
LEFT_EYE_OUTER = 263
_AT = {int(m): k for k, m in enumerate(MEDIAPIPE_68)}  # mesh index -> position among the 68

_MEDIAPIPE_HINT = (
    "install it with `make install` in a clone of adamesh, or with pip: "
    '`pip install matplotlib absl-py attrs flatbuffers opencv-python-headless "protobuf<5"` '
    "(adamesh's requirements/track.txt), then `pip install --no-deps mediapipe==0.10.21`"
)


def track_mouth_opening(video_path: str | os.PathLike, fps: float = 25.0,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Mouth opening of the face in `video_path`, per motion frame at `fps`.

    Returns (opening, valid), both of shape (n,): opening (float32) is the distance between the inner
    lips (landmarks 13 and 14) over the distance between the outer eye corners (33 and 263), measured
    in pixels on every video frame and linearly interpolated in time onto the motion frames, frame i
    at (i+0.5)/fps from the start of the audio. n = frame_count of the video's audio when it has
    audio, else round(video duration * fps). valid (bool) is False where the value had to be filled
    in: a video frame it depends on had no face found, or it lies outside the video's time span.
    When a frame shows several faces, the largest is measured.

    Raises AdameshError when mediapipe is missing, the file cannot be read, or no frame shows a face.
    """
    check_fps(fps)
    name = os.fspath(video_path)
    has_audio, origin, n_video = probe(name)  # checks the file before the slower decode and model load
    grid = audio_grid(name, origin, fps) if has_audio else None
    times, marks, _ = face_landmarks(name, n_video, progress)
    if grid is None:
        grid = video_grid(times, fps)
    return opening_on_grid(grid, times, marks)


def opening_on_grid(grid: np.ndarray, times: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opening, valid) on the motion `grid` from per-video-frame landmarks: see track_mouth_opening."""
    opening = _opening(marks)
    found = np.isfinite(opening)
    return np.interp(grid, times[found], opening[found]).astype(np.float32), covered(grid, times, found)


def face_landmarks(name: str, n_video: int | None, progress: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Face Mesh on every video frame: (times (N,), landmarks (N, 68, 3), frames with several faces).

    Landmarks are the MEDIAPIPE_68 points in pixels (x right, y down, z away from the camera, in
    units of the image width like x), NaN on frames without a face; of several faces, the largest.
    Times are unique and increasing. Raises AdameshError when no frame shows a face."""
    face_mesh = face_mesh_module()

    times, marks, crowded = [], [], 0
    with (
        native_logs_dropped() as stderr,
        face_mesh.FaceMesh(static_image_mode=False, max_num_faces=2, refine_landmarks=True) as mesh,
    ):
        frames = read_video_frames(name)
        for t, image in tqdm(frames, total=n_video, desc="face mesh", unit="frame", disable=not progress,
                             leave=False, file=stderr):  # fmt: skip
            faces = mesh.process(image).multi_face_landmarks or []
            height, width = image.shape[:2]
            # normalised by width and height separately, depth like x: back to pixels
            found = [np.array([(f.landmark[i].x, f.landmark[i].y, f.landmark[i].z) for i in MEDIAPIPE_68])
                     * (width, height, width) for f in faces]  # fmt: skip
            crowded += len(found) > 1
            times.append(t)
            marks.append(max(found, key=_box_area) if found else np.full((68, 3), np.nan))
    times, marks = np.asarray(times), np.asarray(marks)
    if not np.isfinite(marks[:, 0, 0]).any():
        raise AdameshError(f"no face found in any of the {len(times)} frames of {name}; "
                           "give a video of a face looking towards the camera")  # fmt: skip
    # Decoders emit presentation order, but a damaged stream can repeat or reorder a timestamp.
    times, first = np.unique(times, return_index=True)
    return times, marks[first], crowded


@contextlib.contextmanager
def native_logs_dropped():
    """While inside: what native code writes to the process's stderr (file descriptor 2) is dropped,
    and the stream yielded writes to the real stderr (for our own progress bars). Python's
    sys.stderr is left alone, so an exception's message still shows once the block has ended."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured, replaced): nothing to drop
        fd = None
    if os.environ.get("ADAMESH_VERBOSE") or fd is None:
        yield sys.stderr
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)
    stream = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield stream
    finally:
        stream.close()
        os.dup2(saved, fd)
        os.close(saved)


def _box_area(points: np.ndarray) -> float:
    size = points[:, :2].max(0) - points[:, :2].min(0)
    return float(size[0] * size[1])


def face_mesh_module():
    try:
        import mediapipe as mp

        return mp.solutions.face_mesh
    except ImportError as e:
        raise AdameshError(f"face tracking needs mediapipe ({e}); {_MEDIAPIPE_HINT}") from None
    except AttributeError:
        # Releases after 0.10.21 ship no legacy Face Mesh model in the wheel.
        raise AdameshError(f"this mediapipe has no built-in Face Mesh model; {_MEDIAPIPE_HINT}") from None


def _opening(marks: np.ndarray) -> np.ndarray:
    """(N,) inner-lip gap over inter-ocular distance in the image plane from (N, 68, 3) landmarks;
    NaN without a face."""
    gap = np.linalg.norm(marks[:, _AT[UPPER_INNER_LIP], :2] - marks[:, _AT[LOWER_INNER_LIP], :2], axis=1)
    eyes = np.linalg.norm(marks[:, _AT[LEFT_EYE_OUTER], :2] - marks[:, _AT[RIGHT_EYE_OUTER], :2], axis=1)
    return np.where(eyes > 0, gap / np.where(eyes > 0, eyes, 1.0), np.nan)


def covered(grid: np.ndarray, times: np.ndarray, found: np.ndarray) -> np.ndarray:
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
