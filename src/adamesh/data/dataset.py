"""The clip dataset: the clips of clip folders (`adamesh.clips`), read for training and evaluation.

`ClipDataset` loads motion and speech features (through the feature cache, computed in parallel
on a miss) into memory; `WindowDataset` cuts training windows out of them for a torch DataLoader.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adamesh.clips import ClipInfo, scan_clips
from adamesh.errors import AdameshError
from adamesh.fileio import worker_pool
from adamesh.frontends import FeatureCache, Features, FrontEnd
from adamesh.motion import Motion, load_motion


@dataclass
class Clip:
    info: ClipInfo
    motion: Motion
    features: Features | None  # one row per motion frame
    variants: list[Features] = field(default_factory=list)  # features of degraded copies of the audio


def _features_worker(args) -> Features:
    frontend, audio, fps, cache_root, variant = args
    torch.set_num_threads(1)
    return FeatureCache(cache_root).get(frontend, audio, fps, **_variant(variant))


def _variant(variant: int) -> dict:
    """Cache arguments of degraded copy `variant` of the audio (0: the audio itself)."""
    if not variant:
        return {}
    from adamesh.data.augment import VERSION, training_variant

    return {
        "transform": functools.partial(training_variant, variant=variant),
        "tag": f"-aug{VERSION}.{variant}",
    }


def compute_features(
    frontend: FrontEnd,
    audio_paths: list[Path],
    fps: float,
    workers: int | None = None,
    cache: FeatureCache | None = None,
    progress: bool = True,
    variant: int = 0,
) -> list[Features]:
    """Features of many files through the cache; misses are computed by a pool of processes.
    `variant` > 0: of that degraded copy of each file (data.augment.training_variant)."""
    cache = cache or FeatureCache()
    tag = _variant(variant).get("tag", "")
    todo = [i for i, a in enumerate(audio_paths) if not cache.path_for(frontend, a, fps, tag).is_file()]
    workers = min(workers or os.cpu_count() or 1, max(1, len(todo)))
    if todo and workers > 1:
        tasks = [(frontend, audio_paths[i], fps, str(cache.root), variant) for i in todo]
        with worker_pool(workers) as pool:
            for _ in tqdm(
                pool.imap_unordered(_features_worker, tasks, chunksize=2),
                total=len(tasks),
                desc=f"{frontend.name} features",
                unit="clip",
                disable=not progress,
            ):
                pass
    out = []
    for a in tqdm(
        audio_paths,
        desc=f"{frontend.name} features",
        unit="clip",
        disable=not progress or workers > 1 or not todo,
    ):
        out.append(cache.get(frontend, a, fps, **_variant(variant)))
    return out


class ClipDataset:
    """Clips of one folder or several (`root` a list: e.g. the corpus and a folder of tracked real
    video), filtered by role and speaker, with motion and features in memory. `hold_out`: see
    `scan_clips`."""

    def __init__(
        self,
        root: str | os.PathLike | list,
        roles: tuple[str, ...] | None = ("train",),
        speakers: list[str] | None = None,
        frontend: FrontEnd | None = None,
        workers: int | None = None,
        progress: bool = True,
        augment: int = 0,
        hold_out: int = 0,
    ):
        self.roots = [Path(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
        infos, self.manifest = [], {}
        for r in self.roots:
            found, manifest = scan_clips(r, hold_out)
            infos += found
            self.manifest = {
                **manifest,
                **self.manifest,
                "speakers": {**manifest.get("speakers", {}), **self.manifest.get("speakers", {})},
            }
        infos = [
            c
            for c in infos
            if (roles is None or c.role in roles) and (speakers is None or c.speaker in speakers)
        ]
        where = " + ".join(map(str, self.roots))
        if not infos:
            raise AdameshError(
                f"{where} has no clips with role {' or '.join(roles or ())}"
                + (f" for speakers {', '.join(speakers)}" if speakers else "")
                + (
                    "; training needs at least two clips, one of them to validate on"
                    if roles == ("val",) and hold_out
                    else ""
                )
            )
        motions = [load_motion(c.motion) for c in infos]
        kinds = {(m.space.name, m.fps) for m in motions}
        if len(kinds) > 1:
            raise AdameshError(
                f"the clips of {where} mix motion spaces or frame rates ({sorted(kinds)}); "
                "train on folders of one space and frame rate"
            )
        features: list[Features | None] = [None] * len(infos)
        if frontend is not None:
            missing = [c.id for c in infos if c.audio is None or not c.audio.is_file()]
            if missing:
                raise AdameshError(
                    f"{len(missing)} clips have no audio file (first: {missing[0]}); speech features need it"
                )
            feats = compute_features(
                frontend, [c.audio for c in infos], motions[0].fps, workers, progress=progress
            )
            features = [f.fit(m.n_frames) for f, m in zip(feats, motions)]
        self.clips = [Clip(i, m, f) for i, m, f in zip(infos, motions, features)]
        for k in range(1, augment + 1 if frontend is not None else 1):
            feats = compute_features(
                frontend, [c.audio for c in infos], motions[0].fps, workers, progress=progress, variant=k
            )
            for clip, f in zip(self.clips, feats):
                clip.variants.append(f.fit(clip.motion.n_frames))
        self.speakers = sorted({c.speaker for c in infos})
        self.speaker_index = {s: k for k, s in enumerate(self.speakers)}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> Clip:
        return self.clips[i]

    @property
    def seconds(self) -> float:
        return sum(c.motion.duration for c in self.clips)

    def speaker_style(self, speaker: str) -> dict:
        """The speaker's entry in the manifest (voice and true styles of a synthetic speaker)."""
        return self.manifest.get("speakers", {}).get(speaker, {})


class WindowDataset(torch.utils.data.Dataset):
    """Fixed-length training windows over a ClipDataset: every clip is cut into windows of
    `window` frames every `hop` frames (the last one flush with the clip's end); clips shorter
    than a window give one window, padded and masked."""

    def __init__(self, clips: ClipDataset, window: int = 100, hop: int = 50):
        if any(c.features is None for c in clips.clips):
            raise AdameshError("training windows need speech features: give the dataset a front-end")
        self.clips, self.window = clips, window
        self.index = []
        for k, c in enumerate(clips.clips):
            n = c.motion.n_frames
            starts = list(range(0, max(n - window, 0) + 1, hop))
            if n > window and starts[-1] != n - window:
                starts.append(n - window)
            self.index += [(k, s) for s in starts]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int, variant: int = 0) -> dict:
        """Window i; `variant` k > 0 takes its features from the clip's k-th degraded copy."""
        k, s = self.index[i]
        clip = self.clips[k]
        feats = clip.variants[variant - 1] if variant else clip.features
        e = min(s + self.window, clip.motion.n_frames)
        pad = self.window - (e - s)

        def take(x):
            return np.pad(x[s:e], [(0, pad)] + [(0, 0)] * (x.ndim - 1))

        return {
            "features": torch.from_numpy(take(feats.features)),
            "units": torch.from_numpy(take(feats.units)),
            "params": torch.from_numpy(take(clip.motion.params)),
            "mask": torch.from_numpy(np.arange(self.window) < e - s),
            "speaker": torch.tensor(self.clips.speaker_index[clip.info.speaker]),
        }
