"""Parameter spaces and the motion file format.

A *motion* is a (T, C) array of per-frame parameters in a named *space*, at a frame rate, with an
optional reference to the speech it was made for and free-form metadata (what produced it, with
which model, profile and seed).

Spaces
------
``arkit`` (default): the 52 ARKit blendshape weights in Apple's names and order, each in [0, 1],
then head rotation ``headPitch, headYaw, headRoll`` in radians and head translation
``headX, headY, headZ`` in metres. Axes: x to the character's left, y up, z out of the face.
Rotation is R = Ry(yaw) @ Rx(pitch) @ Rz(roll) about the rig's neck pivot: positive pitch tips
the face down, positive yaw turns it to the character's left, positive roll tilts the head
towards the character's right shoulder.

``flame``: FLAME expression coefficients ``exp00..exp49``, jaw pose ``jawRotX/Y/Z`` and global head
rotation ``headRotX/Y/Z`` (axis-angle, radians), as produced by DECA/SPECTRE/EMICA trackers.

File format (``.npz``, written with numpy, readable without adamesh)
-------------------------------------------------------------------
=========== ============ ==========================================================
key         dtype        meaning
=========== ============ ==========================================================
format      str          ``"adamesh.motion"``
version     int          ``1``
space       str          ``"arkit"`` or ``"flame"``
channels    str (C,)     channel names, the space's channels in any order
params      float32 (T,C) one row per frame
fps         float        frames per second
audio       str          path of the speech (relative to the motion file), or ``""``
meta        str          JSON object: producer, model, profile, seed, ...
=========== ============ ==========================================================
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adamesh.errors import MotionError
from adamesh.fileio import atomic_output, npz_reason

FORMAT = "adamesh.motion"
VERSION = 1

# Apple's ARFaceAnchor.BlendShapeLocation, in the order of its documentation.
ARKIT_BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
assert len(ARKIT_BLENDSHAPES) == 52


@dataclass(frozen=True)
class Space:
    """A named parameter space: channel names, valid ranges and where each part lives."""

    name: str
    channels: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    n_expression: int  # expression channels come first
    rotation: tuple[int, int]  # [start, stop) of head rotation channels
    translation: tuple[int, int] | None  # [start, stop) of head translation channels, if any
    units: dict = field(default_factory=dict)  # channel group -> unit, for documentation

    @property
    def dim(self) -> int:
        return len(self.channels)

    @property
    def expression_channels(self) -> tuple[str, ...]:
        return self.channels[: self.n_expression]

    def index(self, name: str) -> int:
        try:
            return self.channels.index(name)
        except ValueError:
            raise MotionError(f"space {self.name!r} has no channel {name!r}") from None

    def neutral(self, n_frames: int) -> np.ndarray:
        """(T, C) rest pose: zeros, which is valid in every space."""
        return np.zeros((n_frames, self.dim), np.float32)


_ROT_LIMIT = math.pi
_ARKIT_EXTRA = ("headPitch", "headYaw", "headRoll", "headX", "headY", "headZ")
ARKIT = Space(
    name="arkit",
    channels=ARKIT_BLENDSHAPES + _ARKIT_EXTRA,
    lower=(0.0,) * 52 + (-_ROT_LIMIT,) * 3 + (-1.0,) * 3,
    upper=(1.0,) * 52 + (_ROT_LIMIT,) * 3 + (1.0,) * 3,
    n_expression=52,
    rotation=(52, 55),
    translation=(55, 58),
    units={"blendshapes": "weight in [0, 1]", "head rotation": "radians", "head translation": "metres"},
)

JAW_OPEN, MOUTH_CLOSE = ARKIT.index("jawOpen"), ARKIT.index("mouthClose")


def limit_lip_closure(jaw: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """jawOpen and mouthClose weights (in [0, 1]) with mouthClose at most jawOpen.

    mouthClose brings the lips together over an open jaw; beyond jawOpen it pushes them through
    each other. Where mouthClose exceeds jawOpen both become their mean: the Euclidean projection
    onto 0 <= mouthClose <= jawOpen <= 1 of a pair that breaks only that rule."""
    over = close > jaw
    mean = (jaw + close) / 2
    return np.where(over, mean, jaw), np.where(over, mean, close)


def finish_expression(expr: np.ndarray, space: Space) -> np.ndarray:
    """Expression parameters (T, n_expression) as an animation delivers them: ARKit's lips closed
    no further than touching (`limit_lip_closure`), every channel within the space's bounds."""
    expr = np.array(expr, np.float32)
    if space.name == "arkit":
        expr[:, JAW_OPEN], expr[:, MOUTH_CLOSE] = limit_lip_closure(expr[:, JAW_OPEN], expr[:, MOUTH_CLOSE])
    n = expr.shape[1]
    return np.clip(expr, space.lower[:n], space.upper[:n]).astype(np.float32)


_FLAME_EXPR = tuple(f"exp{i:02d}" for i in range(50))
FLAME = Space(
    name="flame",
    channels=_FLAME_EXPR + ("jawRotX", "jawRotY", "jawRotZ", "headRotX", "headRotY", "headRotZ"),
    lower=(-20.0,) * 50 + (-_ROT_LIMIT,) * 6,
    upper=(20.0,) * 50 + (_ROT_LIMIT,) * 6,
    n_expression=53,  # expression coefficients and jaw pose are the expression adapter's output
    rotation=(53, 56),
    translation=None,
    units={"expression": "FLAME coefficients", "jaw, head": "axis-angle radians"},
)

SPACES: dict[str, Space] = {s.name: s for s in (ARKIT, FLAME)}


def get_space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise MotionError(f"unknown space {name!r}; choose one of: {', '.join(SPACES)}") from None


@dataclass
class Motion:
    """An animation: ``params`` (T, C) float32 in ``space`` at ``fps``.

    ``audio`` is the path of the speech the motion belongs to (or None); ``meta`` records what
    produced it. Construction validates everything, so a Motion in hand is always usable.
    """

    params: np.ndarray
    space: Space = ARKIT
    fps: float = 25.0
    audio: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.space, str):
            self.space = get_space(self.space)
        self.params = validate_params(self.params, self.space)
        if not (isinstance(self.fps, numbers.Real) and math.isfinite(self.fps) and 0 < self.fps <= 1000):
            raise MotionError(f"fps must be a positive number up to 1000, got {self.fps!r}")
        self.fps = float(self.fps)

    @property
    def n_frames(self) -> int:
        return self.params.shape[0]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def channel(self, name: str) -> np.ndarray:
        """(T,) values of one channel."""
        return self.params[:, self.space.index(name)]

    def save(self, path: str | os.PathLike) -> Path:
        return save_motion(self, path)


def validate_params(params, space: Space) -> np.ndarray:
    """Check shape, finiteness and ranges; return a float32 (T, C) copy."""
    params = np.asarray(params)
    if params.dtype.kind not in "fiu":
        raise MotionError(f"motion parameters must be numbers, got dtype {params.dtype}")
    if params.ndim != 2 or params.shape[1] != space.dim:
        raise MotionError(
            f"motion parameters have shape {params.shape}; space {space.name!r} needs (frames, {space.dim})"
        )
    if params.shape[0] == 0:
        raise MotionError("motion has zero frames")
    params = params.astype(np.float32)
    bad = ~np.isfinite(params)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise MotionError(
            f"motion has {int(bad.sum())} NaN/inf values (first at frame {t}, channel {space.channels[c]!r})"
        )
    lo, hi = np.asarray(space.lower, np.float32), np.asarray(space.upper, np.float32)
    tol = 1e-4
    out = (params < lo - tol) | (params > hi + tol)
    if out.any():
        t, c = np.argwhere(out)[0]
        raise MotionError(
            f"channel {space.channels[c]!r} is {params[t, c]:.4g} at frame {t}, outside its valid "
            f"range [{lo[c]:g}, {hi[c]:g}] ({int(out.sum())} values out of range)"
        )
    return np.clip(params, lo, hi)


def save_motion(motion: Motion, path: str | os.PathLike) -> Path:
    """Write a motion file atomically. ``audio`` is stored relative to the file when possible."""
    path = Path(path)
    if path.suffix != ".npz":
        raise MotionError(f"motion files end in .npz, got {path.name!r}")
    audio = ""
    if motion.audio:
        audio = os.path.relpath(Path(motion.audio).resolve(), path.resolve().parent)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                format=np.array(FORMAT),
                version=np.array(VERSION),
                space=np.array(motion.space.name),
                channels=np.array(motion.space.channels),
                params=motion.params.astype(np.float32),
                fps=np.array(motion.fps),
                audio=np.array(audio),
                meta=np.array(json.dumps(motion.meta)),
            )
    return path


def load_motion(path: str | os.PathLike) -> Motion:
    """Read and validate a motion file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(f"motion file {path} does not exist")
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except MotionError:
        raise
    except Exception as e:
        raise MotionError(f"{path} is not a readable motion file (.npz): {npz_reason(e)}") from None
    try:
        return _motion_from_arrays(data, path)
    except MotionError as e:
        raise MotionError(f"{path}: {e}") from None


MAX_FRAMES = 1_000_000  # 11 hours at 25 fps; a compressed file could otherwise ask for any memory


def _check_sizes(path: Path) -> None:
    """Refuse, from the array headers alone, a file whose arrays would unpack to more than a motion needs."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            with z.open(info) as f:
                read = (
                    np.lib.format.read_array_header_1_0
                    if np.lib.format.read_magic(f) == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(f)
            if info.filename == "params.npy" and shape and shape[0] > MAX_FRAMES:
                raise MotionError(f"{path} has {shape[0]:,} frames; at most {MAX_FRAMES:,} are accepted")
            size = math.prod(shape) * dtype.itemsize
            if size > 1 << 30:
                raise MotionError(
                    f"{path}: its array {info.filename} would take {size:,} bytes; this is not a motion file"
                )


def _motion_from_arrays(data: dict, path: Path) -> Motion:
    missing = [k for k in ("format", "space", "channels", "params", "fps") if k not in data]
    if missing:
        raise MotionError(f"not an adamesh motion file: missing {', '.join(missing)}")
    if str(data["format"]) != FORMAT:
        raise MotionError(f"format is {str(data['format'])!r}, expected {FORMAT!r}")
    try:
        version, fps = int(data.get("version", VERSION)), float(data["fps"])
    except (TypeError, ValueError):
        raise MotionError("its version and fps must be numbers") from None
    if version > VERSION:
        raise MotionError(f"file version {version} is newer than this adamesh reads ({VERSION})")
    space = get_space(str(data["space"]))
    channels = [str(c) for c in np.atleast_1d(data["channels"])]
    params = np.asarray(data["params"])
    unknown = [c for c in channels if c not in space.channels]
    if unknown:
        raise MotionError(f"unknown channel names for space {space.name!r}: {', '.join(unknown[:8])}")
    absent = [c for c in space.channels if c not in channels]
    if absent:
        raise MotionError(f"channels missing for space {space.name!r}: {', '.join(absent[:8])}")
    if len(set(channels)) != len(channels):
        raise MotionError("duplicate channel names")
    if params.ndim != 2 or params.shape[1] != len(channels):
        raise MotionError(f"params have shape {params.shape} but {len(channels)} channels are named")
    order = [channels.index(c) for c in space.channels]
    params = params[:, order]
    audio = str(data.get("audio", "")) or None
    if audio and os.path.isabs(audio):  # a stranger's file must not make us read /etc/shadow
        raise MotionError(
            f"its audio is the absolute path {audio}, which adamesh does not read: motion files name "
            "their speech relative to themselves; write it again with adamesh"
        )
    if audio:
        audio = str((path.parent / audio).resolve())
    try:
        meta = json.loads(str(data.get("meta", "{}")))
    except json.JSONDecodeError as e:
        raise MotionError(f"meta is not valid JSON: {e}") from None
    return Motion(params=params, space=space, fps=fps, audio=audio, meta=meta)


CLOSURE_FRACTION = 0.15  # a closure: the lip gap under this share of the clip's 95th percentile


def lip_gap(expression: np.ndarray, channels) -> np.ndarray:
    """ARKit lip gap per frame: jawOpen - mouthClose."""
    channels = list(channels)
    return expression[:, channels.index("jawOpen")] - expression[:, channels.index("mouthClose")]


def blink_curve(t: np.ndarray, blinks: list[float]) -> np.ndarray:
    """Eyelid closure in [0, 1] at times `t` for blinks centred at `blinks` (seconds): each closes
    fast (~80 ms) and opens slower (~170 ms)."""
    blink = np.zeros_like(t, dtype=np.float64)
    for b in blinks:
        x = t - b
        blink = np.maximum(blink, np.where(x < 0, np.exp(-((x / 0.05) ** 2)), np.exp(-((x / 0.11) ** 2))))
    return blink
