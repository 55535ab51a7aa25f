"""Face rigs: parameters to vertices. `load_rig(spec)` is the one entry point.

Specs: ``builtin`` (procedural head written by this project), ``ict`` (ICT-FaceKit, installed with
``adamesh rig install ict-facekit --from PATH``), ``ict:PATH``, ``flame:PATH`` (a FLAME model file),
``gltf:PATH`` (a glTF/GLB avatar with ARKit-named morph targets).
"""

from __future__ import annotations

from adamesh.errors import RigError
from adamesh.rigs.base import BlendshapeRig, Rig

RIG_SPECS = "builtin, ict, ict:PATH, flame:PATH, gltf:PATH"


def load_rig(spec: str | Rig) -> Rig:
    """Load a rig from a spec string (see module docstring)."""
    if isinstance(spec, Rig):
        return spec
    kind, _, path = str(spec).partition(":")
    if kind == "builtin" and not path:
        from adamesh.rigs.builtin import builtin_rig

        return builtin_rig()
    if kind == "ict":
        from adamesh.rigs.ict import load_ict

        return load_ict(path or None)
    if kind == "flame" and path:
        from adamesh.rigs.flame import load_flame

        return load_flame(path)
    if kind == "gltf" and path:
        from adamesh.rigs.gltf import load_gltf

        return load_gltf(path)
    raise RigError(f"unknown rig {spec!r}; choose one of: {RIG_SPECS}")


def default_rig(spec: str | Rig | None = None) -> Rig:
    """`spec` if given, else the best face at hand: ICT-FaceKit when installed (a scanned human
    head), else the built-in head. What the demo shows, the live page offers first and the
    benchmarks measure vertex errors on."""
    if spec:
        return load_rig(spec)
    try:
        return load_rig("ict")
    except RigError:
        return load_rig("builtin")


__all__ = ["BlendshapeRig", "Rig", "default_rig", "load_rig", "RIG_SPECS"]
