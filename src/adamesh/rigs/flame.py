"""The FLAME head model (Li et al. 2017) as a rig for the ``flame`` space.

FLAME cannot be redistributed, so the user supplies the model file (``flame:PATH``): the official
``generic_model.pkl`` of FLAME 2017/2020/2023 or an ``.npz`` with the same keys. The official pickle
holds chumpy objects; it is read without chumpy by a restricted unpickler that turns chumpy arrays
back into numpy arrays and refuses every other kind of Python object, so loading a model file cannot
run code.

``FlameRig.deform`` is FLAME's forward pass exactly as in the reference implementation
(FLAME_PyTorch / smplx ``lbs``): expression blend shapes, joints regressed from the shaped mesh, pose
correctives from the non-root joint rotations, then linear blend skinning along the kinematic tree.
Joints are 0 global (head rotation), 1 neck (held at rest), 2 jaw, 3 and 4 eyes (held at rest).
"""

from __future__ import annotations

import builtins
import codecs
import copyreg
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from adamesh.errors import RigError
from adamesh.geometry import axis_angle_to_matrix
from adamesh.motion import FLAME
from adamesh.rigs.base import SKIN, Rig
from adamesh.safepickle import bounded_bytearray, check_sizes, numpy_names

N_JOINTS = 5
N_SHAPE_OFFICIAL = 300  # official shapedirs: 300 identity then 100 expression columns
N_EXPR = 50  # expression coefficients in the flame space (exp00..exp49)
EYE_WHITE = (0.92, 0.91, 0.88)
_JAW, _HEAD = FLAME.index("jawRotX"), FLAME.rotation[0]
REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@dataclass(eq=False)
class FlameRig(Rig):
    """FLAME with a fixed identity: ``neutral`` is the template, ``shape_dirs`` @ ``shape_coeffs``
    the identity offset (zeros unless set at construction)."""

    shape_dirs: np.ndarray = None  # (V, 3, S) identity blend shapes
    expr_dirs: np.ndarray = None  # (V, 3, 50) expression blend shapes
    posedirs: np.ndarray = None  # (V, 3, 36) pose correctives, official layout
    joint_regressor: np.ndarray = None  # (5, V) dense
    skin_weights: np.ndarray = None  # (V, 5)
    parents: np.ndarray = None  # (5,) parent joint of each joint; parents[0] is unused (root)
    shape_coeffs: np.ndarray | None = None  # (S,) identity coefficients

    def __post_init__(self):
        super().__post_init__()
        if self.space is not FLAME:
            raise RigError("a FLAME rig plays the flame space")
        v, n_shape = self.n_vertices, self.shape_dirs.shape[2]
        if self.shape_coeffs is None:
            self.shape_coeffs = np.zeros(n_shape)
        for key in ("shape_dirs", "expr_dirs", "posedirs", "joint_regressor", "skin_weights", "shape_coeffs"):
            setattr(self, key, np.ascontiguousarray(getattr(self, key), np.float32))
        self.parents = np.asarray(self.parents, np.int64)
        if self.shape_coeffs.shape != (n_shape,):
            raise RigError(f"rig {self.name!r}: shape coefficients {self.shape_coeffs.shape} != ({n_shape},)")
        tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
        self._torch["identity"] = tensor(self.neutral + self.shape_dirs @ self.shape_coeffs)  # (V, 3)
        # Blend shapes as (K, V*3) matrices so a batch of coefficients is one matmul; the posedirs
        # reshape is the reference code's `posedirs.reshape(-1, 36).T`.
        self._torch["expr"] = tensor(self.expr_dirs.reshape(v * 3, N_EXPR).T)
        self._torch["pose"] = tensor(self.posedirs.reshape(v * 3, -1).T)

    def deform(self, params: torch.Tensor) -> torch.Tensor:
        n, v = len(params), self.n_vertices
        exp, jaw, head = params[:, :N_EXPR], params[:, _JAW : _JAW + 3], params[:, _HEAD : _HEAD + 3]
        shaped = self.tensor("identity") + (exp @ self.tensor("expr")).view(n, v, 3)
        joints = torch.einsum("jv,nvc->njc", self.tensor("joint_regressor"), shaped)  # (n, 5, 3)

        still = torch.zeros_like(jaw)  # neck and eyes stay at rest
        rot = axis_angle_to_matrix(torch.stack([head, still, jaw, still, still], 1))  # (n, 5, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(n, -1)  # (n, 36), joint-major as in FLAME
        posed = shaped + (pose_feature @ self.tensor("pose")).view(n, v, 3)

        # World transform of each joint: its parent's transform after (rotation about the joint,
        # offset from the parent). The root's offset is its own position.
        parents = self.parents
        offsets = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parents[1:]]], 1)
        chain_r, chain_t = [rot[:, 0]], [offsets[:, 0]]
        for i in range(1, N_JOINTS):
            p = parents[i]
            chain_r.append(chain_r[p] @ rot[:, i])
            chain_t.append(chain_t[p] + (chain_r[p] @ offsets[:, i, :, None])[..., 0])
        world_r, world_t = torch.stack(chain_r, 1), torch.stack(chain_t, 1)
        # Skinning transforms act on rest-pose positions: subtract each rotated rest joint.
        world_t = world_t - (world_r @ joints[..., None])[..., 0]
        weights = self.tensor("skin_weights")
        blend_r = torch.einsum("vj,njab->nvab", weights, world_r)
        blend_t = torch.einsum("vj,nja->nva", weights, world_t)
        return (blend_r @ posed[..., None])[..., 0] + blend_t


def load_flame(path: str | os.PathLike) -> FlameRig:
    """Load a FLAME model file (official pickle or .npz); errors name the file and the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RigError(f"FLAME model {path} does not exist")
    data = _read(path)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise RigError(f"FLAME model {path} lacks {', '.join(map(repr, missing))}")
    arr = {k: _as_array(data[k], k, path) for k in REQUIRED}
    v_template = _check(arr, "v_template", (None, 3), path)
    v = len(v_template)
    shapedirs = _check(arr, "shapedirs", (v, 3, None), path)
    posedirs = _check(arr, "posedirs", (v, 3, 9 * (N_JOINTS - 1)), path)
    regressor = _check(arr, "J_regressor", (N_JOINTS, v), path)
    weights = _check(arr, "weights", (v, N_JOINTS), path)
    kintree = _check(arr, "kintree_table", (2, N_JOINTS), path, ints=True)
    faces = _check(arr, "f", (None, 3), path, ints=True)
    if faces.size and (faces.min() < 0 or faces.max() >= v):
        raise RigError(f"FLAME model {path}: 'f' has vertex indices outside 0..{v - 1}")
    parents = kintree[0].astype(np.int64)
    tree_ok = all(0 <= parents[i] < i for i in range(1, N_JOINTS))  # parents come first, as in FLAME
    if not (tree_ok and np.array_equal(kintree[1], np.arange(N_JOINTS))):
        raise RigError(f"FLAME model {path}: 'kintree_table' {kintree.tolist()} is not FLAME's joint tree")

    # Expression directions: an explicit key wins (some conversions store them apart); otherwise
    # the official layout, 300 identity columns then 100 expression columns.
    key = next((k for k in ("exprdirs", "expressiondirs") if k in data), None)
    if key:
        expr = _check({key: _as_array(data[key], key, path)}, key, (v, 3, None), path)
        shape_dirs = shapedirs
    elif shapedirs.shape[2] >= N_SHAPE_OFFICIAL + N_EXPR:
        expr = shapedirs[:, :, N_SHAPE_OFFICIAL:]
        shape_dirs = shapedirs[:, :, :N_SHAPE_OFFICIAL]
    else:
        raise RigError(
            f"FLAME model {path}: 'shapedirs' has {shapedirs.shape[2]} columns and no 'exprdirs' key; "
            f"expected FLAME's layout of {N_SHAPE_OFFICIAL} shape then 100 expression columns, or "
            "expression directions under 'exprdirs' (V, 3, >= 50)"
        )
    if expr.shape[2] < N_EXPR:
        raise RigError(f"FLAME model {path}: {expr.shape[2]} expression directions, the flame space uses 50")

    eyeball = weights[:, 3] + weights[:, 4] > 0.5
    colors = np.where(eyeball[:, None], EYE_WHITE, SKIN)
    return FlameRig(
        name="flame",
        space=FLAME,
        neutral=v_template,
        faces=faces,
        colors=colors,
        regions=_regions(v_template, weights, path),
        pivot=regressor[0] @ v_template,  # the global joint, about which headRot turns the head
        units_per_meter=1.0,
        info={"source": str(path), "licence": "FLAME model licence (not redistributable)"},
        shape_dirs=shape_dirs,
        expr_dirs=expr[:, :, :N_EXPR],
        posedirs=posedirs,
        joint_regressor=regressor,
        skin_weights=weights,
        parents=parents,
    )


class _ChumpyArray:
    """Stand-in for any chumpy class met while unpickling. A stored chumpy array (``Ch``) pickles
    its attributes as a dict with the values under ``x``; derived chumpy expressions have no ``x``
    and cannot be evaluated without chumpy."""

    chumpy_class = "chumpy"

    def __init__(self, *args):
        self.state = {"x": args[0]} if args else {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state if isinstance(state, dict) else {"x": state}


class _ModelUnpickler(pickle.Unpickler):
    """Resolves only what a FLAME model pickle contains: numpy arrays, scipy sparse matrices,
    chumpy arrays (as `_ChumpyArray`) and a few builtins. Names are as in Python 2 pickles."""

    NUMPY = numpy_names()
    BUILTINS = {"object", "set", "frozenset", "slice", "complex", "list", "dict", "tuple"}

    def __init__(self, fh, limit: int):
        super().__init__(fh, encoding="latin1")
        self.limit = limit

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyArray,), {"chumpy_class": f"{module}.{name}"})
        if module.startswith("scipy.sparse"):
            # Old pickles name private modules (scipy.sparse.csc); the classes live in scipy.sparse.
            cls = getattr(scipy.sparse, name, None)
            if isinstance(cls, type) and name.endswith(("_matrix", "_array")):
                return cls
        if (module, name) in self.NUMPY:
            return self.NUMPY[module, name]
        if module in ("builtins", "__builtin__") and name in self.BUILTINS:
            return getattr(builtins, name)
        if module in ("builtins", "__builtin__") and name == "bytearray":
            return bounded_bytearray(self.limit)
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":
            return codecs.encode
        raise pickle.UnpicklingError(f"it contains a {module}.{name} object, which no FLAME model has")


def _read(path: Path) -> dict:
    """The file's top-level dict: .npz by content (zip), else a pickle."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) == b"PK\x03\x04":
                with np.load(path, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
            else:
                fh.seek(0)
                size = os.fstat(fh.fileno()).st_size
                data = _ModelUnpickler(fh, size).load()
                check_sizes(data, size)
    except (Exception, SystemExit) as e:  # any failure to parse means the file is not a model we can read
        raise RigError(f"FLAME model {path} is not a readable FLAME pickle or .npz: {e}") from None
    if not isinstance(data, dict):
        raise RigError(f"FLAME model {path} holds a {type(data).__name__}, not FLAME's dict of arrays")
    return data


def _as_array(obj, key: str, path: Path) -> np.ndarray:
    if isinstance(obj, _ChumpyArray):
        if "x" not in obj.state:
            raise RigError(
                f"FLAME model {path}: {key!r} is a chumpy expression ({obj.chumpy_class}), not a stored "
                "array; re-save the model with chumpy installed, converting it to numpy"
            )
        obj = obj.state["x"]
    if scipy.sparse.issparse(obj):
        obj = obj.toarray()
    a = np.asarray(obj)
    if a.dtype.kind not in "iuf":
        raise RigError(f"FLAME model {path}: {key!r} is not numeric (dtype {a.dtype})")
    return a


def _check(arr: dict, key: str, shape: tuple, path: Path, ints: bool = False) -> np.ndarray:
    """`arr[key]` with the expected shape (None: any size), finite, integer where required."""
    a = arr[key]
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise RigError(f"FLAME model {path}: {key!r} has shape {a.shape}, expected {want}")
    if ints and a.dtype.kind not in "iu":
        raise RigError(f"FLAME model {path}: {key!r} must hold integers, not {a.dtype}")
    if not ints and not np.isfinite(a).all():
        raise RigError(f"FLAME model {path}: {key!r} contains NaN or infinite values")
    return a


def _regions(verts: np.ndarray, weights: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Metric regions derived from the template and skinning weights (FLAME ships no masks).

    FLAME faces +z with y up. Lengths are in units of the distance ``d`` between the eyeball
    centres, so the heuristic does not depend on scale or placement:

    - ``jaw``: skinned mostly (> 0.5) to the jaw joint.
    - ``face``: skin (not eyeball) vertices in a frontal box: from the chin (lowest jaw vertex) to
      0.9 d above the eyes, within 1.1 d of the midline sideways, and less than 0.6 d behind the
      eyeball centres (in front of the ears).
    - ``lips``: the mouth is found on the midline where the jaw's skinning ends: its height is the
      top of the jaw-skinned face strip within 0.15 d of the midline. Lips are face vertices in an
      ellipse around it (0.45 d wide, 0.25 d high either side) on the front surface (within 0.25 d
      of the front-most point there).
    - ``eyes``: the eyeballs (skinned to the eye joints) and the lids: face vertices within 0.35 d
      of an eyeball centre.
    - ``upper_face``: face vertices above the midpoint between eyes and mouth.
    """
    eyeballs = [weights[:, j] > 0.5 for j in (3, 4)]
    if not all(m.any() for m in eyeballs):
        raise RigError(f"FLAME model {path}: no vertex is skinned to the eye joints, cannot place the face")
    centres = np.stack([verts[m].mean(0) for m in eyeballs])
    d = float(np.linalg.norm(centres[0] - centres[1]))
    (cx, ey, ez), (x, y, z) = centres.mean(0), verts.T
    jaw = weights[:, 2] > 0.5
    if not jaw.any() or d <= 0:
        raise RigError(f"FLAME model {path}: no jaw-skinned vertex or coincident eyes, cannot place the face")
    skin = ~(eyeballs[0] | eyeballs[1])
    face = skin & (y >= y[jaw].min()) & (y <= ey + 0.9 * d) & (np.abs(x - cx) < 1.1 * d) & (z > ez - 0.6 * d)

    midline = face & (np.abs(x - cx) < 0.15 * d)
    if not (midline & jaw).any():
        raise RigError(f"FLAME model {path}: no jaw skinning at the front of the face, cannot find the mouth")
    my = y[midline & jaw].max()
    mz = z[midline & (np.abs(y - my) < 0.1 * d)].max()
    lips = face & (((x - cx) / (0.45 * d)) ** 2 + ((y - my) / (0.25 * d)) ** 2 < 1) & (z > mz - 0.25 * d)

    lids = face & (np.linalg.norm(verts[:, None] - centres, axis=-1) < 0.35 * d).any(1)
    regions = {
        "face": face,
        "lips": lips,
        "upper_face": face & (y > (ey + my) / 2),
        "eyes": ~skin | lids,
        "jaw": jaw,
    }
    return {k: np.flatnonzero(m) for k, m in regions.items()}
