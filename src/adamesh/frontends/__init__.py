"""Speech front-ends: audio to per-frame features and semantic units at the motion frame rate.

`make_frontend(name, **options)` builds one by name; `save_frontend` / `load_frontend` keep a
front-end (its options and fitted units) next to a model, so a model always gets the features it
was trained on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output
from adamesh.frontends.base import DEFAULT_FPS, FeatureCache, Features, FrontEnd, KMeansUnits

__all__ = [
    "DEFAULT_FPS",
    "FRONTENDS",
    "FeatureCache",
    "Features",
    "FrontEnd",
    "load_frontend",
    "make_frontend",
    "save_frontend",
]

FRONTENDS = ("phonetic", "mel", "whisper", "hubert", "wav2vec2")


def make_frontend(name: str = "phonetic", **options) -> FrontEnd:
    if name == "phonetic":
        from adamesh.frontends.phonetic import PhoneticFrontEnd

        return PhoneticFrontEnd(**options)
    if name == "mel":
        from adamesh.frontends.mel import MelFrontEnd

        return MelFrontEnd(**options)
    if name == "whisper":
        from adamesh.frontends.whisper import WhisperFrontEnd

        return WhisperFrontEnd(**options)
    if name in ("hubert", "wav2vec2"):
        from adamesh.frontends.ssl import SSLFrontEnd

        return SSLFrontEnd(kind=name, **options)
    raise AdameshError(f"unknown speech front-end {name!r}; choose one of {', '.join(FRONTENDS)}")


def save_frontend(frontend: FrontEnd, folder: str | os.PathLike) -> None:
    """Write frontend.json (name and options) and, if fitted, frontend_units.safetensors."""
    folder = Path(folder)
    with atomic_output(folder / "frontend.json") as tmp:
        tmp.write_text(json.dumps({"name": frontend.name, "options": frontend.options()}, indent=1))
    if frontend.units_model is not None:
        with atomic_output(folder / "frontend_units.safetensors") as tmp:
            save_file({"centroids": frontend.units_model.centroids}, str(tmp))


def load_frontend(folder: str | os.PathLike) -> FrontEnd:
    folder = Path(folder)
    try:
        spec = json.loads((folder / "frontend.json").read_text())
    except (OSError, ValueError) as e:
        raise AdameshError(f"cannot read the speech front-end of {folder}: {e}") from None
    options = spec.get("options", {}) if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(options, dict):
        raise AdameshError(
            f"{folder}/frontend.json is damaged (it names no front-end); train the model again"
        )
    try:
        frontend = make_frontend(spec["name"], **options)
    except TypeError as e:
        raise AdameshError(f"{folder}/frontend.json is damaged ({e}); train the model again") from None
    units = folder / "frontend_units.safetensors"
    if units.is_file():
        frontend.units_model = KMeansUnits(np.asarray(load_file(str(units))["centroids"]))
        frontend.n_units = len(frontend.units_model.centroids)
    return frontend
