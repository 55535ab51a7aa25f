"""glTF 2.0 / GLB avatars whose morph targets carry ARKit names, as ARKit blendshape rigs.

This is the convention of VRM "perfect sync" models, Ready Player Me avatars and heads captured on
an iPhone: each mesh has morph targets named after Apple's 52 blendshapes (target names live in
``mesh.extras.targetNames``). `load_gltf` walks the default scene, bakes every triangle primitive
into world space in its rest pose, merges them into one mesh and sums the deltas of targets that
map to the same ARKit shape (Ready Player Me repeats the names on head, teeth and eyes). glTF is in
metres; a face of implausible size is read in another power of ten (`_units_per_meter`). On a
skinned avatar the head turns about its head bone, each vertex by its skin weights on the head.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import pygltflib

from adamesh.errors import AdameshWarning, RigError
from adamesh.geometry import quaternion_to_matrix
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES
from adamesh.rigs.base import SKIN, BlendshapeRig, arkit_name, moved_vertices

_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_TRIANGLES = 4


# What an avatar file may ask for: a small crafted file must not take gigabytes or minutes.
MAX_BUFFER_BYTES = 1 << 30
MAX_ELEMENTS = 10_000_000
MAX_NODES = 50_000
COMPRESSIONS = ("EXT_meshopt_compression", "KHR_draco_mesh_compression")  # read by the avatar writer only


class _Reader:
    """Buffers and accessors of one parsed glTF file."""

    def __init__(self, gltf: pygltflib.GLTF2, path: Path):
        self.gltf, self.path = gltf, path
        self._buffers: dict[int, bytes] = {}

    def buffer(self, i: int) -> bytes:
        if i not in self._buffers:
            uri = self.gltf.buffers[i].uri
            if not uri:  # the GLB binary chunk
                data = self.gltf.binary_blob()
                if data is None:
                    raise RigError(f"{self.path}: buffer {i} has no uri and the file has no binary chunk")
            elif uri.startswith("data:"):
                data = base64.b64decode(uri.partition(",")[2])
            else:
                data = self._file_buffer(uri, self.gltf.buffers[i].byteLength or 0)
            self._buffers[i] = data
        return self._buffers[i]

    def _file_buffer(self, uri: str, length: int) -> bytes:
        """A buffer in a file beside the .gltf (never elsewhere: a uri may name any path), of the
        length the glTF declares."""
        folder = self.path.parent.resolve()
        file = (folder / urllib.parse.unquote(uri)).resolve()
        if not file.is_relative_to(folder) or not file.is_file():
            raise RigError(
                f"{self.path}: its buffer {uri!r} is not a file in the glTF's folder; buffers must be "
                "embedded or lie beside the .gltf"
            )
        if length > MAX_BUFFER_BYTES or file.stat().st_size < length:
            raise RigError(
                f"{self.path}: its buffer {uri!r} declares {length:,} bytes but the file holds "
                f"{file.stat().st_size:,} (at most {MAX_BUFFER_BYTES:,} are read)"
            )
        try:
            with open(file, "rb") as f:
                return f.read(length)
        except OSError as e:
            raise RigError(f"{self.path}: cannot read its buffer {uri!r}: {e}") from None

    def _packed(self, view_index: int, offset: int, dtype, count: int, width: int) -> np.ndarray:
        """(count, width) elements from a buffer view, honouring byteStride."""
        view = self.gltf.bufferViews[view_index]
        start = (view.byteOffset or 0) + offset
        data = self.buffer(view.buffer)[start : (view.byteOffset or 0) + view.byteLength]
        size = np.dtype(dtype).itemsize * width
        stride = view.byteStride or size
        if count == 0:
            return np.zeros((0, width), dtype)
        if count < 0 or (count - 1) * stride + size > len(data):
            raise RigError(
                f"{self.path}: an accessor asks for {count:,} elements, more than its buffer view holds"
            )
        raw = np.frombuffer(data, np.uint8, count=(count - 1) * stride + size)
        if stride != size:  # interleaved: gather each element's bytes out of its stride
            raw = np.concatenate([raw, np.zeros(stride - size, np.uint8)]).reshape(count, stride)[:, :size]
        return np.ascontiguousarray(raw).view(dtype).reshape(count, width)

    def accessor(self, i: int) -> np.ndarray:
        """Accessor `i` as a (count, width) array: float32 if float or normalized, else integers."""
        acc = self.gltf.accessors[i]
        dtype, width = _DTYPES[acc.componentType], _WIDTH[acc.type]
        if acc.bufferView is None:  # no data: zeros, which the sparse part overrides
            if not 0 <= acc.count <= MAX_ELEMENTS:
                raise RigError(
                    f"{self.path}: accessor {i} declares {acc.count:,} elements (at most {MAX_ELEMENTS:,})"
                )
            out = np.zeros((acc.count, width), dtype)
        else:
            out = self._packed(acc.bufferView, acc.byteOffset or 0, dtype, acc.count, width).copy()
        if acc.sparse is not None and acc.sparse.count:
            sp = acc.sparse
            idx = self._packed(sp.indices.bufferView, sp.indices.byteOffset or 0,
                               _DTYPES[sp.indices.componentType], sp.count, 1)[:, 0]  # fmt: skip
            if len(idx) and not 0 <= int(idx.min()) <= int(idx.max()) < acc.count:
                raise RigError(
                    f"{self.path}: accessor {i}'s sparse indices reach beyond its {acc.count:,} elements"
                )
            out[idx.astype(np.int64)] = self._packed(sp.values.bufferView, sp.values.byteOffset or 0,
                                                     dtype, sp.count, width)  # fmt: skip
        if dtype == np.float32:
            return out
        if acc.normalized:  # spec: signed types clamp at -1
            return np.maximum(out.astype(np.float32) / np.iinfo(dtype).max, -1.0)
        return out


def _local_matrix(node: pygltflib.Node) -> np.ndarray:
    if node.matrix:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T  # stored column-major
    rot = quaternion_to_matrix(node.rotation or (0.0, 0.0, 0.0, 1.0))
    m = np.eye(4)
    m[:3, :3] = rot * np.asarray(node.scale or (1.0, 1.0, 1.0))  # T @ R @ S
    m[:3, 3] = node.translation or (0.0, 0.0, 0.0)
    return m


def _mesh_instances(gltf: pygltflib.GLTF2) -> tuple[list[tuple[int, int, np.ndarray]], dict[int, np.ndarray]]:
    """(node, mesh index, world matrix) for every node with a mesh in the default scene, and the
    world matrix of every node of the scene."""
    if gltf.scenes:
        roots = gltf.scenes[gltf.scene or 0].nodes or []
    else:  # no scene: every node that is nobody's child is a root
        children = {c for n in gltf.nodes for c in n.children or []}
        roots = [i for i in range(len(gltf.nodes)) if i not in children]
    out, stack, seen, worlds = [], [(r, np.eye(4)) for r in reversed(roots)], set(), {}  # depth first
    while stack:
        i, parent = stack.pop()
        if i in seen:  # the node hierarchy must be a forest; a cycle would loop forever
            raise ValueError(f"node {i} is reached twice in the scene")
        seen.add(i)
        node = gltf.nodes[i]
        world = worlds[i] = parent @ _local_matrix(node)
        if node.mesh is not None:
            out.append((i, node.mesh, world))
        stack.extend((c, world) for c in reversed(node.children or []))
    return out, worlds


def _head(gltf: pygltflib.GLTF2) -> tuple[int | None, set[int]]:
    """The head bone (as `head_node` finds it) and the nodes below it, itself included."""
    nodes = [{"name": n.name, "mesh": n.mesh, "children": n.children or []} for n in gltf.nodes]
    doc = {"extensions": gltf.extensions or {}, "nodes": nodes, "skins": gltf.skins or []}
    head = head_node(doc)
    below, stack = set(), [] if head is None else [head]
    while stack:
        i = stack.pop()
        if i not in below and 0 <= i < len(gltf.nodes):
            below.add(i)
            stack.extend(gltf.nodes[i].children or [])
    return head, below


def _head_share(reader: _Reader, node: int, prim, head: set[int]) -> float | np.ndarray:
    """How far the vertices of `prim` follow the head: their skin weights on joints at or below
    the head bone, or for an unskinned mesh 1 under the head and 0 elsewhere."""
    gltf, skin = reader.gltf, reader.gltf.nodes[node].skin
    joints_at, weights_at = prim.attributes.JOINTS_0, prim.attributes.WEIGHTS_0
    if skin is None or joints_at is None or weights_at is None:
        return float(node in head)
    joints = np.asarray(gltf.skins[skin].joints)
    slots = reader.accessor(joints_at).astype(np.int64).clip(0, len(joints) - 1)
    return (reader.accessor(weights_at) * np.isin(joints[slots], list(head))).sum(1)


def _base_color(gltf: pygltflib.GLTF2, material: int | None) -> tuple[float, float, float]:
    pbr = gltf.materials[material].pbrMetallicRoughness if material is not None else None
    # A textured material's factor only tints the texture (usually white): we cannot sample
    # textures here, so skin is the better guess.
    if pbr is None or pbr.baseColorTexture is not None or not pbr.baseColorFactor:
        return SKIN
    return tuple(float(c) for c in pbr.baseColorFactor[:3])


def _texture_colors(reader: _Reader, prim) -> np.ndarray | None:
    """(N, 3) colours of a textured primitive's vertices: its base colour texture at each
    vertex's UV, times the base colour factor; None when there is no texture that can be read
    (PNG, JPEG, WebP: what Pillow decodes)."""
    import io

    from PIL import Image, UnidentifiedImageError

    gltf = reader.gltf
    pbr = gltf.materials[prim.material].pbrMetallicRoughness if prim.material is not None else None
    info = pbr.baseColorTexture if pbr is not None else None
    if info is None or info.index is None or not 0 <= info.index < len(gltf.textures):
        return None
    source = gltf.textures[info.index].source
    uv_accessor = getattr(prim.attributes, f"TEXCOORD_{info.texCoord or 0}", None)
    if source is None or uv_accessor is None or not 0 <= source < len(gltf.images):
        return None
    image = gltf.images[source]
    try:
        if image.bufferView is not None:
            view = gltf.bufferViews[image.bufferView]
            data = reader.buffer(view.buffer)[
                (view.byteOffset or 0) : (view.byteOffset or 0) + view.byteLength
            ]
        elif image.uri and image.uri.startswith("data:"):
            data = base64.b64decode(image.uri.partition(",")[2])
        elif image.uri:  # an image file beside the .gltf
            size = (reader.path.parent / urllib.parse.unquote(image.uri)).stat().st_size
            data = reader._file_buffer(image.uri, size)
        else:
            return None
        with Image.open(io.BytesIO(data)) as im:
            im.thumbnail((1024, 1024))  # colours per vertex need no more detail
            pixels = np.asarray(im.convert("RGB"), np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, RigError):
        return None
    uv = reader.accessor(uv_accessor).astype(np.float64)
    h, w = pixels.shape[:2]
    x = np.floor(np.mod(uv[:, 0], 1.0) * w).astype(int).clip(0, w - 1)  # the texture repeats
    y = np.floor(np.mod(uv[:, 1], 1.0) * h).astype(int).clip(0, h - 1)  # v runs down the image
    factor = np.asarray((pbr.baseColorFactor or [1.0, 1.0, 1.0, 1.0])[:3], np.float32)
    return pixels[y, x] * factor


def _load_file(path: Path) -> pygltflib.GLTF2:
    if not path.is_file():
        raise RigError(f"glTF avatar {path} does not exist")
    with open(path, "rb") as f:
        is_glb = f.read(4) == b"glTF"  # GLB magic, whatever the suffix
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path)) if is_glb else pygltflib.GLTF2.load_json(str(path))
    except Exception as e:  # pygltflib raises anything from JSON, struct or attribute errors
        raise RigError(f"{path} is not a readable glTF/GLB file: {type(e).__name__}: {e}") from None
    if gltf is None or not str(getattr(gltf.asset, "version", "2.0")).startswith("2"):
        raise RigError(f"{path} is not a glTF 2.0 file")
    compressed = sorted(set(gltf.extensionsRequired or []) & set(COMPRESSIONS))
    if compressed:
        raise RigError(
            f"{path} stores its meshes with {', '.join(compressed)}, which adamesh cannot decode to render or "
            "measure; animating it works (animate --rig gltf:... --export glb, without --render), or re-export "
            "the avatar without mesh compression"
        )
    if len(gltf.nodes) > MAX_NODES:
        raise RigError(
            f"{path} has {len(gltf.nodes):,} nodes; an avatar has far fewer (at most {MAX_NODES:,})"
        )
    return gltf


def check_gltf(path: str | Path) -> None:
    """Refuse a damaged glTF before adamesh hands it back with a clip added: every buffer view
    inside its buffer, every accessor of a known kind whose elements (and sparse indices) lie
    inside its view, finite floats and node transforms. Views compressed with meshopt are left to
    the reader that decodes them."""
    path = Path(path)
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path))
    except Exception as e:  # pygltflib raises anything from JSON, struct or attribute errors
        raise RigError(f"{path} is not a readable glTF/GLB file: {type(e).__name__}: {e}") from None
    reader = _Reader(gltf, path)
    compressed = {
        i for i, v in enumerate(gltf.bufferViews) if "EXT_meshopt_compression" in (v.extensions or {})
    }
    for i, view in enumerate(gltf.bufferViews):
        stride = view.byteStride
        if not (
            0 <= view.buffer < len(gltf.buffers)
            and (view.byteOffset or 0) >= 0
            and view.byteLength >= 0
            and (stride is None or (4 <= stride <= 252 and stride % 4 == 0))
        ):
            raise RigError(f"{path}: buffer view {i} is damaged (its buffer, offset, length or stride)")
        if i not in compressed and (view.byteOffset or 0) + view.byteLength > len(reader.buffer(view.buffer)):
            raise RigError(f"{path}: buffer view {i} reaches beyond the end of its buffer")
    for i, acc in enumerate(gltf.accessors):
        if acc.componentType not in _DTYPES or acc.type not in _WIDTH or not 0 <= acc.count <= MAX_ELEMENTS:
            raise RigError(f"{path}: accessor {i} is damaged (its component type, type or count)")
        views = {acc.bufferView} | (
            {acc.sparse.indices.bufferView, acc.sparse.values.bufferView} if acc.sparse else set()
        )
        if views & compressed or (acc.bufferView is None and not acc.sparse):
            continue
        if acc.bufferView is not None and not 0 <= acc.bufferView < len(gltf.bufferViews):
            raise RigError(f"{path}: accessor {i} names a buffer view that does not exist")
        try:
            values = reader.accessor(i)
        except (IndexError, KeyError, TypeError, ValueError) as e:
            raise RigError(f"{path}: accessor {i} is damaged ({type(e).__name__}: {e})") from None
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise RigError(f"{path}: accessor {i} holds NaN or infinite values")
    for i, node in enumerate(gltf.nodes):
        for name in ("matrix", "translation", "rotation", "scale", "weights"):
            value = getattr(node, name, None)
            if value is not None and not np.isfinite(np.asarray(value, np.float64)).all():
                raise RigError(f"{path}: node {i}'s {name} is not finite")


def load_gltf(path: str | Path) -> BlendshapeRig:
    """A glTF/GLB avatar with ARKit-named morph targets as a blendshape rig."""
    path = Path(path)
    gltf = _load_file(path)
    reader = _Reader(gltf, path)
    verts, faces, colors, found_names, follow = [], [], [], [], []
    deltas: dict[str, list[tuple[int, np.ndarray]]] = {}  # ARKit name -> [(vertex offset, delta)]
    n = 0
    try:
        instances, worlds = _mesh_instances(gltf)
        head, below_head = _head(gltf)
        for node_index, mesh_index, world in instances:
            mesh = gltf.meshes[mesh_index]
            linear = world[:3, :3]
            for prim in mesh.primitives:
                if (prim.mode if prim.mode is not None else _TRIANGLES) != _TRIANGLES:
                    continue
                if prim.attributes.POSITION is None:
                    continue
                pos = reader.accessor(prim.attributes.POSITION).astype(np.float64)
                has_idx = prim.indices is not None
                tri = reader.accessor(prim.indices)[:, 0] if has_idx else np.arange(len(pos))
                tri = tri.astype(np.int64)[: len(tri) // 3 * 3].reshape(-1, 3)
                if np.linalg.det(linear) < 0:  # a mirroring transform flips the winding
                    tri = tri[:, ::-1]
                verts.append(pos @ linear.T + world[:3, 3])
                faces.append(tri + n)
                if prim.attributes.COLOR_0 is not None:
                    col = reader.accessor(prim.attributes.COLOR_0)[:, :3].astype(np.float32)
                else:
                    col = _texture_colors(reader, prim)
                    if col is None:
                        col = np.tile(np.asarray(_base_color(gltf, prim.material), np.float32), (len(pos), 1))
                colors.append(col)
                if head is not None:
                    follow.append(
                        np.broadcast_to(_head_share(reader, node_index, prim, below_head), len(pos))
                    )
                names = (mesh.extras or {}).get("targetNames") or (prim.extras or {}).get("targetNames") or []
                for t, target in enumerate(prim.targets or []):
                    name = names[t] if t < len(names) else f"target{t}"
                    found_names.append(name)
                    key = arkit_name(name)
                    # pygltflib leaves targets as dicts when it reads a file, Attributes when built
                    acc = target.get("POSITION") if isinstance(target, dict) else target.POSITION
                    if key is None or acc is None:
                        continue
                    delta = reader.accessor(acc).astype(np.float64)
                    if delta.shape != pos.shape:
                        raise ValueError(f"morph target {name!r}: {len(delta)} deltas, {len(pos)} vertices")
                    deltas.setdefault(key, []).append((n, delta @ linear.T))
                n += len(pos)
    except RigError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as e:
        raise RigError(f"{path} is a malformed glTF file: {type(e).__name__}: {e}") from None
    if not verts or not sum(len(f) for f in faces):
        raise RigError(f"{path} has no triangle meshes in its scene")
    if not deltas:
        seen = sorted(set(found_names))
        listed = ", ".join(seen[:8]) + (" ..." if len(seen) > 8 else "") if seen else "none"
        raise RigError(
            f"{path} has no morph targets with ARKit names (jawOpen, eyeBlinkLeft, ...); "
            f"target names found: {listed}"
        )

    neutral = np.concatenate(verts).astype(np.float32)
    shapes = np.zeros((52, n, 3), np.float32)
    for key, parts in deltas.items():
        for offset, d in parts:
            shapes[ARKIT_BLENDSHAPES.index(key), offset : offset + len(d)] += d
    if not (np.isfinite(neutral).all() and np.isfinite(shapes).all()):
        raise RigError(
            f"{path} has vertex positions or morph targets that are not finite numbers (NaN or "
            "infinity); re-export the avatar"
        )
    # a target that moves no vertex is as good as none (VRoid files carry empty ones)
    missing = tuple(s for i, s in enumerate(ARKIT_BLENDSHAPES) if s not in deltas or not shapes[i].any())
    if missing:
        warnings.warn(
            f"gltf avatar {path} lacks {len(missing)} ARKit shapes (absent or moving nothing): "
            f"{', '.join(missing)}; they are ignored",
            AdameshWarning,
            stacklevel=2,
        )
    regions, pivot = _regions(neutral, shapes)
    head_weights = None
    if head is not None and head in worlds and gltf.skins:  # the head turns about its bone, the neck joint
        pivot = worlds[head][:3, 3].astype(np.float32)
        head_weights = np.concatenate(follow).astype(np.float32)
        if head_weights.min() > 0.999:
            head_weights = None
    units = _units_per_meter(neutral[regions["face"]], path)
    return BlendshapeRig(
        name=f"gltf:{path.name}",
        space=ARKIT,
        neutral=neutral,
        faces=np.concatenate(faces),
        colors=np.clip(np.concatenate(colors), 0.0, 1.0),
        regions=regions,
        pivot=pivot,
        units_per_meter=units,
        head_weights=head_weights,
        shapes=shapes,
        missing=missing,
        info={"source": str(path), "missing shapes": ", ".join(missing) or "none"},
    )


FACE_HEIGHT_M = (0.08, 0.6)  # what a face's moving part can measure, chin to brows or hairline


def _units_per_meter(face: np.ndarray, path: Path) -> float:
    """glTF is in metres, but avatars exported in decimetres, centimetres or millimetres exist: a
    face outside FACE_HEIGHT_M is read in the power of ten that makes it about 0.22 m tall."""
    height = float(np.ptp(face[:, 1])) if len(face) else 0.0
    if height <= 0 or FACE_HEIGHT_M[0] <= height <= FACE_HEIGHT_M[1]:
        return 1.0
    units = min((1.0, 10.0, 100.0, 1000.0), key=lambda u: abs(np.log10(height / u / 0.22)))
    metres = height / units
    if FACE_HEIGHT_M[0] <= metres <= FACE_HEIGHT_M[1]:
        warnings.warn(f"the face of {path} is {height:.3g} units tall, {metres:.2f} m if its units are 1/{units:g} m: "
                      "read so (glTF asks for metres; re-export the avatar in metres to silence this)",
                      AdameshWarning, stacklevel=3)  # fmt: skip
    else:
        warnings.warn(f"the face of {path} is {height:.3g} units tall, which fits no unit (a face is "
                      f"{FACE_HEIGHT_M[0]}-{FACE_HEIGHT_M[1]} m); it is read in metres, so mm figures may be off",
                      AdameshWarning, stacklevel=3)  # fmt: skip
        units = 1.0
    return units


def _regions(neutral: np.ndarray, shapes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Vertex regions and neck pivot guessed from what the shapes move (there are no landmarks)."""
    face = np.nonzero(np.linalg.norm(shapes, axis=2).max(0) > 1e-6)[
        0
    ]  # the face is what the blendshapes animate
    if not len(face):
        face = np.arange(len(neutral))
    eye_names = [s for s in ARKIT_BLENDSHAPES if s.startswith(("eyeBlink", "eyeLook"))]
    eyes = moved_vertices(shapes, eye_names, 0.2)
    # Upper face (brows, lids) for metrics: face vertices above the eyes' mean height.
    split = neutral[eyes, 1].mean() if len(eyes) else neutral[face, 1].mean()
    regions = {
        "face": face,
        "lips": moved_vertices(
            shapes, ["mouthRollLower", "mouthRollUpper", "mouthFunnel", "mouthPucker"], 0.4
        ),
        "upper_face": face[neutral[face, 1] > split],
        "eyes": eyes,
        "jaw": moved_vertices(shapes, ["jawOpen"], 0.5),
    }
    regions = {k: v if len(v) else face for k, v in regions.items()}  # never an empty region
    # Head rotation pivots about the neck: at the height of the chin (the face's lowest moving
    # point) and behind the face, a third of the face's depth back from its centroid.
    pts = neutral[face]
    centre = pts.mean(0)
    depth = pts[:, 2].max() - pts[:, 2].min()
    pivot = np.array([centre[0], pts[:, 1].min(), centre[2] - 0.3 * depth], np.float32)
    return regions, pivot


def head_node(doc: dict) -> int | None:
    """The node whose rotation turns the head: VRM's humanoid head bone; else a node named Head
    (not a mesh node) that, in an avatar without skins, holds every mesh; else, without skins, the
    lowest node above every mesh (a head model whose eyes and teeth are siblings of the face)."""
    ext = doc.get("extensions") or {}
    bones = ((ext.get("VRMC_vrm") or {}).get("humanoid") or {}).get("humanBones") or {}
    if isinstance(bones.get("head"), dict) and "node" in bones["head"]:
        return int(bones["head"]["node"])
    for bone in ((ext.get("VRM") or {}).get("humanoid") or {}).get("humanBones") or []:
        if bone.get("bone") == "head" and "node" in bone:
            return int(bone["node"])
    nodes, parents = doc.get("nodes", []), node_parents(doc)
    below = _meshes_below(nodes, parents)
    total = sum(n.get("mesh") is not None for n in nodes)
    skinned = bool(doc.get("skins"))
    for i, node in enumerate(nodes):
        short = re.split(r"[:|]", str(node.get("name", "")))[-1].lower()
        if node.get("mesh") is None and (short == "head" or short.endswith("_c_head")):
            if skinned or below[i] == total:
                return i
    roots = [i for i in range(len(nodes)) if i not in parents and below[i] == total]
    if skinned or not total or not roots:
        return None
    node = roots[0]
    while True:  # down to the lowest node that still holds every mesh
        inner = [c for c in nodes[node].get("children", []) if 0 <= c < len(nodes) and below[c] == total]
        if not inner:
            return node
        node = inner[0]


def _meshes_below(nodes: list, parents: dict[int, int]) -> list[int]:
    """For each node, how many mesh nodes lie at or below it (one pass, whatever the depth)."""
    count, order, seen = [0] * len(nodes), [], set()
    stack = [i for i in range(len(nodes)) if i not in parents]
    while stack:
        i = stack.pop()
        if i in seen or not 0 <= i < len(nodes):
            continue
        seen.add(i)
        order.append(i)
        stack.extend(nodes[i].get("children", []))
    for i in reversed(order):  # children before their parents
        count[i] += nodes[i].get("mesh") is not None
        if i in parents:
            count[parents[i]] += count[i]
    return count


def node_parents(doc: dict) -> dict[int, int]:
    """{child: parent} of a glTF document's nodes (a JSON dict)."""
    return {c: i for i, n in enumerate(doc.get("nodes", [])) for c in n.get("children", [])}
