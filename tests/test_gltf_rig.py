"""glTF/GLB avatars with ARKit-named morph targets load as blendshape rigs (adamesh.rigs.gltf)."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pygltflib as g
import pytest
from conftest import DATA
from scipy.spatial.transform import Rotation

from adamesh.errors import AdameshWarning, RigError
from adamesh.gltf_validate import validate_gltf, validator_available
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES
from adamesh.rigs import load_rig
from adamesh.rigs.gltf import arkit_name, load_gltf

RNG = np.random.default_rng(7)
# Mesh A: a 4x4 grid, indexed, POSITION interleaved (16-byte stride), uint8 normalized COLOR_0.
GRID = np.stack(np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4)), -1).reshape(-1, 2)
POS_A = np.c_[GRID, 0.05 * np.sin(3 * GRID[:, 0])].astype(np.float32)
IDX_A = np.array([[r * 4 + c, r * 4 + c + 1, r * 4 + c + 4] for r in range(3) for c in range(3)], np.uint16)
COL_A = RNG.integers(0, 256, (16, 4)).astype(np.uint8)
BLINK_A, FOO_A, JAW_A = (RNG.normal(0, 0.01, (3, 16, 3))).astype(np.float32)
# Mesh B: a non-indexed triangle soup, coloured by its material, target names on the primitive.
POS_B = RNG.normal(0, 0.2, (18, 3)).astype(np.float32)
JAW_B = RNG.normal(0, 0.01, (18, 3)).astype(np.float32)
SMILE_L_IDX, SMILE_L_VAL = np.array([1, 4, 7], np.uint16), RNG.normal(0, 0.01, (3, 3)).astype(np.float32)
SMILE_R_BASE = RNG.normal(0, 0.01, (18, 3)).astype(np.float32)
SMILE_R_IDX, SMILE_R_VAL = np.array([0, 2], np.uint32), RNG.normal(0, 0.01, (2, 3)).astype(np.float32)
COLOR_B = (0.2, 0.4, 0.6)
# Node transforms: A by a matrix (scale 2, shift); B under a translated parent, rotated and scaled.
M_A = np.diag([2.0, 2.0, 2.0, 1.0])
M_A[:3, 3] = (0.0, 1.5, -0.2)
QUAT_B = Rotation.from_euler("xyz", [20, 70, -10], degrees=True).as_quat()  # x, y, z, w
SCALE_B, T_B, T_PARENT = np.array([0.5, 0.5, 0.5]), np.array([0.1, 0.0, 0.3]), np.array([0.0, 0.2, 0.0])


def _world_b() -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(QUAT_B).as_matrix() * SCALE_B
    m[:3, 3] = T_B + T_PARENT  # the parent only translates
    return m


class _Builder:
    """Appends arrays to one binary blob and describes them as bufferViews and accessors."""

    def __init__(self):
        self.blob, self.views, self.accessors = bytearray(), [], []

    def view(self, arr: np.ndarray, stride: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        view = g.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=arr.nbytes, byteStride=stride)
        self.views.append(view)
        self.blob.extend(arr.tobytes())
        return len(self.views) - 1

    def accessor(self, arr: np.ndarray, ctype: int, kind: str, **kw) -> int:
        acc = g.Accessor(bufferView=self.view(arr), componentType=ctype, count=len(arr), type=kind, **kw)
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def vec3(self, arr: np.ndarray) -> int:
        return self.accessor(arr, g.FLOAT, g.VEC3, min=arr.min(0).tolist(), max=arr.max(0).tolist())

    def sparse(self, count: int, idx: np.ndarray, ictype: int, values: np.ndarray, base=None) -> int:
        """A sparse VEC3 accessor: `values` at `idx` over `base` (zeros if None: no bufferView)."""
        sp = g.Sparse(
            count=len(idx),
            indices=g.AccessorSparseIndices(bufferView=self.view(idx), componentType=ictype),
            values=g.AccessorSparseValues(bufferView=self.view(values)),
        )
        full = np.zeros((count, 3), np.float32) if base is None else base.copy()
        full[idx] = values
        acc = g.Accessor(
            bufferView=None if base is None else self.view(base),
            byteOffset=None if base is None else 0,  # byteOffset without a bufferView is invalid
            componentType=g.FLOAT, count=count, type=g.VEC3, sparse=sp,
            min=full.min(0).tolist(), max=full.max(0).tolist(),
        )  # fmt: skip
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _avatar(
    names_a=("blendShape1.eyeBlink_L", "foo", "jawOpen"),
    names_b=("jawOpen", "MouthSmileLeft", "mouthSmile_R"),
    triangles: bool = True,
) -> g.GLTF2:
    b = _Builder()
    padded = np.c_[POS_A, np.zeros(16, np.float32)]  # 16-byte stride, 12 bytes used
    pos_a = g.Accessor(bufferView=b.view(padded, stride=16), componentType=g.FLOAT, count=16, type=g.VEC3,
                       min=POS_A.min(0).tolist(), max=POS_A.max(0).tolist())  # fmt: skip
    b.accessors.append(pos_a)
    colors_a = b.accessor(COL_A, g.UNSIGNED_BYTE, g.VEC4, normalized=True)
    prim_a = g.Primitive(
        attributes=g.Attributes(POSITION=0, COLOR_0=colors_a),
        indices=b.accessor(IDX_A.reshape(-1), g.UNSIGNED_SHORT, g.SCALAR),
        targets=[{"POSITION": b.vec3(d)} for d in (BLINK_A, FOO_A, JAW_A)],
        mode=g.TRIANGLES if triangles else g.LINES,
    )
    prim_b = g.Primitive(
        attributes=g.Attributes(POSITION=b.vec3(POS_B)),
        material=0,
        targets=[{"POSITION": b.vec3(JAW_B)},
                 {"POSITION": b.sparse(18, SMILE_L_IDX, g.UNSIGNED_SHORT, SMILE_L_VAL, None)},
                 {"POSITION": b.sparse(18, SMILE_R_IDX, g.UNSIGNED_INT, SMILE_R_VAL, SMILE_R_BASE)}],
        extras={"targetNames": list(names_b)},
        mode=g.TRIANGLES if triangles else g.POINTS,
    )  # fmt: skip
    lines = g.Primitive(attributes=g.Attributes(POSITION=0), mode=g.LINES)  # skipped by the loader
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0"),
        scene=0,
        scenes=[g.Scene(nodes=[0, 2, 3])],
        nodes=[
            g.Node(mesh=0, matrix=M_A.T.reshape(-1).tolist()),  # glTF matrices are column-major
            g.Node(mesh=1, rotation=QUAT_B.tolist(), scale=SCALE_B.tolist(), translation=T_B.tolist()),
            g.Node(translation=T_PARENT.tolist(), children=[1]),
            g.Node(mesh=2),
        ],
        meshes=[
            g.Mesh(primitives=[prim_a], extras={"targetNames": list(names_a)}),
            g.Mesh(primitives=[prim_b]),
            g.Mesh(primitives=[lines]),
        ],
        materials=[g.Material(pbrMetallicRoughness=g.PbrMetallicRoughness(baseColorFactor=[*COLOR_B, 1.0]))],
        accessors=b.accessors,
        bufferViews=b.views,
        buffers=[g.Buffer(byteLength=len(b.blob))],
    )
    gltf.set_binary_blob(bytes(b.blob))
    return gltf


def _save(gltf: g.GLTF2, path, kind: str = "glb"):
    """Write as .glb, as .gltf with a data-URI buffer, or as .gltf with a sibling .bin."""
    if kind == "glb":
        gltf.save_binary(str(path))
        return path
    blob = gltf.binary_blob()
    doc = json.loads(gltf.to_json())
    if kind == "datauri":
        doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    else:
        doc["buffers"][0]["uri"] = "avatar%20data.bin"
        (path.parent / "avatar data.bin").write_bytes(blob)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.skipif(not validator_available(), reason="run `make validator` for the Khronos glTF validator")
@pytest.mark.parametrize("kind, suffix", [("glb", ".glb"), ("datauri", ".gltf")])
def test_test_avatar_is_valid_gltf(tmp_path, kind, suffix):
    """The avatars these tests build are valid glTF, so the loader is tested on legal input."""
    report = validate_gltf(_save(_avatar(), tmp_path / f"avatar{suffix}", kind))
    assert report["numErrors"] == 0, report["errors"]


def _load(path):
    with pytest.warns(AdameshWarning, match=r"lacks 48 ARKit shapes \(absent or moving nothing\): .*browDownLeft.*; "
                      "they are ignored"):  # fmt: skip
        return load_gltf(path)


def _scaled(gltf: g.GLTF2, scale: float) -> g.GLTF2:
    """`gltf` under a root node that scales it (its face is 3.46 units tall)."""
    gltf.nodes.append(g.Node(scale=[scale] * 3, children=list(gltf.scenes[0].nodes)))
    gltf.scenes[0].nodes = [len(gltf.nodes) - 1]
    return gltf


@pytest.mark.parametrize("scale, units", [(0.1, 1.0), (10.0, 100.0), (100.0, 1000.0)])
def test_the_unit_is_read_from_the_size_of_the_face(tmp_path, scale, units):
    gltf = _scaled(_avatar(), scale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rig = load_gltf(_save(gltf, tmp_path / "a.glb", "glb"))
    assert rig.units_per_meter == units
    said = [str(w.message) for w in caught if "units tall" in str(w.message)]
    assert bool(said) == (units != 1.0) and all(f"1/{units:g} m" in s for s in said)


def test_a_face_of_no_plausible_size_is_read_in_metres_with_a_warning(tmp_path):
    gltf = _scaled(_avatar(), 0.0015)  # a 5 mm face
    with pytest.warns(AdameshWarning, match="fits no unit"):
        assert load_gltf(_save(gltf, tmp_path / "a.glb", "glb")).units_per_meter == 1.0


def test_a_textured_material_colours_the_vertices_from_its_texture(tmp_path):
    import io

    from PIL import Image

    gltf = _scaled(_avatar(), 0.1)
    texels = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)  # 2x2
    png = io.BytesIO()
    Image.fromarray(texels).save(png, format="PNG")
    blob = bytearray(gltf.binary_blob())
    blob += b"\0" * (-len(blob) % 4)
    uv = np.array([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]] * 5, np.float32)[:18]
    for data in (png.getvalue(), uv.tobytes()):
        gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data)))
        blob += data + b"\0" * (-len(data) % 4)
    n = len(gltf.bufferViews)
    gltf.images.append(g.Image(bufferView=n - 2, mimeType="image/png"))
    gltf.textures.append(g.Texture(source=0))
    gltf.accessors.append(g.Accessor(bufferView=n - 1, componentType=g.FLOAT, count=18, type=g.VEC2))
    gltf.materials[0].pbrMetallicRoughness.baseColorTexture = g.TextureInfo(index=0)
    gltf.materials[0].pbrMetallicRoughness.baseColorFactor = [1.0, 0.5, 1.0, 1.0]
    gltf.meshes[1].primitives[0].attributes.TEXCOORD_0 = len(gltf.accessors) - 1
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    rig = _load(_save(gltf, tmp_path / "textured.glb", "glb"))
    expected = (
        texels.reshape(4, 3)[[0, 1, 2, 3] * 5][:18] / 255.0 * [1.0, 0.5, 1.0]
    )  # the texel under each UV
    np.testing.assert_allclose(rig.colors[16:], expected, atol=1e-6)


def test_a_target_that_moves_nothing_counts_as_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "FOO_A", np.zeros_like(FOO_A))  # VRoid files carry such empty targets
    rig = _load(
        _save(_avatar(names_a=("blendShape1.eyeBlink_L", "cheekPuff", "jawOpen")), tmp_path / "a.glb", "glb")
    )
    assert "cheekPuff" in rig.missing and "cheekPuff" in rig.info["missing shapes"]
    assert "jawOpen" not in rig.missing


def _params(**weights) -> np.ndarray:
    p = np.zeros(len(ARKIT.channels), np.float32)
    for name, w in weights.items():
        p[ARKIT_BLENDSHAPES.index(name)] = w
    return p


@pytest.mark.parametrize(
    "name, expected",
    [("jawOpen", "jawOpen"), ("JAWOPEN", "jawOpen"), ("blendShape1.eyeBlink_L", "eyeBlinkLeft"),
     ("ARKit:mouthSmile_R", "mouthSmileRight"), ("EyeLookUp_Left", "eyeLookUpLeft"),
     ("head.MouthSmileLeft", "mouthSmileLeft"), ("browInnerUp_R", "browInnerUp"), ("foo", None),
     ("viseme_aa", None), ("mouthSmile", None), ("jawOpen_X", None)],
)  # fmt: skip
def test_arkit_name(name, expected):
    assert arkit_name(name) == expected


@pytest.mark.parametrize("kind, suffix", [("glb", ".glb"), ("datauri", ".gltf"), ("bin", ".gltf")])
def test_avatar_loads_in_world_space(tmp_path, kind, suffix):
    rig = _load(_save(_avatar(), tmp_path / f"avatar{suffix}", kind))
    lin_a, lin_b = M_A[:3, :3], _world_b()[:3, :3]
    world_a = POS_A @ lin_a.T + M_A[:3, 3]
    world_b = POS_B @ lin_b.T + _world_b()[:3, 3]
    np.testing.assert_allclose(rig.vertices(_params()), np.r_[world_a, world_b], atol=1e-5)
    np.testing.assert_array_equal(rig.faces, np.r_[IDX_A, 16 + np.arange(18).reshape(-1, 3)])
    assert rig.units_per_meter == 10.0 and rig.n_vertices == 34  # its face is 3.46 units tall: decimetres

    def moves(**w):
        return rig.vertices(_params(**w)) - rig.vertices(_params())

    np.testing.assert_allclose(moves(jawOpen=1), np.r_[JAW_A @ lin_a.T, JAW_B @ lin_b.T], atol=1e-5)
    np.testing.assert_allclose(moves(jawOpen=0.5), 0.5 * np.r_[JAW_A @ lin_a.T, JAW_B @ lin_b.T], atol=1e-5)
    np.testing.assert_allclose(moves(eyeBlinkLeft=1), np.r_[BLINK_A @ lin_a.T, np.zeros((18, 3))], atol=1e-5)
    smile_l = np.zeros((18, 3), np.float32)
    smile_l[SMILE_L_IDX] = SMILE_L_VAL  # sparse without a base view: zeros elsewhere
    np.testing.assert_allclose(moves(mouthSmileLeft=1)[16:], smile_l @ lin_b.T, atol=1e-5)
    smile_r = SMILE_R_BASE.copy()
    smile_r[SMILE_R_IDX] = SMILE_R_VAL  # sparse over a base view
    np.testing.assert_allclose(moves(mouthSmileRight=1)[16:], smile_r @ lin_b.T, atol=1e-5)

    found = {"eyeBlinkLeft", "jawOpen", "mouthSmileLeft", "mouthSmileRight"}
    assert set(rig.missing) == set(ARKIT_BLENDSHAPES) - found
    assert "browDownLeft" in rig.info["missing shapes"] and rig.info["source"].endswith(suffix)
    np.testing.assert_allclose(rig.colors[:16], COL_A[:, :3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(rig.colors[16:], np.tile(COLOR_B, (18, 1)), atol=1e-6)


def test_regions_and_pivot(tmp_path):
    rig = _load(_save(_avatar(), tmp_path / "avatar.glb"))
    for key in ("face", "lips", "upper_face", "eyes", "jaw"):
        assert len(rig.regions[key]) > 0, key
    assert set(rig.regions["eyes"]) <= set(range(16))  # only mesh A blinks
    face = rig.neutral[rig.regions["face"]]
    assert rig.pivot[1] == pytest.approx(face[:, 1].min()) and rig.pivot[2] < face[:, 2].mean()
    turned = rig.vertices(_params() + np.eye(len(ARKIT.channels), dtype=np.float32)[ARKIT.rotation[0] + 1])
    assert np.isfinite(turned).all() and not np.allclose(turned, rig.neutral)


def test_load_rig_spec(tmp_path):
    path = _save(_avatar(), tmp_path / "avatar.glb")
    with pytest.warns(AdameshWarning):
        rig = load_rig(f"gltf:{path}")
    assert rig.space is ARKIT and rig.n_vertices == 34


def test_all_shapes_present_means_no_warning(tmp_path):
    gltf = _scaled(_avatar(), 0.1)  # a face of 0.35 m: in metres
    names = list(ARKIT_BLENDSHAPES)
    gltf.meshes[0].extras["targetNames"] = names  # more names than targets: the extra ones are unused
    gltf.meshes[0].primitives[0].targets = [{"POSITION": 0}] * 52  # every shape moves the grid
    path = _save(gltf, tmp_path / "full.glb")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rig = load_gltf(path)
    assert rig.missing == () and rig.info["missing shapes"] == "none"


def test_no_arkit_names_is_an_error(tmp_path):
    path = _save(_avatar(names_a=("foo", "bar", "baz"), names_b=("viseme_aa", "x", "y")), tmp_path / "a.glb")
    with pytest.raises(RigError, match=r"no morph targets with ARKit names.*foo"):
        load_gltf(path)


def test_no_triangles_is_an_error(tmp_path):
    path = _save(_avatar(triangles=False), tmp_path / "lines.glb")
    with pytest.raises(RigError, match="no triangle meshes"):
        load_gltf(path)


@pytest.mark.parametrize("content, suffix", [(b"not a gltf at all", ".gltf"), (b"glTF\x02\x00", ".glb"),
                                             (b"[1, 2]", ".gltf")])  # fmt: skip
def test_corrupt_file_is_an_error(tmp_path, content, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(RigError, match="bad"):
        load_gltf(path)


def test_missing_files_are_errors(tmp_path):
    with pytest.raises(RigError, match="does not exist"):
        load_gltf(tmp_path / "nowhere.glb")
    path = _save(_avatar(), tmp_path / "avatar.gltf", "bin")
    (tmp_path / "avatar data.bin").unlink()
    with pytest.raises(RigError, match="avatar%20data.bin"):
        load_gltf(path)


def _crafted(tmp_path, change) -> Path:
    """The test avatar as .gltf + .bin, its JSON changed by `change(doc)`."""
    path = _save(_avatar(), tmp_path / "avatar.gltf", "bin")
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("uri", ["/etc/passwd", "/dev/zero", "../outside.bin", "sub"])
def test_buffers_come_only_from_files_beside_the_gltf(tmp_path, uri):
    (tmp_path / "sub").mkdir()
    (tmp_path.parent / "outside.bin").write_bytes(b"\0" * 4096)
    path = _crafted(tmp_path, lambda doc: doc["buffers"][0].update(uri=uri))
    with pytest.raises(RigError, match="is not a file in the glTF's folder"):
        load_gltf(path)


def test_declared_sizes_are_checked_against_the_real_bytes(tmp_path):
    path = _crafted(tmp_path, lambda doc: doc["buffers"][0].update(byteLength=1 << 40))
    with pytest.raises(RigError, match="declares 1,099,511,627,776 bytes but the file holds"):
        load_gltf(path)
    path = _crafted(tmp_path, lambda doc: doc["accessors"][0].update(count=10**9))
    with pytest.raises(RigError, match="more than its buffer view holds"):
        load_gltf(path)

    def no_view(doc):  # a sparse accessor without a view is zeros first: of the declared size
        sparse = next(a for a in doc["accessors"] if "sparse" in a and "bufferView" not in a)
        sparse["count"] = 10**9

    path = _crafted(tmp_path, no_view)
    with pytest.raises(RigError, match="declares 1,000,000,000 elements"):
        load_gltf(path)


def test_files_with_too_many_nodes_are_refused_at_once(tmp_path):
    path = _crafted(
        tmp_path,
        lambda doc: doc["nodes"].extend({"children": [len(doc["nodes"]) + k + 1]} for k in range(60_000)),
    )
    with pytest.raises(RigError, match="60,004 nodes"):
        load_gltf(path)


def test_non_finite_vertices_are_refused(tmp_path):
    gltf = _avatar()
    blob = bytearray(gltf.binary_blob())
    blob[0:4] = np.array([np.nan], np.float32).tobytes()  # the first vertex's x
    gltf.set_binary_blob(bytes(blob))
    with pytest.raises(RigError, match="not finite numbers"):
        load_gltf(_save(gltf, tmp_path / "nan.glb"))


def test_a_compressed_avatar_is_refused_naming_the_compression(tmp_path):
    gltf = _avatar()
    gltf.extensionsUsed = gltf.extensionsRequired = ["EXT_meshopt_compression"]
    with pytest.raises(RigError, match="EXT_meshopt_compression.*--export glb"):
        load_gltf(_save(gltf, tmp_path / "a.glb", "glb"))


def test_a_skinned_avatar_turns_its_head_and_not_its_body():
    path = DATA / "avatars" / "rpm_brunette.glb"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/data is absent)")
    rig = load_gltf(path)
    params = np.zeros((2, len(ARKIT.channels)), np.float32)
    params[1, ARKIT.index("headYaw")] = 0.4
    moved = np.linalg.norm(np.diff(rig.vertices(params), axis=0)[0], axis=1)
    feet = rig.neutral[:, 1] < np.percentile(rig.neutral[:, 1], 5)
    assert moved[feet].max() == 0.0  # skinned to the legs: they stay
    assert moved[rig.regions["face"]].max() > 0.03  # metres: the face turns with the head bone
    assert 1.4 < rig.pivot[1] < 1.7  # the head bone of a standing avatar, at the neck
