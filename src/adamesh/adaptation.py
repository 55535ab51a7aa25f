"""Personalising the expression model on a short reference clip (speech features + motion).

Methods (the expression benchmark compares them all):
    none     the generic model (null style), nothing learned from the reference
    style    the style encoder's embedding of the reference; no weight changes
    full     every weight fine-tuned on the reference (the paper's baseline)
    lora     one LoRA branch per target layer, rank = the sum of MoLoRA's ranks (matched size)
    molora   MoLoRA: branches of ranks `ranks` with learned gates (the method)

The base model is never modified: adaptation works on a copy. The tail of the reference
(`val_fraction`) is held out for early stopping; the adapter state with the lowest loss on it is
kept. The result is an `ExpressionProfile`: the adapter tensors and the style embedding.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output
from adamesh.models.expression import MOLORA_TARGETS, ExpressionModel, expression_loss
from adamesh.models.molora import (adapter_state_dict, add_molora, count_parameters, load_adapter_state,
                                   merge_adapters, train_only_adapters)

METHODS = ("none", "style", "full", "lora", "molora")
PROFILE_FORMAT = "adamesh.expression_profile"


@dataclass
class AdaptConfig:
    method: str = "molora"
    ranks: tuple[int, ...] = (1, 2, 4)
    combine: str = "gate"
    targets: list[str] = field(default_factory=lambda: list(MOLORA_TARGETS))
    lr: float = 3e-3  # adapters; full fine-tuning uses full_lr
    full_lr: float = 3e-4
    max_steps: int = 300
    batch: int = 4
    crop: int = 50  # frames per training crop (2 s)
    style_crop: int = 100  # the style encoder sees a random 4 s of the reference per step
    val_fraction: float = 0.2
    eval_every: int = 10
    patience: int = 6  # evaluations without improvement before stopping
    max_seconds: float = 30.0
    seed: int = 0
    min_frames: int = 25  # a reference shorter than 1 s is refused


@dataclass
class Reference:
    """A reference clip: speech features (T, F) and expression parameters (T, E) at `fps`."""

    features: np.ndarray
    params: np.ndarray
    fps: float
    identity: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return len(self.params) / self.fps


@dataclass
class ExpressionProfile:
    method: str
    style: torch.Tensor  # (d,) the style embedding to animate with
    adapter: dict[str, torch.Tensor]  # adapter tensors (molora/lora), all weights (full), or {}
    ranks: tuple[int, ...] = ()
    combine: str = "gate"
    targets: list[str] = field(default_factory=list)
    model_id: str = ""
    stats: dict = field(default_factory=dict)  # steps, seconds, losses, trainable parameters

    def apply(self, base: ExpressionModel) -> ExpressionModel:
        """A copy of `base` carrying this profile's weights (adapters merged: no inference cost)."""
        if self.model_id and self.model_id != model_fingerprint(base):
            raise AdameshError("this profile was made for another model; adapt again with this model")
        model = copy.deepcopy(base)
        if self.method in ("molora", "lora"):
            add_molora(model, self.targets, self.ranks, combine=self.combine)
            load_adapter_state(model, self.adapter)
            merge_adapters(model)
        elif self.method == "full":
            model.load_state_dict(self.adapter)
        model.eval()
        return model

    def save(self, path: str | os.PathLike) -> Path:
        meta = {"format": PROFILE_FORMAT, "method": self.method, "ranks": list(self.ranks),
                "combine": self.combine, "targets": self.targets, "model_id": self.model_id,
                "stats": self.stats}
        tensors = {"style": self.style.contiguous(), **{f"adapter.{k}": v.contiguous() for k, v in self.adapter.items()}}
        with atomic_output(path) as tmp:
            save_file(tensors, str(tmp), metadata={"adamesh": json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExpressionProfile":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("adamesh", "{}"))
            tensors = load_file(str(path))
        except (OSError, ValueError, SafetensorError) as e:
            raise AdameshError(f"cannot read profile {path}: {e}") from None
        if meta.get("format") != PROFILE_FORMAT:
            raise AdameshError(f"{path} is not an adamesh expression profile")
        adapter = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
        return cls(meta["method"], tensors["style"], adapter, tuple(meta["ranks"]), meta["combine"],
                   meta["targets"], meta["model_id"], meta.get("stats", {}))


def model_fingerprint(model: ExpressionModel) -> str:
    """A short hash of the base weights: a profile only fits the model it was made with."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if "lora_" not in k and ".gate" not in k:
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _crops(n: int, length: int, count: int, gen: torch.Generator) -> list[slice]:
    if n <= length:
        return [slice(0, n)]
    starts = torch.randint(0, n - length + 1, (count,), generator=gen).tolist()
    return [slice(s, s + length) for s in starts]


def adapt(base: ExpressionModel, reference: Reference, cfg: AdaptConfig | None = None) -> ExpressionProfile:
    """Personalise `base` (left untouched) on `reference`; see the module docstring for methods."""
    cfg = cfg or AdaptConfig()
    if cfg.method not in METHODS:
        raise AdameshError(f"unknown adaptation method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    n = len(reference.params)
    if n < cfg.min_frames:
        raise AdameshError(f"the reference is {reference.seconds:.1f} s long; at least "
                           f"{cfg.min_frames / reference.fps:.0f} s is needed")
    if len(reference.features) != n:
        raise AdameshError(f"reference features ({len(reference.features)} frames) and motion ({n} frames) differ")
    t0 = time.perf_counter()
    model_id = model_fingerprint(base)
    e = base.config.out_dim
    feats = torch.as_tensor(reference.features, dtype=torch.float32)
    params = torch.as_tensor(reference.params[:, :e], dtype=torch.float32)
    if cfg.method == "none":
        return ExpressionProfile("none", base.null_style.detach().clone(), {}, model_id=model_id,
                                 stats={"seconds": 0.0, "trainable": 0})
    n_val = max(1, int(round(n * cfg.val_fraction))) if cfg.method != "style" else 0
    train_f, train_p = feats[: n - n_val], params[: n - n_val]
    val_f, val_p = feats[n - n_val:], params[n - n_val:]
    model = copy.deepcopy(base)
    model.eval()  # dropout off and BatchNorm statistics frozen: 10 s cannot re-estimate them
    if cfg.method == "style":
        with torch.no_grad():
            style = model.style(params[None])[0]
        return ExpressionProfile("style", style, {}, model_id=model_id,
                                 stats={"seconds": time.perf_counter() - t0, "trainable": 0})
    ranks = cfg.ranks if cfg.method == "molora" else (sum(cfg.ranks),)
    if cfg.method == "full":
        trainable = [p for p in model.parameters()]
        lr = cfg.full_lr
    else:
        add_molora(model, cfg.targets, ranks, combine=cfg.combine if cfg.method == "molora" else "sum")
        trainable = train_only_adapters(model)
        lr = cfg.lr
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    ref_train = train_p[None]

    def state():
        return ({k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.method == "full"
                else adapter_state_dict(model))

    @torch.no_grad()
    def val_loss():
        style = model.style(ref_train)
        return expression_loss(model, val_f[None], model.normalise(val_p[None]), style,
                               torch.ones(1, len(val_f), dtype=torch.bool)).item()

    best_loss, best_state, best_step = val_loss(), state(), 0
    start_loss, waited, step = best_loss, 0, 0
    for step in range(1, cfg.max_steps + 1):
        crops = _crops(len(train_f), cfg.crop, cfg.batch, gen)
        f = torch.stack([train_f[s] for s in crops])
        p = torch.stack([train_p[s] for s in crops])
        (sc,) = _crops(len(train_p), cfg.style_crop, 1, gen)
        style = model.style(train_p[sc][None]).expand(len(crops), -1)
        loss = expression_loss(model, f, model.normalise(p), style, torch.ones(f.shape[:2], dtype=torch.bool))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % cfg.eval_every == 0:
            v = val_loss()
            if v < best_loss - 1e-5:
                best_loss, best_state, best_step, waited = v, state(), step, 0
            else:
                waited += 1
            if waited >= cfg.patience or time.perf_counter() - t0 > cfg.max_seconds:
                break
    if cfg.method == "full":
        model.load_state_dict(best_state)
    else:
        load_adapter_state(model, best_state)
    with torch.no_grad():
        style = model.style(params[None])[0]  # the whole reference, held-out tail included
    return ExpressionProfile(
        cfg.method, style.detach(), best_state, ranks if cfg.method != "full" else (), cfg.combine
        if cfg.method == "molora" else "sum", list(cfg.targets), model_id,
        stats={"seconds": round(time.perf_counter() - t0, 2), "steps": step, "best_step": best_step,
               "val_loss_before": round(start_loss, 4), "val_loss_after": round(best_loss, 4),
               "trainable": count_parameters(trainable), "config": {k: v for k, v in asdict(cfg).items()
                                                                    if k != "targets"}})
