"""Rigs turn motion parameters into mesh vertices.

Every rig has a neutral mesh (V, 3) in its own units, triangles (F, 3), per-vertex colours for the
renderer, named vertex regions used by metrics (``lips``, ``upper_face``, ``eyes``, ``jaw``,
``face``) and a neck ``pivot`` about which head rotation is applied. ``deform`` is written in torch,
batched over frames and differentiable (for fitting and vertex losses); ``vertices`` is the numpy
convenience around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from adamesh.errors import RigError
from adamesh.geometry import euler_to_matrix
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES, Motion, Space

REGIONS = ("face", "lips", "upper_face", "eyes", "jaw")
SKIN = (0.86, 0.69, 0.60)
EYE_WHITE, IRIS, PUPIL = (0.95, 0.95, 0.93), (0.28, 0.48, 0.66), (0.04, 0.04, 0.05)
_ARKIT_LOWER = {n.lower(): n for n in ARKIT_BLENDSHAPES}


def arkit_name(name: str) -> str | None:
    """The ARKit shape a blendshape or morph target name stands for, or None.

    Case-insensitive; drops prefixes up to the last ``.`` or ``:`` (``blendShape1.jawOpen``,
    ``ARKit:jawOpen``) and reads ``_L``/``_R``/``_Left``/``_Right`` as ``Left``/``Right``
    (``eyeBlink_L`` -> ``eyeBlinkLeft``). A sided variant of an unsided shape (``browInnerUp_L``,
    ``cheekPuff_R``) maps to that shape, so both halves are summed.
    """
    key = re.split(r"[.:]", name.strip())[-1].lower()
    if key in _ARKIT_LOWER:
        return _ARKIT_LOWER[key]
    m = re.fullmatch(r"(.+?)_(l|r|left|right)", key)
    if m is None:
        return None
    stem = m.group(1)
    sided = stem + ("left" if m.group(2).startswith("l") else "right")
    return _ARKIT_LOWER.get(sided) or _ARKIT_LOWER.get(stem)


def moved_vertices(shapes: np.ndarray, names: list[str], frac: float, upto: int | None = None) -> np.ndarray:
    """Indices of vertices (below `upto`) that some ARKit shape in `names` moves by more than
    `frac` of that shape's largest move there; `shapes` is (52, V, 3). Rigs without annotated
    regions find their lips, jaw and eyes this way."""
    hit = np.zeros(upto or shapes.shape[1], bool)
    for name in names:
        m = np.linalg.norm(shapes[ARKIT_BLENDSHAPES.index(name), : len(hit)], axis=1)
        if m.max() > 1e-9:
            hit |= m > frac * m.max()
    return np.nonzero(hit)[0]


@dataclass(eq=False)
class Rig:
    """Base class. Subclasses implement `deform` for their parameter space."""

    name: str
    space: Space
    neutral: np.ndarray  # (V, 3) float32, rig units
    faces: np.ndarray  # (F, 3) int32
    colors: np.ndarray  # (V, 3) float32 in [0, 1]
    regions: dict[str, np.ndarray]  # region name -> vertex indices
    pivot: np.ndarray  # (3,) neck pivot, rig units
    units_per_meter: float = 1.0  # 100 for a rig modelled in centimetres
    landmarks: np.ndarray | None = None  # (68,) vertex indices in Multi-PIE order, if known
    identity: np.ndarray | None = None  # (K, V, 3) identity modes (vertex offsets per unit coefficient)
    info: dict = field(default_factory=dict)  # provenance, licence, missing shapes ...
    head_weights: np.ndarray | None = None  # (V,) how far each vertex follows the head; None: all of it

    def __post_init__(self):
        self.neutral = np.ascontiguousarray(self.neutral, np.float32)
        self.faces = np.ascontiguousarray(self.faces, np.int32)
        self.colors = np.ascontiguousarray(self.colors, np.float32)
        self.pivot = np.asarray(self.pivot, np.float32)
        n = len(self.neutral)
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= n):
            raise RigError(f"rig {self.name!r}: triangle indices out of range for {n} vertices")
        if self.colors.shape != self.neutral.shape:
            raise RigError(f"rig {self.name!r}: colours {self.colors.shape} vs vertices {self.neutral.shape}")
        for key in REGIONS:
            if key not in self.regions:
                raise RigError(f"rig {self.name!r} lacks the vertex region {key!r}")
        self.regions = {k: np.asarray(v, np.int64) for k, v in self.regions.items()}
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, np.int64)
            if self.landmarks.shape != (68,) or self.landmarks.min() < 0 or self.landmarks.max() >= n:
                raise RigError(f"rig {self.name!r}: landmarks must be 68 vertex indices below {n}")
        if self.identity is not None:
            self.identity = np.ascontiguousarray(self.identity, np.float32)
            if self.identity.ndim != 3 or self.identity.shape[1:] != self.neutral.shape:
                raise RigError(f"rig {self.name!r}: identity {self.identity.shape} does not fit vertices "
                               f"{self.neutral.shape}")  # fmt: skip
        if self.head_weights is not None:
            self.head_weights = np.ascontiguousarray(self.head_weights, np.float32)
            if self.head_weights.shape != (n,):
                raise RigError(f"rig {self.name!r}: head weights {self.head_weights.shape} for {n} vertices")
        self._torch: dict[str, torch.Tensor] = {}

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    def tensor(self, key: str) -> torch.Tensor:
        """A cached torch view of a numpy attribute (``neutral``, ``pivot`` ...)."""
        if key not in self._torch:
            self._torch[key] = torch.from_numpy(np.ascontiguousarray(getattr(self, key)))
        return self._torch[key]

    def deform(self, params: torch.Tensor) -> torch.Tensor:
        """(T, C) parameters in ``self.space`` -> (T, V, 3) vertices. Differentiable."""
        raise NotImplementedError

    def vertices(self, params: np.ndarray | Motion, chunk: int = 256) -> np.ndarray:
        """numpy (T, C) parameters or a Motion -> (T, V, 3) float32 vertices."""
        if isinstance(params, Motion):
            self.check(params)
            params = params.params
        params = np.asarray(params, np.float32)
        if params.ndim == 1:
            return self.vertices(params[None], chunk)[0]
        out = np.empty((len(params), self.n_vertices, 3), np.float32)
        with torch.no_grad():
            for i in range(0, len(params), chunk):
                out[i : i + chunk] = self.deform(torch.from_numpy(params[i : i + chunk])).numpy()
        return out

    def check(self, motion: Motion) -> None:
        """Raise a clear error if the rig cannot play this motion."""
        if motion.space.name != self.space.name:
            raise RigError(
                f"the motion is in the {motion.space.name!r} space but rig {self.name!r} takes "
                f"{self.space.name!r}; choose a rig for that space (arkit: builtin, ict, gltf:PATH; "
                "flame: flame:PATH)"
            )

    def rigid(self, verts: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor | None):
        """Rotate (T, V, 3) vertices about the neck pivot by (T, 3) Euler angles and translate
        by (T, 3) metres."""
        pivot = self.tensor("pivot")
        rot = euler_to_matrix(rotation[:, 0], rotation[:, 1], rotation[:, 2])  # (T, 3, 3)
        out = (verts - pivot) @ rot.transpose(1, 2) + pivot
        if translation is not None:
            out = out + translation[:, None, :] * self.units_per_meter
        if self.head_weights is not None:  # a body that stays while the head turns (a skinned avatar)
            out = verts + self.tensor("head_weights")[:, None] * (out - verts)
        return out

    def describe(self) -> str:
        lines = [
            f"rig {self.name}: space {self.space.name}, {self.n_vertices} vertices, "
            f"{len(self.faces)} triangles, {self.units_per_meter:g} units per metre"
        ]
        for key, idx in self.regions.items():
            lines.append(f"  region {key}: {len(idx)} vertices")
        for key, val in self.info.items():
            lines.append(f"  {key}: {val}")
        return "\n".join(lines)


@dataclass(eq=False)
class BlendshapeRig(Rig):
    """A rig in the ``arkit`` space: neutral + sum of weighted ARKit blendshape deltas, then a rigid
    head transform about the pivot. ``shapes`` is (52, V, 3) in ARKit order; shapes the source
    lacks are zero and listed in ``missing``."""

    shapes: np.ndarray = None  # (52, V, 3) float32 deltas
    missing: tuple[str, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        if self.space is not ARKIT:
            raise RigError("a blendshape rig plays the arkit space")
        self.shapes = np.ascontiguousarray(self.shapes, np.float32)
        if self.shapes.shape != (52, self.n_vertices, 3):
            raise RigError(f"rig {self.name!r}: shapes {self.shapes.shape} != (52, {self.n_vertices}, 3)")
        self._torch["deltas"] = torch.from_numpy(self.shapes.reshape(52, -1))

    @property
    def shape_names(self) -> tuple[str, ...]:
        return ARKIT_BLENDSHAPES

    def deform(self, params: torch.Tensor) -> torch.Tensor:
        s = self.space
        weights = params[:, : s.n_expression]
        verts = self.tensor("neutral") + (weights @ self.tensor("deltas")).view(len(params), -1, 3)
        rot = params[:, s.rotation[0] : s.rotation[1]]
        trans = params[:, s.translation[0] : s.translation[1]]
        return self.rigid(verts, rot, trans)
