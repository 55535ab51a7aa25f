"""The profile: what adaptation learns from a reference and animation uses, in one safetensors file.

A `Profile` holds an `ExpressionProfile` (the adapter tensors or fine-tuned weights, and the style
embedding) and a `PoseProfile` (PoseGPT's style vector retrieved from the reference, and its resting
posture), each tied by a fingerprint to the model it was made with."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from adamesh.errors import AdameshError
from adamesh.fileio import atomic_output, check_input_file
from adamesh.models.expression import ExpressionModel
from adamesh.models.molora import AdapterSpec, add_molora, load_adapter_state, merge_adapters
from adamesh.models.pose import PoseAdapter

PROFILE_FORMAT = "adamesh.profile"
EXPRESSION_PROFILE_FORMAT = "adamesh.expression_profile"
POSE_PROFILE_FORMAT = "adamesh.pose_style"


@dataclass
class Profile:
    """A person's style for one model: what `Animator.adapt` learns and `Animator.animate` uses."""

    expression: ExpressionProfile
    pose: PoseProfile
    reference: dict = field(default_factory=dict)  # seconds, clips, fit error, blink rate ...
    provenance: dict = field(default_factory=dict)  # adamesh version, model ids, date, settings

    def save(self, path: str | os.PathLike) -> Path:
        e_meta, e_tensors = self.expression.parts()
        p_meta, p_tensors = self.pose.parts()
        meta = {
            "format": PROFILE_FORMAT,
            "expression": e_meta,
            "pose": p_meta,
            "reference": self.reference,
            "provenance": self.provenance,
        }
        tensors = {
            **{f"expression.{k}": v for k, v in e_tensors.items()},
            **{f"pose.{k}": v for k, v in p_tensors.items()},
        }
        return _save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Profile":
        check_input_file(path, "profile", "a profile file", "make one with `adamesh adapt`")
        meta, tensors = _load_tensors(
            path, PROFILE_FORMAT, "profile", "an adamesh profile (make one with `adamesh adapt`)"
        )

        def part(prefix):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

        reference = meta.get("reference", {})
        rate = reference.get("blink_rate") if isinstance(reference, dict) else None
        if not isinstance(reference, dict) or not (
            rate is None or (isinstance(rate, (int, float)) and 0 <= rate <= 60)
        ):
            raise AdameshError(
                f"profile {path} is damaged (its reference's blink rate is {rate!r}, not 0-60 per "
                "minute); make it again with `adamesh adapt`"
            )
        try:
            return cls(
                ExpressionProfile.from_parts(meta["expression"], part("expression.")),
                PoseProfile.from_parts(meta["pose"], part("pose.")),
                reference,
                meta.get("provenance", {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise AdameshError(
                f"profile {path} is damaged ({type(e).__name__}: {e}); make it again with `adamesh adapt`"
            ) from None


@dataclass
class ExpressionProfile:
    method: str
    style: torch.Tensor  # (d,) the style embedding to animate with
    adapter: dict[str, torch.Tensor]  # adapter tensors (molora/lora), all weights (full), or {}
    spec: AdapterSpec | None = None  # the adapter's layout (molora/lora)
    model_id: str = ""
    stats: dict = field(default_factory=dict)  # steps, seconds, losses, trainable parameters

    def apply(self, base: ExpressionModel, strength: float = 1.0) -> ExpressionModel:
        """A copy of `base` carrying this profile's weights (adapters merged: no inference cost).

        `strength` scales the learned weight change: 0 is the base model, 1 the profile, above 1
        an exaggeration (the adapter's delta B @ A is linear in B)."""
        if self.model_id and self.model_id != model_fingerprint(base):
            raise AdameshError("this profile was made for another model; adapt again with this model")
        model = copy.deepcopy(base)
        if self.method in ("molora", "lora"):
            add_molora(model, self.spec, generator=torch.Generator())  # overwritten by the profile's tensors
            load_adapter_state(model, scaled_adapter(self.adapter, strength))
            merge_adapters(model)
        elif self.method == "full":
            own = base.state_dict()
            model.load_state_dict(
                {
                    k: torch.lerp(own[k], v, strength) if v.is_floating_point() else v
                    for k, v in self.adapter.items()
                }
            )
        model.eval()
        return model

    def parts(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(header, tensors) as stored in a file; `from_parts` reads them back."""
        meta = {
            "format": EXPRESSION_PROFILE_FORMAT,
            "method": self.method,
            **(self.spec.to_dict() if self.spec else {}),
            "model_id": self.model_id,
            "stats": self.stats,
        }
        return meta, {"style": self.style, **{f"adapter.{k}": v for k, v in self.adapter.items()}}

    @classmethod
    def from_parts(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "ExpressionProfile":
        adapter = {k[len("adapter.") :]: v for k, v in tensors.items() if k.startswith("adapter.")}
        spec = None
        if meta["method"] in ("molora", "lora"):
            _check_ranks(tuple(meta["ranks"]), adapter)
            try:
                spec = AdapterSpec.from_dict(meta)
            except AdameshError as e:  # the caller names the file
                raise ValueError(str(e)) from None
        return cls(
            meta["method"], tensors["style"], adapter, spec, meta["model_id"], stats=meta.get("stats", {})
        )

    def save(self, path: str | os.PathLike) -> Path:
        meta, tensors = self.parts()
        return _save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ExpressionProfile":
        return cls.from_parts(
            *_load_tensors(path, EXPRESSION_PROFILE_FORMAT, "profile", "an adamesh expression profile")
        )


def _check_ranks(ranks: tuple, adapter: dict[str, torch.Tensor]) -> None:
    """The header's ranks must be those of the stored adapter tensors: applying a profile builds
    layers of these ranks before loading the tensors, so a header's word alone must not decide
    how much memory that takes."""
    a = [v for k, v in adapter.items() if k.endswith("lora_A")]
    if not (
        ranks
        and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in ranks)
        and a
        and all(v.ndim == 2 and v.shape[0] == sum(ranks) for v in a)
        and all(v.shape == (len(ranks),) for k, v in adapter.items() if k.endswith("gate"))
    ):
        raise ValueError(f"its ranks {list(ranks)} are not those of its adapter tensors")


def _save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Tensors and a JSON header in one safetensors file, written atomically."""
    with atomic_output(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"adamesh": json.dumps(meta)}
        )
    return Path(path)


def _load_tensors(
    path: str | os.PathLike, fmt: str, kind: str, what: str
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, tensors) of a file written by _save_tensors whose header says `fmt`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get("adamesh", "{}"))
        tensors = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as e:
        raise AdameshError(f"cannot read {kind} {path}: {e}") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise AdameshError(f"{path} is damaged: {bad[0]} holds NaN or infinite values; make it again")
    if not isinstance(meta, dict) or meta.get("format") != fmt:
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


def scaled_adapter(state: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Adapter tensors whose weight change is `fraction` of `state`'s (the delta B @ A is linear in B)."""
    return {k: v * fraction if "lora_B" in k else v for k, v in state.items()}


@dataclass
class PoseProfile:
    """The pose style of a reference: PoseGPT's style vector and how it was found."""

    style: torch.Tensor  # (style_dim,)
    method: str  # top1 or blend
    chosen: list[str]  # gallery videos used, nearest first
    weights: list[float]
    distances: dict[str, float]  # to every gallery video
    posture: np.ndarray  # (P,) the reference's mean head pose: the resting pose to animate about

    model_id: str = ""  # fingerprint of the PoseGPT whose style table the embedding comes from
    # (P,) how much more (or less) the reference moves about its posture than PoseGPT does for the
    # reference's own speech in this style: the gain animation applies to the motion
    amplitude: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "chosen": self.chosen,
            "weights": self.weights,
            "distances": self.distances,
            "posture": [round(float(x), 5) for x in self.posture],
            "amplitude": None if self.amplitude is None else [round(float(x), 3) for x in self.amplitude],
        }

    def parts(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta = {"format": POSE_PROFILE_FORMAT, "model_id": self.model_id, **self.to_dict()}
        tensors = {"style": self.style, "posture": torch.as_tensor(self.posture)}
        if self.amplitude is not None:
            tensors["amplitude"] = torch.as_tensor(self.amplitude, dtype=torch.float32)
        return meta, tensors

    @classmethod
    def from_parts(cls, meta: dict, tensors: dict[str, torch.Tensor]) -> "PoseProfile":
        return cls(
            tensors["style"],
            meta["method"],
            meta["chosen"],
            meta["weights"],
            meta["distances"],
            tensors["posture"].numpy(),
            meta["model_id"],
            _amplitude(tensors, len(tensors["posture"])),
        )

    def save(self, path: str | os.PathLike) -> Path:
        meta, tensors = self.parts()
        return _save_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoseProfile":
        return cls.from_parts(
            *_load_tensors(path, POSE_PROFILE_FORMAT, "pose style", "an adamesh pose style")
        )

    def check(self, adapter: PoseAdapter) -> None:
        if self.model_id and self.model_id != pose_fingerprint(adapter):
            raise AdameshError(
                "this pose style was retrieved with another pose model; adapt again with this model"
            )


def _amplitude(tensors: dict[str, torch.Tensor], dims: int) -> np.ndarray | None:
    """A pose style's amplitude, refused unless it is one finite gain a head-pose dimension."""
    if "amplitude" not in tensors:
        return None
    gain = tensors["amplitude"].float().numpy()
    if gain.shape != (dims,) or not np.isfinite(gain).all() or (gain < 0).any() or (gain > 10).any():
        raise AdameshError(
            f"the pose style's amplitude must be {dims} finite gains between 0 and 10; this profile "
            "is damaged: make it again with `adamesh adapt`"
        )
    return gain


def pose_fingerprint(adapter: PoseAdapter) -> str:
    """A short hash of PoseGPT's style table and the gallery's videos."""
    h = hashlib.sha256(adapter.gpt.styles.weight.detach().cpu().numpy().tobytes())
    h.update(json.dumps(adapter.videos).encode())
    return h.hexdigest()[:16]
