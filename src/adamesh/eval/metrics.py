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
from scipy import linalg
from scipy.ndimage import binary_closing, uniform_filter1d
from scipy.signal import find_peaks, welch

from adamesh.audio import energy_envelope
from adamesh.motion import CLOSURE_FRACTION, lip_gap
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


def bilabial_frames(phones: list, fps: float, n_frames: int) -> np.ndarray:
    """Centre frames of the p/b/m phones of a clip ([phone, start, end, stress] rows)."""
    frames = [int((s + e) / 2 * fps) for p, s, e, *_ in phones if p in BILABIALS]
    return np.array([f for f in frames if 0 <= f < n_frames], np.int64)


def closure_hits(expression: np.ndarray, channels, frames: np.ndarray) -> tuple[int, int]:
    """(closed, total) at the given bilabial frames."""
    if len(frames) == 0:
        return 0, 0
    return int((lip_gap(expression, channels)[frames] < CLOSED_GAP).sum()), len(frames)


CLOSURE_TOLERANCE = 2  # frames (80 ms) a reproduced closure may come early or late


def speech_mask(loudness_db: np.ndarray, below_peak: float = 30.0, bridge: int = 9) -> np.ndarray:
    """Frames inside speech: louder than `below_peak` dB under the clip's loud level, with gaps of
    fewer than `bridge` frames filled, since a stop consonant's closure is itself silent."""
    loud = loudness_db > np.percentile(loudness_db, 95) - below_peak
    return binary_closing(np.pad(loud, bridge), np.ones(bridge, bool))[bridge:-bridge]


def closure_events(gap: np.ndarray, speech: np.ndarray, fraction: float = CLOSURE_FRACTION):
    """(frames of the closures, the frames below the closure level): a closure is a run of speech
    frames whose gap is under `fraction` of the gap's 95th percentile over speech, at its deepest
    frame (the run's local minimum)."""
    level = fraction * np.percentile(gap[speech], 95) if speech.any() else -np.inf
    low = (gap < level) & speech
    edges = np.flatnonzero(np.diff(np.concatenate([[0], low.astype(np.int8), [0]])))
    events = [a + int(np.argmin(gap[a:b])) for a, b in zip(edges[::2], edges[1::2])]
    return np.array(events, np.int64), low


def closure_scores(
    truth: np.ndarray, model: np.ndarray, speech: np.ndarray, tolerance: int = CLOSURE_TOLERANCE
) -> dict:
    """Lip closures of a clip, event by event: the true ones (`truth`, a tracked lip gap) the
    model's gap reproduces (under its own closure level within `tolerance` frames: recall), the
    model's own closures that are real (precision), and how far the model's lips stay apart at the
    true closures (its smallest gap there over its 95th percentile: a seal is 0)."""
    true_events, true_low = closure_events(truth, speech)
    model_events, model_low = closure_events(model, speech)
    ref = np.percentile(model[speech], 95) if speech.any() else 1.0

    def near(low, t):
        return bool(low[max(0, t - tolerance) : t + tolerance + 1].any())

    depth = [model[max(0, t - tolerance) : t + tolerance + 1].min() / max(ref, 1e-9) for t in true_events]
    return {
        "closures": len(true_events),
        "reproduced": sum(near(model_low, t) for t in true_events),
        "model_closures": len(model_events),
        "real": sum(near(true_low, t) for t in model_events),
        "depth": float(np.mean(depth)) if depth else None,
    }


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


# ---------------------------------------------------------------- head pose


def pose_diversity(rotations: list[np.ndarray]) -> float:
    """Mean pairwise L2 distance between the head rotations (degrees) of each sequence, averaged."""
    out = []
    for r in rotations:
        d = np.degrees(r)
        out.append(np.sqrt(((d[:, None] - d[None]) ** 2).sum(-1)).mean())
    return float(np.mean(out))


def axis_std(rotations: list[np.ndarray]) -> np.ndarray:
    """Standard deviation over time of each rotation axis (degrees), averaged over sequences."""
    return np.mean([np.degrees(r).std(0) for r in rotations], 0)


def speech_onsets(audio: np.ndarray, sr: int, fps: float, rise_db: float = 6.0) -> np.ndarray:
    """Frames where loudness jumps (syllable onsets): local maxima of the rise in dB over two
    frames that exceed `rise_db`, at least 4 frames apart."""
    level = np.maximum(energy_envelope(audio, sr, fps, db=True), -60.0)
    rise = np.r_[0, 0, level[2:] - level[:-2]]
    peaks = [
        i
        for i in range(1, len(rise) - 1)
        if rise[i] >= rise_db and rise[i] >= rise[i - 1] and rise[i] > rise[i + 1]
    ]
    kept: list[int] = []
    for i in peaks:
        if not kept or i - kept[-1] >= 4:
            kept.append(i)
        elif rise[i] > rise[kept[-1]]:
            kept[-1] = i
    return np.array(kept, dtype=np.int64)


def beat_alignment(rotations: np.ndarray, onsets: np.ndarray, fps: float, sigma: float = 0.1) -> float:
    """Beat alignment score (Bailando's, as DiffPoseTalk uses it): for each speech onset, a
    Gaussian of its distance to the nearest local minimum of head angular speed, averaged.
    1 when every onset falls on a pause of the head, ~0 when none is within 2 sigma seconds."""
    speed = np.linalg.norm(np.diff(rotations, axis=0), axis=1)
    minima = np.array(
        [i + 1 for i in range(1, len(speed) - 1) if speed[i] <= speed[i - 1] and speed[i] < speed[i + 1]]
    )
    if len(onsets) == 0 or len(minima) == 0:
        return float("nan")
    d = np.abs(onsets[:, None] - minima[None]).min(1) / fps
    return float(np.exp(-(d**2) / (2 * sigma**2)).mean())


def pose_features(rotations: np.ndarray, fps: float, window: float = 1.0) -> np.ndarray:
    """Per 1 s window (half overlapping): mean and std of each rotation axis and mean absolute
    angular velocity (degrees, degrees/s): 9 numbers, the features of the Frechet distance."""
    d = np.degrees(rotations)
    n = max(2, int(round(window * fps)))
    rows = []
    for s in range(0, max(len(d) - n, 0) + 1, n // 2):
        w = d[s : s + n]
        rows.append(np.r_[w.mean(0), w.std(0), np.abs(np.diff(w, axis=0)).mean(0) * fps])
    return np.array(rows)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature rows."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(ca @ cb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return max(
        0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))
    )  # not -0.00 from rounding


# ---------------------------------------------------------------- how real head motion looks

HOLD_SPEED = 3.0  # deg/s: below it (smoothed over 0.2 s) the head counts as held still
MOVE_DEGREES = 1.5  # a nod (pitch) or a turn (yaw) is an excursion of at least this, within 1.2 s
SLOW_HZ, FAST_HZ = 0.5, 2.0  # drift below SLOW_HZ, nods between, jitter above FAST_HZ


def head_motion_measures(rotations: np.ndarray, fps: float, loudness: np.ndarray | None = None) -> dict:
    """What a viewer sees of head motion, for (T, 3) pitch/yaw/roll in radians (from 5 s on):

    - std of each axis (degrees); angular speed (deg/s, of the angles smoothed over 0.2 s) median
      and 95th percentile;
    - the share of the motion's power (all axes, mean removed) below SLOW_HZ (slow drift) and
      between SLOW_HZ and FAST_HZ (nods and turns);
    - the share of time held still (speed under HOLD_SPEED);
    - nods and turns per minute: pitch and yaw extrema standing out by MOVE_DEGREES from their
      surroundings, at most 1.2 s wide, two to a nod (down and up) or a turn (there and back);
    - with `loudness` (dB per frame): the lag (s) at which head speed follows loudness best
      (cross-correlation within +-1 s; positive: the head moves after the voice), and that
      correlation."""
    d = np.degrees(np.asarray(rotations, np.float64))
    minutes = len(d) / fps / 60
    # speeds, holds and extrema of angles smoothed over 0.2 s: a tracker's frame-to-frame jitter
    # is not movement a viewer sees, and generated motion has none
    smooth_d = uniform_filter1d(d, max(1, int(round(0.2 * fps))), axis=0, mode="nearest")
    speed = np.linalg.norm(np.diff(smooth_d, axis=0), axis=1) * fps
    f, power = welch(d - d.mean(0), fs=fps, nperseg=min(len(d), int(10 * fps)), axis=0)
    power = power.sum(1)
    total = max(power[f > 0].sum(), 1e-12)

    def extrema(x):
        width = (None, 1.2 * fps)
        return sum(len(find_peaks(s * x, prominence=MOVE_DEGREES, width=width)[0]) for s in (1, -1)) / 2

    out = {
        "std_deg": [float(x) for x in d.std(0)],
        "speed_median": float(np.median(speed)),
        "speed_p95": float(np.percentile(speed, 95)),
        "slow_share": float(power[(f > 0) & (f < SLOW_HZ)].sum() / total),
        "nod_share": float(power[(f >= SLOW_HZ) & (f < FAST_HZ)].sum() / total),
        "held": float((speed < HOLD_SPEED).mean()),
        "nods_per_min": extrema(smooth_d[:, 0]) / minutes,
        "turns_per_min": extrema(smooth_d[:, 1]) / minutes,
    }
    if loudness is not None:
        n = min(len(speed), len(loudness) - 1)
        a = speed[:n] - speed[:n].mean()
        b = np.asarray(loudness[1 : n + 1], np.float64)
        b = b - b.mean()
        reach = int(round(fps))
        lags = np.arange(-reach, reach + 1)
        r = [pearson(a[max(0, k) : n + min(0, k)], b[max(0, -k) : n - max(0, k)]) for k in lags]
        best = int(np.nanargmax(r)) if np.isfinite(r).any() else reach
        out["speech_lag_s"] = float(lags[best] / fps)
        out["speech_r"] = float(r[best])
    return out
