"""Face tracking on real talking-face video: rig motion for clip folders.

`track_video` finds the face on every frame (MediaPipe Face Mesh, `tracking.landmarks`), fits a
rig's ARKit blendshapes and head pose to its landmarks (`tracking.fit`) and writes a clip folder:
motion, speech, a report and an overlay video to check the fit by eye (`tracking.overlay`).
`track_mouth_opening` gives the inner-lip gap for the lip-sync benchmark. Both resample onto the
motion frame grid of `adamesh.audio` (`tracking.video`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from adamesh.audio import SAMPLE_RATE, load_audio
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.fileio import atomic_output, check_companion, check_output_folder, check_writable
from adamesh.motion import ARKIT, Motion, save_motion
from adamesh.rigs import BlendshapeRig, Rig, load_rig
from adamesh.tracking.fit import fit_landmarks
from adamesh.tracking.landmarks import (
    covered,
    face_landmarks,
    face_mesh_module,
    opening_on_grid,
    track_mouth_opening,
)
from adamesh.tracking.overlay import write_overlay
from adamesh.tracking.video import audio_grid, check_fps, probe, read_video_frames, video_files, video_grid

__all__ = [
    "TrackResult",
    "probe",
    "read_video_frames",
    "track_mouth_opening",
    "track_video",
    "track_videos",
    "video_files",
]

TRACKER = "mediapipe face mesh (478 points, refined) + adamesh.tracking.fit"
TRACK_OUTPUTS = (".npz", ".wav", "_track.json", "_overlay.mp4")  # a clip folder's files, per video


@dataclass
class TrackResult:
    """What `track_video` found and wrote. fit_error (T,) is in millimetres, NaN where valid is
    False (motion frames interpolated because no face was seen); identity holds the rig's identity
    coefficients (empty for the builtin head); fps_tracked is video frames read, tracked and fitted
    per second of wall time (the overlay not counted); opening and opening_valid are what
    `track_mouth_opening` returns for the video, from the same landmarks; speech is the video's
    sound at 16 kHz (None without sound)."""

    motion: Motion
    fit_error: np.ndarray
    valid: np.ndarray
    identity: np.ndarray
    fps_tracked: float
    paths: list[Path]
    warnings: list[str]
    opening: np.ndarray
    opening_valid: np.ndarray
    speech: np.ndarray | None


def track_video(video: str | os.PathLike, out_dir: str | os.PathLike | None, rig: str | Rig = "builtin",
                fps: float = 25.0, overlay: bool = True, progress: bool = True,
                speaker: str | None = None) -> TrackResult:  # fmt: skip
    """Track the face in `video` and fit `rig` to it: a clip folder for training and adaptation.

    MediaPipe Face Mesh finds the face on every video frame (the largest one when there are
    several); its 68 Multi-PIE landmarks are interpolated onto the motion frame grid (as in
    `track_mouth_opening`) and `tracking.fit.fit_landmarks` turns them into ARKit motion. Written
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

    With `out_dir` None nothing is written: the result holds the motion and the speech.

    Raises AdameshError when the file is not a readable video, mediapipe is missing, or no frame
    shows a face; no file is written then.
    """
    t0 = time.perf_counter()
    check_fps(fps)
    if out_dir is not None:
        out = check_output_folder(out_dir, TRACK_OUTPUTS, "tracked clips")
    name = os.fspath(video)
    has_audio, origin, n_video = probe(name)
    rig = load_rig(rig)
    if not isinstance(rig, BlendshapeRig) or rig.landmarks is None:
        raise AdameshError(f"rig {rig.name!r} has no ARKit blendshapes with landmarks to fit; "
                           "use builtin or ict")  # fmt: skip
    stem = Path(name).stem
    created = False
    if out_dir is not None:
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
    try:
        if out_dir is not None:
            ends = (".wav", "_overlay.mp4", "_track.json", ".npz")
            wav, film, report, motion_path = (out / f"{stem}{end}" for end in ends)
            for path in (wav, film, report, motion_path):
                check_writable(path)
            if has_audio:
                check_companion(wav, motion_path)

        grid = audio_grid(name, origin, fps) if has_audio else None
        times, marks, crowded = face_landmarks(name, n_video, progress)
        if grid is None:
            grid = video_grid(times, fps)
        found = np.isfinite(marks[:, 0, 0])
        points = np.stack(
            [np.interp(grid, times[found], c[found]) for c in marks.reshape(len(marks), -1).T], 1
        )
        valid = covered(grid, times, found)
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

    speech = load_audio(name, SAMPLE_RATE)[0] if has_audio else None
    error = fit.error_mm[valid]
    summary = {"median": np.median(error), "p95": np.percentile(error, 95), "max": error.max()}
    summary = {k: round(float(v), 3) for k, v in summary.items()}
    meta = {"producer": "adamesh track", "speaker": speaker or stem, "source": name, "tracker": TRACKER, "rig": rig.name,
            "fit_error_mm": summary, "unobserved": list(fit.unobserved)}  # fmt: skip
    result = TrackResult(
        Motion(fit.params, ARKIT, fps, meta=meta),
        fit.error_mm.astype(np.float32),
        valid,
        fit.identity,
        len(times) / seconds,
        [],
        notes,
        *opening_on_grid(grid, times, marks),
        speech,
    )
    if out_dir is None:
        return result

    if has_audio:
        with atomic_output(wav) as tmp:
            sf.write(tmp, speech, SAMPLE_RATE)
        result.paths.append(wav)
        result.motion.audio = str(wav)
    overlay_seconds = 0.0
    if overlay:
        t1 = time.perf_counter()
        write_overlay(film, name, rig, fit, points.reshape(-1, 68, 3), grid, fps, wav if has_audio else None,
                       progress)  # fmt: skip
        overlay_seconds = time.perf_counter() - t1
        result.paths.append(film)
    with atomic_output(report) as tmp:
        tmp.write_text(json.dumps({
            "video": name, "rig": rig.name, "fps": fps, "frames": len(grid), "video_frames": len(times),
            "valid": valid.tolist(),
            "fit_error_mm": [round(float(e), 3) if v else None for e, v in zip(fit.error_mm, valid)],
            "fit_error_mm_summary": summary,
            "identity": fit.identity.tolist(),
            "rig_mismatch_mm": round(float(np.sqrt(np.mean(np.sum(fit.correction_mm**2, axis=1)))), 3),
            "timing": {"tracking_seconds": round(seconds, 3), "frames_per_second": round(result.fps_tracked, 1),
                       "overlay_seconds": round(overlay_seconds, 3)},
            "warnings": notes,
        }))  # fmt: skip
    result.paths.append(report)
    save_motion(result.motion, motion_path)
    result.paths.append(motion_path)
    return result


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


def track_videos(
    videos: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    rig: str = "builtin",
    fps: float = 25.0,
    speaker: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[list[Path], list[str]]:
    """Track many videos into one clip folder (a training set: `adamesh train --data out_dir`).

    Each video is tracked as by `track_video` without its overlay, by a pool of `workers` processes
    (default: all cores). Videos whose motion file is already in `out_dir` are skipped, so an
    interrupted run resumes. A video that cannot be tracked (no face, damaged file) is left out and
    named in the returned failures. Returns (motion files of all tracked videos, failures)."""
    paths = video_files(videos)
    out = check_output_folder(out_dir, TRACK_OUTPUTS, "tracked clips")
    todo = [p for p in paths if not (out / f"{p.stem}.npz").is_file()]
    failures = []
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    tasks = [(p, out, rig, fps, speaker) for p in todo]
    if todo:
        face_mesh_module()  # a clear error before the workers start when mediapipe is missing
        # Spawned, not forked: MediaPipe aborts in a child forked from a process that has used it.
        # An executor, not a Pool: a worker that dies breaks it instead of hanging it.
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            try:
                for error in tqdm(
                    pool.map(_track_one, tasks),
                    total=len(tasks),
                    desc="tracking",
                    unit="video",
                    disable=not progress,
                ):
                    if error:
                        failures.append(error)
            except BrokenProcessPool:
                raise AdameshError(
                    f"a tracking process died; the videos tracked so far are in {out}, "
                    "and running the command again resumes"
                ) from None
    return [out / f"{p.stem}.npz" for p in paths if (out / f"{p.stem}.npz").is_file()], failures
