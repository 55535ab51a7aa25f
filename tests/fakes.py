"""Stand-ins for files adamesh reads but cannot ship (FLAME is not redistributable).

`fake_flame_model` builds a small head in FLAME's official layout: a sphere facing +z with two
eyeballs, five joints (0 root at the bottom, 1 neck, 2 jaw, 3/4 eyes), the jaw skinning the lower
front, smooth random blend shapes and pose correctives. `write_fake_flame` saves it as the official
pickle (sparse J_regressor), as .npz, or as a pickle whose arrays are chumpy objects.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

EYE_CENTRES = np.array([[0.032, 0.025, 0.082], [-0.032, 0.025, 0.082]])


def _uv_sphere(centre, radius: float, n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (poles first and last) and triangles of a latitude-longitude sphere; longitude 0
    points along +z so the front midline has vertices."""
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + centre
    last = len(verts) - 1
    idx = lambda i, j: 1 + i * n_lon + j % n_lon  # noqa: E731
    faces = [(0, idx(0, j + 1), idx(0, j)) for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j), idx(i + 1, j + 1)
            faces += [(a, b, d), (a, d, c)]
    faces += [(last, idx(n_lat - 2, j), idx(n_lat - 2, j + 1)) for j in range(n_lon)]
    return verts, np.array(faces)


def fake_flame_model(seed: int = 0) -> dict:
    """A FLAME-layout model dict (~800 vertices) with numpy arrays and a sparse J_regressor."""
    rng = np.random.default_rng(seed)
    head, head_f = _uv_sphere((0, 0, 0), 0.1, 24, 32)
    parts, faces = [head], [head_f]
    for c in EYE_CENTRES:
        v, f = _uv_sphere(c, 0.012, 6, 8)
        faces.append(f + sum(map(len, parts)))
        parts.append(v)
    verts = np.concatenate(parts)
    n, n_head, n_eye = len(verts), len(head), len(parts[1])
    x, y, z = verts.T

    # Skinning: the lower front is the jaw (ramping in over 2 cm), the bottom of the head the root,
    # the rest the neck; each eyeball follows its eye joint. Vertices above y = -0.02 have no jaw.
    weights = np.zeros((n, 5))
    jaw = np.clip((-0.02 - y) / 0.02, 0, 1) * np.clip(z / 0.03, 0, 1)
    root = np.clip((-0.07 - y) / 0.02, 0, 1) * (1 - jaw)
    weights[:, 0], weights[:, 1], weights[:, 2] = root, 1 - jaw - root, jaw
    weights[n_head:] = 0
    weights[n_head : n_head + n_eye, 3] = 1
    weights[n_head + n_eye :, 4] = 1

    # Joints regressed as averages of vertex sets: bottom cap, a ring at neck height, a band at jaw
    # height (its centre lies on the axis, behind the mouth), each eyeball.
    ids = np.arange(n)
    sets = [
        (ids < n_head) & (y < -0.09),
        (ids < n_head) & (np.abs(y + 0.06) < 0.005),
        (ids < n_head) & (y > -0.05) & (y < -0.02),
        (ids >= n_head) & (ids < n_head + n_eye),
        ids >= n_head + n_eye,
    ]
    dense = np.stack([s / s.sum() for s in sets])

    def smooth(k: int, scale: float) -> np.ndarray:  # (V, 3, k) low-frequency random fields
        freq, phase = rng.normal(0, 15, (k, 3, 3)), rng.uniform(0, 2 * np.pi, (k, 3))
        return scale * np.sin(np.einsum("vd,kcd->vck", verts, freq) + phase.T[None])

    return {
        "v_template": verts,
        "f": np.concatenate(faces).astype(np.uint32),
        "shapedirs": smooth(400, 1e-3),
        "posedirs": smooth(36, 1e-3),
        "J_regressor": scipy.sparse.csc_matrix(dense),
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "bs_style": "lbs",  # extra keys in the official file are ignored
    }


def write_fake_flame(path: str | os.PathLike, fmt: str = "pkl", **overrides) -> Path:
    """Write the fake model as ``pkl`` (official layout), ``npz`` (dense arrays) or ``chumpy``
    (official layout with v_template, shapedirs and weights as chumpy ``Ch`` objects). Keyword
    arguments replace keys; a value of None removes the key."""
    model = fake_flame_model()
    model.update(overrides)
    model = {k: v for k, v in model.items() if v is not None}
    path = Path(path)
    if fmt == "npz":
        dense = {k: v.toarray() if scipy.sparse.issparse(v) else v for k, v in model.items()}
        with open(path, "wb") as fh:
            np.savez(fh, **dense)
        return path
    if fmt not in ("pkl", "chumpy"):
        raise ValueError(f"unknown fake FLAME format {fmt!r}")
    if fmt == "pkl":
        with open(path, "wb") as fh:
            pickle.dump(model, fh, protocol=2)
        return path
    # A fake chumpy, importable only while pickling: the loader must not need it.
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x, self.label, self._dirty_vars = x, None, set()

        def __getstate__(self):  # like chumpy: the attribute dict, array under 'x'
            return dict(self.__dict__)

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch, pkg.ch = Ch, mod
    sys.modules.update({"chumpy": pkg, "chumpy.ch": mod})
    try:
        for key in ("v_template", "shapedirs", "weights"):
            if key in model:
                model[key] = Ch(model[key])
        with open(path, "wb") as fh:
            pickle.dump(model, fh, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path
