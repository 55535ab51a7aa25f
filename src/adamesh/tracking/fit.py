"""Fitting a blendshape rig to tracked face landmarks: head pose, identity and ARKit expression.

`fit_landmarks` takes the 68 Multi-PIE landmarks of every frame in image pixels (x right, y down,
z = MediaPipe's relative depth times the image width, so it grows away from the camera) and the
rig's own 68 landmark vertices (`rig.landmarks`), and alternates, for a few rounds:

- head pose: per frame, the similarity (scale, rotation, offset) that best maps the rig's landmarks
  (neutral + identity + correction + current expression) onto the observed ones (Umeyama's closed
  form); the scale absorbs the face's size;
- identity: when the rig has identity modes (`rig.identity`, ICT-FaceKit), one set of coefficients
  for the whole video by ridge-regularised least squares over all frames; the built-in head has none;
- expression: the ARKit weights of all frames at once, in [0, 1], minimising the landmark error in
  the rig's frame plus a temporal smoothness term and a small ridge (a convex problem, solved by
  FISTA: projected gradient steps with momentum), together with a static per-landmark correction:
  the person's proportions differ from the rig's by more than identity modes reach (about 15 mm
  RMS for the built-in head, 6 mm for ICT's three modes on GRID speakers), and without it that
  difference would be read as expression. As weights cannot go below 0, the correction settles on
  the person's least expressive frames, so weights measure expression from there (an expression
  held through the whole video reads as 0). Shapes that hardly move any landmark stay 0, and so do
  the eye-look shapes: the 68 landmarks do not see the gaze (the iris landmarks are not used).

The jaw contour (landmarks 0-16) follows the face's silhouette rather than fixed points of the
skin, so it gets a low weight. Head rotation uses the rig's convention (`Rig.rigid`,
`geometry.euler_to_matrix`); head translation is in metres from the video's median head position,
its depth taken from the change of the face's size at a nominal camera distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adamesh.errors import AdameshError
from adamesh.geometry import euler_to_matrix, matrix_to_euler
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES, JAW_OPEN, MOUTH_CLOSE, limit_lip_closure
from adamesh.rigs.base import BlendshapeRig

LANDMARK_WEIGHTS = np.ones(68)
LANDMARK_WEIGHTS[:17] = 0.1  # the jaw contour slides along the silhouette as the head turns
CAMERA_DISTANCE = 0.6  # metres, nominal: turns changes of the face's image size into headZ
SMOOTH = 0.5  # temporal smoothness of the weights (mm^2 of mean landmark error per unit^2 of change)
RIDGE = 0.3  # pull of every weight towards 0, same units
IDENTITY_RIDGE = 0.3  # pull of identity coefficients towards the rig's mean face
MIN_MOVE_MM = 0.5  # shapes that move no landmark by this much are not solved for
ROUNDS = 3


@dataclass
class FaceFit:
    """The result of `fit_landmarks` for T frames.

    ``params`` (T, 58) is the motion in the ARKIT space; ``error_mm`` (T,) the RMS distance between
    the fitted and observed landmarks (all 68, in 3D) in millimetres (NaN where ``valid`` is False, frames whose
    values were interpolated); ``identity`` (K,) the rig's identity coefficients (empty without).
    ``correction_mm`` (68, 3) is the static correction: the person's landmarks less the rig's once
    expression is removed, what identity cannot explain. ``scale`` (T,), ``rotation`` (T, 3, 3) and
    ``offset`` (T, 3) map rig points to the image: see `to_image`."""

    params: np.ndarray
    error_mm: np.ndarray
    valid: np.ndarray
    identity: np.ndarray
    correction_mm: np.ndarray
    scale: np.ndarray  # image pixels per rig unit
    rotation: np.ndarray
    offset: np.ndarray  # where the rig's pivot lands, in the rig-aligned image frame (y up, z out)
    pivot: np.ndarray
    unobserved: tuple[str, ...] = ()  # ARKit shapes the landmarks cannot measure: left at 0

    def to_image(self, points: np.ndarray, frames: slice = slice(None)) -> np.ndarray:
        """(T, N, 3) points in rig units (without head pose) of the `frames` -> (T, N, 3) image
        pixels: x right, y down, z away from the camera."""
        rotated = (points - self.pivot) @ self.rotation[frames].transpose(0, 2, 1)
        placed = self.scale[frames, None, None] * rotated + self.offset[frames, None]
        return placed * np.array([1.0, -1.0, -1.0])


def fit_landmarks(rig: BlendshapeRig, landmarks: np.ndarray, valid: np.ndarray,
                  smooth: float = SMOOTH, rounds: int = ROUNDS) -> FaceFit:  # fmt: skip
    """Fit `rig` to (T, 68, 3) `landmarks` in image pixels (x right, y down, z away from the camera,
    in pixels), observed where `valid` (T,) is True; other frames (their landmarks may be NaN) are
    interpolated from their neighbours. See the module docstring for the method."""
    landmarks = np.asarray(landmarks, np.float64)
    valid = np.asarray(valid, bool)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 3) or valid.shape != landmarks.shape[:1]:
        raise AdameshError(f"landmarks must be (frames, 68, 3) with a (frames,) valid mask, not "
                           f"{landmarks.shape} and {valid.shape}")  # fmt: skip
    if not valid.any():
        raise AdameshError("no frame has a face to fit")
    if rig.landmarks is None or not isinstance(rig, BlendshapeRig):
        raise AdameshError(f"rig {rig.name!r} has no ARKit blendshapes with 68 landmark vertices; "
                           "fit the builtin or ict rig")  # fmt: skip
    mm = 1000.0 / rig.units_per_meter
    lm = rig.landmarks
    neutral = rig.neutral[lm].astype(np.float64)
    deltas = rig.shapes[:, lm].astype(np.float64)  # (52, 68, 3) rig units
    modes = rig.identity[:, lm].astype(np.float64) if rig.identity is not None else np.zeros((0, 68, 3))
    # the rig's frame: y up, z towards the viewer; frames without a face take a placeholder
    obs = landmarks * np.array([1.0, -1.0, -1.0])
    obs[~valid] = obs[valid][0]

    move = np.linalg.norm(deltas, axis=2).max(1) * mm
    active = np.nonzero((move > MIN_MOVE_MM) & ~np.char.startswith(np.array(ARKIT_BLENDSHAPES), "eyeLook"))[0]
    weights = np.zeros((len(obs), 52))
    identity = np.zeros(len(modes))
    correction = np.zeros((68, 3))
    for last in [False] * rounds + [True]:
        face = neutral + np.einsum("k,knd->nd", identity, modes)
        model = face + correction + np.einsum("tk,knd->tnd", weights, deltas)
        scale, rot, offset = _similarity(model - rig.pivot, obs, LANDMARK_WEIGHTS)
        scale, rot, offset = _fill_pose(scale, rot, offset, valid)
        # the observations brought back into the rig's frame
        local = np.einsum("tji,tnj->tni", rot, obs - offset[:, None]) / scale[:, None, None] + rig.pivot
        if last:
            break
        if len(modes):
            expressed = np.einsum("tk,knd->tnd", weights, deltas)
            identity = _solve_identity(np.mean((local - expressed - neutral)[valid], 0) * mm, modes * mm)
            face = neutral + np.einsum("k,knd->nd", identity, modes)
        # The weights see only what no small change of head pose explains: otherwise they would
        # take up the current pose error (brows and cheeks standing in for a pitch), and the pose
        # step would then keep it, converging very slowly.
        rigid = _rigid_motions(face)
        residual = _remove(rigid, (local - face) * mm)
        moves = _remove(rigid, deltas[active] * mm)
        weights[:, active] = _solve_weights(
            residual, moves, valid, smooth, weights[:, active], _lip_closure_projection(active)
        )
        expressed = np.einsum("tk,knd->tnd", weights[:, active], moves)
        correction = np.mean((residual - expressed)[valid], 0) / mm

    error = np.sqrt(np.mean(np.sum((local - model) ** 2, axis=2), axis=1)) * mm
    error[~valid] = np.nan
    params = np.zeros((len(obs), ARKIT.dim))
    params[:, :52] = weights
    params[:, 52:55] = matrix_to_euler(rot)
    # translation: offsets from the median head position, in metres at the median image scale;
    # depth from the face's size, which grows as it comes closer to the camera
    s0 = np.median(scale[valid])
    params[:, 55:57] = (offset[:, :2] - np.median(offset[valid, :2], axis=0)) / s0 / rig.units_per_meter
    params[:, 57] = CAMERA_DISTANCE * (1 - s0 / scale)
    params[:, 55:58] = np.clip(params[:, 55:58], -1.0, 1.0)
    unobserved = tuple(n for i, n in enumerate(ARKIT_BLENDSHAPES) if i not in set(active))
    return FaceFit(params.astype(np.float32), error, valid, identity, correction * mm, scale, rot, offset,
                   rig.pivot.astype(np.float64), unobserved)  # fmt: skip


def fitted_vertices(rig: BlendshapeRig, fit: FaceFit, frames: slice = slice(None)) -> np.ndarray:
    """(T, V, 3) vertices of the fitted face of the `frames` (identity and expression, no head
    pose and no static correction: the rig's own face), in rig units."""
    params = fit.params[frames].copy()
    params[:, 52:] = 0
    verts = rig.vertices(params)
    if rig.identity is not None:
        verts += np.einsum("k,kvd->vd", fit.identity, rig.identity).astype(np.float32)
    return verts


def _similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray):
    """Per frame, the scale s, rotation R and offset t minimising sum_n w_n |s R src_n + t - dst_n|^2
    (Umeyama 1991, weighted): src, dst (T, N, 3), weights (N,) -> s (T,), R (T, 3, 3), t (T, 3)."""
    w = weights / weights.sum()
    mu_s, mu_d = np.einsum("n,tnd->td", w, src), np.einsum("n,tnd->td", w, dst)
    a, b = src - mu_s[:, None], dst - mu_d[:, None]
    u, sig, vt = np.linalg.svd(np.einsum("n,tni,tnj->tij", w, b, a))
    d = np.sign(np.linalg.det(u @ vt))  # -1 would be a reflection: flip the weakest axis instead
    u[:, :, 2] *= d[:, None]
    rot = u @ vt
    scale = (sig[:, 0] + sig[:, 1] + d * sig[:, 2]) / np.einsum("n,tnd,tnd->t", w, a, a)
    return scale, rot, mu_d - scale[:, None] * np.einsum("tij,tj->ti", rot, mu_s)


def _rigid_motions(points: np.ndarray) -> np.ndarray:
    """(7, N, 3): how `points` (N, 3) move under small rotations about x, y, z, a change of scale
    and translations along x, y, z (all about their centroid)."""
    c = points - points.mean(0)
    rotations = [np.cross(axis, c) for axis in np.eye(3)]
    translations = [np.broadcast_to(axis, c.shape) for axis in np.eye(3)]
    return np.stack([*rotations, c, *translations])


def _remove(basis: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x` (M, N, 3) less its weighted least-squares projection on the span of `basis` (B, N, 3)."""
    w = np.repeat(LANDMARK_WEIGHTS, 3)
    b = basis.reshape(len(basis), -1)
    flat = x.reshape(len(x), -1)
    coef = np.linalg.solve((b * w) @ b.T, (b * w) @ flat.T)
    return (flat - coef.T @ b).reshape(x.shape)


def _fill_pose(scale, rot, offset, valid):
    """Head pose of frames without a face, interpolated from the nearest frames with one (angles,
    offsets and log scale linearly; held before the first and after the last)."""
    if valid.all():
        return scale, rot, offset
    t, known = np.arange(len(valid)), np.nonzero(valid)[0]

    def fill(x):
        columns = x.reshape(len(x), -1).T
        return np.stack([np.interp(t, known, col[known]) for col in columns], -1).reshape(x.shape)

    angles = torch.from_numpy(fill(matrix_to_euler(rot)))
    rot = euler_to_matrix(*angles.unbind(-1)).numpy()
    return np.exp(fill(np.log(scale))), rot, fill(offset)


def _solve_identity(static: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Identity coefficients c minimising |c . modes - static|^2 (mean over weighted landmarks, mm^2)
    + IDENTITY_RIDGE |c|^2: static (68, 3) is the mean over frames of what expression leaves, modes
    (K, 68, 3), both in mm. The mean over frames is the least-squares fit over all frames."""
    w = np.repeat(LANDMARK_WEIGHTS / LANDMARK_WEIGHTS.sum(), 3)
    b = modes.reshape(len(modes), -1) * w
    gram = b @ modes.reshape(len(modes), -1).T
    return np.linalg.solve(gram + IDENTITY_RIDGE * np.eye(len(modes)), b @ static.reshape(-1))


def _lip_closure_projection(active: np.ndarray):
    """The projection of weights over the `active` shapes onto [0, 1] with mouthClose <= jawOpen
    (`limit_lip_closure`): lips that close past touching would be read as mouthClose alone."""
    cols = list(active)
    if JAW_OPEN not in cols or MOUTH_CLOSE not in cols:
        return lambda x: np.clip(x, 0.0, 1.0)
    jaw, close = cols.index(JAW_OPEN), cols.index(MOUTH_CLOSE)

    def project(x):
        x[:, jaw], x[:, close] = limit_lip_closure(x[:, jaw], x[:, close])  # then clipping keeps it
        return np.clip(x, 0.0, 1.0)

    return project


def _solve_weights(residual, deltas, observed, smooth, start, project, iterations=300):
    """Weights W (T, K) in the convex set `project` projects onto (within [0, 1]) and a static
    offset b (68, 3) minimising
        1/2 sum_t observed_t |W_t deltas + b - residual_t|^2  (mean over weighted landmarks, mm^2)
      + smooth/2 sum_t |W_t - W_t-1|^2 + RIDGE/2 |W|^2,
    by FISTA from `start`; returns W. residual (T, 68, 3), deltas (K, 68, 3) in mm.

    b takes up the difference between the person's face and the rig's (proportions that the rig's
    identity modes cannot reach). Since weights cannot go below 0 and the ridge pulls them to 0, b
    settles on the person's least expressive frames, and the weights measure expression from there.
    For a given W the best b is the mean over observed frames of residual - W deltas, so b is
    eliminated by centring W and the residuals on their observed means."""
    w = np.repeat(LANDMARK_WEIGHTS / LANDMARK_WEIGHTS.sum(), 3)
    d = deltas.reshape(len(deltas), -1)
    gram = (d * w) @ d.T
    obs = observed.astype(np.float64)[:, None]
    rhs = (residual.reshape(len(residual), -1) * w) @ d.T
    rhs = obs * (rhs - rhs[observed].mean(0))
    step = 1.0 / (np.linalg.eigvalsh(gram)[-1] + 4 * smooth + RIDGE)  # 1 / Lipschitz constant
    x = y = start
    momentum = 1.0
    for _ in range(iterations):
        change = np.diff(y, axis=0)
        rough = np.zeros_like(y)  # gradient of the smoothness term
        rough[1:] += change
        rough[:-1] -= change
        grad = obs * ((y - y[observed].mean(0)) @ gram) - rhs + smooth * rough + RIDGE * y
        x_next = project(y - step * grad)
        m_next = (1 + np.sqrt(1 + 4 * momentum**2)) / 2
        y = x_next + (momentum - 1) / m_next * (x_next - x)
        x, momentum = x_next, m_next
    return x
