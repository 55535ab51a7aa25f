"""Pose style from a reference: retrieval by the semantic-aware pose style matrix, no training."""

from __future__ import annotations

import numpy as np

from adamesh.errors import AdameshError
from adamesh.models.pose import PoseAdapter, blend_weights, style_distance
from adamesh.profile import PoseProfile, pose_fingerprint

POSE_RETRIEVALS = ("top1", "blend")


AMPLITUDE_LIMITS = (1 / 3, 3.0)
AMPLITUDE_SECONDS = 30.0  # of a long reference, the first this many seconds measure its amplitude


def reference_amplitude(
    adapter: PoseAdapter,
    poses: list[np.ndarray],
    features: list[np.ndarray],
    style,
    fps: float,
    seeds: int = 3,
) -> np.ndarray:
    """(P,) gain on the motion about the posture: the standard deviation of the reference's own
    head pose about its mean over that of PoseGPT's motion for the reference's speech in the
    retrieved style (a few seeds), within AMPLITUDE_LIMITS. A person who moves more or less than
    any training speaker still gets their own range of motion."""
    ends = np.cumsum([len(p) for p in poses])
    n = int(np.searchsorted(ends, AMPLITUDE_SECONDS * fps)) + 1  # whole sequences up to the limit
    own = np.concatenate([p - p.mean(0) for p in poses[:n]])
    made = np.concatenate(
        [(g := adapter.animate(f, style, seed=s)) - g.mean(0) for f in features[:n] for s in range(seeds)]
    )
    return np.clip(own.std(0) / np.maximum(made.std(0), 1e-6), *AMPLITUDE_LIMITS).astype(np.float32)


def retrieve_pose_style(
    adapter: PoseAdapter,
    poses: list[np.ndarray],
    units: list[np.ndarray],
    fps: float,
    method: str = "blend",
    k: int = 3,
    min_seconds: float = 2.0,
    features: list[np.ndarray] | None = None,
) -> PoseProfile:
    """Match the reference's semantic-aware pose style matrix against the gallery (no gradient step).

    `poses`: the reference's head-pose sequences (T, P); `units`: the front-end's speech unit per
    frame of each. top1 takes the nearest training video's style embedding (the paper); blend
    mixes the k nearest by inverse distance (see models.pose.blend_weights). With `features`, the
    speech features of each sequence, the profile also gets the reference's amplitude.
    """
    if method not in POSE_RETRIEVALS:
        raise AdameshError(f"unknown pose retrieval {method!r}; choose one of {', '.join(POSE_RETRIEVALS)}")
    seconds = sum(len(p) for p in poses) / fps
    if seconds < min_seconds:
        raise AdameshError(
            f"the reference has {seconds:.1f} s of head motion; pose-style retrieval needs at "
            f"least {min_seconds:g} s (give a longer reference video)"
        )
    for p, u in zip(poses, units):
        if len(p) != len(u):
            raise AdameshError(f"reference poses ({len(p)} frames) and speech units ({len(u)} frames) differ")
    matrix, counts = adapter.style_matrix(poses, units)
    distances = style_distance(matrix, counts, adapter.matrices, adapter.counts)
    if not np.isfinite(distances).any():
        raise AdameshError(
            "the reference shares no speech unit with any training video; is there speech in it?"
        )
    order, weights = blend_weights(distances, 1 if method == "top1" else k)
    style = adapter.style_of(order, weights).detach()
    amplitude = None if features is None else reference_amplitude(adapter, poses, features, style, fps)
    return PoseProfile(
        style,
        method,
        [adapter.videos[i] for i in order],
        [round(float(w), 4) for w in weights],
        {v: round(float(d), 5) for v, d in zip(adapter.videos, distances)},
        np.concatenate(poses).mean(0),
        pose_fingerprint(adapter),
        amplitude,
    )
