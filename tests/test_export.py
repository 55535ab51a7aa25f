"""Exports: glb validates and round-trips, Live Link CSV layout, OBJ sequence, npz."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA

from adamesh.errors import AdameshError
from adamesh.export import LIVE_LINK_ORDER, export, read_glb_animation
from adamesh.fileio import OUTPUT_MARK
from adamesh.gltf_validate import validate_gltf, validator_available
from adamesh.motion import ARKIT, FLAME, Motion
from adamesh.testmotion import demo_motion


@pytest.fixture(scope="module")
def motion():
    return demo_motion(seconds=1.2)[0]


def _check_glb(path, motion, rig):
    back = read_glb_animation(path)
    names = back["names"]
    assert set(names) == {n for n in ARKIT.expression_channels if n not in rig.missing}
    cols = [ARKIT.index(n) for n in names]
    np.testing.assert_allclose(back["weights"], motion.params[:, cols], atol=1e-7)
    np.testing.assert_allclose(back["times"], np.arange(motion.n_frames) / motion.fps, atol=1e-6)
    # rotation quaternions are unit and the nod shows up as rotation about x
    q = back["rotation"]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    pitch = motion.channel("headPitch")
    assert np.corrcoef(q[:, 0], pitch)[0, 1] > 0.9
    if validator_available():
        report = validate_gltf(path)
        assert report["numErrors"] == 0, report


def test_glb_builtin_round_trip_and_validator(builtin, motion, tmp_path):
    out = export(motion, "glb", tmp_path / "a.glb", builtin)
    _check_glb(out, motion, builtin)
    # the mesh read back as a glTF avatar gives the rig's geometry and shapes (metres, about the pivot)
    from adamesh.rigs import load_rig

    avatar = load_rig(f"gltf:{out}")
    np.testing.assert_allclose(avatar.neutral, builtin.neutral, atol=1e-5)
    np.testing.assert_allclose(avatar.shapes, builtin.shapes, atol=1e-6)


def test_glb_ict(ict_rig, motion, tmp_path):
    out = export(motion, "glb", tmp_path / "ict.glb", ict_rig)
    _check_glb(out, motion, ict_rig)
    assert out.stat().st_size < 8e6  # sparse morph targets keep the file small


def test_live_link_csv(motion, tmp_path):
    out = export(motion, "csv", tmp_path / "take.csv")
    rows = list(csv.reader(open(out)))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Timecode", "BlendShapeCount"] and len(header) == 2 + 52 + 9
    assert header[2] == "EyeBlinkLeft" and header.index("JawRight") < header.index("JawLeft")
    assert header[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert len(body) == motion.n_frames and all(r[1] == "61" for r in body)
    assert body[26][0] == "00:00:01:01.000"  # frame 26 at 25 fps
    jaw = np.array([float(r[header.index("JawOpen")]) for r in body])
    np.testing.assert_allclose(jaw, motion.channel("jawOpen"), atol=1e-6)
    yaw = np.array([float(r[header.index("HeadYaw")]) for r in body])
    np.testing.assert_allclose(yaw, motion.channel("headYaw"), atol=1e-6)
    assert [h[0].lower() + h[1:] for h in header[2:54]] == LIVE_LINK_ORDER


def test_obj_and_npz(builtin, motion, tmp_path):
    short = Motion(motion.params[:3], ARKIT, motion.fps)
    folder = export(short, "obj", tmp_path / "seq", builtin)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [OUTPUT_MARK, "frame_00000.obj", "frame_00001.obj", "frame_00002.obj"]
    files = files[1:]
    v = np.array([l.split()[1:] for l in open(files[1]) if l.startswith("v ")], np.float32)
    np.testing.assert_allclose(v, builtin.vertices(short.params[1]), atol=2e-6)
    n_faces = sum(1 for l in open(files[1]) if l.startswith("f "))
    assert n_faces == len(builtin.faces)
    z = np.load(export(short, "npz", tmp_path / "v.npz", builtin))
    assert z["vertices"].shape == (3, builtin.n_vertices, 3) and float(z["fps"]) == motion.fps


def test_export_refusals(builtin, tmp_path):
    flame_motion = Motion(np.zeros((3, FLAME.dim), np.float32), FLAME)
    with pytest.raises(AdameshError, match="arkit"):
        export(flame_motion, "csv", tmp_path / "x.csv")
    with pytest.raises(AdameshError, match="flame"):
        export(flame_motion, "glb", tmp_path / "x.glb", builtin)
    with pytest.raises(AdameshError, match="format"):
        export(flame_motion, "usd", tmp_path / "x.usd", builtin)
    assert list(tmp_path.iterdir()) == []


TAKE = DATA / "avatars" / "livelinkface_iphone_take.csv"


def test_live_link_eye_angles_follow_a_real_iphone_take(tmp_path):
    if not TAKE.is_file():
        pytest.skip(f"{TAKE} not found (../shared/data is absent)")
    raw = TAKE.read_bytes()
    rows = list(csv.reader(raw.decode().splitlines()))
    header, values = rows[0], np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float32)
    column = {h: values[:, i] for i, h in enumerate(header[2:])}
    params = np.zeros((len(values), ARKIT.dim), np.float32)
    for name in LIVE_LINK_ORDER:
        params[:, ARKIT.index(name)] = column[name[0].upper() + name[1:]]
    motion = Motion(params, ARKIT, 60.0)
    out = export(motion, "csv", tmp_path / "take.csv")
    assert b"\r\n" not in raw and b"\r\n" not in out.read_bytes()  # LF, as the app writes
    ours = list(csv.reader(out.read_text().splitlines()))
    assert ours[0] == header  # the app's 63 columns in its order
    mine = np.array([[float(v) for v in r[2:]] for r in ours[1:]])
    for side in ("Left", "Right"):
        for axis in ("Yaw", "Pitch"):
            real, ours_ = column[f"{side}Eye{axis}"], mine[:, header.index(f"{side}Eye{axis}") - 2]
            assert np.corrcoef(real, ours_)[0, 1] > 0.95, (side, axis)  # same sign
            slope = np.polyfit(ours_, real, 1)[0]
            assert 0.85 < slope < 1.15, (side, axis, slope)  # same scale


def test_live_link_csv_at_60_fps(motion, tmp_path):
    out = export(motion, "csv", tmp_path / "take60.csv", fps=60.0)
    rows = list(csv.reader(out.read_text().splitlines()))[1:]
    assert len(rows) == int(motion.duration * 60 + 1e-9)
    assert rows[61][0] == "00:00:01:01.000"
    jaw = np.array([float(r[2 + LIVE_LINK_ORDER.index("jawOpen")]) for r in rows])
    t = np.arange(len(rows)) / 60.0
    np.testing.assert_allclose(jaw, np.interp(t, np.arange(motion.n_frames) / motion.fps, motion.channel("jawOpen")),
                               atol=2e-6)  # fmt: skip
    with pytest.raises(AdameshError, match="Live Link CSV only"):
        export(motion, "npz", tmp_path / "x.npz", "builtin", fps=60.0)
