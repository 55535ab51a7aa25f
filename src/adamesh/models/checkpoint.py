"""Loading a model folder written by `adamesh.train`: the network, its speech front-end, its config."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors import SafetensorError
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
    if config.get("format") != FORMAT or config.get("kind") not in MODELS or kind and config["kind"] != kind:
        raise AdameshError(f"{folder} does not hold {'an ' + kind if kind else 'a'} model of adamesh")
    cls, config_cls = MODELS[config["kind"]]
    model = cls(config_cls(**config["model"]))
    weights = folder / f"{which}.safetensors"
    try:
        model.load_state_dict(load_file(str(weights)))
    except (OSError, RuntimeError, SafetensorError) as e:
        raise AdameshError(f"cannot load {weights}: {e}") from None
    model.eval()
    return model, load_frontend(folder), config


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
    except (OSError, SafetensorError) as e:
        raise AdameshError(
            f"{folder} has no readable gallery.safetensors ({e}); train it with `adamesh train pose`"
        ) from None
    return PoseAdapter(
        vq,
        gpt,
        gallery["matrices"].numpy(),
        gallery["counts"].numpy(),
        json.loads(meta["videos"]),
        int(meta["n_units"]),
    ), frontend
