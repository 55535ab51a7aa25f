"""VOCASET (Cudeiro et al. 2019) in the processed layout of FaceFormer and CodeTalker.

::

    root/
      vertices_npy/<Subject>_sentenceNN.npy   (T, 15069) float32: 5023 FLAME vertices x 3, 60 fps, metres
      wav/<Subject>_sentenceNN.wav            the sentence's speech
      templates.pkl                           optional: {subject: (5023, 3) neutral vertices}

`read_vocaset` returns one `VertexClip` per sentence, resampled to the motion rate so that its
frame count is the one adamesh derives from the audio (`adamesh.audio.frame_count`).

The resampling and restricted-pickle helpers here are shared with `adamesh.data.trackers`.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from adamesh.audio import frame_count
from adamesh.errors import AdameshError, AdameshWarning

SOURCE_FPS = 60.0
MISMATCH_S = 0.25  # audio and motion lengths differing by more than this point at a pairing mistake


@dataclass
class VertexClip:
    """One sentence: ``vertices`` (T, V, 3) float32 at ``fps``, with its speech and neutral face."""

    name: str
    speaker: str
    vertices: np.ndarray
    fps: float
    audio: Path | None
    template: np.ndarray | None


def read_vocaset(
    root: str | os.PathLike,
    fps: float = 25.0,
    speakers: Iterable[str] | None = None,
    source_fps: float = SOURCE_FPS,
) -> list[VertexClip]:
    """Every sentence under `root` (or only those of `speakers`), sorted by name, at `fps`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AdameshError(f"VOCASET folder {root} does not exist")
    vert_dir = root / "vertices_npy"
    if not vert_dir.is_dir():
        raise AdameshError(f"{root} has no vertices_npy folder; expected the FaceFormer/CodeTalker layout")
    files = sorted(vert_dir.glob("*.npy"))
    if not files:
        raise AdameshError(f"{vert_dir} holds no .npy vertex files")
    clips_of = []  # (speaker, file)
    for f in files:
        speaker, sep, _ = f.stem.rpartition("_sentence")
        if not sep or not speaker:
            raise AdameshError(f"{f.name}: VOCASET files are named <Subject>_sentenceNN.npy")
        clips_of.append((speaker, f))
    if speakers is not None:
        speakers, found = set(speakers), dict.fromkeys(s for s, _ in clips_of)
        unknown = sorted(speakers - set(found))
        if unknown:
            raise AdameshError(f"no VOCASET speaker {', '.join(unknown)} in {root}; found {', '.join(found)}")
        clips_of = [(s, f) for s, f in clips_of if s in speakers]
    templates = _read_templates(root / "templates.pkl")

    clips, silent = [], []
    for speaker, f in clips_of:
        wav = root / "wav" / f"{f.stem}.wav"
        if not wav.is_file():
            wav = None
            silent.append(f.stem)
        # Memory-mapped: only the rows the interpolation needs are read.
        try:
            flat = np.load(f, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AdameshError(f"cannot read {f}: {e}") from None
        if flat.ndim != 2 or flat.shape[1] % 3 or len(flat) == 0:
            raise AdameshError(f"{f}: shape {flat.shape}; expected (frames, 3 x vertices) flattened vertices")
        verts = resample_linear(flat, source_fps, fps, target_frames(len(flat), source_fps, fps, wav, f))
        if not np.isfinite(verts).all():
            raise AdameshError(f"{f} contains NaN or infinite vertex positions")
        verts = verts.reshape(len(verts), -1, 3)
        template = templates.get(speaker)
        if template is not None and template.shape != verts.shape[1:]:
            raise AdameshError(
                f"templates.pkl: {speaker!r} has shape {template.shape} but {f.name} has "
                f"{verts.shape[1]} vertices"
            )
        clips.append(VertexClip(f.stem, speaker, verts, float(fps), wav, template))
    if silent:
        warnings.warn(
            f"{len(silent)} of {len(clips)} VOCASET clips have no wav in {root / 'wav'} and are kept "
            f"without audio: {', '.join(silent[:5])}{' ...' if len(silent) > 5 else ''}",
            AdameshWarning,
            stacklevel=2,
        )
    return clips


def _read_templates(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise AdameshError(f"{path} holds a {type(data).__name__}, expected a dict of subject -> vertices")
    templates = {}
    for speaker, verts in data.items():
        verts = np.asarray(verts)
        if verts.ndim != 2 or verts.shape[1] != 3 or verts.dtype.kind not in "fiu":
            raise AdameshError(f"{path}: {speaker!r} has shape {verts.shape}; expected (vertices, 3) numbers")
        templates[str(speaker)] = verts.astype(np.float32)
    return templates


# --------------------------------------------------------------------------- shared helpers


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

    NUMPY = frozenset({"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"})

    def find_class(self, module: str, name: str):
        numpy_array = module.split(".")[0] == "numpy" and name in self.NUMPY
        if numpy_array or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it contains a {module}.{name} object; only numpy arrays are accepted "
            "(convert tensors with .numpy() before saving)"
        )


def load_pickle(path: Path, fh=None):
    """Unpickle `path` (or the rest of the open file `fh`) with `_ArrayUnpickler`."""
    try:
        if fh is not None:
            return _ArrayUnpickler(fh, encoding="latin1").load()
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - a malformed pickle can fail in any way; all mean "unreadable"
        raise AdameshError(f"cannot read {path}: {e}") from None
