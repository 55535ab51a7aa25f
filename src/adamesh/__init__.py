"""adamesh: speech in, personalised 3D facial animation out (an implementation of AdaMesh).

model = adamesh.load()                      # the shipped weights
profile = model.adapt("reference.mp4")      # a person's style from ~10 s of video
motion = model.animate("speech.wav", profile)
"""

from adamesh.errors import AdameshError
from adamesh.motion import ARKIT, FLAME, Motion, load_motion, save_motion
from adamesh.version import __version__

_LAZY = {
    "Animator": "adamesh.api",
    "Profile": "adamesh.profile",
    "AdaptConfig": "adamesh.adapt.expression",
    "AdapterSpec": "adamesh.models.molora",
    "load_rig": "adamesh.rigs",
    "load_audio": "adamesh.audio",
}


def load(model=None):
    """Load a model folder (None: the weights shipped with the package); see adamesh.api."""
    from adamesh.api import load as _load

    return _load(model)


def __getattr__(name):  # torch is imported on first use, so `import adamesh` stays quick
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adamesh' has no attribute {name!r}")


__all__ = [
    "__version__",
    "AdameshError",
    "ARKIT",
    "FLAME",
    "Motion",
    "load_motion",
    "save_motion",
    "load_rig",
    "load_audio",
    "load",
    "Animator",
    "Profile",
    "AdaptConfig",
    "AdapterSpec",
]
