"""ICT-FaceKit (USC ICT, MIT licence) as an ARKit blendshape rig.

`install_ict` reads the user's copy of the upstream layout (the ``FaceXModel/`` folder, the
repository folder, or the GitHub zip of the repository, from a path or a URL) and writes one
compact cached rig file; `load_ict` loads it. ICT's 53 expression meshes map to ARKit's 52:
``browInnerUp`` and ``cheekPuff`` are split into _L/_R upstream and are summed here, ``tongueOut``
does not exist upstream and stays zero. Head pose is a rigid transform of the whole mesh.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from adamesh.errors import RigError
from adamesh.fileio import atomic_output, cache_dir, npz_reason
from adamesh.geometry import triangulate
from adamesh.motion import ARKIT, ARKIT_BLENDSHAPES
from adamesh.rigs.base import EYE_WHITE, IRIS, PUPIL, SKIN, BlendshapeRig, arkit_name, moved_vertices

CACHE_NAME = "ict-facekit.npz"
# Upstream vertex ranges (README of ICT-FaceKit): keep face, head, sockets, mouth, teeth, eyeballs;
# drop lacrimal fluid, the transparent eye-occlusion shells and eyelashes, which an opaque
# renderer would draw as clutter over the eyes.
N_KEEP = 24591
FACE_END, HEAD_END = 9409, 11248
MOUTH = (11248, 13294)
GUMS_TONGUE = (14062, 17039)
TEETH = (17039, 21451)
EYEBALLS = (21451, 24591)
EYEBALL_SPLIT = 23021  # left eyeball 21451-23020, right 23021-24590


def _read_obj(text: str, with_faces: bool = False):
    verts, polys = [], []
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append(line.split()[1:4])
        elif with_faces and line.startswith("f "):
            polys.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
    v = np.asarray(verts, np.float32)
    return (v, polys) if with_faces else v


# ICT-FaceKit's files are a few MB each, about 200 MB in all: a zip declaring far more is a bomb.
MAX_ENTRY_BYTES, MAX_UNPACKED_BYTES = 100 << 20, 1 << 30


class _Source:
    """Files of a FaceXModel folder, whether on disk or inside a zip."""

    def __init__(self, source: str):
        self.tmp, self.zip, self.unpacked = None, None, 0
        try:
            self._open(source)
        except BaseException:
            self.close()  # a downloaded copy goes, whatever went wrong
            raise

    def _open(self, source: str) -> None:
        if re.match(r"^(https?|ftp|file)://", source):
            self.tmp = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)
            try:
                with urllib.request.urlopen(source, timeout=60) as r:
                    self.tmp.write(r.read())
            except Exception as e:
                raise RigError(f"cannot download ICT-FaceKit from {source}: {e}") from None
            self.tmp.close()
        path = Path(self.tmp.name if self.tmp else source)
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise RigError(f"{source} is neither a folder nor a zip of ICT-FaceKit") from None
            hits = [n for n in self.zip.namelist() if n.endswith("FaceXModel/generic_neutral_mesh.obj")]
            if not hits:
                raise RigError(f"{source} holds no FaceXModel/generic_neutral_mesh.obj")
            self.prefix = hits[0][: -len("generic_neutral_mesh.obj")]
        elif path.is_dir():
            for cand in (path, path / "FaceXModel"):
                if (cand / "generic_neutral_mesh.obj").is_file():
                    self.dir = cand
                    break
            else:
                raise RigError(f"{path} has no generic_neutral_mesh.obj (give the FaceXModel folder)")
        else:
            raise RigError(f"ICT-FaceKit source {path} does not exist")

    def read(self, name: str) -> str:
        try:
            if self.zip:
                info = self.zip.getinfo(self.prefix + name)
                self.unpacked += info.file_size
                if info.file_size > MAX_ENTRY_BYTES or self.unpacked > MAX_UNPACKED_BYTES:
                    raise RigError(
                        f"ICT-FaceKit zip: {name} unpacks to {info.file_size:,} bytes ({self.unpacked:,} "
                        "so far), far more than ICT-FaceKit's files; this is not the upstream zip"
                    )
                return self.zip.read(info).decode("utf-8", "replace")
            return (self.dir / name).read_text(errors="replace")
        except (KeyError, FileNotFoundError):
            raise RigError(f"ICT-FaceKit is missing {name}") from None

    def names(self) -> list[str]:
        if self.zip:
            return [n[len(self.prefix) :] for n in self.zip.namelist() if n.startswith(self.prefix)]
        return [p.name for p in self.dir.iterdir()]

    def close(self):
        if self.zip:
            self.zip.close()
        if self.tmp:
            self.tmp.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp.name)


def import_ict(source: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an upstream ICT-FaceKit layout into the arrays of the cached rig file."""
    src = _Source(str(source))
    try:
        try:
            index = json.loads(src.read("vertex_indices.json"))
            index["expressions"] = [str(n) for n in index["expressions"]]
            landmark_verts = np.asarray(index["idx_to_landmark_verts"], np.int32)
        except (ValueError, KeyError, TypeError) as e:
            raise RigError(
                f"ICT-FaceKit's vertex_indices.json is damaged ({type(e).__name__}: {e})"
            ) from None
        neutral, polys = _read_obj(src.read("generic_neutral_mesh.obj"), with_faces=True)
        if len(neutral) < N_KEEP:
            raise RigError(f"generic_neutral_mesh.obj has {len(neutral)} vertices, expected 26719")
        faces = triangulate([p for p in polys if max(p) < N_KEEP])
        keep = neutral[:N_KEEP]
        deltas = np.zeros((52, N_KEEP, 3), np.float32)
        seen = []
        for name in index["expressions"]:
            shape = _read_obj(src.read(f"{name}.obj"))
            if shape.shape != neutral.shape:
                raise RigError(f"{name}.obj has {len(shape)} vertices, the neutral mesh {len(neutral)}")
            arkit = arkit_name(name)  # ICT's _L is the character's left; split shapes are summed
            if arkit is None:
                continue
            deltas[ARKIT_BLENDSHAPES.index(arkit)] += shape[:N_KEEP] - keep
            seen.append(arkit)
        ids = sorted(n for n in src.names() if re.fullmatch(r"identity\d+\.obj", n))
        identity = (
            np.stack([_read_obj(src.read(n))[:N_KEEP] - keep for n in ids])
            if ids
            else np.zeros((0, N_KEEP, 3))
        )
        missing = [n for n in ARKIT_BLENDSHAPES if n not in seen]
        return {
            "neutral": keep,
            "faces": faces,
            "deltas": deltas.astype(np.float16),  # cm; float16 keeps 10 micrometre precision
            "identity": identity.astype(np.float16),
            "landmarks": landmark_verts,
            "missing": np.array(missing, dtype=str),
        }
    finally:
        src.close()


def install_ict(source: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """Import ICT-FaceKit from `source` and write the compact rig to the cache; return its path."""
    arrays = import_ict(source)
    target = Path(cache) if cache else cache_dir() / "rigs" / CACHE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, format=np.array("adamesh.rig.ict"), version=np.array(1), **arrays)
    return target


def load_ict(path: str | os.PathLike | None = None) -> BlendshapeRig:
    """The installed ICT rig (path None), a cached rig file (.npz), or an upstream folder/zip."""
    if path is None:
        path = cache_dir() / "rigs" / CACHE_NAME
        if not path.is_file():
            raise RigError(
                "the ICT-FaceKit rig is not installed; run: adamesh rig install ict-facekit --from "
                "PATH_OR_URL (the FaceXModel folder or the GitHub zip of ICT-VGL/ICT-FaceKit)"
            )
    path = Path(path)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z.get("format", "")) != "adamesh.rig.ict":
                    raise RigError(f"{path} is not an adamesh ICT rig file")
                arrays = {k: z[k] for k in z.files}
        except RigError:
            raise
        except Exception as e:
            raise RigError(
                f"cannot read ICT rig file {path}: {npz_reason(e)}; reinstall it with `adamesh rig install`"
            ) from None
    else:
        arrays = import_ict(path)
    return _make_rig(arrays, str(path))


def _make_rig(a: dict, source: str) -> BlendshapeRig:
    neutral = a["neutral"].astype(np.float32)
    deltas = a["deltas"].astype(np.float32)
    n = len(neutral)
    lm = a["landmarks"].astype(np.int64)
    eye_y = neutral[lm[36:48], 1].mean()
    face = np.arange(FACE_END)
    lips = moved_vertices(deltas, ["mouthRollLower", "mouthRollUpper"], 0.4, FACE_END)
    eyes = np.union1d(np.arange(*EYEBALLS), moved_vertices(deltas, ["eyeBlinkLeft", "eyeBlinkRight"], 0.2))
    regions = {
        "face": face,
        "lips": lips,
        "upper_face": face[neutral[face, 1] > eye_y - 1.0],
        "eyes": eyes,
        "jaw": moved_vertices(deltas, ["jawOpen"], 0.5, HEAD_END),
    }
    colors = np.tile(np.asarray(SKIN, np.float32), (n, 1))
    colors[MOUTH[0] : MOUTH[1]] = (0.45, 0.14, 0.15)
    colors[GUMS_TONGUE[0] : GUMS_TONGUE[1]] = (0.70, 0.30, 0.32)
    colors[TEETH[0] : TEETH[1]] = (0.95, 0.93, 0.85)
    for lo, hi in ((EYEBALLS[0], EYEBALL_SPLIT), (EYEBALL_SPLIT, EYEBALLS[1])):
        ball = neutral[lo:hi]
        center = ball.mean(0)
        rel = ball - center
        front = rel[:, 2] / np.linalg.norm(rel, axis=1)  # cos of the angle from the gaze (+z)
        col = np.tile(np.array(EYE_WHITE, np.float32), (hi - lo, 1))
        col[front > 0.93] = IRIS
        col[front > 0.985] = PUPIL
        colors[lo:hi] = col
    lip_mask = np.zeros(n, bool)
    lip_mask[moved_vertices(deltas, ["mouthRollLower", "mouthRollUpper"], 0.65, FACE_END)] = True
    colors[lip_mask] = (0.74, 0.42, 0.42)
    chin = neutral[lm[8]]
    neck = neutral[FACE_END:HEAD_END]
    band = neck[abs(neck[:, 1] - chin[1]) < 2.0]
    pivot = np.array([0.0, chin[1], band[:, 2].mean() if len(band) else chin[2] - 8.0], np.float32)
    missing = tuple(str(m) for m in a["missing"])
    return BlendshapeRig(
        name="ict",
        space=ARKIT,
        neutral=neutral,
        faces=a["faces"],
        colors=colors,
        regions=regions,
        pivot=pivot,
        units_per_meter=100.0,
        landmarks=lm,
        identity=a["identity"].astype(np.float32) if len(a["identity"]) else None,
        shapes=deltas,
        missing=missing,
        info={
            "source": source,
            "licence": "ICT-FaceKit, MIT licence (USC Institute for Creative Technologies)",
            "missing shapes": ", ".join(missing) or "none",
            "identity modes": len(a["identity"]),
        },
    )
