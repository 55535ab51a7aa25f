"""Engine export: glTF 2.0 binary, Live Link Face CSV, OBJ sequence, npz of vertices.

`WRITERS` maps a format name to its writer ``(motion, rig, out) -> Path``; every writer checks its
input first and writes atomically, so a failure leaves no partial file behind.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pygltflib as gl

from adamesh.avatar import ANIMATION_NAME, animate_avatar, read_glb
from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output
from adamesh.geometry import NormalComputer, euler_to_matrix, matrix_to_quaternion
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES, Motion
from adamesh.rigs.base import BlendshapeRig, Rig
from adamesh.version import __version__

# Live Link Face's CSV orders two pairs differently from Apple's documentation.
LIVE_LINK_ORDER = list(ARKIT_BLENDSHAPES)
for a, b in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
    i, j = LIVE_LINK_ORDER.index(a), LIVE_LINK_ORDER.index(b)
    LIVE_LINK_ORDER[i], LIVE_LINK_ORDER[j] = b, a
LIVE_LINK_EXTRA = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                   "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip
# Eye angle per unit of eyeLook* weight (radians), as a real Live Link Face take has them
# (shared/data/avatars/livelinkface_iphone_take.csv: yaw 0.58 / 0.62 for the two eyes, pitch 0.61).
EYE_YAW_PER_WEIGHT, EYE_PITCH_PER_WEIGHT = 0.60, 0.61


def _need_arkit(motion: Motion, what: str) -> None:
    if motion.space is not ARKIT:
        raise AdameshError(f"{what} export needs a motion in the arkit space, got {motion.space.name!r}")


# --------------------------------------------------------------------------- glTF binary


def _head_pose(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """(T, 4) quaternions (x, y, z, w) and (T, 3) translations in metres."""
    import torch

    s = motion.space
    rot = torch.from_numpy(motion.params[:, s.rotation[0] : s.rotation[1]].astype(np.float64))
    mats = euler_to_matrix(rot[:, 0], rot[:, 1], rot[:, 2]).numpy()
    trans = motion.params[:, s.translation[0] : s.translation[1]].astype(np.float64)
    return matrix_to_quaternion(mats), trans


class _GlbBuilder:
    """Packs arrays into one binary buffer and declares accessors for them."""

    def __init__(self):
        self.doc = gl.GLTF2(asset=gl.Asset(generator=f"adamesh {__version__}", version="2.0"))
        self.blob = bytearray()

    def view(self, data: np.ndarray, target: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        raw = np.ascontiguousarray(data).tobytes()
        self.doc.bufferViews.append(
            gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(raw), target=target)
        )
        self.blob += raw
        return len(self.doc.bufferViews) - 1

    def accessor(self, data: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        data = np.ascontiguousarray(data)
        ctype = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint32): gl.UNSIGNED_INT}[data.dtype]
        acc = gl.Accessor(bufferView=self.view(data, target), componentType=ctype, count=len(data), type=kind)
        if bounds:  # min/max from the float32 data itself, as the validator compares them exactly
            acc.min = np.atleast_1d(data.min(0)).tolist()
            acc.max = np.atleast_1d(data.max(0)).tolist()
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1

    def sparse_target(self, delta: np.ndarray) -> int:
        """A morph target as a sparse accessor: only vertices moved by more than a micrometre are
        stored (scanned rigs carry float noise on every vertex)."""
        idx = np.nonzero(np.abs(delta).max(1) > 1e-6)[0].astype(np.uint32)
        if len(idx) == 0:  # the spec needs at least one sparse entry
            idx = np.zeros(1, np.uint32)
        values = np.ascontiguousarray(delta[idx], np.float32)
        sparse = gl.Sparse(
            count=len(idx),
            indices=gl.AccessorSparseIndices(bufferView=self.view(idx), componentType=gl.UNSIGNED_INT),
            values=gl.AccessorSparseValues(bufferView=self.view(values)),
        )
        implicit_zeros = np.zeros((1 if len(idx) < len(delta) else 0, 3), np.float32)
        full = np.concatenate([values, implicit_zeros])
        acc = gl.Accessor(componentType=gl.FLOAT, count=len(delta), type=gl.VEC3, sparse=sparse, byteOffset=None,
                          min=full.min(0).tolist(), max=full.max(0).tolist())  # fmt: skip
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1


def write_glb(motion: Motion, rig: Rig, out: str | os.PathLike) -> Path:
    """A .glb with the rig's mesh (metres), its ARKit morph targets named in ``extras.targetNames``
    and one animation: morph weights, head rotation and translation about the neck pivot."""
    _need_arkit(motion, "glb")
    if not isinstance(rig, BlendshapeRig):
        raise AdameshError(
            f"glb export needs a blendshape rig (builtin, ict, gltf:PATH); {rig.name!r} is not one"
        )
    rig.check(motion)
    scale = 1.0 / rig.units_per_meter
    pivot = rig.pivot.astype(np.float64) * scale
    names = [n for n, d in zip(ARKIT_BLENDSHAPES, rig.shapes) if n not in rig.missing and np.any(d)]
    keep = [ARKIT_BLENDSHAPES.index(n) for n in names]
    b = _GlbBuilder()
    pos = ((rig.neutral.astype(np.float64) * scale) - pivot).astype(np.float32)
    normals = NormalComputer(rig.faces, rig.n_vertices)(rig.neutral)
    attrs = gl.Attributes(
        POSITION=b.accessor(pos, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=b.accessor(normals, gl.VEC3, gl.ARRAY_BUFFER),
        COLOR_0=b.accessor(rig.colors.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER),
    )
    targets = [{"POSITION": b.sparse_target((rig.shapes[k] * scale).astype(np.float32))} for k in keep]
    indices = b.accessor(
        rig.faces.reshape(-1).astype(np.uint32), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER, bounds=True
    )
    prim = gl.Primitive(attributes=attrs, indices=indices, targets=targets, mode=gl.TRIANGLES,
                        material=0)  # fmt: skip
    b.doc.materials.append(gl.Material(name="skin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[1, 1, 1, 1], metallicFactor=0.0, roughnessFactor=0.7)))  # fmt: skip
    b.doc.meshes.append(gl.Mesh(name=f"{rig.name}_face", primitives=[prim], weights=[0.0] * len(keep),
                                extras={"targetNames": names}))  # fmt: skip
    # the head node sits at the neck pivot, so its rotation turns the head about the neck
    b.doc.nodes.append(gl.Node(name="head", translation=pivot.tolist(), children=[1]))
    b.doc.nodes.append(gl.Node(name="face", mesh=0))
    b.doc.scenes.append(gl.Scene(name="adamesh", nodes=[0]))
    b.doc.scene = 0
    times = (np.arange(motion.n_frames) / motion.fps).astype(np.float32)
    t_acc = b.accessor(times, gl.SCALAR, bounds=True)
    weights = motion.params[:, keep].astype(np.float32).reshape(-1)
    quats, trans = _head_pose(motion)
    samplers = [
        gl.AnimationSampler(input=t_acc, output=b.accessor(weights, gl.SCALAR), interpolation=gl.ANIM_LINEAR),
        gl.AnimationSampler(
            input=t_acc, output=b.accessor(quats.astype(np.float32), gl.VEC4), interpolation=gl.ANIM_LINEAR
        ),
        gl.AnimationSampler(
            input=t_acc,
            output=b.accessor((pivot + trans).astype(np.float32), gl.VEC3),
            interpolation=gl.ANIM_LINEAR,
        ),  # fmt: skip
    ]
    channels = [
        gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(node=1, path="weights")),
        gl.AnimationChannel(sampler=1, target=gl.AnimationChannelTarget(node=0, path="rotation")),
        gl.AnimationChannel(sampler=2, target=gl.AnimationChannelTarget(node=0, path="translation")),
    ]
    b.doc.animations.append(gl.Animation(name=ANIMATION_NAME, samplers=samplers, channels=channels,
                                         extras={"fps": motion.fps, "meta": motion.meta}))  # fmt: skip
    b.doc.buffers.append(gl.Buffer(byteLength=len(b.blob)))
    b.doc.set_binary_blob(bytes(b.blob))
    with atomic_output(out) as tmp:
        b.doc.save_binary(str(tmp))
    return Path(out)


def read_glb_animation(path: str | os.PathLike) -> dict:
    """Read back what `write_glb` wrote: target names, times, (T, K) weights, (T, 4) rotations."""
    doc = gl.GLTF2().load(str(path))
    blob = doc.binary_blob()

    def read(i: int) -> np.ndarray:
        acc = doc.accessors[i]
        view = doc.bufferViews[acc.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
        data = np.frombuffer(blob, np.float32, acc.count * width, view.byteOffset + (acc.byteOffset or 0))
        return data.reshape(acc.count, width) if width > 1 else data

    anim = doc.animations[0]
    by_path = {c.target.path: anim.samplers[c.sampler] for c in anim.channels}
    names = doc.meshes[0].extras["targetNames"]
    times = read(by_path["weights"].input)
    return {
        "names": names,
        "times": times,
        "weights": read(by_path["weights"].output).reshape(len(times), len(names)),
        "rotation": read(by_path["rotation"].output),
        "fps": anim.extras.get("fps"),
    }


# --------------------------------------------------------------------------- Live Link CSV


def _timecode(frame: int, fps: float) -> str:
    rate = max(1, int(round(fps)))
    secs, ff = divmod(frame, rate)
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.000"


def eye_angles(motion: Motion) -> np.ndarray:
    """(T, 6) left yaw, pitch, roll, right yaw, pitch, roll in radians from the eyeLook* weights,
    in Live Link Face's signs: yaw grows as the eyes turn to the character's right (the left eye
    looking in, the right eye out), pitch as they look down; roll stays 0."""
    out = np.zeros((motion.n_frames, 6), np.float32)
    for k, (side, s) in enumerate((("Left", 1), ("Right", -1))):
        look = {d: motion.channel(f"eyeLook{d}{side}") for d in ("In", "Out", "Up", "Down")}
        out[:, 3 * k] = s * (look["In"] - look["Out"]) * EYE_YAW_PER_WEIGHT
        out[:, 3 * k + 1] = (look["Down"] - look["Up"]) * EYE_PITCH_PER_WEIGHT
    return out


def write_csv(motion: Motion, rig: Rig | None, out: str | os.PathLike, fps: float | None = None) -> Path:
    """Live Link Face CSV: Timecode, BlendShapeCount, 52 weights in Live Link order, head yaw,
    pitch, roll and eye angles (radians), LF line ends, as the app writes them. Readable by Unreal's
    Live Link Face importer. `fps` resamples (linearly) to another rate: the app records 60."""
    _need_arkit(motion, "csv")
    if fps is not None and fps != motion.fps:
        motion = resample_motion(motion, fps)
    with atomic_output(out) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(LIVE_LINK_HEADER)
            w.writerows(live_link_rows(motion))
    return Path(out)


LIVE_LINK_HEADER = (
    ["Timecode", "BlendShapeCount"] + [n[0].upper() + n[1:] for n in LIVE_LINK_ORDER] + LIVE_LINK_EXTRA
)


def live_link_values(motion: Motion, order=LIVE_LINK_ORDER) -> np.ndarray:
    """(T, 61) what Live Link Face carries per frame: the 52 weights in `order` (names: the CSV's
    order, or Apple's for the network packet), head yaw, pitch, roll and the eye angles (radians)."""
    cols = [ARKIT.index(n) for n in order]
    head = motion.params[:, [ARKIT.index("headYaw"), ARKIT.index("headPitch"), ARKIT.index("headRoll")]]
    return np.concatenate([motion.params[:, cols], head, eye_angles(motion)], 1)


def live_link_rows(motion: Motion, first: int = 0) -> list[list[str]]:
    """Live Link Face CSV rows of an ARKit motion whose first frame is frame `first` of the take."""
    return [
        [_timecode(first + t, motion.fps), 61] + [f"{v:.6f}" for v in row]
        for t, row in enumerate(live_link_values(motion))
    ]


def resample_motion(motion: Motion, fps: float) -> Motion:
    """`motion` at another frame rate, each channel linearly interpolated; frame k at k / fps."""
    if not (math.isfinite(fps) and 1 <= fps <= 240):
        raise AdameshError(f"--fps must be between 1 and 240 frames per second, not {fps}")
    n = max(1, math.floor(motion.duration * fps + 1e-9))
    old = np.arange(motion.n_frames) / motion.fps
    new = np.arange(n) / fps
    params = np.stack([np.interp(new, old, c) for c in motion.params.T], 1).astype(np.float32)
    return Motion(params, motion.space, fps, audio=motion.audio, meta=motion.meta)


# --------------------------------------------------------------------------- meshes


def write_obj_sequence(motion: Motion, rig: Rig, out: str | os.PathLike) -> Path:
    """A folder of OBJ files, ``frame_00000.obj`` ..., one mesh per frame in rig units."""
    rig.check(motion)
    verts = rig.vertices(motion)
    faces = "".join(f"f {a} {b} {c}\n" for a, b, c in (rig.faces + 1))
    with atomic_output(out, directory=True) as tmp:
        for t, v in enumerate(verts):
            with open(tmp / f"frame_{t:05d}.obj", "w") as f:
                f.write(
                    f"# adamesh {__version__}: rig {rig.name}, frame {t} of {len(verts)} at {motion.fps:g} fps\n"
                )
                np.savetxt(f, v, fmt="v %.6f %.6f %.6f")
                f.write(faces)
    return Path(out)


def write_npz(motion: Motion, rig: Rig, out: str | os.PathLike) -> Path:
    """``vertices`` (T, V, 3) float32 in rig units, ``faces`` (F, 3), ``fps``, ``units_per_meter``."""
    rig.check(motion)
    verts = rig.vertices(motion)
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, vertices=verts, faces=rig.faces, fps=np.array(motion.fps),
                     units_per_meter=np.array(rig.units_per_meter), rig=np.array(rig.name))  # fmt: skip
    return Path(out)


BLENDER_PYTHON = "ADAMESH_BLENDER_PYTHON"  # names a Python with Blender's bpy, for FBX
FBX_HINT = (
    "FBX export runs Blender's bpy (Python 3.11), kept out of adamesh's environment: `make fbx` in a clone "
    "of adamesh makes .venv-fbx; or `pip install bpy==5.0.1` into any Python 3.11 environment. Then set "
    f"{BLENDER_PYTHON} to that environment's python"
)


def blender_python() -> str | None:
    """The Python that runs Blender for FBX: $ADAMESH_BLENDER_PYTHON, else this one if it has bpy,
    else the .venv-fbx that `make fbx` makes in a clone of adamesh."""
    import importlib.util
    import shutil
    import sys

    if os.environ.get(BLENDER_PYTHON):
        return shutil.which(os.environ[BLENDER_PYTHON]) or None
    if importlib.util.find_spec("bpy"):
        return sys.executable
    made = Path(__file__).resolve().parents[2] / ".venv-fbx" / "bin" / "python"
    return str(made) if made.is_file() else None


def write_fbx(motion: Motion, rig: Rig | str, out: str | os.PathLike) -> Path:
    """FBX with the rig's shape keys and head rotation, baked per frame: the glb that `export`
    writes for `rig`, converted by Blender (`adamesh.blender_fbx`) in its own process."""
    import subprocess
    import tempfile

    if isinstance(rig, str) and rig.startswith("gltf:"):
        if read_glb(rig[len("gltf:") :])[0].get("animations"):
            raise AdameshError(f"{rig[len('gltf:'):]} has animations of its own, which Blender would export "
                               "instead of adamesh's; use --export glb, or remove them from the avatar")  # fmt: skip
    python = blender_python()
    if python is None:
        raise AdameshError(FBX_HINT)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="adamesh-fbx-") as tmp, atomic_output(out) as partial:
        glb = export(motion, "glb", Path(tmp) / "clip.glb", rig)
        script = Path(__file__).with_name("blender_fbx.py")
        run = subprocess.run([python, str(script), str(glb), str(partial), str(motion.fps)], capture_output=True,
                             text=True, timeout=600)  # fmt: skip
        if run.returncode != 0 or not partial.stat().st_size:
            detail = (run.stderr or run.stdout).strip().splitlines()
            raise AdameshError(f"Blender could not write the FBX: {detail[-1] if detail else 'no output'}")
    return out


WRITERS = {"glb": write_glb, "fbx": write_fbx, "csv": write_csv, "obj": write_obj_sequence, "npz": write_npz}


def export(
    motion: Motion, fmt: str, out: str | os.PathLike, rig: Rig | str | None = None, fps: float | None = None
) -> Path:
    """Write `motion` in format `fmt` (glb, fbx, csv, obj, npz) for `rig` (a Rig or a `load_rig` spec);
    `fps` resamples a csv to another frame rate.

    glb for a glTF avatar (``gltf:PATH``) is the avatar's own file with the animation added
    (`adamesh.avatar`); for other rigs, the rig's mesh with its morph targets and the animation."""
    if fmt not in WRITERS:
        raise AdameshError(f"unknown export format {fmt!r}; choose one of: {', '.join(WRITERS)}")
    if fps is not None and fmt != "csv":
        raise AdameshError(f"--fps resamples Live Link CSV only; {fmt} keeps the motion's {motion.fps:g} fps")
    if fmt == "csv":
        return write_csv(motion, None, out, fps)
    if rig is None:
        raise AdameshError(f"{fmt} export needs a rig (--rig)")
    if fmt == "fbx":
        return write_fbx(motion, rig, out)
    if fmt == "glb" and isinstance(rig, str) and rig.startswith("gltf:"):
        return animate_avatar(motion, rig[len("gltf:") :], out)
    if isinstance(rig, str):
        from adamesh.rigs import load_rig

        rig = load_rig(rig)
    return WRITERS[fmt](motion, rig, out)
