"""Personalising the expression model on a short reference clip (speech features + motion).

Methods (the expression benchmark compares them all):
    none     the generic model (null style), nothing learned from the reference
    style    the style encoder's embedding of the reference; no weight changes
    full     every weight fine-tuned on the reference (the paper's baseline)
    lora     one LoRA branch per target layer, rank = the sum of MoLoRA's ranks (matched size)
    molora   MoLoRA: branches of ranks `adapter.ranks` with learned gates (the method)

The base model is never modified: adaptation works on a copy. `members` adapters (for `full`,
fine-tuned copies) can be trained from different seeds (initial weights, crops) and averaged,
adapters with their branches side by side in one adapter: on a 3 s reference single adapters
differed by seed as much as by method (docs/journal.md, Real video), and the mean keeps what they agree on.
In the same time one adapter trained longer did better than three shorter ones, on real people
and on the synthetic demo (docs/journal.md, Adapting to real people), so one is the default.
Steps, not the clock, decide how long it trains (at most `max_steps`, fewer when the held-out
slice stops improving), so the same reference and seed give the same profile on any machine and
under any load; `max_seconds` is only a safety net, and warns when it cuts training short.
Each member holds out the tail of the reference (`val_fraction`) for early stopping; the adapter
state with the lowest loss on it is kept, but only from `min_steps` on: on a 0.5-2 s slice the
loss is too noisy to judge the first steps, and it stopped every method after 10-20 steps, before
the lips had changed (on held-out test sentences LVE kept falling until 60-120 steps;
docs/expression.md). For the same reason the slice does not decide whether to keep the adapter
at all: a rule that dropped it when the slice was no better than the start dropped it for held-out
synthetic speakers whose test sentences it improved. Channels the reference cannot teach (constant
in the training data, or not measured by the tracker) keep the base model's prediction as their
target. The result is an `ExpressionProfile`: the adapter tensors and the style embedding.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from adamesh.adapt.timing import correlation
from adamesh.errors import AdameshError, AdameshWarning
from adamesh.models.expression import MOLORA_TARGETS, ExpressionModel, expression_loss, output_loss
from adamesh.models.molora import (
    AdapterSpec,
    adapter_state_dict,
    add_molora,
    average_adapters,
    count_parameters,
    load_adapter_state,
    set_active_branches,
    train_only_adapters,
)
from adamesh.motion import ARKIT, lip_gap
from adamesh.profile import ExpressionProfile, model_fingerprint

METHODS = ("none", "style", "full", "lora", "molora")


@dataclass
class AdaptConfig:
    method: str = "molora"
    adapter: AdapterSpec = field(default_factory=lambda: AdapterSpec((1, 2, 4), targets=MOLORA_TARGETS))
    lr: float = 3e-3  # adapters; full fine-tuning uses full_lr
    full_lr: float = 3e-4
    max_steps: int = 100  # 7-11 s on 2 cores for 10-15 s references, whose held-out tails chose steps 70-90
    batch: int = 4
    crop: int = 50  # frames per training crop (2 s)
    style_crop: int = 100  # the style encoder sees a random 4 s of the reference per step
    val_fraction: float = 0.2
    eval_every: int = 10
    min_steps: int = 60  # the held-out slice only decides from here on (see the module docstring)
    patience: int = 6  # evaluations without improvement before stopping
    # A safety net, not the budget: steps decide, so a profile does not depend on the machine's load.
    # Cut short by it, adaptation warns (all members together).
    max_seconds: float | None = 120.0
    members: int = 1  # adapters trained from different seeds and averaged (see the module docstring)
    seed: int = 0
    min_frames: int = 25  # a reference shorter than 1 s is refused
    nested: bool = True  # MoLoRA: each step trains the first k branches only, k at random (models.molora)
    timing_weight: float = 1.0  # the lip-timing term on unrelated speech (module docstring); 0: off

    def spec(self) -> AdapterSpec | None:
        """The adapter `method` trains (None: none): MoLoRA's as set; LoRA's one branch of the
        summed rank with alpha = r and a plain sum, the same size."""
        if self.method == "molora":
            return self.adapter
        if self.method == "lora":
            return replace(self.adapter, ranks=(sum(self.adapter.ranks),), alpha=None, combine="sum")
        return None


@dataclass
class Reference:
    """A reference clip: speech features (T, F) and expression parameters (T, E) at `fps`."""

    features: np.ndarray
    params: np.ndarray
    fps: float
    unobserved: tuple[
        str, ...
    ] = ()  # expression channels the reference does not measure (a tracker's blind spots)

    @property
    def seconds(self) -> float:
        return len(self.params) / self.fps


def _crops(n: int, length: int, count: int, gen: torch.Generator) -> list[slice]:
    if n <= length:
        return [slice(0, n)]
    starts = torch.randint(0, n - length + 1, (count,), generator=gen).tolist()
    return [slice(s, s + length) for s in starts]


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


def adapt(
    base: ExpressionModel,
    reference: Reference,
    cfg: AdaptConfig | None = None,
    speech: list[np.ndarray] | None = None,
) -> ExpressionProfile:
    """Personalise `base` (left untouched) on `reference`; see the module docstring for methods.

    `speech`: features of unrelated speech for the lip-timing term (`timing_speech(frontend)`);
    without it (or for a model whose outputs are not ARKit) the term is off."""
    cfg = cfg or AdaptConfig()
    if cfg.method not in METHODS:
        raise AdameshError(f"unknown adaptation method {cfg.method!r}; choose one of {', '.join(METHODS)}")
    n = len(reference.params)
    if n < cfg.min_frames:
        raise AdameshError(
            f"the reference is {reference.seconds:.1f} s long; at least "
            f"{cfg.min_frames / reference.fps:.0f} s is needed"
        )
    if len(reference.features) != n:
        raise AdameshError(
            f"reference features ({len(reference.features)} frames) and motion ({n} frames) differ"
        )
    t0 = time.perf_counter()
    model_id = model_fingerprint(base)
    e = base.config.out_dim
    feats = torch.as_tensor(reference.features, dtype=torch.float32)
    params = torch.as_tensor(reference.params[:, :e], dtype=torch.float32)
    if cfg.method == "none":
        return ExpressionProfile(
            "none",
            base.null_style.detach().clone(),
            {},
            model_id=model_id,
            stats={"seconds": 0.0, "trainable": 0},
        )
    frozen = copy.deepcopy(
        base
    ).eval()  # dropout off, BatchNorm statistics frozen: 10 s cannot re-estimate them
    params = _learnable(frozen, feats, params, reference.unobserved)
    if cfg.method == "style":
        with torch.no_grad():
            style = frozen.style(params[None])[0]
        return ExpressionProfile(
            "style", style, {}, model_id=model_id, stats={"seconds": time.perf_counter() - t0, "trainable": 0}
        )
    spec = cfg.spec()
    n_val = max(1, int(round(n * cfg.val_fraction)))
    split = (feats[: n - n_val], params[: n - n_val], feats[n - n_val :], params[n - n_val :])
    timing = None
    if speech and cfg.timing_weight > 0 and e == ARKIT.n_expression:
        with torch.no_grad():
            timing = [
                (f, lip_gap(frozen.predict(f), ARKIT.channels))
                for f in (torch.as_tensor(x, dtype=torch.float32) for x in speech if len(x) >= cfg.crop)
            ]
    members = [
        _train_member(frozen, split, cfg, spec, cfg.seed + k, _deadline(t0, cfg, k), timing)
        for k in range(cfg.members)
    ]
    states = [state for state, _ in members]
    model = copy.deepcopy(frozen)
    if cfg.method == "full":  # the mean of the members' weights
        state = {
            k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()
        }
        model.load_state_dict(state)
    else:
        state = average_adapters(states)
        add_molora(model, spec.repeated(cfg.members), generator=torch.Generator())  # loaded below
        load_adapter_state(model, state)
    model.eval()
    with torch.no_grad():
        style = model.style(params[None])[0]  # the whole reference, held-out tail included
    per_member = {k: [stats[k] for _, stats in members] for k in members[0][1] if k != "trainable"}
    return ExpressionProfile(
        cfg.method,
        style.detach(),
        state,
        spec.repeated(cfg.members) if spec else None,
        model_id,
        stats={
            "seconds": round(time.perf_counter() - t0, 2),
            **per_member,
            "trainable": sum(stats["trainable"] for _, stats in members),  # every member's, all trained
            "config": asdict(cfg),
        },
    )


def _deadline(t0: float, cfg: AdaptConfig, member: int) -> float:
    return math.inf if cfg.max_seconds is None else t0 + (member + 1) * cfg.max_seconds / cfg.members


def _train_member(
    frozen: ExpressionModel,
    split,
    cfg: AdaptConfig,
    spec: AdapterSpec | None,
    seed: int,
    deadline: float,
    timing: list | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Train one adapter (or one full fine-tune) from `seed`: its own initial weights and crops.
    `timing`: (features, base lip gap) pairs of unrelated speech for the lip-timing term.
    Returns the state to keep (best on the held-out slice) and its statistics."""
    train_f, train_p, val_f, val_p = split
    model = copy.deepcopy(frozen)
    if cfg.method == "full":
        trainable, lr = list(model.parameters()), cfg.full_lr
    else:
        add_molora(
            model, spec, generator=torch.Generator().manual_seed(seed)
        )  # the adapters' initial weights
        trainable, lr = train_only_adapters(model), cfg.lr
    optimiser = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    nested = cfg.nested and cfg.method == "molora" and len(spec.ranks) > 1
    branch_gen = torch.Generator().manual_seed(seed)  # its own stream: the crops are those of a plain run

    def state():
        return (
            {k: v.detach().clone() for k, v in model.state_dict().items()}
            if cfg.method == "full"
            else adapter_state_dict(model)
        )

    @torch.no_grad()
    def val_loss():
        style = model.style(train_p[None])
        return expression_loss(
            model,
            val_f[None],
            model.normalise(val_p[None]),
            style,
            torch.ones(1, len(val_f), dtype=torch.bool),
        ).item()

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
        if nested:
            set_active_branches(model, int(torch.randint(1, len(spec.ranks) + 1, (1,), generator=branch_gen)))
        head, post = model(f, style)
        loss = output_loss(head[: len(p)], post[: len(p)], model.normalise(p), mask)
        if timing:
            gap = lip_gap(model.denormalise(post[-1]), ARKIT.channels)
            loss = loss + cfg.timing_weight * (1 - correlation(gap, base_gap[oc]))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if nested:
            set_active_branches(model, None)  # the held-out slice and the result use every branch
        if step % cfg.eval_every == 0 and step >= min(cfg.min_steps, cfg.max_steps):
            v = val_loss()
            if v < best_loss - 1e-5:
                best_loss, best_state, best_step, waited = v, state(), step, 0
            else:
                waited += 1
            if waited >= cfg.patience:
                break
        if time.perf_counter() > deadline:  # checked every step: the limit holds on a busy machine too
            warnings.warn(
                f"adaptation stopped at step {step} of {cfg.max_steps} by its time limit "
                f"({cfg.max_seconds:g} s): this profile depends on the machine's speed; raise "
                "AdaptConfig.max_seconds (or set it to None) for the profile the steps give",
                AdameshWarning,
                stacklevel=3,
            )
            if best_step == 0:  # out of time before the slice could judge: what was learned so far
                best_loss, best_state, best_step = val_loss(), state(), step
            break
    return best_state, {
        "steps": step,
        "best_step": best_step,
        "val_loss_before": round(start_loss, 4),
        "val_loss_after": round(best_loss, 4),
        "trainable": count_parameters(trainable),
    }
