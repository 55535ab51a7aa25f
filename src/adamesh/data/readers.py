"""Helpers shared by the readers of public data layouts (`vocaset`, `trackers`): frame-rate
conversion that agrees with the audio's frame count, and pickle loading that runs no code."""

from __future__ import annotations

import codecs
import contextlib
import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from adamesh.audio import frame_count
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.safepickle import check_sizes, numpy_names

MISMATCH_S = 0.25  # audio and motion lengths differing by more than this point at a pairing mistake


def target_frames(n_source: int, source_fps: float, fps: float, audio: Path | None, what: object) -> int:
    """Frames at `fps` for `n_source` frames at `source_fps`: as many as `audio` needs when given,
    so motion and audio features agree; warns when the two durations clearly disagree."""
    if not (0 < fps <= 1000 and 0 < source_fps <= 1000):
        raise AdameshError(f"{what}: frame rates must be in (0, 1000], got {source_fps} -> {fps}")
    if audio is None:
        return max(1, math.floor(n_source * fps / source_fps + 0.5))
    try:
        info = sf.info(str(audio))
    except (RuntimeError, OSError) as e:  # soundfile's errors are RuntimeErrors
        raise AdameshError(f"cannot read audio {audio}: {e}") from None
    seconds = info.frames / info.samplerate
    if abs(seconds - n_source / source_fps) > MISMATCH_S:
        warnings.warn(
            f"{what}: motion lasts {n_source / source_fps:.2f} s but {Path(audio).name} "
            f"{seconds:.2f} s; the motion is cut or its last frame held to match the audio",
            AdameshWarning,
            stacklevel=3,
        )
    return frame_count(info.frames, info.samplerate, fps)


def source_positions(n_source: int, source_fps: float, fps: float, n: int) -> np.ndarray:
    """Fractional source-frame index of each of `n` frames at `fps`, held at the last source frame."""
    # Multiply before dividing so that timestamps shared by both rates land exactly on a source frame.
    return np.minimum(np.arange(n) * source_fps / fps, n_source - 1)


def resample_linear(x: np.ndarray, source_fps: float, fps: float, n: int) -> np.ndarray:
    """`n` frames at `fps` of `x` (frames along axis 0 at `source_fps`, from t = 0), float32."""
    pos = source_positions(len(x), source_fps, fps, n)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (pos - i0).reshape(-1, *[1] * (x.ndim - 1))
    return (x[i0] * (1 - w) + x[i1] * w).astype(np.float32)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and scalars and plain containers, and refuses every other class, so a
    downloaded pickle cannot run code. ``_codecs.encode`` is how Python 2 pickles store bytes."""

    NUMPY = numpy_names()

    def find_class(self, module: str, name: str):
        if (module, name) in self.NUMPY:
            return self.NUMPY[module, name]
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        raise pickle.UnpicklingError(
            f"it contains a {module}.{name} object; only numpy arrays are accepted "
            "(convert tensors with .numpy() before saving)"
        )


def load_pickle(path: Path, fh=None):
    """Unpickle `path` (or the rest of the open file `fh`) with `_ArrayUnpickler`."""
    try:
        with open(path, "rb") if fh is None else contextlib.nullcontext(fh) as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()
            check_sizes(data, os.fstat(f.fileno()).st_size)
            return data
    except (Exception, SystemExit) as e:  # a malformed pickle can fail in any way; all mean "unreadable"
        raise AdameshError(f"cannot read {path}: {e}") from None
