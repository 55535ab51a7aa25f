"""The expression adapter's network: speech features -> expression parameters, in a style.

    features --input--> audio encoder (Conformer) ------------------------+
    reference expression --> style encoder (Conformer, masked mean) --> + --> decoder (Conformer)
    identity vector --> identity encoder (MLP) ----------------------------+      |
                                                       head (linear) + post-net (residual convs)

Front-end features already come at the motion rate, so there is no subsampling layer (the
released code spent 33.6 M of its 49.8 M parameters on one). Inputs and outputs are z-scored with
statistics saved in the model's buffers; the output is the expression part of the space (ARKit's
52 weights, or FLAME expression + jaw). In training the style embedding is dropped now and then
for a learned `null_style`, which is the generic, unadapted model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from adamesh.models.conformer import Conformer

# Layers MoLoRA wraps by default: every projection of every Conformer block in all four modules,
# and the input/output layers of the encoders.
MOLORA_TARGETS = [
    "*.q",
    "*.k",
    "*.v",
    "*.o",
    "*.fc1",
    "*.fc2",
    "*.pointwise_in",
    "*.depthwise",
    "*.pointwise_out",
    "audio_in",
    "style_in",
    "style_out",
    "identity_encoder.*",
    "decoder_in",
]


@dataclass
class ExpressionConfig:
    feature_dim: int
    out_dim: int = 52
    identity_dim: int = 100  # ICT's 100 identity modes (or FLAME shape coefficients); zeros if unknown
    d_model: int = 128
    heads: int = 4
    ff: int = 512
    kernel: int = 15
    audio_layers: int = 2
    style_layers: int = 1
    decoder_layers: int = 2
    postnet_channels: int = 128
    postnet_kernel: int = 5
    dropout: float = 0.1
    style_dropout: float = 0.1  # how often training uses null_style instead of the reference

    def __post_init__(self):
        if self.heads < 1 or self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")

    def to_dict(self) -> dict:
        return asdict(self)


class ExpressionModel(nn.Module):
    def __init__(self, config: ExpressionConfig):
        super().__init__()
        c = self.config = config
        d = c.d_model
        self.audio_in = nn.Linear(c.feature_dim, d)
        self.audio_encoder = Conformer(d, c.heads, c.ff, c.kernel, c.audio_layers, c.dropout)
        self.style_in = nn.Linear(c.out_dim, d)
        self.style_encoder = Conformer(d, c.heads, c.ff, c.kernel, c.style_layers, c.dropout)
        self.style_out = nn.Linear(d, d)
        self.null_style = nn.Parameter(torch.zeros(d))
        self.identity_encoder = nn.Sequential(nn.Linear(c.identity_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.decoder_in = nn.Linear(d, d)
        self.decoder = Conformer(d, c.heads, c.ff, c.kernel, c.decoder_layers, c.dropout)
        self.head = nn.Linear(d, c.out_dim)
        k = c.postnet_kernel
        self.postnet = nn.Sequential(
            nn.Conv1d(c.out_dim, c.postnet_channels, k, padding=k // 2),
            nn.BatchNorm1d(c.postnet_channels),
            nn.Tanh(),
            nn.Dropout(c.dropout),
            nn.Conv1d(c.postnet_channels, c.out_dim, k, padding=k // 2),
        )
        # normalisation statistics, set from the training data (see set_statistics)
        for name, dim in (
            ("feature_mean", c.feature_dim),
            ("feature_std", c.feature_dim),
            ("param_mean", c.out_dim),
            ("param_std", c.out_dim),
        ):
            self.register_buffer(name, torch.zeros(dim) if name.endswith("mean") else torch.ones(dim))

    def set_statistics(self, features: torch.Tensor, params: torch.Tensor, floor: float = 1e-3):
        """Z-scoring statistics from (N, F) features and (N, E) expression parameters."""
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(floor))
        self.param_mean.copy_(params.mean(0))
        self.param_std.copy_(params.std(0).clamp_min(floor))  # constant channels stay constant

    def normalise(self, params: torch.Tensor) -> torch.Tensor:
        return (params - self.param_mean) / self.param_std

    def denormalise(self, params: torch.Tensor) -> torch.Tensor:
        return params * self.param_std + self.param_mean

    def style(
        self, reference: torch.Tensor | None, reference_mask: torch.Tensor | None = None, batch: int = 1
    ) -> torch.Tensor:
        """(B, d) style embedding of (B, T, E) reference expressions (raw units); None: null style."""
        if reference is None:
            return self.null_style.expand(batch, -1)
        h = self.style_encoder(self.style_in(self.normalise(reference)), reference_mask)
        if reference_mask is None:
            pooled = h.mean(1)
        else:
            m = reference_mask[..., None].to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)
        return self.style_out(pooled)

    def forward(
        self,
        features: torch.Tensor,
        style: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
        drop_style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features and a (B, d) style -> normalised expression (head, post-net), (B, T, E).

        Training passes the `reference` instead of a style (and `drop_style`, (B,) bool, where the
        null style replaces it), so everything that learns runs inside one forward (as
        DistributedDataParallel needs)."""
        b = features.shape[0]
        if style is None:
            style = self.style(reference, reference_mask, batch=b)
        if drop_style is not None:
            style = torch.where(drop_style[:, None], self.null_style.expand_as(style), style)
        if identity is None:
            identity = features.new_zeros(b, self.config.identity_dim)
        h = self.audio_encoder(self.audio_in((features - self.feature_mean) / self.feature_std), mask)
        cond = style + self.identity_encoder(identity)
        h = self.decoder(self.decoder_in(h) + cond[:, None, :], mask)
        head = self.head(h)
        post = head + self.postnet(head.transpose(1, 2)).transpose(1, 2)
        return head, post

    @torch.no_grad()
    def predict(
        self,
        features: torch.Tensor,
        reference: torch.Tensor | None = None,
        style: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
        style_strength: float = 1.0,
        window: int = 750,
        overlap: int = 100,
    ) -> torch.Tensor:
        """(T, F) features -> (T, E) expression parameters in raw units, clipped to the space's
        bounds by the caller. `style_strength` interpolates from the null style (0) to the given
        style (1) and beyond (exaggerated).

        Longer than `window` frames (30 s at 25 fps; training windows are 4 s): windows that
        overlap by `overlap` frames, cross-faded, so memory stays bounded however long the speech
        (attention is T x T within a window)."""
        if style is None:
            style = self.style(None if reference is None else reference[None])[0]
        style = torch.lerp(self.null_style, style, style_strength)  # 0: generic, 1: this style
        identity = None if identity is None else identity[None]
        t = len(features)
        if t <= window:
            return self.denormalise(self(features[None], style[None], identity)[1][0])
        if not 0 < 2 * overlap < window:
            raise ValueError(f"overlap must be under half the window, not {overlap} of {window}")
        out = torch.zeros(t, self.config.out_dim)
        weight = torch.zeros(t, 1)
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        starts = list(range(0, t - overlap, window - overlap))
        for k, a in enumerate(starts):
            b = min(t, a + window)
            w = torch.ones(b - a, 1)
            if k > 0:
                w[:overlap, 0] = ramp
            if k < len(starts) - 1:
                w[len(w) - overlap :, 0] = ramp.flip(0)
            out[a:b] += w * self(features[None, a:b], style[None], identity)[1][0]
            weight[a:b] += w
        return self.denormalise(out / weight)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask[..., None].to(pred.dtype)
    return (F.l1_loss(pred, target, reduction="none") * m).sum() / (m.sum() * pred.shape[-1]).clamp_min(1)


def expression_loss(model: ExpressionModel, features, target_norm, style, mask, **forward) -> torch.Tensor:
    """The paper's loss: masked L1 on the head and on the post-net output, in normalised space."""
    return output_loss(*model(features, style, mask=mask, **forward), target_norm, mask)


def output_loss(head, post, target_norm, mask) -> torch.Tensor:
    """`expression_loss` on outputs already computed."""
    return masked_l1(head, target_norm, mask) + masked_l1(post, target_norm, mask)


SEAL_MIN_OPENING = 0.05  # ARKit lip gap: a window must open at least this wide to hold closures
SEAL_REACH = 6  # frames: a closure inside speech has the lips open within this reach on both sides
SEAL_CLOSURE_WEIGHT = 4.0  # extra weight of a closure frame over any other frame


def seal_loss(
    gap: torch.Tensor, target_gap: torch.Tensor, mask: torch.Tensor, fraction: float
) -> torch.Tensor:
    """The lip gap jawOpen - mouthClose followed frame by frame, closures most: its L1 error in
    units of the window's 95th percentile, averaged over the frames, where the target's closures
    inside speech (under `fraction` of that percentile, as bench lipsync counts them, with the
    lips open on both sides within SEAL_REACH frames) weigh 1 + SEAL_CLOSURE_WEIGHT. The paper's
    L1 over 52 channels barely notices two frames of a few channels, so an averaged mouth that
    never quite shuts costs it little. Averaged over all frames, not over the closures alone: a
    mean over a few frames swung so much that gradient clipping starved the rest of the loss."""
    level = torch.stack(
        [torch.quantile(t[m], 0.95) if m.any() else t.new_tensor(0.0) for t, m in zip(target_gap, mask)]
    )[:, None]
    opened = ((target_gap > 0.5 * level) & mask).float()
    count = F.pad(opened.cumsum(1), (1, 0))  # count[:, i]: open frames before frame i
    t = torch.arange(gap.shape[1], device=gap.device)
    before = count[:, t] - count[:, (t - SEAL_REACH).clamp_min(0)] > 0
    after = count[:, (t + 1 + SEAL_REACH).clamp_max(gap.shape[1])] - count[:, t + 1] > 0
    closed = (target_gap < fraction * level) & before & after
    # a window whose lips hardly part (silence, a murmur) has no gap to follow
    weight = (mask & (level > SEAL_MIN_OPENING)).float() * (1 + SEAL_CLOSURE_WEIGHT * closed.float())
    err = (gap - target_gap).abs() / level.clamp_min(SEAL_MIN_OPENING)
    return (err * weight).sum() / mask.sum().clamp_min(1)
