"""The speech front-end interface: audio in, one feature row and one semantic unit per motion frame.

Every front-end computes its features on its own time grid, then `frame_times` and `sample_rows`
bring them to the motion frame rate by exact timestamps, so a 10-minute file gets exactly
round(duration * fps) rows and nothing drifts. Results are cached on disk (`FeatureCache`), keyed by
the audio's content and the front-end's configuration, so training never recomputes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.fileio import atomic_output, cache_dir

DEFAULT_FPS = 25.0


@dataclass
class Features:
    """Per-frame speech features at the motion rate: `features` (T, dim) float32, `units` (T,) int64."""

    features: np.ndarray
    units: np.ndarray
    fps: float

    def __post_init__(self):
        assert self.features.ndim == 2 and self.units.shape == (len(self.features),)

    def __len__(self) -> int:
        return len(self.features)

    def fit(self, n_frames: int) -> "Features":
        """Trim or edge-pad to exactly `n_frames` rows (clip ends may differ by a frame)."""
        if n_frames == len(self):
            return self
        idx = np.minimum(np.arange(n_frames), len(self) - 1)
        return Features(self.features[idx], self.units[idx], self.fps)


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    """Centre time in seconds of each motion frame."""
    return (np.arange(n_frames) + 0.5) / float(fps)


def sample_rows(values: np.ndarray, rate: float, times: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Linearly interpolate rows of `values` (row i at time offset + i / rate) at `times`."""
    pos = np.clip((times - offset) * rate, 0, len(values) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(values) - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return (values[lo] * (1 - w) + values[hi] * w).astype(np.float32)


def nearest_rows(values: np.ndarray, rate: float, times: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """The row of `values` (row i covering [offset + i / rate, offset + (i+1) / rate)) at each time."""
    idx = np.clip(np.floor((times - offset) * rate), 0, len(values) - 1).astype(np.int64)
    return values[idx]


class FrontEnd:
    """Base class. Subclasses set `name`, `dim`, `n_units` and implement `compute`."""

    name: str = "base"
    dim: int = 0
    n_units: int = 0
    version: int = 1  # bump when the computation changes, so old cache entries are not reused

    def config(self) -> dict:
        """Everything the output depends on (saved with models, part of the cache key)."""
        return {"name": self.name, "version": self.version}

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        """Features for 16 kHz mono float32 `audio`, exactly `n_frames` rows at `fps`."""
        raise NotImplementedError

    def __call__(self, audio: np.ndarray, fps: float = DEFAULT_FPS, n_frames: int | None = None) -> Features:
        natural = frame_count(len(audio), SAMPLE_RATE, fps)
        feats = self.compute(np.asarray(audio, np.float32), natural, fps)
        return feats if n_frames is None else feats.fit(n_frames)

    def key(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def from_file(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, n_frames: int | None = None,
                  cache: "FeatureCache | None" = None) -> Features:
        """Features of an audio file, through the on-disk cache (the default one unless `cache` is given)."""
        cache = cache if cache is not None else FeatureCache()
        return cache.get(self, path, fps, n_frames)


class FeatureCache:
    """Features on disk under <cache>/features/<front-end key>/<audio hash>-<fps>.npz."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else cache_dir() / "features"

    @staticmethod
    def audio_hash(path: str | os.PathLike) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:24]

    def path_for(self, frontend: FrontEnd, audio_path: str | os.PathLike, fps: float) -> Path:
        return self.root / frontend.key() / f"{self.audio_hash(audio_path)}-{fps:g}.npz"

    def get(self, frontend: FrontEnd, audio_path: str | os.PathLike, fps: float = DEFAULT_FPS,
            n_frames: int | None = None) -> Features:
        entry = self.path_for(frontend, audio_path, fps)
        if entry.is_file():
            try:
                with np.load(entry) as z:
                    feats = Features(z["features"], z["units"], float(z["fps"]))
                return feats if n_frames is None else feats.fit(n_frames)
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is recomputed below
        audio, _ = load_audio(audio_path)
        feats = frontend(audio, fps)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(entry) as tmp:
            np.savez(tmp, features=feats.features, units=feats.units, fps=np.float64(fps))
        (entry.parent / "config.json").write_text(json.dumps(frontend.config(), indent=1, sort_keys=True))
        return feats if n_frames is None else feats.fit(n_frames)
