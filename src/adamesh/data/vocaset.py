"""VOCASET (Cudeiro et al. 2019) in the processed layout of FaceFormer and CodeTalker.

::

    root/
      vertices_npy/<Subject>_sentenceNN.npy   (T, 15069) float32: 5023 FLAME vertices x 3, 60 fps, metres
      wav/<Subject>_sentenceNN.wav            the sentence's speech
      templates.pkl                           optional: {subject: (5023, 3) neutral vertices}

`read_vocaset` returns one `VertexClip` per sentence, resampled to the motion rate so that its
frame count is the one adamesh derives from the audio (`adamesh.audio.frame_count`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adamesh.data.readers import load_pickle, resample_linear, target_frames
from adamesh.errors import AdameshError, AdameshWarning

SOURCE_FPS = 60.0


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
