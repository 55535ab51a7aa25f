"""Errors and warnings raised for users.

Every error a user can cause (bad file, bad option, missing rig) is an `AdameshError`: the CLI
prints its message as one line and exits non-zero. Anything else is a bug and is reported as such.
"""


class AdameshError(Exception):
    """A problem with the user's input or environment, with a message saying what to do."""


class MotionError(AdameshError, ValueError):
    """A motion file or array is malformed."""


class RigError(AdameshError):
    """A rig cannot be loaded or does not fit the motion."""


class AdameshWarning(UserWarning):
    """Something works but not as well as it could (missing shapes, fallback renderer)."""
