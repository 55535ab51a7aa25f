"""The pinned Khronos glTF validator (tools/gltf-validator) runs and tells valid from broken files."""

from __future__ import annotations

import json

import numpy as np
import pygltflib as g
import pytest

from adamesh.errors import AdameshError
from adamesh.gltf_validate import ENV_VAR, validate_gltf, validator_available

needs_validator = pytest.mark.skipif(
    not validator_available(),
    reason="node or tools/gltf-validator/node_modules missing: run `make validator`",
)


def _morph_triangle() -> g.GLTF2:
    """One triangle, one POSITION morph target, a LINEAR "weights" animation: the exporter's shape."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    delta = np.array([[0, 0, 0.1], [0, 0, 0], [0, 0, 0.3]], np.float32)
    idx = np.array([0, 1, 2], np.uint16)
    times = np.array([0.0, 0.5, 1.0], np.float32)
    n_targets = 1
    weights = np.linspace(0, 1, len(times) * n_targets).astype(np.float32)

    blob = bytearray()
    views: list[g.BufferView] = []

    def view(arr: np.ndarray, target: int | None = None) -> int:
        while len(blob) % 4:  # every bufferView starts 4-byte aligned
            blob.append(0)
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=arr.nbytes, target=target))
        blob.extend(arr.tobytes())
        return len(views) - 1

    def bounds(a: np.ndarray) -> dict:
        a = a.reshape(len(a), -1)
        return {"min": a.min(0).tolist(), "max": a.max(0).tolist()}  # float32 values, exactly

    accessors = [
        g.Accessor(
            bufferView=view(idx, g.ELEMENT_ARRAY_BUFFER),
            componentType=g.UNSIGNED_SHORT,
            count=3,
            type=g.SCALAR,
        ),
        g.Accessor(
            bufferView=view(pos, g.ARRAY_BUFFER), componentType=g.FLOAT, count=3, type=g.VEC3, **bounds(pos)
        ),
        g.Accessor(
            bufferView=view(delta, g.ARRAY_BUFFER),
            componentType=g.FLOAT,
            count=3,
            type=g.VEC3,
            **bounds(delta),
        ),
        g.Accessor(
            bufferView=view(times), componentType=g.FLOAT, count=len(times), type=g.SCALAR, **bounds(times)
        ),
        g.Accessor(bufferView=view(weights), componentType=g.FLOAT, count=len(weights), type=g.SCALAR),
    ]
    while len(blob) % 4:
        blob.append(0)
    prim = g.Primitive(
        attributes=g.Attributes(POSITION=1), indices=0, mode=g.TRIANGLES, targets=[{"POSITION": 2}]
    )
    mesh = g.Mesh(
        name="face", primitives=[prim], weights=[0.0] * n_targets, extras={"targetNames": ["jawOpen"]}
    )
    anim = g.Animation(
        name="talk",
        # interpolation is the string "LINEAR" (g.ANIM_LINEAR), not g.LINEAR (= 9729, a texture filter)
        samplers=[g.AnimationSampler(input=3, output=4, interpolation=g.ANIM_LINEAR)],
        channels=[g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="weights"))],
    )
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="adamesh tests"),
        scene=0,
        scenes=[g.Scene(nodes=[0])],
        nodes=[g.Node(name="face", mesh=0)],
        meshes=[mesh],
        accessors=accessors,
        bufferViews=views,
        buffers=[g.Buffer(byteLength=len(blob))],
        animations=[anim],
    )
    gltf.set_binary_blob(bytes(blob))
    return gltf


@needs_validator
def test_valid_glb_has_no_errors(tmp_path):
    path = tmp_path / "tri.glb"
    _morph_triangle().save_binary(str(path))
    report = validate_gltf(path)
    assert report["numErrors"] == 0, report["errors"]
    assert report["numWarnings"] == 0, report["warnings"]
    assert report["mimeType"] == "model/gltf-binary"


@needs_validator
def test_truncated_glb_has_errors(tmp_path):
    good = tmp_path / "tri.glb"
    _morph_triangle().save_binary(str(good))
    bad = tmp_path / "truncated.glb"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    report = validate_gltf(bad)
    assert report["numErrors"] > 0
    assert report["errors"][0]["code"].startswith("GLB_")


@needs_validator
def test_missing_bounds_is_an_error(tmp_path):
    gltf = _morph_triangle()
    gltf.accessors[3].min = gltf.accessors[3].max = None  # animation input needs min/max
    path = tmp_path / "nobounds.glb"
    gltf.save_binary(str(path))
    codes = [e["code"] for e in validate_gltf(path)["errors"]]
    assert "ANIMATION_SAMPLER_INPUT_ACCESSOR_WITHOUT_BOUNDS" in codes


@needs_validator
def test_gltf_with_sibling_bin_is_loaded(tmp_path):
    gltf = _morph_triangle()
    blob = gltf.binary_blob()
    doc = json.loads(gltf.to_json())
    doc["buffers"][0]["uri"] = "tri%20data.bin"
    (tmp_path / "tri.gltf").write_text(json.dumps(doc))
    (tmp_path / "tri data.bin").write_bytes(blob)
    report = validate_gltf(tmp_path / "tri.gltf")
    assert report["numErrors"] == 0, report["errors"]
    (tmp_path / "tri data.bin").unlink()
    assert [e["code"] for e in validate_gltf(tmp_path / "tri.gltf")["errors"]] == ["IO_ERROR"]


def test_unavailable_validator_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert not validator_available()
    with pytest.raises(AdameshError, match="make validator|npm ci|Node"):
        validate_gltf(tmp_path / "x.glb")
