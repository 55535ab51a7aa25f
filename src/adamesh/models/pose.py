"""The pose adapter: a discrete prior over head motion, PoseGPT, and the semantic-aware style matrix.

    head pose (T, P) --encoder (strided convs)--> latents (T/4, C) --residual VQ (Q EMA codebooks)
    --> codes (T/4, Q) --decoder (upsampling convs)--> head pose

    PoseGPT: code[t-1] embeddings + speech at the code rate (+1 step look-ahead) -> causal Transformer
             with the pose style embedding added before every block -> logits of code[t] level by
             level, each level hearing the levels sampled below it

    Style matrix S of a video: row j = mean pre-quantisation latent over the code steps whose speech
    unit is j (units from the front-end, majority vote over the step's frames). Retrieval compares S
    of a reference with S of every training video over the units both cover.

The prior models motion about a posture: every training clip is centred on the resting pose
(`centre`), and so is every sequence encoded later; the posture itself comes from the reference.
Poses are z-scored with statistics saved in the VQ-VAE's buffers. Temporal downsampling 4 gives
6.25 codes a second at 25 fps: about one code per syllable, the rate at which heads nod. Residual
levels refine what the first codebook leaves, so a real head's holds, drifts and small nods are
represented at the same code rate, and PoseGPT samples no more steps for them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from adamesh.device import single_thread


@dataclass
class PoseConfig:
    pose_dim: int = 6  # rotation (3, axis-angle) + translation (3)
    feature_dim: int = 0  # speech features (front-end) per frame
    n_styles: int = 1  # training videos (speakers) with a learned style embedding
    downsample: int = 4  # frames per code (a power of 2)
    hidden: int = 128  # VQ-VAE channels
    code_dim: int = 32
    codebook_size: int = 256
    quantizers: int = 8  # residual levels: each codebook quantises what the levels before it left
    ema_decay: float = 0.95
    dead_code_threshold: float = 1.0  # codes used less often than this (EMA count) are revived
    commitment: float = 0.25
    d_model: int = 128  # PoseGPT
    heads: int = 4
    layers: int = 4  # the paper has 6: 4 reach the same validation loss and sample faster (pose.md)
    ff: int = 384
    style_dim: int = 64
    context: int = 32  # codes PoseGPT attends to (5 s at 6.25 codes/s)
    dropout: float = 0.1
    style_dropout: float = 0.1  # PoseGPT trains a null style too: the generic head motion

    def __post_init__(self):
        if self.heads < 1 or self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")
        if self.downsample < 1 or self.downsample & (self.downsample - 1):
            raise ValueError(f"downsample must be a power of 2, not {self.downsample}")

    def to_dict(self) -> dict:
        return asdict(self)


def _res_block(ch: int) -> nn.Module:
    return nn.Sequential(nn.SiLU(), nn.Conv1d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv1d(ch, ch, 1))


class _Residual(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


class PoseVQVAE(nn.Module):
    """Head-pose sequences <-> discrete codes, `downsample` frames per code."""

    def __init__(self, config: PoseConfig):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        c = self.config = config
        steps = int(math.log2(c.downsample))
        if 2**steps != c.downsample:
            raise ValueError(f"downsample must be a power of 2, not {c.downsample}")
        enc = [nn.Conv1d(c.pose_dim, c.hidden, 3, padding=1)]
        for _ in range(steps):
            enc += [nn.Conv1d(c.hidden, c.hidden, 4, stride=2, padding=1), _Residual(_res_block(c.hidden))]
        enc += [nn.SiLU(), nn.Conv1d(c.hidden, c.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv1d(c.code_dim, c.hidden, 3, padding=1)]
        for _ in range(steps):
            dec += [
                _Residual(_res_block(c.hidden)),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(c.hidden, c.hidden, 3, padding=1),
            ]
        dec += [nn.SiLU(), nn.Conv1d(c.hidden, c.pose_dim, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        # EMA codebook (no gradient through the codes), k-means initialised on the first batch,
        # dead codes replaced by random current latents: the codebook does not collapse
        self.quantizer = ResidualVQ(
            dim=c.code_dim,
            num_quantizers=c.quantizers,
            codebook_size=c.codebook_size,
            decay=c.ema_decay,
            commitment_weight=c.commitment,
            kmeans_init=True,
            kmeans_iters=10,
            threshold_ema_dead_code=c.dead_code_threshold,
        )
        self.register_buffer("pose_mean", torch.zeros(c.pose_dim))
        self.register_buffer("pose_std", torch.ones(c.pose_dim))

    def set_statistics(self, poses: torch.Tensor) -> None:
        self.pose_mean.copy_(poses.mean(0))
        self.pose_std.copy_(poses.std(0).clamp_min(1e-4))

    def _pad(self, pose: torch.Tensor) -> tuple[torch.Tensor, int]:
        n = pose.shape[1]
        pad = (-n) % self.config.downsample
        if pad:  # repeat the last pose up to a whole code
            pose = torch.cat([pose, pose[:, -1:].expand(-1, pad, -1)], 1)
        return pose, n

    def encode(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, T, P) poses -> (B, ceil(T/down), C) pre-quantisation latents."""
        pose, _ = self._pad(pose)
        x = (pose - self.pose_mean) / self.pose_std
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def quantize(self, latents: torch.Tensor):
        """latents -> (quantised latents, codes (B, N, Q), commitment losses (Q,))."""
        return self.quantizer(latents)

    def decode_latents(self, q: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
        x = self.decoder(q.transpose(1, 2)).transpose(1, 2)
        pose = x * self.pose_std + self.pose_mean
        return pose if n_frames is None else pose[:, :n_frames]

    def decode(self, codes: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
        """(B, N, Q) codes -> (B, N * down, P) poses (cut to `n_frames`)."""
        return self.decode_latents(self.quantizer.get_output_from_indices(codes), n_frames)

    def forward(self, pose: torch.Tensor):
        """Reconstruction of (B, T, P) poses: (poses, codes (B, N, Q), commitment losses)."""
        q, codes, commit = self.quantize(self.encode(pose))
        return self.decode_latents(q, pose.shape[1]), codes, commit

    def centre(self, pose: np.ndarray) -> np.ndarray:
        """A (T, P) pose sequence moved so that its mean is the resting pose: the motion the prior
        models, about a posture that is given separately."""
        return pose - pose.mean(0) + self.pose_mean.numpy()

    @torch.no_grad()
    def reconstruct(self, pose: np.ndarray) -> np.ndarray:
        """(T, P) poses through encoder, quantiser and decoder, about the sequence's own mean."""
        centred = torch.as_tensor(self.centre(pose), dtype=torch.float32)[None]
        return self(centred)[0][0].numpy() - self.pose_mean.numpy() + pose.mean(0)


def vq_loss(model: PoseVQVAE, pose: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 on z-scored poses and on their velocity, plus the commitment loss."""
    recon, _, commit = model(pose)
    std = model.pose_std
    err = ((recon - pose) / std).abs().mean(-1)
    vel = (((recon[:, 1:] - recon[:, :-1]) - (pose[:, 1:] - pose[:, :-1])) / std).abs().mean(-1)
    m = mask.float()
    mv = m[:, 1:] * m[:, :-1]
    return (
        (err * m).sum() / m.sum().clamp_min(1) + 2.0 * (vel * mv).sum() / mv.sum().clamp_min(1) + commit.sum()
    )


def codebook_usage(codes: np.ndarray, size: int) -> dict:
    """Perplexity of the code histogram (size = all codes used evenly) and unused codes."""
    counts = np.bincount(codes.reshape(-1), minlength=size).astype(np.float64)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    return {
        "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
        "dead_codes": int((counts == 0).sum()),
        "codebook_size": size,
    }


def pool_to_codes(x: torch.Tensor, down: int) -> torch.Tensor:
    """(B, T, F) frame features -> (B, ceil(T/down), F) means over each code's frames."""
    b, t, f = x.shape
    pad = (-t) % down
    if pad:
        x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], 1)
    return x.reshape(b, -1, down, f).mean(2)


class _Block(nn.Module):
    """Pre-norm causal self-attention + feed-forward."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """Causal self-attention over x (B, T, d). With `cache` (a list), the keys and values of x
        are kept in it: the first call may feed a whole prefix, every later one only the newest
        step, which attends to everything before it, so generation costs one step per code."""
        b, t, d = x.shape
        if cache and t != 1:
            raise ValueError("with a filled key/value cache, feed one step at a time")
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
        a = F.scaled_dot_product_attention(
            q, k, v, is_causal=t > 1, dropout_p=self.dropout.p if self.training else 0.0
        )
        x = x + self.dropout(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.dropout(self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh")))


class PoseGPT(nn.Module):
    """Next-code prediction from speech and a pose style embedding (injected into every layer).

    A step's codes are Q residual levels: the step's input is the sum of the previous step's level
    embeddings; level 0 is predicted from the Transformer's output, level q from it plus the
    embeddings of the levels below q of the same step (teacher-forced in training, sampled in turn
    when generating), through a small head of its own."""

    def __init__(self, config: PoseConfig):
        super().__init__()
        c = self.config = config
        d, k, q = c.d_model, c.codebook_size, c.quantizers
        self.register_buffer("offsets", torch.arange(q) * k, persistent=False)
        self.token = nn.Embedding(q * k, d)  # level j's code i is row j * k + i
        self.bos = nn.Parameter(torch.zeros(d))  # the input before the first step
        self.position = nn.Embedding(c.context, d)
        # speech at the code rate: mean and std of the step's frames; a kernel-3 conv lets step t
        # hear step t+1 too (heads move with, or just before, what is said)
        self.speech_in = nn.Conv1d(2 * c.feature_dim, d, 3, padding=1)
        self.styles = nn.Embedding(c.n_styles, c.style_dim)
        self.null_style = nn.Parameter(torch.zeros(c.style_dim))
        self.style_proj = nn.ModuleList([nn.Linear(c.style_dim, d) for _ in range(c.layers)])
        self.blocks = nn.ModuleList([_Block(d, c.heads, c.ff, c.dropout) for _ in range(c.layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, k)
        self.lower = nn.Embedding(max(q - 1, 1) * k, d)  # the codes below a level, in its head
        self.level_heads = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(d, d), nn.GELU(approximate="tanh"), nn.Linear(d, k))
                for _ in range(q - 1)
            ]
        )
        self.register_buffer("feature_mean", torch.zeros(c.feature_dim))
        self.register_buffer("feature_std", torch.ones(c.feature_dim))

    def set_statistics(self, features: torch.Tensor) -> None:
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp_min(1e-4))

    def speech(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, F) frame features -> (B, ceil(T/down), 2F) normalised mean and std per code step."""
        x = (features - self.feature_mean) / self.feature_std
        down = self.config.downsample
        mean = pool_to_codes(x, down)
        std = (pool_to_codes(x * x, down) - mean * mean).clamp_min(0).sqrt()
        return torch.cat([mean, std], -1)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., Q) codes -> (..., d): the input a step gives the step after it."""
        return self.token(codes + self.offsets).sum(-2)

    def inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, Q) codes -> (B, N, d) inputs of their steps: BOS, then each step's predecessor."""
        first = self.bos.expand(codes.shape[0], 1, -1)
        return torch.cat([first, self.embed(codes[:, :-1])], 1)

    def forward(self, codes: torch.Tensor, speech: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, N, Q, K) of codes (B, N, Q), each step hearing the codes before
        it and each level the levels below it; speech (B, >= N, 2F; steps beyond N are the
        look-ahead of the last ones) and style vectors (B, style_dim)."""
        n = codes.shape[1]
        pos = torch.arange(n, device=codes.device)
        heard = self.speech_in(speech.transpose(1, 2)).transpose(1, 2)[:, :n]
        x = self.inputs(codes) + self.position(pos) + heard
        for proj, block in zip(self.style_proj, self.blocks):
            x = block(x + proj(style)[:, None])
        return self.levels(x, lambda q, logits: codes[..., q])

    def levels(self, x: torch.Tensor, pick) -> torch.Tensor:
        """Logits (..., Q, K) of a step's levels from the Transformer's output x (..., d), level by
        level: `pick(q, logits)` gives level q's code (...,), the true one in training or a
        sampled one when generating, and each level hears the codes picked below it."""
        k = self.config.codebook_size
        h = self.norm(x)
        out = []
        for q in range(self.config.quantizers):
            out.append(self.head(h) if q == 0 else self.level_heads[q - 1](h))
            code = pick(q, out[-1])
            if q + 1 < self.config.quantizers:  # the levels above hear this one
                h = h + self.lower.weight[code + q * k]  # an int or a tensor of codes
        return torch.stack(out, -2)

    def style_vectors(self, speakers: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        s = self.styles(speakers)
        if drop is not None:
            s = torch.where(drop[:, None], self.null_style.expand_as(s), s)
        return s

    @torch.inference_mode()
    def generate(
        self,
        features: torch.Tensor,
        style: torch.Tensor,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        overlap: int | None = None,
    ) -> torch.Tensor:
        """Codes (N, Q) for (T, F) frame features of any length, sampled with `temperature` and
        `top_k` (0: all codes) from a generator seeded with `seed` (see `CodeSampler`)."""
        sampler = CodeSampler(self, style, temperature, top_k, seed, overlap)
        speech = self.speech(features[None])[0]
        sampler.hear(speech, 0)
        with single_thread():
            codes = [sampler.next() for _ in range(len(speech))]
        return torch.tensor(codes, dtype=torch.long).reshape(len(speech), self.config.quantizers)


class CodeSampler:
    """PoseGPT's codes one at a time, each from the speech heard so far: what `PoseGPT.generate`
    does for a whole file, and what a stream does as speech arrives (same seed, same codes).

    Longer than the context: windows of `context` codes, each primed with the last `overlap`
    codes of the one before (half the context by default), so the motion runs on across joins.
    Code t hears speech steps t-1, t and t+1 within its window; a step not heard yet counts as
    silence in the model's normalised units (zero), as past the end of a file.
    """

    def __init__(
        self,
        gpt: PoseGPT,
        style: torch.Tensor,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        overlap: int | None = None,
    ):
        c = gpt.config
        self.gpt, self.temperature, self.top_k = gpt, temperature, top_k
        self.overlap = c.context // 2 if overlap is None else overlap
        if not 0 < self.overlap < c.context:
            raise ValueError(f"overlap must be between 1 and {c.context - 1} codes, not {self.overlap}")
        self.random = np.random.default_rng(seed)
        with torch.inference_mode():
            self.styles = [proj(style.reshape(1, -1))[:, None] for proj in gpt.style_proj]
        self.codes: list[tuple[int, ...]] = []  # each step's Q levels
        self.heard: dict[int, torch.Tensor] = {}  # speech of each code step heard (from the window on)
        self.start = 0  # the window's first code
        self.caches: list[list] | None = None
        self.prev: list = []  # the window's step inputs: BOS, then code tuples
        self.t = 0  # positions of the window fed so far

    def hear(self, steps: torch.Tensor, first: int) -> None:
        """Speech steps (S, 2F) from `gpt.speech`, for codes first .. first + S - 1; a later call
        may revise steps (a stream's latest estimate of them is used)."""
        # what each step gives the convolution's three taps (S, 3, d), in one product: a step's
        # input is then three additions, not a convolution over 2F channels
        w = self.gpt.speech_in.weight  # (d, 2F, 3)
        with torch.inference_mode():
            taps = (steps @ w.permute(1, 2, 0).reshape(w.shape[1], -1)).view(len(steps), 3, -1)
        self.heard.update((first + i, tap) for i, tap in enumerate(taps))

    def _heard(self, a: int, b: int) -> torch.Tensor:
        """The speech input (1, b - a, d) of window positions a .. b-1: the kernel-3 convolution
        of `PoseGPT.speech_in` over the steps within the window, zero outside it and where nothing
        has been heard."""
        c, conv = self.gpt.config, self.gpt.speech_in
        x = conv.bias.repeat(b - a, 1)
        for t in range(a, b):
            for k, j in enumerate((t - 1, t, t + 1)):
                if 0 <= j < c.context and self.start + j in self.heard:
                    x[t - a] += self.heard[self.start + j][k]
        return x[None]

    @torch.inference_mode()
    def next(self) -> tuple[int, ...]:
        """Sample the next code (its Q levels)."""
        gpt, c = self.gpt, self.gpt.config
        if self.caches is None or self.t >= c.context:  # a new window, primed with the last codes
            keep = self.codes[-self.overlap :] if self.codes else []
            self.start = len(self.codes) - len(keep)
            self.heard = {
                k: v for k, v in self.heard.items() if k >= self.start
            }  # none before is heard again
            self.caches = [[] for _ in gpt.blocks]
            self.prev, self.t = [None] + keep, 0
        # a step's input is the code before it: the primed codes in one pass, then each sampled one
        new = self.prev[self.t :]
        inputs = [gpt.bos if c is None else gpt.embed(torch.tensor(c)) for c in new]
        x = (
            torch.stack(inputs)[None]
            + gpt.position.weight[self.t : self.t + len(new)]
            + self._heard(self.t, self.t + len(new))
        )
        for s, block, cache in zip(self.styles, gpt.blocks, self.caches):
            x = block(x + s, cache)
        self.t += len(new)
        picked: list[int] = []

        def pick(level: int, logits: torch.Tensor) -> int:
            picked.append(_sample(logits.numpy(), self.temperature, self.top_k, self.random))
            return picked[-1]

        gpt.levels(x[0, -1], pick)
        code = tuple(picked)
        self.prev.append(code)
        self.codes.append(code)
        return code


def _sample(logits: np.ndarray, temperature: float, top_k: int, random: np.random.Generator) -> int:
    """A code drawn from softmax(logits / temperature), among the top_k most likely (0: all); in
    numpy, as a step samples Q codes one by one and torch's per-call cost would dominate."""
    if temperature <= 0:
        return int(logits.argmax())
    z = logits / temperature
    if 0 < top_k < len(z):
        z = np.where(z >= np.partition(z, -top_k)[-top_k], z, -np.inf)
    cdf = np.cumsum(np.exp(z - z.max()))
    return int(np.searchsorted(cdf, random.random() * cdf[-1], side="right"))


def gpt_loss(
    model: PoseGPT, codes: torch.Tensor, speech: torch.Tensor, style: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced cross-entropy of codes (B, N, Q) over the unmasked steps, summed over levels."""
    logits = model(codes, speech, style)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none")
    m = mask[..., None].expand_as(codes).reshape(-1).float()
    return (ce * m).sum() / mask.float().sum().clamp_min(1)


# ---------------------------------------------------------------- semantic-aware pose style matrix


def unit_steps(units: np.ndarray, down: int, n_steps: int) -> np.ndarray:
    """The speech unit of each code step: the most frequent unit among its frames."""
    units = np.asarray(units)
    pad = n_steps * down - len(units)
    if pad > 0:
        units = np.concatenate([units, np.full(pad, units[-1] if len(units) else 0)])
    groups = units[: n_steps * down].reshape(n_steps, down)
    return np.array([np.bincount(g).argmax() for g in groups])


def style_matrix(
    latents: list[np.ndarray], units: list[np.ndarray], n_units: int
) -> tuple[np.ndarray, np.ndarray]:
    """S (n_units, C): per-unit mean of the latents over all of one video's clips; and the counts."""
    dim = latents[0].shape[1]
    total, counts = np.zeros((n_units, dim)), np.zeros(n_units)
    for z, u in zip(latents, units):
        np.add.at(total, u, z)
        np.add.at(counts, u, 1)
    return total / np.maximum(counts, 1)[:, None], counts


def style_distance(
    s_ref: np.ndarray, c_ref: np.ndarray, s_gal: np.ndarray, c_gal: np.ndarray, min_count: int = 1
) -> np.ndarray:
    """Distance of one reference matrix to each gallery matrix ((G, U, C), counts (G, U)).

    Over the units both cover (at least `min_count` steps each): the mean squared Euclidean
    distance between rows, each unit weighted by the fewer of its two counts (a row from more
    steps is a surer mean). Euclidean rather than cosine: a latent's length is how far the head
    moves, which is half of a pose style. Infinite where no unit is shared.
    """
    both = (c_ref[None] >= min_count) & (c_gal >= min_count)
    w = np.where(both, np.minimum(c_ref[None], c_gal), 0.0)
    d = ((s_gal - s_ref[None]) ** 2).sum(-1)
    total = w.sum(1)
    return np.where(total > 0, (w * d).sum(1) / np.maximum(total, 1e-9), np.inf)


def blend_weights(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k nearest and their weights, proportional to 1 / distance (summing to 1).

    Inverse distance (Shepard) weighting: the nearest dominates when it is much nearer, and
    near-ties share the weight, which is how a blend reaches styles between those in the gallery.
    """
    order = np.argsort(distances)[:k]
    d = distances[order]
    w = 1.0 / np.maximum(d, 1e-9)
    return order, w / w.sum()


class PoseAdapter:
    """A trained pose adapter: VQ-VAE, PoseGPT and the gallery of training videos' style matrices."""

    def __init__(
        self,
        vq: PoseVQVAE,
        gpt: PoseGPT,
        matrices: np.ndarray,
        counts: np.ndarray,
        videos: list[str],
        n_units: int,
    ):
        self.vq, self.gpt = vq.eval(), gpt.eval()
        self.matrices, self.counts, self.videos, self.n_units = matrices, counts, videos, n_units

    @property
    def downsample(self) -> int:
        return self.vq.config.downsample

    @torch.no_grad()
    def latents(self, pose: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-quantisation latents (N, C) of a (T, P) pose sequence and the speech unit of each step."""
        z = self.vq.encode(torch.as_tensor(self.vq.centre(pose), dtype=torch.float32)[None])[0].numpy()
        return z, unit_steps(units, self.downsample, len(z))

    def style_matrix(self, poses: list[np.ndarray], units: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.latents(p, u) for p, u in zip(poses, units)]
        return style_matrix([z for z, _ in pairs], [u for _, u in pairs], self.n_units)

    def style_of(self, index: np.ndarray, weights: np.ndarray) -> torch.Tensor:
        """The weighted mean of gallery videos' style embeddings."""
        emb = self.gpt.styles.weight.detach()[torch.as_tensor(index)]
        return (torch.as_tensor(weights, dtype=torch.float32)[:, None] * emb).sum(0)

    @torch.inference_mode()
    def animate(
        self,
        features: np.ndarray,
        style: torch.Tensor | None = None,
        temperature: float = 0.8,
        top_k: int = 0,
        seed: int = 0,
    ) -> np.ndarray:
        """(T, P) head motion about the resting pose for (T, F) speech features; `style` None is
        the generic (null) style. `place` puts it on a person's posture."""
        style = self.gpt.null_style if style is None else style
        feats = torch.as_tensor(features, dtype=torch.float32)
        codes = self.gpt.generate(feats, style, temperature, top_k, seed)
        return self.vq.decode(codes[None], len(feats))[0].numpy()

    def place(self, motion: np.ndarray, posture: np.ndarray | None = None, scale=1.0) -> np.ndarray:
        """(T, P) generated motion about the resting pose -> head poses about `posture` (P,), a
        person's mean head pose (None: the resting pose), the motion scaled by `scale` (a number
        or (P,)). Frame by frame, so a stream and a whole file give the same poses."""
        rest = self.vq.pose_mean.numpy()
        centre = rest if posture is None else np.asarray(posture, dtype=motion.dtype)
        return (centre + np.asarray(scale, dtype=motion.dtype) * (motion - rest)).astype(motion.dtype)
