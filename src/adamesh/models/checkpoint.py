"""Loading a model folder written by `adamesh.train`: the network, its speech front-end, its config."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from adamesh.errors import AdameshError
from adamesh.frontends import FrontEnd, load_frontend
from adamesh.models.expression import ExpressionConfig, ExpressionModel
from adamesh.models.pose import PoseAdapter, PoseConfig, PoseGPT, PoseVQVAE

FORMAT = "adamesh.model"


MODELS = {
    "expression": (ExpressionModel, ExpressionConfig),
    "pose_vq": (PoseVQVAE, PoseConfig),
    "pose_gpt": (PoseGPT, PoseConfig),
}


def load_model(
    folder: str | os.PathLike, which: str = "model", kind: str | None = None
) -> tuple[nn.Module, FrontEnd, dict]:
    """A trained model folder -> (model in eval mode, its front-end, its config.json)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise AdameshError(
            f"{folder} is not a model folder (config.json: {e}); train one with "
            "`adamesh train expression` or `adamesh train pose`"
        ) from None
    if (
        not isinstance(config, dict)
        or config.get("format") != FORMAT
        or config.get("kind") not in MODELS
        or kind
        and config["kind"] != kind
    ):
        raise AdameshError(f"{folder} does not hold {'an ' + kind if kind else 'a'} model of adamesh")
    weights = folder / f"{which}.safetensors"
    model = _build(folder, config, weights)
    try:
        model.load_state_dict(load_file(str(weights)))
    except (OSError, RuntimeError, SafetensorError) as e:
        raise AdameshError(f"cannot load {weights}: {e}") from None
    model.eval()
    return model, load_frontend(folder), config


def _build(folder: Path, config: dict, weights: Path) -> nn.Module:
    """The model config.json describes, built only once its shapes are known to be those of the
    weights file: a few edited bytes of JSON must not ask for gigabytes."""
    cls, config_cls = MODELS[config["kind"]]
    settings, fields = config.get("model"), {f.name: f for f in dataclasses.fields(config_cls)}
    damaged = f"{folder}/config.json is damaged"
    if not isinstance(settings, dict) or set(settings) - set(fields):
        unknown = sorted(set(settings) - set(fields)) if isinstance(settings, dict) else "not an object"
        raise AdameshError(f"{damaged} (its model settings: {unknown}); train the model again")
    numbers = {"int": (int,), "float": (int, float)}  # type(True) is bool: refused for both
    for name, value in settings.items():
        allowed = numbers.get(str(fields[name].type))
        if allowed and type(value) not in allowed:
            raise AdameshError(f"{damaged} ({name} is {value!r}, not a number of type {fields[name].type})")
    try:
        with safe_open(str(weights), "pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        with torch.device("meta"):  # shapes only, nothing allocated
            shapes = {k: tuple(v.shape) for k, v in cls(config_cls(**settings)).state_dict().items()}
    except (OSError, SafetensorError) as e:
        raise AdameshError(f"cannot load {weights}: {e}") from None
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError) as e:
        raise AdameshError(f"{damaged} (the model it describes cannot be built: {e})") from None
    if shapes != stored:
        wrong = sorted(k for k in shapes.keys() | stored.keys() if shapes.get(k) != stored.get(k))
        raise AdameshError(
            f"{damaged}, or {weights.name} is: their shapes differ ({', '.join(wrong[:3])}); "
            "train the model again"
        )
    return cls(config_cls(**settings))


def load_pose_model(folder: str | os.PathLike) -> tuple[PoseAdapter, FrontEnd]:
    """A folder written by `train_pose` -> (pose adapter, its front-end)."""
    folder = Path(folder)
    vq, frontend, _ = load_model(folder / "vqvae", kind="pose_vq")
    gpt = load_model(folder / "gpt", kind="pose_gpt")[0]
    try:
        from safetensors import safe_open

        with safe_open(str(folder / "gallery.safetensors"), "pt") as f:
            meta = f.metadata()
        gallery = load_file(str(folder / "gallery.safetensors"))
        matrices, counts = gallery["matrices"].numpy(), gallery["counts"].numpy()
        videos, n_units = json.loads(meta["videos"]), int(meta["n_units"])
        if not (isinstance(videos, list) and len(videos) == len(matrices) == len(counts)):
            raise ValueError("its videos, matrices and counts differ in number")
    except (OSError, SafetensorError, KeyError, TypeError, ValueError) as e:
        raise AdameshError(
            f"{folder} has no readable gallery.safetensors ({type(e).__name__}: {e}); train it with "
            "`adamesh train pose`"
        ) from None
    return PoseAdapter(vq, gpt, matrices, counts, videos, n_units), frontend
