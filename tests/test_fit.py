"""Fitting rigs to face landmarks: synthetic landmarks from known rig parameters must come back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adamesh.geometry import euler_to_matrix, matrix_to_euler
from adamesh.motion import ARKIT
from adamesh.tracking.fit import fit_landmarks, fitted_vertices
from adamesh.tracking.landmarks import MEDIAPIPE_68

FPS = 25.0


def pose_matrices(angles: np.ndarray) -> np.ndarray:
    return euler_to_matrix(*torch.from_numpy(np.asarray(angles, np.float64)).unbind(-1)).numpy()


def synthetic_video(rig, n=100, seed=0, noise=0.5, identity=None):
    """Landmarks in image pixels (x right, y down, z away) of `rig` driven by known, smooth
    parameters: a head that turns, nods and comes closer, speech-like jaw motion, a blink and a
    smile; plus pixel noise. Returns (landmarks, params)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    params = np.zeros((n, ARKIT.dim), np.float32)
    speech = np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))
    params[:, ARKIT.index("jawOpen")] = 0.4 * np.clip(speech, 0, None)
    blink = np.exp(-0.5 * ((t - rng.uniform(1, 3)) / 0.08) ** 2)
    params[:, ARKIT.index("eyeBlinkLeft")] = params[:, ARKIT.index("eyeBlinkRight")] = blink
    params[:, ARKIT.index("mouthSmileLeft")] = 0.5 * np.clip(np.sin(2 * np.pi * 0.4 * t), 0, None)
    rates, phases = rng.uniform(0.1, 0.4, 3), rng.uniform(0, 6, 3)
    angles = rng.uniform(0.1, 0.3, 3) * np.sin(2 * np.pi * rates * t[:, None] + phases)
    verts = rig.vertices(params)[:, rig.landmarks].astype(np.float64)
    if identity is not None:
        verts += np.einsum("k,knd->nd", identity, rig.identity[:, rig.landmarks])
    scale = rng.uniform(1500, 3000) / rig.units_per_meter * (1 + 0.1 * np.sin(t))  # pixels per rig unit
    rotated = (verts - rig.pivot) @ pose_matrices(angles).transpose(0, 2, 1)
    points = scale[:, None, None] * rotated + rng.uniform(200, 400, 3) * [1, -1, 0]
    points += rng.normal(0, noise, points.shape)
    params[:, 52:55] = angles
    return points * [1, -1, -1], params


def corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_euler_round_trip():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-1, 1, (200, 3)) * [1.5, 3.0, 3.0]  # pitch within (-pi/2, pi/2)
    np.testing.assert_allclose(matrix_to_euler(pose_matrices(angles)), angles, atol=1e-9)


def test_mediapipe_68_are_distinct_face_mesh_indices():
    assert MEDIAPIPE_68.shape == (68,) and len(set(MEDIAPIPE_68.tolist())) == 68
    assert MEDIAPIPE_68.min() >= 0 and MEDIAPIPE_68.max() < 468


def test_builtin_landmarks_sit_on_their_features(builtin):
    lm, verts = builtin.landmarks, builtin.neutral
    assert lm.shape == (68,) and len(set(lm.tolist())) == 66
    assert lm[48] == lm[60] and lm[54] == lm[64]  # the mouth slit's ends are both outer and inner corners
    x = verts[lm, 0]
    # the subject's right (-x) comes first: jaw, brows, eyes and lip corners mirror their partners
    for right, left in ((0, 16), (8, 8), (17, 26), (36, 45), (39, 42), (31, 35), (48, 54), (60, 64)):
        assert abs(x[right] + x[left]) < 0.003 and x[right] <= 0
    assert np.argmax(verts[lm, 2]) == 30  # the nose tip stands out most
    opened = builtin.vertices(np.eye(ARKIT.dim, dtype=np.float32)[ARKIT.index("jawOpen")])[lm]
    assert opened[66, 1] - verts[lm[66], 1] < -0.02  # the lower inner lip drops with the jaw
    assert abs(opened[62, 1] - verts[lm[62], 1]) < 0.002  # the upper one stays
    blink = builtin.vertices(np.eye(ARKIT.dim, dtype=np.float32)[ARKIT.index("eyeBlinkLeft")])[lm]
    assert np.all(blink[[43, 44], 1] < verts[lm[[43, 44]], 1] - 0.005)  # the left upper lid closes
    np.testing.assert_allclose(blink[36:42], verts[lm[36:42]], atol=1e-6)  # the right eye does not


def test_fit_recovers_pose_and_expression(builtin):
    landmarks, truth = synthetic_video(builtin)
    fit = fit_landmarks(builtin, landmarks, np.ones(len(landmarks), bool))
    assert fit.params.shape == truth.shape and fit.params.dtype == np.float32
    assert np.degrees(np.abs(fit.params[:, 52:55] - truth[:, 52:55])).max() < 1.0
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft"):
        i = ARKIT.index(name)
        assert corr(fit.params[:, i], truth[:, i]) > 0.95, name
    assert np.all(fit.params[:, :52] >= 0) and np.all(fit.params[:, :52] <= 1)
    # lips never close past touching: mouthClose stays within jawOpen (noise would push it beyond)
    assert np.all(fit.params[:, ARKIT.index("mouthClose")] <= fit.params[:, ARKIT.index("jawOpen")])
    assert np.all(fit.params[:, [ARKIT.index(n) for n in ARKIT.channels if n.startswith("eyeLook")]] == 0)
    assert np.median(fit.error_mm) < 0.6  # the noise alone is about 0.3 mm RMS
    # translation in metres about the median position: depth follows the face's size in the image
    assert np.abs(fit.params[:, 55:57]).max() < 0.01
    assert corr(fit.params[:, 57], np.sin(np.arange(len(truth)) / FPS)) > 0.99


def test_fitted_face_lands_on_the_landmarks(builtin):
    landmarks, _ = synthetic_video(builtin, n=30, noise=0.0)
    fit = fit_landmarks(builtin, landmarks, np.ones(30, bool))
    drawn = fit.to_image(fitted_vertices(builtin, fit)[:, builtin.landmarks])
    # millimetres off at most: what the ridge holds back of the weights
    assert np.abs(drawn - landmarks).max() / fit.scale.min() * 1000 < 3.0


def test_frame_without_face_is_interpolated_and_flagged(builtin):
    landmarks, truth = synthetic_video(builtin, n=60, seed=2)
    valid = np.ones(60, bool)
    valid[20:23] = False
    landmarks[20:23] = np.nan
    fit = fit_landmarks(builtin, landmarks, valid)
    assert np.all(np.isfinite(fit.params))
    assert np.all(np.isnan(fit.error_mm[20:23])) and np.all(np.isfinite(fit.error_mm[valid]))
    assert np.degrees(np.abs(fit.params[20:23, 52:55] - truth[20:23, 52:55])).max() < 2.0
    jaw = fit.params[:, ARKIT.index("jawOpen")]
    assert min(jaw[19], jaw[23]) - 0.05 <= jaw[21] <= max(jaw[19], jaw[23]) + 0.05


def test_ict_identity_modes_are_exposed_and_fitted(ict_rig):
    assert ict_rig.identity.shape == (3, ict_rig.n_vertices, 3) and ict_rig.identity.dtype == np.float32
    landmarks, truth = synthetic_video(ict_rig, n=50, seed=3)
    fit = fit_landmarks(ict_rig, landmarks, np.ones(50, bool))
    assert np.abs(fit.identity).max() < 0.1
    assert np.degrees(np.abs(fit.params[:, 52:55] - truth[:, 52:55])).max() < 1.0
    # Mode 0 mostly changes the head's size, which the similarity's scale takes; the ridge shrinks
    # the others (they move the landmarks by a few millimetres) but they come back, and what is
    # missing of them tilts the head a little.
    landmarks, truth = synthetic_video(ict_rig, n=50, seed=3, identity=np.array([0.0, -1.0, 1.0]))
    fit = fit_landmarks(ict_rig, landmarks, np.ones(50, bool))
    assert -1.1 < fit.identity[1] < -0.4 and 0.4 < fit.identity[2] < 1.1
    assert np.degrees(np.abs(fit.params[:, 52:55] - truth[:, 52:55])).max() < 2.0
    assert corr(fit.params[:, ARKIT.index("jawOpen")], truth[:, ARKIT.index("jawOpen")]) > 0.95


def test_rig_without_landmarks_is_refused(builtin):
    from dataclasses import replace

    from adamesh.errors import AdameshError

    bare = replace(builtin, landmarks=None)
    with pytest.raises(AdameshError, match="68 landmark vertices"):
        fit_landmarks(bare, np.zeros((2, 68, 3)), np.ones(2, bool))
