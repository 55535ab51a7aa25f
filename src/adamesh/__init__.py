"""adamesh: speech in, personalised 3D facial animation out (an implementation of AdaMesh)."""

from adamesh.errors import AdameshError
from adamesh.motion import ARKIT, FLAME, Motion, load_motion, save_motion
from adamesh.rigs import load_rig


def load(model=None):
    """Load a model folder (None: the weights shipped with the package); see adamesh.api."""
    from adamesh.api import load as _load

    return _load(model)


__version__ = "0.1.0"
__all__ = ["AdameshError", "ARKIT", "FLAME", "Motion", "load_motion", "save_motion", "load_rig", "load"]
