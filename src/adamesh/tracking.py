"""Face tracking on real talking-face video: rig motion for clip folders, mouth opening for the
lip-sync benchmark.

`track_video` fits a rig's ARKit blendshapes and head pose to the face on every frame (MediaPipe
Face Mesh landmarks, fitted by `adamesh.facefit`) and writes a clip folder: motion, speech, a
report and an overlay video to check the fit by eye. `track_mouth_opening` returns the inner-lip
gap divided by the inter-ocular distance (so it does not depend on the face's size in the image).
Both resample onto the motion frame grid of `adamesh.audio`: frame i covers audio time
[i/fps, (i+1)/fps) and is sampled at its centre, (i+0.5)/fps. `energy_envelope` gives the audio's
RMS energy on the same grid, the baseline that a lip-sync model has to beat.

Frame times come from each frame's pts and the stream's time_base, never from the nominal frame
rate: MPEG-1 files carry unreliable rate metadata (the 25 fps GRID clips declare a 50 fps base rate).

mediapipe is imported only when tracking is asked for: it is a large optional dependency (see the
Makefile's install rule for how it is installed).
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import soundfile as sf
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from adamesh.audio import frame_count, load_audio
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.facefit import MEDIAPIPE_68, FaceFit, fit_landmarks, fitted_vertices
from adamesh.fileio import atomic_output, check_companion, check_input_file, check_writable
from adamesh.motion import ARKIT, Motion, save_motion
from adamesh.rigs import BlendshapeRig, Rig, load_rig

# MediaPipe Face Mesh landmark indices (canonical 468-point topology, same with refine_landmarks).
UPPER_INNER_LIP = 13
LOWER_INNER_LIP = 14
RIGHT_EYE_OUTER = 33  # the subject's right eye, on the left of the image
LEFT_EYE_OUTER = 263
_AT = {int(m): k for k, m in enumerate(MEDIAPIPE_68)}  # mesh index -> position among the 68
TRACKER = "mediapipe face mesh (478 points, refined) + adamesh.facefit"
OVERLAY_ALPHA = 0.45  # opacity of the fitted mesh over the video

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
    When a frame shows several faces, the largest is measured.

    Raises AdameshError when mediapipe is missing, the file cannot be read, or no frame shows a face.
    """
    _check_fps(fps)
    name = os.fspath(video_path)
    has_audio, origin, n_video = _probe(name)  # checks the file before the slower decode and model load
    grid = _audio_grid(name, origin, fps) if has_audio else None
    times, marks, _ = _face_landmarks(name, n_video, progress)
    if grid is None:
        grid = _video_grid(times, fps)
    return _opening_on_grid(grid, times, marks)


def _opening_on_grid(grid: np.ndarray, times: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opening, valid) on the motion `grid` from per-video-frame landmarks: see track_mouth_opening."""
    opening = _opening(marks)
    found = np.isfinite(opening)
    return np.interp(grid, times[found], opening[found]).astype(np.float32), _covered(grid, times, found)


@dataclass
class TrackResult:
    """What `track_video` found and wrote. fit_error (T,) is in millimetres, NaN where valid is
    False (motion frames interpolated because no face was seen); identity holds the rig's identity
    coefficients (empty for the builtin head); fps_tracked is video frames read, tracked and fitted
    per second of wall time (the overlay not counted); opening and opening_valid are what
    `track_mouth_opening` returns for the video, from the same landmarks."""

    motion: Motion
    fit_error: np.ndarray
    valid: np.ndarray
    identity: np.ndarray
    fps_tracked: float
    paths: list[Path]
    warnings: list[str]
    opening: np.ndarray
    opening_valid: np.ndarray


def track_video(video: str | os.PathLike, out_dir: str | os.PathLike, rig: str | Rig = "builtin",
                fps: float = 25.0, overlay: bool = True, progress: bool = True,
                speaker: str | None = None) -> TrackResult:  # fmt: skip
    """Track the face in `video` and fit `rig` to it: a clip folder for training and adaptation.

    MediaPipe Face Mesh finds the face on every video frame (the largest one when there are
    several); its 68 Multi-PIE landmarks are interpolated onto the motion frame grid (as in
    `track_mouth_opening`) and `adamesh.facefit.fit_landmarks` turns them into ARKit motion. Written
    to `out_dir` (created if needed), each file atomically, the motion last:

    - ``<stem>.wav``: the video's sound, 16 kHz mono (none when the video has no audio);
    - ``<stem>_overlay.mp4`` (with `overlay`): the video with the fitted face drawn over it, a
      semi-transparent mesh, its fitted landmarks (red: the rig's own plus the static correction) and
      MediaPipe's (green);
    - ``<stem>_track.json``: per-frame fit error (mm) and validity, identity coefficients, how far
      the person's landmarks lie from the rig's once expression is removed (``rig_mismatch_mm``,
      RMS), timing;
    - ``<stem>.npz``: the motion (ARKIT space at `fps`, its audio the wav, meta naming the speaker
      (`speaker`, by default <stem>), the source, tracker and rig).

    Raises AdameshError when the file is not a readable video, mediapipe is missing, or no frame
    shows a face; no file is written then.
    """
    t0 = time.perf_counter()
    _check_fps(fps)
    name = os.fspath(video)
    has_audio, origin, n_video = _probe(name)
    rig = load_rig(rig)
    if not isinstance(rig, BlendshapeRig) or rig.landmarks is None:
        raise AdameshError(f"rig {rig.name!r} has no ARKit blendshapes with landmarks to fit; "
                           "use builtin or ict")  # fmt: skip
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AdameshError(f"output folder {out} is a file; give a folder for the tracked clip")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        stem = Path(name).stem
        ends = (".wav", "_overlay.mp4", "_track.json", ".npz")
        wav, film, report, motion_path = (out / f"{stem}{end}" for end in ends)
        for path in (wav, film, report, motion_path):
            check_writable(path)
        if has_audio:
            check_companion(wav, motion_path)

        grid = _audio_grid(name, origin, fps) if has_audio else None
        times, marks, crowded = _face_landmarks(name, n_video, progress)
        if grid is None:
            grid = _video_grid(times, fps)
        found = np.isfinite(marks[:, 0, 0])
        points = np.stack([np.interp(grid, times[found], c[found]) for c in marks.reshape(len(marks), -1).T], 1)
        valid = _covered(grid, times, found)
        fit = fit_landmarks(rig, points.reshape(-1, 68, 3), valid)
        seconds = time.perf_counter() - t0
    except BaseException:  # no face, an interruption ...: a folder made for nothing goes again
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise

    notes = []
    if crowded:
        notes.append(f"{name}: {crowded} video frames show more than one face; the largest was tracked")
    if not found.all():
        notes.append(f"{name}: no face on {int((~found).sum())} of {len(found)} video frames; "
                     f"{int((~valid).sum())} motion frames are interpolated and marked invalid")  # fmt: skip
    for note in notes:
        warnings.warn(note, AdameshWarning, stacklevel=2)

    written = []
    if has_audio:
        samples, rate = load_audio(name)
        with atomic_output(wav) as tmp:
            sf.write(tmp, samples, rate)
        written.append(wav)
    overlay_seconds = 0.0
    if overlay:
        t1 = time.perf_counter()
        _write_overlay(film, name, rig, fit, points.reshape(-1, 68, 3), grid, fps, wav if has_audio else None,
                       progress)  # fmt: skip
        overlay_seconds = time.perf_counter() - t1
        written.append(film)
    error = fit.error_mm[valid]
    summary = {"median": np.median(error), "p95": np.percentile(error, 95), "max": error.max()}
    summary = {k: round(float(v), 3) for k, v in summary.items()}
    fps_tracked = len(times) / seconds
    with atomic_output(report) as tmp:
        tmp.write_text(json.dumps({
            "video": name, "rig": rig.name, "fps": fps, "frames": len(grid), "video_frames": len(times),
            "valid": valid.tolist(),
            "fit_error_mm": [round(float(e), 3) if v else None for e, v in zip(fit.error_mm, valid)],
            "fit_error_mm_summary": summary,
            "identity": fit.identity.tolist(),
            "rig_mismatch_mm": round(float(np.sqrt(np.mean(np.sum(fit.correction_mm**2, axis=1)))), 3),
            "timing": {"tracking_seconds": round(seconds, 3), "frames_per_second": round(fps_tracked, 1),
                       "overlay_seconds": round(overlay_seconds, 3)},
            "warnings": notes,
        }))  # fmt: skip
    written.append(report)
    meta = {"producer": "adamesh track", "speaker": speaker or stem, "source": name, "tracker": TRACKER, "rig": rig.name,
            "fit_error_mm": summary, "unobserved": list(fit.unobserved)}  # fmt: skip
    motion = Motion(fit.params, ARKIT, fps, audio=str(wav) if has_audio else None, meta=meta)
    save_motion(motion, motion_path)
    written.append(motion_path)
    error = fit.error_mm.astype(np.float32)
    return TrackResult(motion, error, valid, fit.identity, fps_tracked, written, notes,
                       *_opening_on_grid(grid, times, marks))


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
        raise AdameshError(f"several videos are named {twice[0]}: their files would overwrite each other "
                           "in one clip folder; rename them or track them into different folders")
    return out


def _track_one(args) -> str | None:
    """Track one video of `track_videos`; the error message if it cannot be tracked."""
    video, out_dir, rig, fps, speaker = args
    torch.set_num_threads(1)  # one process per core
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AdameshWarning)
            track_video(video, out_dir, rig, fps, overlay=False, progress=False, speaker=speaker)
        return None
    except AdameshError as e:
        return str(e)


def track_videos(videos: list[str | os.PathLike], out_dir: str | os.PathLike, rig: str = "builtin",
                 fps: float = 25.0, speaker: str | None = None, workers: int | None = None,
                 progress: bool = True) -> tuple[list[Path], list[str]]:
    """Track many videos into one clip folder (a training set: `adamesh train --data out_dir`).

    Each video is tracked as by `track_video` without its overlay, by a pool of `workers` processes
    (default: all cores). Videos whose motion file is already in `out_dir` are skipped, so an
    interrupted run resumes. A video that cannot be tracked (no face, damaged file) is left out and
    named in the returned failures. Returns (motion files of all tracked videos, failures)."""
    paths = video_files(videos)
    out = Path(out_dir)
    todo = [p for p in paths if not (out / f"{p.stem}.npz").is_file()]
    failures = []
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    tasks = [(p, out, rig, fps, speaker) for p in todo]
    if todo:
        _face_mesh_module()  # a clear error before the workers start when mediapipe is missing
        # Spawned, not forked: MediaPipe aborts in a child forked from a process that has used it.
        # An executor, not a Pool: a worker that dies breaks it instead of hanging it.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            try:
                for error in tqdm(pool.map(_track_one, tasks), total=len(tasks), desc="tracking", unit="video",
                                  disable=not progress):
                    if error:
                        failures.append(error)
            except BrokenProcessPool:
                raise AdameshError(f"a tracking process died; the videos tracked so far are in {out}, "
                                   "and running the command again resumes") from None
    return [out / f"{p.stem}.npz" for p in paths if (out / f"{p.stem}.npz").is_file()], failures


def _check_fps(fps: float) -> None:
    if not (math.isfinite(fps) and fps > 0):
        raise AdameshError(f"fps must be a positive number of frames per second, not {fps}")


def _probe(name: str) -> tuple[bool, float, int | None]:
    """Whether the video has audio, its start time and its expected number of video frames."""
    with _open_video(name) as container:
        return bool(container.streams.audio), _container_start(container), _expected_frames(container)


def _audio_grid(name: str, origin: float, fps: float) -> np.ndarray:
    """Motion frame times: starting at the audio's first sample and covering its length, as for any
    clip; frame i sampled at its centre."""
    try:
        samples, rate = load_audio(name, sample_rate=None)
    except AdameshError as e:
        raise AdameshError(
            f"cannot decode the audio track of {name}, which sets the number of motion frames: "
            "the file is damaged; re-export it as mp4 (H.264 + AAC)") from e
    return _audio_start(name, origin) + (np.arange(frame_count(len(samples), rate, fps)) + 0.5) / fps


def _video_grid(times: np.ndarray, fps: float) -> np.ndarray:
    """Motion frame times for a video without sound: its own span, first frame to the end of the last."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / fps
    n_frames = max(1, math.floor((times[-1] + step - times[0]) * fps + 0.5))
    return times[0] + (np.arange(n_frames) + 0.5) / fps


def _face_landmarks(name: str, n_video: int | None, progress: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Face Mesh on every video frame: (times (N,), landmarks (N, 68, 3), frames with several faces).

    Landmarks are the MEDIAPIPE_68 points in pixels (x right, y down, z away from the camera, in
    units of the image width like x), NaN on frames without a face; of several faces, the largest.
    Times are unique and increasing. Raises AdameshError when no frame shows a face."""
    face_mesh = _face_mesh_module()

    times, marks, crowded = [], [], 0
    with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=2, refine_landmarks=True) as mesh:
        frames = read_video_frames(name)
        for t, image in tqdm(frames, total=n_video, desc="face mesh", unit="frame", disable=not progress,
                             leave=False):  # fmt: skip
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


def _box_area(points: np.ndarray) -> float:
    size = points[:, :2].max(0) - points[:, :2].min(0)
    return float(size[0] * size[1])


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


def _opening(marks: np.ndarray) -> np.ndarray:
    """(N,) inner-lip gap over inter-ocular distance in the image plane from (N, 68, 3) landmarks;
    NaN without a face."""
    gap = np.linalg.norm(marks[:, _AT[UPPER_INNER_LIP], :2] - marks[:, _AT[LOWER_INNER_LIP], :2], axis=1)
    eyes = np.linalg.norm(marks[:, _AT[LEFT_EYE_OUTER], :2] - marks[:, _AT[RIGHT_EYE_OUTER], :2], axis=1)
    return np.where(eyes > 0, gap / np.where(eyes > 0, eyes, 1.0), np.nan)


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


def _write_overlay(path: Path, name: str, rig: BlendshapeRig, fit: FaceFit, observed: np.ndarray,
                   grid: np.ndarray, fps: float, audio: Path | None, progress: bool) -> None:  # fmt: skip
    """The video frame shown at each motion frame, with the fitted face drawn over it."""
    from adamesh.geometry import NormalComputer
    from adamesh.render import make_renderer
    from adamesh.render.video import write_video

    frames = _frames_at(name, grid)
    first = next(frames)
    height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2  # H.264 wants even sizes
    # Only the face, eyes and mouth: what lies within the face region's box on the neutral mesh
    # (a bust or the back of the head would hide the video).
    face = rig.neutral[rig.regions["face"]]
    inside = np.all((rig.neutral >= face.min(0)) & (rig.neutral <= face.max(0)), axis=1)
    triangles = rig.faces[inside[rig.faces].all(1)]
    mesh_part = SimpleNamespace(faces=triangles, colors=rig.colors)  # all make_renderer reads of a rig
    renderer = make_renderer(mesh_part, _pixel_camera(width, height))
    normals = NormalComputer(triangles, rig.n_vertices)
    to_world = np.array([1.0, -1.0, -1.0], np.float32)  # image pixels -> the camera's y-up, z-out frame
    empty = renderer.render(np.full_like(rig.neutral, -1e6), np.zeros_like(rig.neutral))  # background only

    def drawn():
        for start in range(0, len(grid), 32):
            frames_here = slice(start, min(start + 32, len(grid)))
            own = fitted_vertices(rig, fit, frames_here)
            verts = fit.to_image(own, frames_here).astype(np.float32)
            # the fitted landmarks: the rig's own plus the static correction (what the fit explains)
            marks = fit.to_image(own[:, rig.landmarks] + fit.correction_mm * rig.units_per_meter / 1000.0,
                                 frames_here)
            for k, v in enumerate(verts):
                image = (first if start + k == 0 else next(frames))[:height, :width]
                world = v * to_world
                mesh = renderer.render(world, normals(world))
                cover = np.any(mesh != empty, axis=2, keepdims=True) * OVERLAY_ALPHA
                pil = Image.fromarray((image * (1 - cover) + mesh * cover).astype(np.uint8))
                draw = ImageDraw.Draw(pil)
                seen = observed[start + k] if fit.valid[start + k] else []  # none where interpolated
                for (x, y, _), colour in [*((p, (60, 255, 60)) for p in seen),
                                          *((p, (255, 40, 40)) for p in marks[k])]:  # fmt: skip
                    draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
                yield np.asarray(pil)

    try:
        write_video(path, drawn(), len(grid), fps, audio=str(audio) if audio else None, progress=progress)
    finally:
        renderer.close()


def _pixel_camera(width: int, height: int):
    """An orthographic camera whose picture is the image: world x = pixel column, y = -pixel row,
    z towards the viewer, in pixels."""
    from adamesh.render.camera import Camera

    far = 40.0 * max(width, height)
    view = np.eye(4)
    view[2, 3] = -far / 2  # the camera sits in front of everything drawn, at z = far / 2
    proj = np.array([[2 / width, 0, 0, -1], [0, 2 / height, 0, 1], [0, 0, -2 / far, -1], [0, 0, 0, 1]])
    return Camera(view.astype(np.float32), proj.astype(np.float32), width, height)


def _frames_at(name: str, grid: np.ndarray) -> Iterator[np.ndarray]:
    """For each time of `grid`, the video frame on screen then (the first frame before it starts)."""
    frames = read_video_frames(name)
    current, upcoming = None, next(frames, None)
    for t in grid:
        while upcoming is not None and (current is None or upcoming[0] <= t):
            current, upcoming = upcoming, next(frames, None)
        yield current[1]

