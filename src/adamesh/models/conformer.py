"""Conformer blocks (Gulati et al. 2020) as in the paper's released trunk, sized for a CPU.

Every projection is a plain ``nn.Linear`` or ``nn.Conv1d`` with its own name (no packed
``in_proj`` as in ``nn.MultiheadAttention``), so MoLoRA can wrap q/k/v/o, the feed-forward layers
and the pointwise and depthwise convolutions by name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class FeedForward(nn.Module):
    def __init__(self, d: int, ff: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.fc2(self.dropout(F.silu(self.fc1(self.norm(x))))))


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention with a learned bias per head and clipped relative distance
    (Shaw et al. / T5 style): translation-invariant, so windows of any length behave alike."""

    def __init__(self, d: int, heads: int, dropout: float, max_distance: int = 64):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads, self.max_distance = heads, max_distance
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.bias = nn.Embedding(2 * max_distance + 1, heads)
        nn.init.zeros_(self.bias.weight)
        self.dropout = dropout

    def forward(self, x, pad_mask=None):
        b, t, d = x.shape
        h = self.norm(x)
        q, k, v = (proj(h).view(b, t, self.heads, -1).transpose(1, 2) for proj in (self.q, self.k, self.v))
        pos = torch.arange(t, device=x.device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_distance, self.max_distance) + self.max_distance
        bias = self.bias(rel).permute(2, 0, 1)[None]  # (1, heads, t, t)
        if pad_mask is not None:  # True where a frame is real; padded keys get no attention
            bias = bias.masked_fill(~pad_mask[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias.to(q.dtype), dropout_p=self.dropout if self.training else 0.0
        )
        return F.dropout(self.o(out.transpose(1, 2).reshape(b, t, d)), self.dropout, self.training)


class ConvModule(nn.Module):
    def __init__(self, d: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.batch_norm = nn.BatchNorm1d(d)
        self.pointwise_out = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, pad_mask=None):
        h = self.norm(x)
        if pad_mask is not None:  # padded frames must not leak into real ones through the kernel
            h = h * pad_mask[..., None]
        h = F.glu(self.pointwise_in(h.transpose(1, 2)), dim=1)
        h = self.pointwise_out(F.silu(self.batch_norm(self.depthwise(h))))
        return self.dropout(h.transpose(1, 2))


class ConformerBlock(nn.Module):
    """Macaron feed-forward pair with half weights around self-attention and convolution;
    pre-LayerNorm; a final LayerNorm."""

    def __init__(self, d: int, heads: int, ff: int, kernel: int, dropout: float):
        super().__init__()
        self.ff1 = FeedForward(d, ff, dropout)
        self.attn = RelativeSelfAttention(d, heads, dropout)
        self.conv = ConvModule(d, kernel, dropout)
        self.ff2 = FeedForward(d, ff, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x, pad_mask=None):
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, pad_mask)
        x = x + self.conv(x, pad_mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class Conformer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, kernel: int, layers: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(ConformerBlock(d, heads, ff, kernel, dropout) for _ in range(layers))

    def forward(self, x, pad_mask=None):
        for block in self.blocks:
            x = block(x, pad_mask)
        return x
