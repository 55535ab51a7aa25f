"""MoLoRA: a mixture of low-rank adapters of different ranks on one frozen weight.

    W' = W + sum_i g_i * (alpha / r_i) * B_i A_i          (B_i: out x r_i, A_i: r_i x in)

LoRA (Hu et al. 2021) has one branch; AdaMesh's MoLoRA has N branches of *different* ranks so the
update mixes coarse (low-rank) and finer corrections. Ours to choose, and chosen as follows:

- Combination: a learned scalar gate g_i per branch, initialised to 1, so at the start it is the
  plain sum of the branches (each with LoRA's alpha / r scaling) and training can shift weight
  between ranks at the cost of N numbers per layer. ``combine="sum"`` freezes the gates (the plain
  sum), which the expression benchmark can compare.
- Convolutions: the weight (out, in / groups, k) is viewed as the matrix (out, in / groups * k), as
  LoRA for convolutions does; depthwise convolutions (in / groups = 1) then get an (out, k) update.
- B_i start at zero, so an untrained adapter leaves the model's output unchanged.
- Nested training (`set_active_branches`): trained always together, the branches are a block split
  of one LoRA and share the work in proportion to their ranks. When each step trains only the
  first k branches (k drawn at random), the lowest rank must carry the main correction alone and
  the higher ranks learn what it leaves, as nested dropout orders a representation; on real people
  this lowered the lip vertex error (docs/journal.md: MoLoRA branches).

Adapters wrap target modules by name (fnmatch patterns on ``model.named_modules()`` names), can be
disabled, merged into the base weights for inference with no overhead, unmerged, and saved or
loaded alone (only adapter tensors, in safetensors). Single-rank LoRA is MoLoRA with one rank.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from adamesh.errors import AdameshError

ADAPTER_KEYS = ("lora_A", "lora_B", "gate")
COMBINES = ("gate", "sum")


@dataclass(frozen=True)
class AdapterSpec:
    """The layout of an adapter, its one source of truth (as peft's LoraConfig): adaptation builds
    layers from it, a profile file stores it beside the tensors and `add_molora` reads it.

    `ranks`: one branch per rank (one rank: plain LoRA); `alpha`: LoRA's scaling alpha / r per
    branch (None: alpha = r, every scale 1); `combine`: "gate" (learned gate per branch) or "sum"
    (frozen gates); `targets`: fnmatch patterns of the layers that carry it."""

    ranks: tuple[int, ...] = (1, 2, 4)
    alpha: float | None = None
    combine: str = "gate"
    targets: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        object.__setattr__(self, "targets", tuple(str(t) for t in self.targets))
        if not self.ranks or min(self.ranks) < 1:
            raise AdameshError(f"adapter ranks must be positive integers, not {self.ranks}")
        if self.combine not in COMBINES:
            raise AdameshError(f"combine must be one of {', '.join(COMBINES)}, not {self.combine!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise AdameshError(f"alpha must be a positive number or None, not {self.alpha}")

    def repeated(self, n: int) -> "AdapterSpec":
        """n adapters of this layout side by side in one (members averaged: `average_adapters`)."""
        return replace(self, ranks=self.ranks * n)

    def to_dict(self) -> dict:
        return {
            "ranks": list(self.ranks),
            "alpha": self.alpha,
            "combine": self.combine,
            "targets": list(self.targets),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "AdapterSpec":
        return cls(tuple(d["ranks"]), d.get("alpha"), d["combine"], tuple(d["targets"]))


class MoLoRALayer(nn.Module):
    """A Linear or Conv1d with N low-rank branches added to its weight.

    The branches are stored stacked: `lora_A` (sum r_i, in) and `lora_B` (out, sum r_i), branch i
    owning r_i consecutive rows of A and columns of B, so the mixture costs two matmuls, not 2N.
    """

    def __init__(
        self,
        base: nn.Linear | nn.Conv1d,
        ranks: tuple[int, ...],
        alpha: float | None = None,
        combine: str = "gate",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(base, (nn.Linear, nn.Conv1d)):
            raise TypeError(f"MoLoRA wraps Linear and Conv1d layers, not {type(base).__name__}")
        if not ranks or min(ranks) < 1:
            raise ValueError(f"ranks must be positive integers, got {ranks}")
        if combine not in ("gate", "sum"):
            raise ValueError(f"combine is 'gate' or 'sum', not {combine!r}")
        self.base, self.ranks, self.combine = base, tuple(int(r) for r in ranks), combine
        out, fan_in = base.weight.shape[0], base.weight[0].numel()
        a = torch.empty(sum(self.ranks), fan_in)
        for rows in torch.split(a, self.ranks):  # each branch initialised as its own LoRA A
            nn.init.kaiming_uniform_(rows, a=math.sqrt(5), generator=generator)
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(out, sum(self.ranks)))
        self.gate = nn.Parameter(torch.ones(len(self.ranks)), requires_grad=combine == "gate")
        # alpha / r with alpha = r by default: every branch starts at scale 1
        self.register_buffer("scales", torch.tensor([(alpha or r) / r for r in self.ranks]), persistent=False)
        self.register_buffer(
            "branch",
            torch.repeat_interleave(torch.arange(len(self.ranks)), torch.tensor(self.ranks)),
            persistent=False,
        )
        self.enabled, self.merged = True, False
        self.active: int | None = None  # only the first `active` branches (nested training); None: all

    def rank_scale(self) -> torch.Tensor:
        """(sum r_i,) the gate times alpha / r_i of the branch each rank belongs to."""
        scale = self.gate * self.scales
        if self.active is not None:
            scale = scale * (torch.arange(len(self.ranks)) < self.active)
        return scale[self.branch]

    def delta(self) -> torch.Tensor:
        """The weight update, in the shape of the base weight."""
        return ((self.lora_B * self.rank_scale()) @ self.lora_A).view_as(self.base.weight)

    def forward(self, x):
        if not self.enabled or self.merged:
            return self.base(x)
        if isinstance(self.base, nn.Linear):  # low-rank path: never builds the full update
            return self.base(x) + F.linear(F.linear(x, self.lora_A) * self.rank_scale(), self.lora_B)
        c = self.base
        return F.conv1d(x, c.weight + self.delta(), c.bias, c.stride, c.padding, c.dilation, c.groups)

    @torch.no_grad()
    def merge(self):
        if self.active is not None:
            raise RuntimeError("merge with every branch active (set_active_branches(model, None))")
        if not self.merged:
            self.base.weight += self.delta()
            self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight -= self.delta()
            self.merged = False

    def extra_repr(self) -> str:
        return f"ranks={self.ranks}, combine={self.combine}"


def add_molora(model: nn.Module, spec: AdapterSpec, generator: torch.Generator | None = None) -> list[str]:
    """Wrap every Linear/Conv1d whose name matches one of `spec.targets` (fnmatch patterns) with
    the adapter `spec` lays out; returns the wrapped names. Raises if nothing matches (a typo must
    not silently adapt nothing). `generator` draws the initial A matrices (None: torch's global
    generator)."""
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv1d))
        and not _inside_adapter(n)
        and any(fnmatch.fnmatchcase(n, t) for t in spec.targets)
    ]
    if not names:
        raise AdameshError(f"no Linear or Conv1d layer matches {list(spec.targets)}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = MoLoRALayer(getattr(parent, child), spec.ranks, spec.alpha, spec.combine, generator)
        setattr(parent, child, layer)
    return names


def _inside_adapter(name: str) -> bool:
    return name.endswith(".base") or ".base." in name


def adapter_layers(model: nn.Module) -> dict[str, MoLoRALayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, MoLoRALayer)}


def remove_molora(model: nn.Module) -> None:
    """Put the base layers back (unmerged), dropping the adapters."""
    for name, layer in adapter_layers(model).items():
        layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer.base)


def is_adapter_parameter(name: str) -> bool:
    return any(f".{k}" in f".{name}" for k in ADAPTER_KEYS)


def train_only_adapters(model: nn.Module) -> list[nn.Parameter]:
    """Freeze everything but the adapters (gates stay frozen with combine="sum")."""
    params = []
    for layer in adapter_layers(model).values():
        params += [layer.lora_A, layer.lora_B] + ([layer.gate] if layer.combine == "gate" else [])
    keep = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return params


def set_adapters_enabled(model: nn.Module, enabled: bool) -> None:
    for layer in adapter_layers(model).values():
        layer.enabled = enabled


def set_active_branches(model: nn.Module, count: int | None) -> None:
    """Use only the first `count` branches of every adapter (None: all of them)."""
    for layer in adapter_layers(model).values():
        layer.active = count


def merge_adapters(model: nn.Module) -> None:
    for layer in adapter_layers(model).values():
        layer.merge()


def unmerge_adapters(model: nn.Module) -> None:
    for layer in adapter_layers(model).values():
        layer.unmerge()


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if is_adapter_parameter(k)}


def average_adapters(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One adapter whose weight change is the mean of the `states`' (same layers, ranks R each):
    their branches side by side (ranks R * n), every B divided by n; gates and scales carry over."""
    n = len(states)
    out = {}
    for k in states[0]:
        parts = [s[k] for s in states]
        if k.endswith("lora_B"):
            out[k] = torch.cat(parts, 1) / n
        else:  # lora_A rows and gates follow the branches
            out[k] = torch.cat(parts, 0)
    return out


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load adapter tensors into a model already wrapped with the same layout."""
    own = adapter_state_dict(model)
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise AdameshError(
            "the adapter does not fit this model (different layers or ranks); adapt again with this model"
        )
    was_merged = [layer for layer in adapter_layers(model).values() if layer.merged]
    for layer in was_merged:
        layer.unmerge()
    model.load_state_dict(state, strict=False)
    for layer in was_merged:
        layer.merge()


def count_parameters(params) -> int:
    return sum(p.numel() for p in params)
