"""The FLAME rig on a fake model in the official layouts (the real one is not redistributable)."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
import torch
from fakes import fake_flame_model, write_fake_flame

from adamesh.errors import RigError
from adamesh.motion import ARKIT, FLAME, Motion
from adamesh.rigs import load_rig
from adamesh.rigs.flame import FlameRig, load_flame

MODEL = fake_flame_model()
V0 = MODEL["v_template"]
W = MODEL["weights"]
J0 = MODEL["J_regressor"].toarray() @ V0  # rest joints


def params(**channels: float) -> np.ndarray:
    p = np.zeros((1, FLAME.dim), np.float32)
    for name, value in channels.items():
        p[0, FLAME.index(name)] = value
    return p


def rot(axis_angle) -> np.ndarray:
    """Rodrigues in numpy, independent of adamesh.geometry."""
    aa = np.asarray(axis_angle, np.float64)
    theta = np.linalg.norm(aa)
    if theta == 0:
        return np.eye(3)
    k = aa / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def reference_flame(p: np.ndarray) -> np.ndarray:
    """FLAME's forward pass for one frame, transcribed in numpy from the reference `lbs`."""
    exp, jaw, head = p[:50], p[50:53], p[53:56]
    shaped = V0 + MODEL["shapedirs"][:, :, 300:350] @ exp
    joints = MODEL["J_regressor"].toarray() @ shaped
    rots = [rot(a) for a in (head, np.zeros(3), jaw, np.zeros(3), np.zeros(3))]
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    posed = shaped + (MODEL["posedirs"].reshape(-1, 36) @ feature).reshape(-1, 3)
    parents = MODEL["kintree_table"][0]
    world = []
    for i, r in enumerate(rots):
        local = np.eye(4)
        local[:3, :3], local[:3, 3] = r, joints[i] - (joints[parents[i]] if i else 0)
        world.append(world[parents[i]] @ local if i else local)
    skin = np.stack(world)
    skin[:, :3, 3] -= np.einsum("jab,jb->ja", skin[:, :3, :3], joints)
    blend = np.einsum("vj,jab->vab", W, skin)
    return np.einsum("vab,vb->va", blend[:, :3, :3], posed) + blend[:, :3, 3]


@pytest.fixture(scope="module", params=["pkl", "npz", "chumpy"])
def rig(request, tmp_path_factory) -> FlameRig:
    path = write_fake_flame(tmp_path_factory.mktemp("flame") / f"model.{request.param}", request.param)
    return load_flame(path)


@pytest.fixture(scope="module")
def rig_nopose(tmp_path_factory) -> FlameRig:
    path = tmp_path_factory.mktemp("flame") / "nopose.pkl"
    return load_flame(write_fake_flame(path, posedirs=np.zeros_like(MODEL["posedirs"])))


def test_loads_official_layouts(rig):
    assert rig.space is FLAME and rig.n_vertices == len(V0) and rig.units_per_meter == 1.0
    assert rig.shape_dirs.shape == (len(V0), 3, 300) and rig.expr_dirs.shape == (len(V0), 3, 50)
    np.testing.assert_allclose(rig.neutral, V0, atol=1e-7)
    np.testing.assert_allclose(rig.pivot, J0[0], atol=1e-7)
    assert "not redistributable" in rig.info["licence"] and "model." in rig.info["source"]


def test_chumpy_pickle_loads_without_chumpy(tmp_path):
    path = write_fake_flame(tmp_path / "generic_model.pkl", "chumpy")
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    assert b"chumpy.ch" in path.read_bytes()
    np.testing.assert_allclose(load_flame(path).neutral, V0, atol=1e-7)


def test_zero_params_give_the_template(rig):
    np.testing.assert_allclose(rig.vertices(params())[0], V0, atol=1e-7)


def test_expression_adds_its_direction(rig):
    # exp00 is the first expression column, i.e. shapedirs column 300 in the official layout.
    out = rig.vertices(params(exp00=2.0, exp07=-1.0))[0]
    expected = V0 + 2.0 * MODEL["shapedirs"][:, :, 300] - MODEL["shapedirs"][:, :, 307]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_jaw_rotates_jaw_vertices_about_the_jaw_joint(rig_nopose):
    aa = (0.3, 0.0, 0.0)
    out = rig_nopose.vertices(params(jawRotX=aa[0]))[0]
    free, full = W[:, 2] == 0, W[:, 2] == 1
    assert free.any() and full.any()
    np.testing.assert_allclose(out[free], V0[free], atol=1e-7)
    expected = (V0[full] - J0[2]) @ rot(aa).T + J0[2]
    np.testing.assert_allclose(out[full], expected, atol=1e-6)
    assert np.linalg.norm(out[full] - V0[full], axis=1).min() > 1e-3


def test_jaw_pose_correctives_follow_flame_order(rig):
    # Vertices without jaw weight stay rigid, so they move by the pose corrective alone:
    # posedirs (V, 3, 36) against (R_j - I) of joints 1..4 flattened, the jaw being joint 2.
    aa = (0.2, 0.1, -0.05)
    feature = np.zeros((4, 3, 3))
    feature[1] = rot(aa) - np.eye(3)
    free = W[:, 2] == 0
    out = rig.vertices(params(jawRotX=aa[0], jawRotY=aa[1], jawRotZ=aa[2]))[0]
    expected = V0 + MODEL["posedirs"] @ feature.reshape(36)
    np.testing.assert_allclose(out[free], expected[free], atol=1e-6)


def test_head_rotation_turns_the_head_about_the_global_joint(rig):
    # Global rotation makes no pose corrective, so every vertex turns rigidly about joint 0.
    out = rig.vertices(params(headRotY=np.pi / 2))[0]
    quarter = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +90 deg about y
    np.testing.assert_allclose(out, (V0 - J0[0]) @ quarter.T + J0[0], atol=1e-6)


def test_matches_reference_flame(rig):
    rng = np.random.default_rng(1)
    p = params()[0]
    p[:50], p[50:56] = rng.normal(0, 1.5, 50), rng.normal(0, 0.3, 6)
    np.testing.assert_allclose(rig.vertices(p), reference_flame(p), atol=2e-6)


def test_deform_is_batched_and_differentiable(rig):
    p = torch.from_numpy(np.concatenate([params(), params(exp03=1.0, jawRotX=0.2, headRotZ=0.1)]))
    p.requires_grad_(True)
    out = rig.deform(p)
    assert out.shape == (2, rig.n_vertices, 3) and out.dtype == torch.float32
    (out * torch.randn_like(out)).sum().backward()
    grad = p.grad.abs()
    assert grad[0].sum() > 0 and (grad[1, [3, 50, 55]] > 0).all() and torch.isfinite(p.grad).all()


def test_regions_are_sensible(rig):
    r = rig.regions
    assert all(len(r[k]) for k in ("face", "lips", "upper_face", "eyes", "jaw"))
    assert (W[r["jaw"], 2] > 0.5).all()
    assert set(r["lips"]) <= set(r["face"]) and set(r["upper_face"]) <= set(r["face"])
    assert len(r["lips"]) < len(r["face"]) / 4  # a small set around the mouth
    eyeballs = np.flatnonzero(W[:, 3] + W[:, 4] > 0.5)
    assert set(eyeballs) <= set(r["eyes"])
    assert (V0[r["face"], 2] > 0).all()  # the face is the front of the head (+z)
    assert V0[r["upper_face"], 1].min() > V0[r["lips"], 1].max()
    assert (rig.colors[eyeballs] != rig.colors[r["lips"][0]]).any(1).all()


def test_load_rig_and_motion(tmp_path):
    path = write_fake_flame(tmp_path / "model.npz", "npz")
    rig = load_rig(f"flame:{path}")
    assert isinstance(rig, FlameRig)
    motion = Motion(np.zeros((4, FLAME.dim), np.float32), space=FLAME)
    assert rig.vertices(motion).shape == (4, rig.n_vertices, 3)
    with pytest.raises(RigError, match="arkit"):
        rig.vertices(Motion(np.zeros((2, ARKIT.dim), np.float32), space=ARKIT))


@pytest.mark.parametrize("fmt", ["pkl", "npz"])
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"posedirs": None}, "lacks 'posedirs'"),
        ({"weights": np.ones((len(V0), 4)) / 4}, "'weights' has shape"),
        ({"v_template": np.full_like(V0, np.nan)}, "'v_template' contains NaN"),
        ({"kintree_table": np.array([[-1, 0, 1, 1, 5], [0, 1, 2, 3, 4]])}, "kintree_table"),
        ({"shapedirs": MODEL["shapedirs"][:, :, :300]}, "expression"),
    ],
)
def test_bad_models_are_refused(tmp_path, fmt, overrides, message):
    path = write_fake_flame(tmp_path / f"model.{fmt}", fmt, **overrides)
    with pytest.raises(RigError, match=message) as err:
        load_flame(path)
    assert str(path) in str(err.value)


def test_separate_expression_key(tmp_path):
    expr = MODEL["shapedirs"][:, :, 300:] * 3
    shape = MODEL["shapedirs"][:, :, :300]
    path = write_fake_flame(tmp_path / "model.npz", "npz", shapedirs=shape, exprdirs=expr)
    out = load_flame(path).vertices(params(exp00=1.0))[0]
    np.testing.assert_allclose(out, V0 + expr[:, :, 0], atol=1e-6)


def test_unreadable_files_are_refused(tmp_path):
    missing = tmp_path / "nowhere.pkl"
    with pytest.raises(RigError, match="does not exist") as err:
        load_flame(missing)
    assert str(missing) in str(err.value)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x02this is not a pickle")
    with pytest.raises(RigError, match="not a readable") as err:
        load_flame(corrupt)
    assert str(corrupt) in str(err.value)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(RigError, match="not FLAME's dict"):
        load_flame(listed)


class _Exploit:
    def __reduce__(self):
        return (os.getpid, ())  # harmless, but a pickle could name any callable here


def test_pickles_cannot_run_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Exploit()}))
    with pytest.raises(RigError, match="getpid"):
        load_flame(path)


def test_pickles_cannot_import_numpy_submodules(tmp_path):
    """Importing numpy.f2py.__main__ runs f2py's command line (which exits); naming it is refused
    before anything is imported."""
    path = tmp_path / "f2py.pkl"
    # protocol 2: GLOBAL 'numpy.f2py.__main__ _reconstruct', then an empty tuple, REDUCE, STOP
    path.write_bytes(b"\x80\x02cnumpy.f2py.__main__\n_reconstruct\n)R.")
    with pytest.raises(RigError, match=r"numpy\.f2py\.__main__\._reconstruct"):
        load_flame(path)
