"""Reading pickles made by others (FLAME models, tracker outputs): only the classes such files hold,
resolved by exact name (the module a pickle names is never imported: importing
numpy.f2py.__main__, say, runs a program), and no more memory than the file itself could fill."""

from __future__ import annotations

import numpy as np


def numpy_names() -> dict:
    """What numpy array pickles name: numpy.core in older files, numpy._core since numpy 2."""
    core = getattr(np, "_core", None) or np.core
    names = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for prefix in ("numpy.core", "numpy._core"):
        names |= {
            (f"{prefix}.multiarray", "_reconstruct"): core.multiarray._reconstruct,
            (f"{prefix}.multiarray", "scalar"): core.multiarray.scalar,
            (f"{prefix}.numeric", "_frombuffer"): core.numeric._frombuffer,
        }
    return names


def bounded_bytearray(limit: int):
    """bytearray for an unpickler: pickles build one from bytes they hold; `bytearray(n)` would
    make n zero bytes, so a count above `limit` (the file's size) is refused."""

    def make(*args):
        if args and isinstance(args[0], int) and args[0] > limit:
            raise ValueError(f"it asks for a bytearray of {args[0]:,} bytes, more than the file holds")
        return bytearray(*args)

    return make


def check_sizes(obj, limit: int, depth: int = 0) -> None:
    """Refuse arrays (in dicts, lists, tuples and objects' attributes) larger than `limit` bytes:
    numpy makes an array of any shape a pickle asks for without touching its memory, which the
    first copy of it would then fill."""
    if depth > 20:
        raise ValueError("it nests containers more than 20 deep")
    if isinstance(obj, np.ndarray):
        if obj.nbytes > limit:
            raise ValueError(f"it holds an array of {obj.nbytes:,} bytes, more than the file holds")
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        check_sizes(child, limit, depth + 1)
