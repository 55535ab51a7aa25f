"""FLAME parameter sequences from monocular face trackers (DECA, SPECTRE, EMOCA/EMICA and alike).

One file per clip: ``.npz``, ``.pkl`` (a pickled dict of arrays) or ``.npy`` (a dict saved with
``np.save``). Pickles are read by a restricted unpickler that rebuilds only numpy arrays, so torch
tensors must be converted with ``.numpy()`` before saving. Accepted keys, first match wins:

=============== ===================================== =============================================
content         keys                                  shape
=============== ===================================== =============================================
expression      ``exp``, ``expression``,              (T, >= 50); the first 50 are kept
                ``exp_params``, ``expcode``
pose            ``pose``, ``posecode``                (T, 6): head then jaw, axis-angle (DECA order)
or split pose   ``jaw_pose`` and ``global_pose`` or   (T, 3) each
                ``head_pose``
shape           ``shape``, ``shapecode`` (optional)   (T, S) or (S,); its frame mean goes to meta
frame rate      ``fps`` (optional)                    scalar, used when ``source_fps`` is not given
speaker         ``speaker`` (optional)                string
=============== ===================================== =============================================

Other keys (``cam``, ``tex``, ``light``, ...) are ignored. The result is a `Motion` in the
``flame`` space: ``exp00..exp49``, ``jawRotX/Y/Z`` = jaw pose, ``headRotX/Y/Z`` = global pose.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as fmt
from scipy.spatial.transform import Rotation, Slerp

from adamesh.data.readers import load_pickle, resample_linear, source_positions, target_frames
from adamesh.errors import AdameshError, AdameshWarning, MotionError
from adamesh.motion import FLAME, Motion

EXP_KEYS = ("exp", "expression", "exp_params", "expcode")
POSE_KEYS = ("pose", "posecode")
JAW_KEYS = ("jaw_pose",)
HEAD_KEYS = ("global_pose", "head_pose")
SHAPE_KEYS = ("shape", "shapecode")
SUFFIXES = (".npz", ".npy", ".pkl")
N_EXP = 50


def read_flame_params(
    path: str | os.PathLike,
    fps: float = 25.0,
    source_fps: float | None = None,
    audio: str | os.PathLike | None = None,
) -> Motion:
    """The tracked clip at `path` as a flame-space Motion at `fps`.

    `source_fps` is the tracker's frame rate (default: the file's ``fps`` key, else `fps`). With
    `audio`, the motion gets exactly the frames that audio needs at `fps`.
    """
    motion, dropped = _read(Path(path).expanduser(), fps, source_fps, audio)
    if dropped:
        warnings.warn(_dropped_message(1, 1), AdameshWarning, stacklevel=2)
    return motion


def read_flame_folder(
    root: str | os.PathLike, fps: float = 25.0, source_fps: float | None = None
) -> list[Motion]:
    """Every tracker file under `root` (recursively, sorted), each with the wav of the same stem
    beside it if there is one. The speaker is the file's ``speaker`` key, else its folder's name."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AdameshError(f"tracker folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise AdameshError(f"{root} holds no tracker files ({', '.join(SUFFIXES)})")
    motions, n_dropped = [], 0
    for f in files:
        wav = f.with_suffix(".wav")
        motion, dropped = _read(f, fps, source_fps, wav if wav.is_file() else None)
        motion.meta.setdefault("speaker", f.parent.name)
        motions.append(motion)
        n_dropped += dropped
    if n_dropped:  # once for the folder, not once per file
        warnings.warn(_dropped_message(n_dropped, len(files)), AdameshWarning, stacklevel=2)
    return motions


def _dropped_message(n: int, total: int) -> str:
    return (
        f"{n} of {total} tracker files have non-zero expression coefficients beyond the first {N_EXP}; "
        f"the flame space keeps only the first {N_EXP}"
    )


def _read(
    path: Path, fps: float, source_fps: float | None, audio: str | os.PathLike | None
) -> tuple[Motion, bool]:
    """The Motion, and whether non-zero expression coefficients beyond the 50th were dropped."""
    data = _load(path)
    exp = _get(data, EXP_KEYS, path, (None, None))
    if exp.shape[1] < N_EXP:
        raise AdameshError(
            f"{path}: expression has {exp.shape[1]} coefficients; the flame space needs {N_EXP}"
        )
    if any(k in data for k in JAW_KEYS + HEAD_KEYS) and not any(k in data for k in POSE_KEYS):
        jaw = _get(data, JAW_KEYS, path, (None, 3))
        head = _get(data, HEAD_KEYS, path, (None, 3))
    else:
        accepted = f"{', '.join(POSE_KEYS)}, or jaw_pose with {' or '.join(HEAD_KEYS)}"
        pose = _get(data, POSE_KEYS, path, (None, 6), accepted)
        head, jaw = pose[:, :3], pose[:, 3:]
    if not (len(exp) == len(jaw) == len(head)):
        raise AdameshError(
            f"{path}: expression has {len(exp)} frames but the pose {len(head)}"
            + (f" (jaw {len(jaw)})" if len(jaw) != len(head) else "")
        )
    if len(exp) == 0:
        raise AdameshError(f"{path}: the clip has zero frames")

    if source_fps is None:
        source_fps = float(data["fps"]) if "fps" in data else fps
    audio = Path(audio).expanduser() if audio is not None else None
    if audio is not None and not audio.is_file():
        raise AdameshError(f"audio file {audio} does not exist")
    n = target_frames(len(exp), source_fps, fps, audio, path)
    expression = resample_linear(exp[:, :N_EXP], source_fps, fps, n)
    params = np.concatenate(
        [expression, _slerp(jaw, source_fps, fps, n), _slerp(head, source_fps, fps, n)], 1
    )
    meta = {"source": str(path), "source_fps": float(source_fps)}
    if "speaker" in data:
        meta["speaker"] = str(data["speaker"])
    key = next((k for k in SHAPE_KEYS if k in data), None)
    if key:
        # The identity is constant over a clip; a per-frame estimate is averaged to one.
        shape = _finite(np.asarray(data[key]), key, path)
        if shape.ndim not in (1, 2) or (shape.ndim == 2 and len(shape) not in (1, len(exp))):
            raise AdameshError(
                f"{path}: {key!r} has shape {shape.shape}; expected (S,) or ({len(exp)} frames, S)"
            )
        meta["shape"] = np.atleast_2d(shape).mean(0).tolist()
    try:
        motion = Motion(params, FLAME, fps, str(audio) if audio else None, meta)
    except MotionError as e:
        raise MotionError(f"{path}: {e}") from None
    return motion, bool(np.any(exp[:, N_EXP:]))


def _slerp(rotvec: np.ndarray, source_fps: float, fps: float, n: int) -> np.ndarray:
    """Axis-angle rotations resampled along the shortest arc between neighbouring frames."""
    pos = source_positions(len(rotvec), source_fps, fps, n)
    if len(rotvec) == 1:  # Slerp needs two key frames
        return np.repeat(rotvec, n, 0).astype(np.float32)
    keys = Rotation.from_rotvec(rotvec.astype(np.float64))
    return Slerp(np.arange(len(rotvec)), keys)(pos).as_rotvec().astype(np.float32)


def _load(path: Path) -> dict:
    if not path.is_file():
        raise AdameshError(f"tracker file {path} does not exist")
    if path.suffix not in SUFFIXES:
        raise AdameshError(f"{path}: tracker files are {', '.join(SUFFIXES)}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise AdameshError(f"cannot read {path}: {e}") from None
    elif path.suffix == ".npy":
        data = _load_npy(path)
    else:
        data = load_pickle(path)
    if not isinstance(data, dict):
        raise AdameshError(f"{path} holds a {type(data).__name__}, expected a dict of tracker arrays")
    return data


def _load_npy(path: Path):
    """A dict saved with ``np.save``: an object array whose payload is a pickle, read restricted."""
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f".npy format version {version} is not supported")
            _, _, dtype = read_header[version](fh)
        except ValueError as e:
            raise AdameshError(f"cannot read {path} as a .npy file: {e}") from None
        if not dtype.hasobject:
            raise AdameshError(f"{path} holds a plain {dtype} array, expected a dict of tracker arrays")
        obj = load_pickle(path, fh)
    return obj.item() if isinstance(obj, np.ndarray) and obj.size == 1 else obj


def _get(data: dict, keys: tuple[str, ...], path: Path, shape: tuple, accepted: str = "") -> np.ndarray:
    """The first of `keys` in `data` as a finite float64 array of `shape` (None: any size)."""
    key = next((k for k in keys if k in data), None)
    if key is None:
        found = ", ".join(map(str, data)) or "none"
        raise AdameshError(
            f"{path}: no key {accepted or ' or '.join(keys)} (keys found: {found}); "
            "the accepted names are listed in adamesh.data.trackers"
        )
    a = np.asarray(data[key])
    if (
        a.dtype.kind not in "fiu"
        or a.ndim != len(shape)
        or any(s not in (None, m) for s, m in zip(shape, a.shape))
    ):
        want = "(" + ", ".join("frames" if s is None else str(s) for s in shape) + ")"
        raise AdameshError(f"{path}: {key!r} has shape {a.shape} ({a.dtype}); expected {want} numbers")
    return _finite(a.astype(np.float64), key, path)


def _finite(a: np.ndarray, key: str, path: Path) -> np.ndarray:
    if a.dtype.kind not in "fiu":
        raise AdameshError(f"{path}: {key!r} is not numeric (dtype {a.dtype})")
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.argwhere(bad)[0][0]
        raise AdameshError(f"{path}: {key!r} has {int(bad.sum())} NaN/inf values (first at frame {first})")
    return a
