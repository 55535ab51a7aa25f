"""The user's own glTF avatar, animated and handed back intact.

`animate_avatar` copies a .glb byte for byte in everything it had (meshes, materials, textures,
skins, node hierarchy, extensions, compressed buffers, earlier animations, original target names)
and adds one animation: morph weights on every node whose mesh carries ARKit-named targets (or,
in a VRM, the targets its expressions bind: ARKit-named ones for perfect-sync models, else the
presets through `VRM_PRESETS`), and head rotation on the head bone, nothing else. The file is
edited at the level of its JSON and its binary chunk, so nothing the avatar uses has to be
understood to be kept: the new animation's data is appended to the binary chunk, its accessors
and buffer views to the JSON.

The head bone is the VRM humanoid's `head` (VRM 0.x and 1.0), else a node named ``Head`` (also
``mixamorig:Head``, ``J_Bip_C_Head`` and alike); an avatar without skins turns the node that holds
its whole head model (`head_node`). Its rotation turns the head about its own origin,
the neck joint, by the motion's head angles about the scene's axes: for an avatar that looks along
+Z (glTF's convention and VRM 1.0's) the motion's pitch, yaw and roll as they are; VRM 0.x avatars
look along -Z, so pitch and roll change sign.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from adamesh.errors import AdameshError, AdameshWarning
from adamesh.fileio import atomic_output, check_input_file
from adamesh.geometry import euler_to_matrix, matrix_to_quaternion, quaternion_to_matrix
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES, Motion
from adamesh.rigs.base import arkit_name
from adamesh.rigs.gltf import check_gltf, head_node, node_parents

_GLB_MAGIC, _JSON, _BIN = b"glTF", 0x4E4F534A, 0x004E4942
_FLOAT, _SCALAR, _VEC4 = 5126, "SCALAR", "VEC4"


ANIMATION_NAME = "speech"  # the clip's name in every glb adamesh writes (ours first in an avatar)


def read_glb(path: str | os.PathLike) -> tuple[dict, bytes]:
    """The JSON document and the binary chunk of a .glb file."""
    name = check_input_file(path, "avatar", "a .glb file", "give the avatar as a binary glTF (.glb)")
    data = Path(name).read_bytes()
    if data[:4] != _GLB_MAGIC:
        raise AdameshError(f"{name} is not a binary glTF (.glb) file; export the avatar as .glb")
    try:
        _, version, length = struct.unpack_from("<4sII", data, 0)
        if version != 2:
            raise ValueError(f"GLB version {version}, not 2")
        chunks, at = {}, 12
        while at + 8 <= min(length, len(data)):
            size, kind = struct.unpack_from("<II", data, at)
            chunks.setdefault(kind, data[at + 8 : at + 8 + size])
            at += 8 + size
        doc = json.loads(chunks[_JSON])
        if not isinstance(doc, dict):
            raise ValueError(f"its JSON is a {type(doc).__name__}, not an object")
    except (ValueError, KeyError, struct.error) as e:
        raise AdameshError(
            f"{name} is a damaged .glb file ({type(e).__name__}: {e}); export the avatar again"
        ) from None
    return doc, chunks.get(_BIN, b"")


def write_glb(doc: dict, blob: bytes, out: str | os.PathLike) -> Path:
    """A .glb of `doc` and binary chunk `blob`, written atomically."""
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    blob = bytes(blob) + b"\0" * (-len(blob) % 4)
    parts = [struct.pack("<II", len(text), _JSON), text]
    if blob:
        parts += [struct.pack("<II", len(blob), _BIN), blob]
    body = b"".join(parts)
    with atomic_output(out) as tmp:
        tmp.write_bytes(struct.pack("<4sII", _GLB_MAGIC, 2, 12 + len(body)) + body)
    return Path(out)


# VRM's preset expressions (1.0 names; 0.x names beside them) as ARKit blends, for avatars that
# have no ARKit (perfect sync) expressions: the open mouth, the two rounded vowels, the spread
# vowel, the blinks and the smile.
VRM_PRESETS = {
    ("aa", "a"): {"jawOpen": 1.0},
    ("ou", "u"): {"mouthFunnel": 1.0},
    ("oh", "o"): {"mouthPucker": 1.0},
    ("ee", "e"): {"mouthStretchLeft": 0.5, "mouthStretchRight": 0.5},
    ("blinkLeft", "blink_l"): {"eyeBlinkLeft": 1.0},
    ("blinkRight", "blink_r"): {"eyeBlinkRight": 1.0},
    ("happy", "joy"): {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
}


def arkit_targets(doc: dict) -> dict[int, dict[int, list[tuple[int, float]]]]:
    """What drives each morph target: {mesh: {target: [(ARKit blendshape index, weight), ...]}}.

    A VRM's expressions come first, as VRM runtimes drive the face through them: those named
    after ARKit shapes (perfect sync), else VRM's presets through `VRM_PRESETS`; each binds morph
    targets with a weight. Without VRM expressions, targets named after ARKit shapes."""
    out: dict[int, dict[int, list[tuple[int, float]]]] = {}
    expressions = _vrm_expressions(doc)
    named = {k: binds for k, binds in expressions.items() if arkit_name(k)}
    if named:
        blends = {k: {arkit_name(k): 1.0} for k in named}
    else:
        blends = {k: VRM_PRESETS[p] for k in expressions for p in VRM_PRESETS if k in p}
    for name, blend in blends.items():
        for mesh, target, weight in expressions[name]:
            for shape, share in blend.items():
                out.setdefault(mesh, {}).setdefault(target, []).append(
                    (ARKIT_BLENDSHAPES.index(shape), share * weight)
                )
    if out:
        return out
    for m, mesh in enumerate(doc.get("meshes", [])):
        prims = mesh.get("primitives", [])
        names = (
            (mesh.get("extras") or {}).get("targetNames")
            or ((prims[0].get("extras") or {}).get("targetNames") if prims else None)
            or []
        )
        found = {
            t: [(ARKIT_BLENDSHAPES.index(k), 1.0)] for t, n in enumerate(names) if (k := arkit_name(str(n)))
        }
        if found:
            out[m] = found
    return out


def _vrm_expressions(doc: dict) -> dict[str, list[tuple[int, int, float]]]:
    """VRM 1.0 or 0.x expressions: {name: [(mesh, morph target, weight in 0-1), ...]}."""
    ext, nodes, out = doc.get("extensions") or {}, doc.get("nodes", []), {}
    vrm1 = (ext.get("VRMC_vrm") or {}).get("expressions") or {}
    for group in ("preset", "custom"):
        for name, e in (vrm1.get(group) or {}).items():
            binds = [(nodes[b["node"]].get("mesh"), b["index"], float(b.get("weight", 1.0)))
                     for b in e.get("morphTargetBinds") or [] if 0 <= b.get("node", -1) < len(nodes)]  # fmt: skip
            out[name] = [b for b in binds if b[0] is not None]
    for g in ((ext.get("VRM") or {}).get("blendShapeMaster") or {}).get("blendShapeGroups") or []:
        name = g.get("presetName") if g.get("presetName") not in (None, "", "unknown") else g.get("name")
        out[str(name)] = [
            (b["mesh"], b["index"], float(b.get("weight", 100.0)) / 100.0) for b in g.get("binds") or []
        ]
    return {k: v for k, v in out.items() if v}


def check_avatar(source: str | os.PathLike) -> tuple[dict, bytes, dict]:
    """The avatar's JSON, its binary chunk and what drives its morph targets (`arkit_targets`),
    once it is known that `animate_avatar` can animate it."""
    doc, blob = read_glb(source)
    check_gltf(source)
    meshes = arkit_targets(doc)
    if not any(n.get("mesh") in meshes for n in doc.get("nodes", [])):
        raise AdameshError(
            f"{source} has no mesh with ARKit-named morph targets (jawOpen, eyeBlinkLeft, ...) or VRM "
            "expressions in its nodes; give an avatar with ARKit (perfect sync) blendshapes or a VRM"
        )
    buffers = doc.get("buffers") or []
    if buffers and buffers[0].get("uri") is not None:
        raise AdameshError(f"{source} keeps its first buffer in a separate file; pack it into one .glb first")
    return doc, blob, meshes


def animate_avatar(motion: Motion, source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write `source` (a .glb) to `out` with `motion` added as one animation (see the module)."""
    if motion.space is not ARKIT:
        raise AdameshError(
            f"animating an avatar needs a motion in the arkit space, got {motion.space.name!r}"
        )
    doc, blob, meshes = check_avatar(source)
    driver = AvatarDriver(doc, meshes)
    buffers = doc.get("buffers") or []
    blob = bytearray(blob[: buffers[0]["byteLength"]] if buffers else b"")
    views, accessors = doc.setdefault("bufferViews", []), doc.setdefault("accessors", [])

    def add(values: np.ndarray, kind: str, bounds: bool = False) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))
        data = np.ascontiguousarray(values, np.float32)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": data.nbytes})
        blob.extend(data.tobytes())
        width = 4 if kind == _VEC4 else 1
        acc = {
            "bufferView": len(views) - 1,
            "componentType": _FLOAT,
            "count": data.size // width,
            "type": kind,
        }
        if bounds:
            acc["min"], acc["max"] = [float(data.min())], [float(data.max())]
        accessors.append(acc)
        return len(accessors) - 1

    times = add(np.arange(motion.n_frames) / motion.fps, _SCALAR, bounds=True)
    samplers, channels = [], []
    weights_of = {}
    for mesh, w in driver.weights(motion.params).items():
        samplers.append({"input": times, "output": add(w.reshape(-1), _SCALAR), "interpolation": "LINEAR"})
        weights_of[mesh] = len(samplers) - 1
    for node, mesh in driver.nodes:
        channels.append({"sampler": weights_of[mesh], "target": {"node": node, "path": "weights"}})

    head = driver.head
    if head is not None and "matrix" in doc["nodes"][head]:
        _to_trs(doc["nodes"][head])  # an animated node must not have a matrix
    if head is None:
        warnings.warn(
            f"{source} has no head bone (a VRM humanoid head or a node named Head): the animation "
            "moves the face only, not the head",
            AdameshWarning,
            stacklevel=2,
        )
    else:
        rotation = driver.head_rotation(motion.params)
        samplers.append({"input": times, "output": add(rotation, _VEC4), "interpolation": "LINEAR"})
        channels.append({"sampler": len(samplers) - 1, "target": {"node": head, "path": "rotation"}})

    _declare_ktx2_textures(doc, source)
    # first: viewers and engines play an avatar's first clip unless told otherwise
    doc.setdefault("animations", []).insert(0, {
        "name": ANIMATION_NAME, "samplers": samplers, "channels": channels,
        "extras": {"fps": motion.fps, "producer": "adamesh"},
    })  # fmt: skip
    if buffers:
        buffers[0]["byteLength"] = len(blob)
    else:
        doc["buffers"] = [{"byteLength": len(blob)}]
    return write_glb(doc, blob, out)


def _declare_ktx2_textures(doc: dict, source) -> None:
    """KTX2 images named as a texture's plain `source`, which glTF allows only for PNG and JPEG,
    moved to where KHR_texture_basisu says they go: viewers that read KTX2 then find them, and the
    file passes validation (the facecap avatar is written so)."""
    images = doc.get("images", [])
    moved = 0
    for texture in doc.get("textures", []):
        i = texture.get("source")
        if i is None or not 0 <= i < len(images):
            continue
        image = images[i]
        if image.get("mimeType") == "image/ktx2" or str(image.get("uri", "")).lower().endswith(".ktx2"):
            texture.setdefault("extensions", {})["KHR_texture_basisu"] = {"source": texture.pop("source")}
            moved += 1
    if moved:
        used = doc.setdefault("extensionsUsed", [])
        if "KHR_texture_basisu" not in used:
            used.append("KHR_texture_basisu")
        warnings.warn(
            f"{source}: {moved} KTX2 texture(s) were named as plain texture sources; the copy declares "
            "them as KHR_texture_basisu textures",
            AdameshWarning,
            stacklevel=3,
        )


class AvatarDriver:
    """How ARKit frames move one avatar: the morph weights of each mesh its nodes show
    (`arkit_targets`, within 0-1; other targets at their rest weight) and the head bone's local
    rotation. `animate_avatar` writes them as an animation; `adamesh serve` sends them live."""

    def __init__(self, doc: dict, meshes: dict):
        self.meshes = meshes
        self.nodes = [(i, n["mesh"]) for i, n in enumerate(doc.get("nodes", [])) if n.get("mesh") in meshes]
        self.rest = {}
        for _, mesh in self.nodes:
            n_targets = len(doc["meshes"][mesh]["primitives"][0].get("targets", []))
            self.rest[mesh] = np.asarray(doc["meshes"][mesh].get("weights") or [0.0] * n_targets, np.float32)
        self.head = head_node(doc)
        if self.head is not None:
            parents = node_parents(doc)
            node = doc["nodes"][self.head]
            if "matrix" in node:
                node = dict(node)
                _to_trs(node)
            self.parent = _world_rotation(doc, parents, parents.get(self.head))
            self.head_rest = _quaternion_matrix(node.get("rotation", [0.0, 0.0, 0.0, 1.0]))
            self.flip = "VRM" in (doc.get("extensions") or {})  # VRM 0.x looks along -Z

    def weights(self, params: np.ndarray) -> dict[int, np.ndarray]:
        """{mesh: (T, targets) morph weights} for (T, 58) ARKit frames."""
        out = {}
        for mesh, rest in self.rest.items():
            w = np.tile(rest, (len(params), 1))
            for t, drivers in self.meshes[mesh].items():
                if t < len(rest):
                    w[:, t] = np.clip(sum(share * params[:, k] for k, share in drivers), 0.0, 1.0)
            out[mesh] = w
        return out

    def head_rotation(self, params: np.ndarray) -> np.ndarray:
        """(T, 4) local rotations (x, y, z, w) of the head bone: its rest rotation, then the
        frames' head angles about the scene's axes."""
        import torch

        rot = torch.from_numpy(params[:, ARKIT.rotation[0] : ARKIT.rotation[1]].astype(np.float64))
        pitch, yaw, roll = rot.unbind(1)
        if self.flip:  # turned 180 degrees about Y: pitch and roll change sign
            pitch, roll = -pitch, -roll
        delta = euler_to_matrix(pitch, yaw, roll).numpy()
        # local' = P^-1 @ delta @ P @ rest: delta is about the scene's axes, P the parent's world rotation
        local = self.parent.T @ delta @ self.parent @ self.head_rest
        return matrix_to_quaternion(local).astype(np.float32)


def _to_trs(node: dict) -> None:
    m = np.asarray(node.pop("matrix"), np.float64).reshape(4, 4).T
    scale = np.linalg.norm(m[:3, :3], axis=0)
    node["translation"] = m[:3, 3].tolist()
    node["rotation"] = matrix_to_quaternion(m[:3, :3] / scale).tolist()
    node["scale"] = scale.tolist()


def _world_rotation(doc: dict, parents: dict[int, int], node: int | None) -> np.ndarray:
    """The rest rotation of `node` in the scene (scales removed), identity for None."""
    out, seen = np.eye(3), set()
    while node is not None and node not in seen:
        seen.add(node)
        n = doc["nodes"][node]
        if "matrix" in n:
            m = np.asarray(n["matrix"], np.float64).reshape(4, 4).T[:3, :3]
            m = m / np.linalg.norm(m, axis=0, keepdims=True)
        else:
            m = _quaternion_matrix(n.get("rotation", [0.0, 0.0, 0.0, 1.0]))
        out = m @ out
        node = parents.get(node)
    return out


def _quaternion_matrix(q) -> np.ndarray:
    return quaternion_to_matrix(np.asarray(q, np.float64) / np.linalg.norm(q))
