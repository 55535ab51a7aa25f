"""Personalising the expression model on a short reference clip (speech features + motion).

Methods (the expression benchmark compares them all):
    none     the generic model (null style), nothing learned from the reference
    style    the style encoder's embedding of the reference; no weight changes
    full     every weight fine-tuned on the reference (the paper's baseline)
    lora     one LoRA branch per target layer, rank = the sum of MoLoRA's ranks (matched size)
    molora   MoLoRA: branches of ranks `ranks` with learned gates (the method)

The base model is never modified: adaptation works on a copy. `members` adapters (for `full`,
fine-tuned copies) can be trained from different seeds (initial weights, crops) and averaged,
adapters with their branches side by side in one adapter: on a 3 s reference single adapters
differed by seed as much as by method (README: Real video), and the mean keeps what they agree on.
Within an 18 s budget one adapter trained longer did better than three shorter ones, on real
people and on the synthetic demo (docs/people.md), so one is the default.
Each member holds out the tail of the reference (`val_fraction`) for early stopping; the adapter
state with the lowest loss on it is kept, but only from `min_steps` on: on a 0.5-2 s slice the
loss is too noisy to judge the first steps, and it stopped every method after 10-20 steps, before
the lips had changed (on held-out test sentences LVE kept falling until 60-120 steps; README:
Expression benchmark). For the same reason the slice does not decide whether to keep the adapter
at all: a rule that dropped it when the slice was no better than the start dropped it for held-out
synthetic speakers whose test sentences it improved. Channels the reference cannot teach (constant
in the training data, or not measured by the tracker) keep the base model's prediction as their
target. The result is an `ExpressionProfile`: the adapter tensors and the style embedding.

Lip timing: a few seconds of reference let an adapter memorise that clip's speech, and on other
speech it then moved the lips at the wrong moments (3 s GRID references, lip sync with other
clips' audio: r 0.54, the base model 0.61; 0.60-0.61 with this term). So every step also feeds a
crop of unrelated speech (a few corpus sentences, `timing_speech`) and penalises
`timing_weight * (1 - r)`, r the correlation of the adapted and the base model's lip gap
(jawOpen - mouthClose) there. r ignores scale and offset: the adapter may change how far and
around which rest the lips move, not when (README: Real video).
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
from adamesh.evaluation import lip_gap
from adamesh.fileio import atomic_output
from adamesh.models.expression import MOLORA_TARGETS, ExpressionModel, expression_loss, output_loss
from adamesh.models.molora import (
    adapter_state_dict,
    add_molora,
    average_adapters,
    count_parameters,
    load_adapter_state,
    merge_adapters,
    train_only_adapters,
)
from adamesh.models.pose import PoseAdapter, blend_weights, style_distance
from adamesh.motion import ARKIT

METHODS = ("none", "style", "full", "lora", "molora")
PROFILE_FORMAT = "adamesh.expression_profile"


@dataclass
class AdaptConfig:
    method: str = "molora"
    ranks: tuple[int, ...] = (1, 2, 4)
    combine: str = "gate"
    alpha: float | None = None  # LoRA scaling alpha / r per branch; None: alpha = r (every scale 1)
    targets: list[str] = field(default_factory=lambda: list(MOLORA_TARGETS))
    lr: float = 3e-3  # adapters; full fine-tuning uses full_lr
    full_lr: float = 3e-4
    max_steps: int = 300
    batch: int = 4
    crop: int = 50  # frames per training crop (2 s)
    style_crop: int = 100  # the style encoder sees a random 4 s of the reference per step
    val_fraction: float = 0.2
    eval_every: int = 10
    min_steps: int = 60  # the held-out slice only decides from here on (see the module docstring)
    patience: int = 6  # evaluations without improvement before stopping
    max_seconds: float = 18.0  # all members together (docs/people.md: one adapter for 18 s did best)
    members: int = 1  # adapters trained from different seeds and averaged (see the module docstring)
    seed: int = 0
    min_frames: int = 25  # a reference shorter than 1 s is refused
    timing_weight: float = 1.0  # the lip-timing term on unrelated speech (module docstring); 0: off


@dataclass
class Reference:
    """A reference clip: speech features (T, F) and expression parameters (T, E) at `fps`."""

    features: np.ndarray
    params: np.ndarray
    fps: float
    identity: np.ndarray | None = None
    unobserved: tuple[str, ...] = ()  # expression channels the reference does not measure (a tracker's blind spots)

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
    alpha: float | None = None
    stats: dict = field(default_factory=dict)  # steps, seconds, losses, trainable parameters

    def apply(self, base: ExpressionModel, strength: float = 1.0) -> ExpressionModel:
        """A copy of `base` carrying this profile's weights (adapters merged: no inference cost).

        `strength` scales the learned weight change: 0 is the base model, 1 the profile, above 1
        an exaggeration (the adapter's delta B @ A is linear in B)."""
        if self.model_id and self.model_id != model_fingerprint(base):
            raise AdameshError("this profile was made for another model; adapt again with this model")
        model = copy.deepcopy(base)
        if self.method in ("molora", "lora"):
            add_molora(model, self.targets, self.ranks, self.alpha, combine=self.combine)
            load_adapter_state(model, scaled_adapter(self.adapter, strength))
            merge_adapters(model)
        elif self.method == "full":
            own = base.state_dict()
            model.load_state_dict({k: own[k] + strength * (v - own[k]) if v.is_floating_point() else v
                                   for k, v in self.adapter.items()})
        model.eval()
        return model

    def parts(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(header, tensors) as stored in a file; `from_parts` reads them back."""
        meta = {"format": PROFILE_FORMAT, "method": self.method, "ranks": list(self.ranks),
                "combine": self.combine, "alpha": self.alpha, "targets": self.targets, "model_id": self.model_id,
                "stats": self.stats}
        return meta, {"style": self.style, **{f"adapter.{k}": v for k, v in self.adapter.items()}}

    @classmethod
    def from_parts(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "ExpressionProfile":
        adapter = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
        return cls(meta["method"], tensors["style"], adapter, tuple(meta["ranks"]), meta["combine"],
                   meta["targets"], meta["model_id"], alpha=meta.get("alpha"), stats=meta.get("stats", {}))

    def save(self, path: str | os.PathLike) -> Path:
        meta, tensors = self.parts()
        return _save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExpressionProfile":
        return cls.from_parts(*_load_tensors(path, PROFILE_FORMAT, "profile", "an adamesh expression profile"))


def _save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Tensors and a JSON header in one safetensors file, written atomically."""
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"adamesh": json.dumps(meta)})
    return Path(path)


def _load_tensors(path: str | os.PathLike, fmt: str, kind: str, what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, tensors) of a file written by _save_tensors whose header says `fmt`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("adamesh", "{}"))
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as e:
        raise AdameshError(f"cannot read {kind} {path}: {e}") from None
    if meta.get("format") != fmt:
        raise AdameshError(f"{path} is not {what}")
    return meta, tensors


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


def scaled_adapter(state: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Adapter tensors whose weight change is `fraction` of `state`'s (the delta B @ A is linear in B)."""
    return {k: v * fraction if "lora_B" in k else v for k, v in state.items()}


def _learnable(model: ExpressionModel, feats: torch.Tensor, params: torch.Tensor, unobserved) -> torch.Tensor:
    """The reference's expression with the channels it cannot teach replaced by the base model's own
    prediction (generic style), so adaptation leaves them as they were: channels the training data
    never moved (their z-scores would be huge and swamp the loss: a tracked jawForward of 0.1 is
    100 standard deviations of a corpus that never moves it) and channels the reference does not
    measure (a tracker's blind spots, such as gaze from landmarks)."""
    keep = model.param_std <= 1.5e-3  # the statistics' floor: constant in training
    names = ARKIT.channels[: len(keep)] if len(keep) == ARKIT.n_expression else ()
    for name in unobserved:
        if name in names:
            keep[names.index(name)] = True
    if not keep.any():
        return params
    with torch.no_grad():
        generic = model.predict(feats)
    return torch.where(keep, generic, params)


_TIMING_SPEECH: dict = {}


def timing_speech(frontend, clips: int = 8, fps: float = 25.0) -> list[np.ndarray]:
    """Features of `clips` corpus sentences in as many voices (the first sentence of the first
    training speakers): the unrelated speech of the lip-timing term. espeak makes them in a second
    or two; they are kept for the session."""
    key = (frontend.key(), clips, fps)
    if key not in _TIMING_SPEECH:
        from adamesh.data.corpus import CorpusConfig, make_speakers, synthesize_clip

        corpus = CorpusConfig()
        speakers = [(i, s) for i, s in enumerate(make_speakers(corpus)) if s.split == "train"][:clips]
        _TIMING_SPEECH[key] = [frontend(synthesize_clip(s, 0, corpus, i)[0], fps).features for i, s in speakers]
    return _TIMING_SPEECH[key]


def _correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm() + 1e-6)


def adapt(base: ExpressionModel, reference: Reference, cfg: AdaptConfig | None = None,
          speech: list[np.ndarray] | None = None) -> ExpressionProfile:
    """Personalise `base` (left untouched) on `reference`; see the module docstring for methods.

    `speech`: features of unrelated speech for the lip-timing term (`timing_speech(frontend)`);
    without it (or for a model whose outputs are not ARKit) the term is off."""
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
    frozen = copy.deepcopy(base).eval()  # dropout off, BatchNorm statistics frozen: 10 s cannot re-estimate them
    params = _learnable(frozen, feats, params, reference.unobserved)
    if cfg.method == "style":
        with torch.no_grad():
            style = frozen.style(params[None])[0]
        return ExpressionProfile("style", style, {}, model_id=model_id,
                                 stats={"seconds": time.perf_counter() - t0, "trainable": 0})
    ranks = cfg.ranks if cfg.method == "molora" else (sum(cfg.ranks),)
    n_val = max(1, int(round(n * cfg.val_fraction)))
    split = (feats[: n - n_val], params[: n - n_val], feats[n - n_val:], params[n - n_val:])
    timing = None
    if speech and cfg.timing_weight > 0 and e == ARKIT.n_expression:
        with torch.no_grad():
            timing = [(f, lip_gap(frozen.predict(f), ARKIT.channels))
                      for f in (torch.as_tensor(x, dtype=torch.float32) for x in speech if len(x) >= cfg.crop)]
    members = [_train_member(frozen, split, cfg, ranks, cfg.seed + k, t0 + (k + 1) * cfg.max_seconds / cfg.members,
                             timing) for k in range(cfg.members)]
    states = [state for state, _ in members]
    model = copy.deepcopy(frozen)
    if cfg.method == "full":  # the mean of the members' weights
        state = {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
                 for k, v in states[0].items()}
        model.load_state_dict(state)
    else:
        state = average_adapters(states)
        add_molora(model, cfg.targets, ranks * cfg.members, cfg.alpha if cfg.method == "molora" else None,
                   combine=cfg.combine if cfg.method == "molora" else "sum")
        load_adapter_state(model, state)
    model.eval()
    with torch.no_grad():
        style = model.style(params[None])[0]  # the whole reference, held-out tail included
    per_member = {k: [stats[k] for _, stats in members] for k in members[0][1] if k != "trainable"}
    return ExpressionProfile(
        cfg.method, style.detach(), state, ranks * cfg.members if cfg.method != "full" else (), cfg.combine
        if cfg.method == "molora" else "sum", list(cfg.targets), model_id,
        stats={"seconds": round(time.perf_counter() - t0, 2), **per_member,
               "trainable": sum(stats["trainable"] for _, stats in members),  # every member's, all trained
               "config": {k: v for k, v in asdict(cfg).items() if k != "targets"}},
        alpha=cfg.alpha if cfg.method == "molora" else None)


def _train_member(frozen: ExpressionModel, split, cfg: AdaptConfig, ranks: tuple[int, ...], seed: int,
                  deadline: float, timing: list | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Train one adapter (or one full fine-tune) from `seed`: its own initial weights and crops.
    `timing`: (features, base lip gap) pairs of unrelated speech for the lip-timing term.
    Returns the state to keep (best on the held-out slice) and its statistics."""
    train_f, train_p, val_f, val_p = split
    torch.manual_seed(seed)  # the adapters' initial weights
    model = copy.deepcopy(frozen)
    if cfg.method == "full":
        trainable, lr = list(model.parameters()), cfg.full_lr
    else:
        add_molora(model, cfg.targets, ranks, cfg.alpha if cfg.method == "molora" else None,
                   combine=cfg.combine if cfg.method == "molora" else "sum")
        trainable, lr = train_only_adapters(model), cfg.lr
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)

    def state():
        return ({k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.method == "full"
                else adapter_state_dict(model))

    @torch.no_grad()
    def val_loss():
        style = model.style(train_p[None])
        return expression_loss(model, val_f[None], model.normalise(val_p[None]), style,
                               torch.ones(1, len(val_f), dtype=torch.bool)).item()

    start_loss, waited, step = val_loss(), 0, 0
    best_loss, best_state, best_step = float("inf"), state(), 0
    for step in range(1, cfg.max_steps + 1):
        crops = _crops(len(train_f), cfg.crop, cfg.batch, gen)
        f = torch.stack([train_f[s] for s in crops])
        p = torch.stack([train_p[s] for s in crops])
        mask = torch.ones(p.shape[:2], dtype=torch.bool)
        (sc,) = _crops(len(train_p), cfg.style_crop, 1, gen)
        style = model.style(train_p[sc][None]).expand(len(crops), -1)
        if timing:  # the unrelated crop rides in the same batch (eval mode: the rows do not interact)
            other, base_gap = timing[int(torch.randint(0, len(timing), (1,), generator=gen))]
            (oc,) = _crops(len(other), f.shape[1], 1, gen)
            f, style = torch.cat([f, other[oc][None]]), torch.cat([style, style[:1]])
        head, post = model(f, style)
        loss = output_loss(head[: len(p)], post[: len(p)], model.normalise(p), mask)
        if timing:
            gap = lip_gap(model.denormalise(post[-1]), ARKIT.channels)
            loss = loss + cfg.timing_weight * (1 - _correlation(gap, base_gap[oc]))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % cfg.eval_every == 0 and step >= min(cfg.min_steps, cfg.max_steps):
            v = val_loss()
            if v < best_loss - 1e-5:
                best_loss, best_state, best_step, waited = v, state(), step, 0
            else:
                waited += 1
            if waited >= cfg.patience:
                break
        if time.perf_counter() > deadline:  # checked every step: the budget holds on a busy machine too
            if best_step == 0:  # out of time before the slice could judge: what was learned so far
                best_loss, best_state, best_step = val_loss(), state(), step
            break
    return best_state, {"steps": step, "best_step": best_step, "val_loss_before": round(start_loss, 4),
                        "val_loss_after": round(best_loss, 4), "trainable": count_parameters(trainable)}


# ---------------------------------------------------------------- pose style: retrieval, no training

POSE_RETRIEVALS = ("top1", "blend")
POSE_PROFILE_FORMAT = "adamesh.pose_style"


@dataclass
class PoseStyle:
    """The pose style of a reference: PoseGPT's style vector and how it was found."""

    style: torch.Tensor  # (style_dim,)
    method: str  # top1 or blend
    chosen: list[str]  # gallery videos used, nearest first
    weights: list[float]
    distances: dict[str, float]  # to every gallery video
    posture: np.ndarray  # (P,) the reference's mean head pose: the resting pose to animate about

    model_id: str = ""  # fingerprint of the PoseGPT whose style table the embedding comes from

    def to_dict(self) -> dict:
        return {"method": self.method, "chosen": self.chosen, "weights": self.weights, "distances": self.distances,
                "posture": [round(float(x), 5) for x in self.posture]}

    def parts(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"format": POSE_PROFILE_FORMAT, "model_id": self.model_id, **self.to_dict()}
        return meta, {"style": self.style, "posture": torch.as_tensor(self.posture)}

    @classmethod
    def from_parts(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "PoseStyle":
        return cls(tensors["style"], meta["method"], meta["chosen"], meta["weights"], meta["distances"],
                   tensors["posture"].numpy(), meta["model_id"])

    def save(self, path: str | os.PathLike) -> Path:
        meta, tensors = self.parts()
        return _save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoseStyle":
        return cls.from_parts(*_load_tensors(path, POSE_PROFILE_FORMAT, "pose style", "an adamesh pose style"))

    def check(self, adapter: PoseAdapter) -> None:
        if self.model_id and self.model_id != pose_fingerprint(adapter):
            raise AdameshError("this pose style was retrieved with another pose model; adapt again with this model")


def pose_fingerprint(adapter: PoseAdapter) -> str:
    """A short hash of PoseGPT's style table and the gallery's videos."""
    h = hashlib.sha256(adapter.gpt.styles.weight.detach().cpu().numpy().tobytes())
    h.update(json.dumps(adapter.videos).encode())
    return h.hexdigest()[:16]


def retrieve_pose_style(adapter: PoseAdapter, poses: list[np.ndarray], units: list[np.ndarray], fps: float,
                        method: str = "blend", k: int = 3, min_seconds: float = 2.0) -> PoseStyle:
    """Match the reference's semantic-aware pose style matrix against the gallery (no gradient step).

    `poses`: the reference's head-pose sequences (T, P); `units`: the front-end's speech unit per
    frame of each. top1 takes the nearest training video's style embedding (the paper); blend
    mixes the k nearest by inverse distance (see models.pose.blend_weights).
    """
    if method not in POSE_RETRIEVALS:
        raise AdameshError(f"unknown pose retrieval {method!r}; choose one of {', '.join(POSE_RETRIEVALS)}")
    seconds = sum(len(p) for p in poses) / fps
    if seconds < min_seconds:
        raise AdameshError(f"the reference has {seconds:.1f} s of head motion; pose-style retrieval needs at "
                           f"least {min_seconds:g} s (give a longer reference video)")
    for p, u in zip(poses, units):
        if len(p) != len(u):
            raise AdameshError(f"reference poses ({len(p)} frames) and speech units ({len(u)} frames) differ")
    matrix, counts = adapter.style_matrix(poses, units)
    distances = style_distance(matrix, counts, adapter.matrices, adapter.counts)
    if not np.isfinite(distances).any():
        raise AdameshError("the reference shares no speech unit with any training video; "
                           "is there speech in it?")
    order, weights = blend_weights(distances, 1 if method == "top1" else k)
    return PoseStyle(adapter.style_of(order, weights).detach(), method, [adapter.videos[i] for i in order],
                     [round(float(w), 4) for w in weights],
                     {v: round(float(d), 5) for v, d in zip(adapter.videos, distances)},
                     np.concatenate(poses).mean(0), pose_fingerprint(adapter))
