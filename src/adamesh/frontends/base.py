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
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from adamesh.audio import SAMPLE_RATE, frame_count, load_audio
from adamesh.errors import AdameshError
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


class KMeansUnits:
    """Discrete semantic units as the nearest of k centroids (k-means fitted on a training corpus)."""

    def __init__(self, centroids: np.ndarray):
        self.centroids = np.ascontiguousarray(centroids, np.float32)

    @classmethod
    def fit(cls, rows: np.ndarray, k: int, seed: int = 0) -> "KMeansUnits":
        from scipy.cluster.vq import kmeans2

        rows = np.asarray(rows, np.float64)
        if len(rows) < k:
            raise AdameshError(
                f"cannot fit {k} units on only {len(rows)} feature frames; "
                "use fewer units or more training audio"
            )
        centroids, _ = kmeans2(rows, k, iter=30, minit="++", seed=np.random.default_rng(seed))
        return cls(centroids)

    def assign(self, features: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(self.centroids)
        out = [
            torch.cdist(torch.from_numpy(chunk), c).argmin(1)
            for chunk in np.array_split(np.asarray(features, np.float32), max(1, len(features) // 4096 + 1))
        ]
        return torch.cat(out).numpy().astype(np.int64)

    def digest(self) -> str:
        return hashlib.sha256(self.centroids.tobytes()).hexdigest()[:16]


class FrontEnd:
    """Base class. Subclasses set `name`, `dim`, `n_units` and implement `compute`.

    Front-ends whose units are k-means clusters of their features (`mel`, `hubert`, `wav2vec2`)
    hold a `KMeansUnits` fitted with `fit_units` on training audio and saved with the model; until
    then their units are all 0.
    """

    name: str = "base"
    dim: int = 0
    n_units: int = 0
    version: int = 1  # bump when the computation changes, so old cache entries are not reused
    units_model: KMeansUnits | None = None

    def options(self) -> dict:
        """Constructor arguments that rebuild this front-end (see `frontends.make_frontend`)."""
        return {}

    def config(self) -> dict:
        """What `compute` depends on: the cache key. Fitted units are applied after the cache."""
        return {"name": self.name, "version": self.version, **self.options()}

    def unit_features(self, features: np.ndarray) -> np.ndarray:
        """The part of the features that k-means units are computed from (all of it by default)."""
        return features

    def fit_units(self, features: list[Features], k: int, seed: int = 0, max_frames: int = 200_000) -> None:
        """Fit k-means units on features of training audio (at most `max_frames` random frames)."""
        rows = np.concatenate([self.unit_features(f.features) for f in features])
        rng = np.random.default_rng(seed)
        if len(rows) > max_frames:
            rows = rows[rng.choice(len(rows), max_frames, replace=False)]
        self.units_model = KMeansUnits.fit(rows, k, seed)
        self.n_units = k

    def assign_units(self, features: np.ndarray) -> np.ndarray:
        if self.units_model is None:
            return np.zeros(len(features), np.int64)
        return self.units_model.assign(self.unit_features(features))

    def compute(self, audio: np.ndarray, n_frames: int, fps: float) -> Features:
        """Features for 16 kHz mono float32 `audio`, exactly `n_frames` rows at `fps`."""
        raise NotImplementedError

    def __call__(self, audio: np.ndarray, fps: float = DEFAULT_FPS, n_frames: int | None = None) -> Features:
        feats = self.with_units(self.raw(audio, fps))
        return feats if n_frames is None else feats.fit(n_frames)

    def raw(self, audio: np.ndarray, fps: float = DEFAULT_FPS) -> Features:
        """`compute` at the audio's own length, before units are assigned."""
        return self.compute(np.asarray(audio, np.float32), frame_count(len(audio), SAMPLE_RATE, fps), fps)

    def with_units(self, feats: Features) -> Features:
        """Replace the units by the fitted k-means units, if this front-end has them."""
        if self.units_model is None:
            return feats
        return Features(feats.features, self.assign_units(feats.features), feats.fps)

    def key(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def from_file(
        self,
        path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        n_frames: int | None = None,
        cache: "FeatureCache | None" = None,
    ) -> Features:
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

    def path_for(self, frontend: FrontEnd, audio_path: str | os.PathLike, fps: float, tag: str = "") -> Path:
        return self.root / frontend.key() / f"{self.audio_hash(audio_path)}-{fps:g}{tag}.npz"

    def get(
        self,
        frontend: FrontEnd,
        audio_path: str | os.PathLike,
        fps: float = DEFAULT_FPS,
        n_frames: int | None = None,
        transform=None,
        tag: str = "",
    ) -> Features:
        """Features of a file, computed once. `transform(audio, audio_hash)` changes the samples first
        (a training degradation); `tag` names it in the entry's name and must change with it."""
        if (transform is None) != (not tag):
            raise ValueError("a transform needs a tag of its own, and a tag a transform")
        entry = self.path_for(frontend, audio_path, fps, tag)
        if entry.is_file():
            try:
                with np.load(entry) as z:
                    feats = frontend.with_units(Features(z["features"], z["units"], float(z["fps"])))
                return feats if n_frames is None else feats.fit(n_frames)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # a damaged entry (empty, truncated, not an npz) is recomputed below
        audio, _ = load_audio(audio_path)
        if transform is not None:
            audio = transform(audio, self.audio_hash(audio_path))
        feats = frontend.compute(audio, frame_count(len(audio), SAMPLE_RATE, fps), fps)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(entry) as tmp:
            np.savez(tmp, features=feats.features, units=feats.units, fps=np.float64(fps))
        config = entry.parent / "config.json"  # says which front-end made this folder's entries
        if not config.is_file():
            config.write_text(json.dumps(frontend.config(), indent=1, sort_keys=True))
        feats = frontend.with_units(feats)
        return feats if n_frames is None else feats.fit(n_frames)
