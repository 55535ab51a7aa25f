"""The user's own avatar animated and handed back intact (adamesh.avatar), checked with the
Khronos validator and played in three.js (headless Chromium) on the third-party avatars of
../shared/data/avatars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from browser import missing, play_glb
from conftest import DATA

from adamesh.avatar import ANIMATION_NAME, animate_avatar, head_node, read_glb
from adamesh.cli import main
from adamesh.errors import AdameshError
from adamesh.export import export, read_glb_animation
from adamesh.gltf_validate import validate_gltf, validator_available
from adamesh.motion import ARKIT, Motion

AVATARS = DATA / "avatars"
SPEECH = DATA / "video" / "grid" / "bbaf2n.mpg"


def _motion(n: int = 50) -> Motion:
    params = np.zeros((n, ARKIT.dim), np.float32)
    params[:, ARKIT.index("jawOpen")] = np.linspace(0, 0.8, n)
    params[:, ARKIT.index("eyeBlinkLeft")] = 0.5
    params[:, ARKIT.rotation[0] : ARKIT.rotation[1]] = np.linspace(0, 1, n)[:, None] * [0.1, 0.2, -0.05]
    return Motion(params, ARKIT, 25.0)


def _accessor(doc: dict, blob: bytes, i: int) -> np.ndarray:
    acc, width = doc["accessors"][i], {"SCALAR": 1, "VEC4": 4}[doc["accessors"][i]["type"]]
    view = doc["bufferViews"][acc["bufferView"]]
    data = np.frombuffer(
        blob, np.float32, acc["count"] * width, view["byteOffset"] + acc.get("byteOffset", 0)
    )
    return data.reshape(acc["count"], width)


def _counts(doc: dict) -> dict:
    return {
        **{
            k: len(doc.get(k, []))
            for k in ("meshes", "materials", "textures", "images", "skins", "nodes", "scenes")
        },
        "node names": [n.get("name") for n in doc.get("nodes", [])],
        "target names": [(m.get("extras") or {}).get("targetNames") for m in doc.get("meshes", [])],
        "extensionsRequired": doc.get("extensionsRequired"),
    }


def test_the_builtin_heads_glb_animated_as_an_avatar_gets_the_same_clip(builtin, tmp_path):
    motion = _motion()
    source = export(motion, "glb", tmp_path / "head.glb", builtin)
    out = animate_avatar(motion, source, tmp_path / "animated.glb")
    before, after = read_glb(source)[0], read_glb(out)[0]
    assert _counts(after) == _counts(before)
    assert [a["name"] for a in after["animations"]] == [ANIMATION_NAME, ANIMATION_NAME]  # ours first
    # the file's own clip and ours drive the same node to the same head rotation
    doc, blob = read_glb(out)
    ours = doc["animations"][0]
    rotation = next(c for c in ours["channels"] if c["target"]["path"] == "rotation")
    assert rotation["target"]["node"] == head_node(doc) == 0
    np.testing.assert_allclose(_accessor(doc, blob, ours["samplers"][rotation["sampler"]]["output"]),
                               read_glb_animation(source)["rotation"], atol=1e-6)  # fmt: skip
    weights = next(c for c in ours["channels"] if c["target"]["path"] == "weights")
    names = doc["meshes"][0]["extras"]["targetNames"]
    w = _accessor(doc, blob, ours["samplers"][weights["sampler"]]["output"]).reshape(
        motion.n_frames, len(names)
    )
    np.testing.assert_allclose(w[:, names.index("jawOpen")], motion.channel("jawOpen"))
    np.testing.assert_allclose(w[:, names.index("eyeBlinkLeft")], 0.5)
    if validator_available():
        assert validate_gltf(out)["numErrors"] == 0


def test_an_avatar_without_arkit_targets_or_not_a_glb_is_refused(builtin, tmp_path):
    source = export(_motion(), "glb", tmp_path / "head.glb", builtin)
    doc, blob = read_glb(source)
    doc["meshes"][0]["extras"]["targetNames"] = [
        f"shape{i}" for i in range(len(doc["meshes"][0]["extras"]["targetNames"]))
    ]
    from adamesh.avatar import write_glb

    renamed = write_glb(doc, blob, tmp_path / "renamed.glb")
    with pytest.raises(AdameshError, match="no mesh with ARKit-named morph targets"):
        animate_avatar(_motion(), renamed, tmp_path / "out.glb")
    text = tmp_path / "avatar.glb"
    text.write_text("not a glb")
    with pytest.raises(AdameshError, match="not a binary glTF"):
        animate_avatar(_motion(), text, tmp_path / "out.glb")
    assert not (tmp_path / "out.glb").exists()


@pytest.mark.parametrize(
    "name, head", [("rpm_brunette", "Head"), ("vroid_perfect_sync", "Head"), ("facecap", "grp_transform")]
)
def test_a_third_party_avatar_comes_back_whole_with_the_speech_on_it(name, head, tmp_path):
    source = AVATARS / f"{name}.glb"
    if not source.is_file() or not SPEECH.is_file():
        pytest.skip(f"{source} or {SPEECH} not found (../shared/data is absent)")
    out = tmp_path / "speech.npz"
    main(["animate", "--audio", str(SPEECH), "--out", str(out), "--rig", f"gltf:{source}", "--export", "glb"])
    glb = out.with_suffix(".glb")
    before, after = read_glb(source)[0], read_glb(glb)[0]
    assert _counts(after) == _counts(before)
    assert [a["name"] for a in after["animations"]] == [ANIMATION_NAME] + [
        a["name"] for a in before.get("animations", [])
    ]
    ours = after["animations"][0]
    animated = {c["target"]["node"] for c in ours["channels"]}
    heads = [c["target"]["node"] for c in ours["channels"] if c["target"]["path"] == "rotation"]
    assert [after["nodes"][i]["name"] for i in heads] == [head]  # the head bone turns, no other node
    assert all(after["nodes"][i].get("mesh") is not None for i in animated - set(heads))
    if validator_available():
        report = validate_gltf(glb)
        assert report["numErrors"] == 0, json.dumps(report["errors"][:3])
    why = missing()
    if why:
        pytest.skip(f"the file is checked; three.js is not: {why}")
    seen = play_glb(glb, head, Path(tmp_path / "face.png"))
    assert seen["jawMax"] > 0.15 and seen["jawMax"] - seen["jawMin"] > 0.1  # jawOpen follows the speech
    assert seen["mouthMove"] > 0.003  # and the mouth's surface moves, in the head's frame (14-18 mm seen)
    assert seen["bodyMove"] < 1e-5  # nothing outside the head moves (metres)
    assert 0 < seen["headTurn"] < 0.6  # radians


def _as_vrm(doc: dict, version: int) -> dict:
    """The built-in head's glb as a VRM: its targets renamed Fcl_*, driven through VRM expressions
    named after ARKit shapes (1.0, perfect sync) or through VRM 0.x presets."""
    names = doc["meshes"][0]["extras"]["targetNames"]
    doc["meshes"][0]["extras"]["targetNames"] = [f"Fcl_{i}" for i in range(len(names))]
    if version == 1:
        custom = {
            n: {"morphTargetBinds": [{"node": 1, "index": i, "weight": 1.0}]} for i, n in enumerate(names)
        }
        doc["extensions"] = {"VRMC_vrm": {"specVersion": "1.0", "expressions": {"custom": custom}}}
    else:
        groups = [{"name": "A", "presetName": "a", "binds": [{"mesh": 0, "index": names.index("jawOpen"), "weight": 100}]},
                  {"name": "Blink_L", "presetName": "blink_l",
                   "binds": [{"mesh": 0, "index": names.index("eyeBlinkLeft"), "weight": 50}]}]  # fmt: skip
        doc["extensions"] = {"VRM": {"blendShapeMaster": {"blendShapeGroups": groups}}}
    doc["extensionsUsed"] = list(doc["extensions"])
    return doc


@pytest.mark.parametrize("version", [1, 0])
def test_a_vrm_is_driven_through_its_expressions(builtin, tmp_path, version):
    from adamesh.avatar import write_glb

    motion = _motion()
    doc, blob = read_glb(export(motion, "glb", tmp_path / "head.glb", builtin))
    names = doc["meshes"][0]["extras"]["targetNames"]
    source = write_glb(_as_vrm(doc, version), blob, tmp_path / "avatar.vrm")
    out = animate_avatar(motion, source, tmp_path / "animated.vrm")
    after, data = read_glb(out)
    ours = after["animations"][0]
    weights = next(c for c in ours["channels"] if c["target"]["path"] == "weights")
    w = _accessor(after, data, ours["samplers"][weights["sampler"]]["output"]).reshape(
        motion.n_frames, len(names)
    )
    jaw, blink = names.index("jawOpen"), names.index("eyeBlinkLeft")
    np.testing.assert_allclose(w[:, jaw], motion.channel("jawOpen"), atol=1e-6)
    np.testing.assert_allclose(w[:, blink], 0.5 if version == 1 else 0.25, atol=1e-6)  # 0.x binds it at 50
    if version == 0:  # only what the presets bind moves
        others = np.delete(w, [jaw, blink], axis=1)
        assert not others.any()
    if validator_available():
        assert validate_gltf(out)["numErrors"] == 0


def test_rendering_beside_the_export_keeps_the_avatar(tmp_path):
    """--render loads the avatar as a rig for the video; the glb export is still the avatar's own
    file with the clip added, not the rig's merged mesh."""
    source = AVATARS / "rpm_brunette.glb"
    if not source.is_file() or not SPEECH.is_file():
        pytest.skip(f"{source} or {SPEECH} not found (../shared/data is absent)")
    out = tmp_path / "speech.npz"
    args = [
        "animate",
        "--audio",
        str(SPEECH),
        "--out",
        str(out),
        "--rig",
        f"gltf:{source}",
        "--export",
        "glb",
    ]
    assert main([*args, "--render", str(tmp_path / "speech.mp4")]) == 0
    before, after = read_glb(source)[0], read_glb(out.with_suffix(".glb"))[0]
    assert _counts(after) == _counts(before) and before["textures"]
    assert (tmp_path / "speech.mp4").stat().st_size > 0
