"""The built-in head and the ICT rig: every shape does what its name says; pose, batching, autograd."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ICT_SOURCE

from adamesh.errors import RigError
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES
from adamesh.rigs import load_rig


def shape_delta(rig, name, weight=1.0):
    p = np.zeros(ARKIT.dim, np.float32)
    p[ARKIT.index(name)] = weight
    return rig.vertices(p) - rig.neutral


def moved(delta, frac=0.2):
    n = np.linalg.norm(delta, axis=1)
    return np.nonzero(n > frac * n.max())[0]


def check_semantics(rig, cm):
    """Direction checks shared by both rigs; `cm` is one centimetre in rig units."""
    v = rig.neutral
    missing = set(getattr(rig, "missing", ()))
    for name in ARKIT_BLENDSHAPES:
        if name in missing:
            continue
        d = shape_delta(rig, name)
        assert np.linalg.norm(d, axis=1).max() > 0.1 * cm, f"{name} barely moves"
        idx = moved(d)
        side = 1 if name.endswith("Left") else -1 if name.endswith("Right") else 0
        if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):  # a direction, not a side
            assert side * d[idx, 0].mean() > 0.1 * cm, name
        elif side:  # the character's left is +x
            assert side * v[idx, 0].mean() > 0.3 * cm, name
    jaw = shape_delta(rig, "jawOpen")
    assert jaw[moved(jaw), 1].mean() < -0.3 * cm, "jawOpen must move the jaw down"
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        d = shape_delta(rig, name)
        assert d[moved(d), 1].mean() < 0, f"{name} must close the upper lid downwards"
    assert shape_delta(rig, "browInnerUp")[moved(shape_delta(rig, "browInnerUp")), 1].mean() > 0
    pucker = shape_delta(rig, "mouthPucker")
    assert pucker[moved(pucker), 2].mean() > 0, "pucker pushes the lips forward"
    smile = shape_delta(rig, "mouthSmileLeft")
    assert smile[moved(smile), 1].mean() > 0, "smile raises the mouth corner"


def test_builtin_shapes_do_what_their_names_say(builtin):
    check_semantics(builtin, cm=0.01)
    # p/b/m need a real closure: mouthClose over an open jaw brings the lips back together
    lips = builtin.regions["lips"]
    p = np.zeros((2, ARKIT.dim), np.float32)
    p[:, ARKIT.index("jawOpen")] = 0.6
    p[1, ARKIT.index("mouthClose")] = 0.6
    open_, closed = builtin.vertices(p)
    gap = lambda v: np.ptp(v[lips, 1])  # noqa: E731 - lip region height grows with the opening
    assert gap(closed) < gap(open_) - 0.005
    funnel = shape_delta(builtin, "mouthFunnel")
    assert funnel[moved(funnel), 2].mean() > 0
    tongue = shape_delta(builtin, "tongueOut")
    assert tongue[moved(tongue), 2].mean() > 0.01


def test_builtin_left_right_mirror(builtin):
    for name in ARKIT_BLENDSHAPES:
        if not name.endswith("Left"):
            continue
        left, right = shape_delta(builtin, name), shape_delta(builtin, name.replace("Left", "Right"))
        assert abs(np.abs(left).sum() - np.abs(right).sum()) < 0.02 * np.abs(left).sum(), name
        l_idx, r_idx = moved(left), moved(right)
        assert np.isclose(builtin.neutral[l_idx, 0].mean(), -builtin.neutral[r_idx, 0].mean(), atol=2e-3), (
            name
        )


def test_builtin_shapes_are_distinct(builtin):
    d = builtin.shapes.reshape(52, -1).astype(np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    corr = d @ d.T - np.eye(52)
    i, j = np.unravel_index(np.argmax(corr), corr.shape)
    assert corr.max() < 0.98, f"{ARKIT_BLENDSHAPES[i]} and {ARKIT_BLENDSHAPES[j]} are nearly the same shape"


def test_builtin_regions_and_mesh(builtin):
    assert builtin.faces.max() < builtin.n_vertices
    corners = np.sort(builtin.faces, axis=1)
    assert len(np.unique(corners, axis=0)) == len(corners)  # no triangle twice
    assert (corners[:, :-1] != corners[:, 1:]).all()  # none degenerate
    for key in ("face", "lips", "upper_face", "eyes", "jaw"):
        assert len(builtin.regions[key]) > 50, key
    lips_y = builtin.neutral[builtin.regions["lips"], 1].mean()
    upper_y = builtin.neutral[builtin.regions["upper_face"], 1].mean()
    assert upper_y > lips_y + 0.04


def test_head_pose_rotates_about_pivot(builtin):
    p = np.zeros((1, ARKIT.dim), np.float32)
    p[0, ARKIT.index("headYaw")] = 0.5
    v = builtin.vertices(p)[0]
    nose = np.argmax(builtin.neutral[:, 2])
    assert v[nose, 0] > builtin.neutral[nose, 0] + 0.02, "positive yaw turns the face to the character's left"
    # distances to the pivot are preserved by a rotation
    r0 = np.linalg.norm(builtin.neutral - builtin.pivot, axis=1)
    r1 = np.linalg.norm(v - builtin.pivot, axis=1)
    np.testing.assert_allclose(r0, r1, atol=1e-5)
    p[0, ARKIT.index("headYaw")] = 0
    p[0, ARKIT.index("headPitch")] = 0.3
    v = builtin.vertices(p)[0]
    assert v[nose, 1] < builtin.neutral[nose, 1] - 0.01, "positive pitch tips the face down"
    p[0, ARKIT.index("headPitch")] = 0
    p[0, ARKIT.index("headX")] = 0.05
    np.testing.assert_allclose(
        builtin.vertices(p)[0] - builtin.neutral, np.tile([0.05, 0, 0], (builtin.n_vertices, 1)), atol=1e-6
    )


def test_batched_torch_matches_numpy_and_is_differentiable(builtin):
    rng = np.random.default_rng(0)
    p = np.zeros((5, ARKIT.dim), np.float32)
    p[:, :52] = rng.uniform(0, 1, (5, 52))
    p[:, 52:55] = rng.uniform(-0.3, 0.3, (5, 3))
    batched = builtin.vertices(p)
    single = np.stack([builtin.vertices(row) for row in p])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    x = torch.tensor(p, requires_grad=True)
    builtin.deform(x)[:, builtin.regions["lips"]].sum().backward()
    assert x.grad[:, ARKIT.index("jawOpen")].abs().min() > 0
    assert x.grad[:, ARKIT.index("headPitch")].abs().min() > 0


def test_ict_rig(ict_rig):
    assert ict_rig.n_vertices == 24591 and ict_rig.units_per_meter == 100
    assert ict_rig.missing == ("tongueOut",)
    assert len(ict_rig.landmarks) == 68
    check_semantics(ict_rig, cm=1.0)


def test_ict_split_shapes_are_summed(ict_rig):
    def obj(name):
        return np.array(
            [l.split()[1:4] for l in open(ICT_SOURCE / "FaceXModel" / f"{name}.obj") if l.startswith("v ")],
            np.float32,
        )

    neutral = obj("generic_neutral_mesh")[: ict_rig.n_vertices]
    expected = (
        obj("browInnerUp_L")[: ict_rig.n_vertices] + obj("browInnerUp_R")[: ict_rig.n_vertices] - 2 * neutral
    )
    got = ict_rig.shapes[ARKIT_BLENDSHAPES.index("browInnerUp")]
    np.testing.assert_allclose(got, expected, atol=2e-3)  # float16 storage of centimetres


def test_ict_install_from_zip_and_cli(tmp_path, ict_file):
    z = tmp_path / "ICT-FaceKit-master.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for f in (ICT_SOURCE / "FaceXModel").iterdir():
            zf.write(f, f"ICT-FaceKit-master/FaceXModel/{f.name}")
    from adamesh.cli import main

    assert main(["rig", "install", "ict-facekit", "--from", str(z), "--cache", str(tmp_path / "r.npz")]) == 0
    a, b = load_rig(f"ict:{tmp_path / 'r.npz'}"), load_rig(f"ict:{ict_file}")
    np.testing.assert_array_equal(a.shapes, b.shapes)


def test_ict_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMESH_CACHE", str(tmp_path / "empty"))
    with pytest.raises(RigError, match="not installed"):
        load_rig("ict")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(RigError, match="bad.npz"):
        load_rig(f"ict:{bad}")
    with pytest.raises(RigError, match="does not exist"):
        load_rig(f"ict:{tmp_path / 'nowhere'}")
    if ICT_SOURCE.is_dir():  # a copy with one shape missing is refused, naming the shape
        part = tmp_path / "FaceXModel"
        shutil.copytree(ICT_SOURCE / "FaceXModel", part)
        (part / "jawOpen.obj").unlink()
        with pytest.raises(RigError, match="jawOpen"):
            load_rig(f"ict:{part}")


def _ict_zip(path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"ICT-FaceKit-master/FaceXModel/{name}", data)
    return path


def test_ict_zip_bombs_and_damaged_indices_are_refused(tmp_path):
    from adamesh.rigs.ict import MAX_ENTRY_BYTES, import_ict

    bomb = _ict_zip(
        tmp_path / "bomb.zip",
        {"generic_neutral_mesh.obj": b"v 0 0 0\n", "vertex_indices.json": b" " * (MAX_ENTRY_BYTES + 1)},
    )
    assert bomb.stat().st_size < 1e6
    with pytest.raises(RigError, match="this is not the upstream zip"):
        import_ict(bomb)
    for index in (b"{not json", b'{"expressions": 3}', b'{"expressions": []}'):
        damaged = _ict_zip(
            tmp_path / "damaged.zip", {"generic_neutral_mesh.obj": b"v 0 0 0\n", "vertex_indices.json": index}
        )
        with pytest.raises(RigError, match="vertex_indices.json is damaged"):
            import_ict(damaged)


def test_a_failed_url_install_leaves_no_copy(tmp_path, monkeypatch):
    from adamesh.rigs.ict import import_ict

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    not_ict = tmp_path / "other.zip"
    with zipfile.ZipFile(not_ict, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(RigError, match="holds no FaceXModel"):
        import_ict(not_ict.as_uri())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zip"]


def test_the_default_rig_is_ict_once_installed_else_the_builtin_head(ict_file, tmp_path, monkeypatch):
    import shutil

    from adamesh.rigs import default_rig
    from adamesh.rigs.ict import CACHE_NAME

    monkeypatch.setenv("ADAMESH_CACHE", str(tmp_path))
    assert default_rig().name == "builtin" and default_rig("ict:" + str(ict_file)).name == "ict"
    (tmp_path / "rigs").mkdir()
    shutil.copy(ict_file, tmp_path / "rigs" / CACHE_NAME)
    assert default_rig().name == "ict"
