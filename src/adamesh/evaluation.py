"""Metrics of this field, computed on a rig's vertices (in millimetres) and on parameters.

Vertex metrics take (T, V, 3) vertices in rig units; `mm` converts by the rig's units per metre.
- LVE (CodeTalker / FaceFormer protocol): per frame, the maximum over lip vertices of the squared
  L2 error; mean over frames (mm^2). `lve_mm` is the un-squared version (max L2, mm).
- lip RMSE: root mean square of the lip vertices' L2 error over frames and vertices (mm).
- MVE: mean L2 error over all face vertices and frames (mm).
- FDD (upper-face dynamics deviation): per upper-face vertex, the standard deviation over time of
  its squared distance from the neutral face; mean over vertices; ground truth minus prediction
  (mm^2, signed; the benchmark averages it over sequences and also reports the absolute value).
- Lip closure on p/b/m: at the centre frame of every bilabial phone, the lips count as closed if
  jawOpen - mouthClose (the ARKit lip gap) is below `CLOSED_GAP`; the corpus keeps it under 0.03.
"""

from __future__ import annotations

import numpy as np

from adamesh.phones import BILABIALS
from adamesh.rigs.base import Rig

CLOSED_GAP = 0.05


def expression_vertices(rig: Rig, expression: np.ndarray) -> np.ndarray:
    """Vertices of expression parameters with the head at rest (pose channels zero), mm."""
    params = np.zeros((len(expression), rig.space.dim), np.float32)
    params[:, : expression.shape[1]] = expression
    return rig.vertices(params) * (1000.0 / rig.units_per_meter)


def vertex_metrics(rig: Rig, pred: np.ndarray, true: np.ndarray) -> dict:
    """LVE (mm^2 and mm), lip RMSE, MVE (mm) and FDD (mm^2) of one sequence of expressions."""
    vp, vt = expression_vertices(rig, pred), expression_vertices(rig, true)
    lips, face, upper = rig.regions["lips"], rig.regions["face"], rig.regions["upper_face"]
    sq = ((vp - vt) ** 2).sum(-1)  # (T, V) squared error
    neutral = rig.neutral * (1000.0 / rig.units_per_meter)

    def dynamics(v):
        return (((v[:, upper] - neutral[upper]) ** 2).sum(-1)).std(0).mean()

    return {
        "lve_sq": float(sq[:, lips].max(1).mean()),
        "lve_mm": float(np.sqrt(sq[:, lips].max(1)).mean()),
        "lip_rmse": float(np.sqrt(sq[:, lips].mean())),
        "mve": float(np.sqrt(sq[:, face]).mean()),
        "fdd": float(dynamics(vt) - dynamics(vp)),
    }


def lip_gap(expression: np.ndarray, channels) -> np.ndarray:
    """ARKit lip gap per frame: jawOpen - mouthClose."""
    channels = list(channels)
    return expression[:, channels.index("jawOpen")] - expression[:, channels.index("mouthClose")]


def bilabial_frames(phones: list, fps: float, n_frames: int) -> np.ndarray:
    """Centre frames of the p/b/m phones of a clip ([phone, start, end, stress] rows)."""
    frames = [int((s + e) / 2 * fps) for p, s, e, *_ in phones if p in BILABIALS]
    return np.array([f for f in frames if 0 <= f < n_frames], np.int64)


def closure_hits(expression: np.ndarray, channels, frames: np.ndarray) -> tuple[int, int]:
    """(closed, total) at the given bilabial frames."""
    if len(frames) == 0:
        return 0, 0
    return int((lip_gap(expression, channels)[frames] < CLOSED_GAP).sum()), len(frames)


def motion_statistics(expression: np.ndarray) -> np.ndarray:
    """Per-channel mean and standard deviation over time: what the style probe reads."""
    return np.concatenate([expression.mean(0), expression.std(0)])


class StyleProbe:
    """Ridge regression from motion statistics to a speaker's (0..1 normalised) style parameters,
    fitted on training speakers' true motion; it reads the style back from any motion."""

    def __init__(self, stats: np.ndarray, styles: np.ndarray, ridge: float = 1.0):
        self.mean, self.std = stats.mean(0), stats.std(0) + 1e-6
        x = np.c_[(stats - self.mean) / self.std, np.ones(len(stats))]
        reg = ridge * np.eye(x.shape[1])
        reg[-1, -1] = 0
        self.w = np.linalg.solve(x.T @ x + reg, x.T @ styles)

    def __call__(self, stats: np.ndarray) -> np.ndarray:
        x = np.c_[(np.atleast_2d(stats) - self.mean) / self.std, np.ones(len(np.atleast_2d(stats)))]
        return np.clip(x @ self.w, 0, 1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0
