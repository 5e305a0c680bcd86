"""The Efficient U-Net's extras: modules beyond the paper, switched on by UNetConfig.extras
(config.UNetExtras; all off = the paper's U-Net). Each starts as a no-op (zero-initialised output
projections or tables, identity layers), so it can be added to a trained U-Net (train.ADDABLE).
What they were for (the shapes world's word-order failures, bench.diagnostics.order_check):
    TextLayer       causal transformer layers over the frozen encoder's tokens (extras.text_layers)
    order_pooled    a position-weighted pooled text vector for the FiLM conditioning (extras.order_pool)
    LayoutQueries   a text-to-layout path into the middle block (extras.layout_resolution; the shipped
                    shapes base uses it)
The learned token-index table (extras.text_positions) and 2-D position embedding
(extras.pos_emb_resolution) are single parameters, created in unet.py where they are added.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .attention import multihead, text_keys_values
from .config import UNetConfig


def order_pooled(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D), (B, L) -> (B, D): sum_j r_j t_j / n over the n real tokens, with r_j the token's
    centred relative position in [-1/2, 1/2] (first token -1/2, last +1/2; 0 for a single token).
    Reversing the word order negates it; the masked mean is blind to order."""
    m = mask.to(text.dtype)  # (B, L)
    n = m.sum(1, keepdim=True)  # (B, 1)
    j = torch.arange(text.shape[1], device=text.device, dtype=text.dtype)[None]  # (1, L)
    r = (j - (n - 1) / 2) / (n - 1).clamp(min=1.0) * m  # (B, L), 0 on padding
    return (text * r[..., None]).sum(1) / n.clamp(min=1.0)


def token_position_embedding(length: int, dim: int) -> torch.Tensor:
    """(L, dim) sinusoidal embedding of token positions 0..L-1 (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class TextLayer(nn.Module):
    """One pre-LN transformer layer over text tokens with *causal* self-attention: each token gets a
    summary of the words before it, so "blue square" after "left of" is no longer the same vector
    as "blue square" before it (the order the U-Net's set-like cross-attention cannot see).
    Token positions enter the attention input only, and both residual branches end in
    zero-initialised projections: at init the layer is the identity."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        for lin in (self.proj, self.mlp[-1]):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = text.shape
        h = self.norm1(text) + token_position_embedding(n, d).to(text)
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(h).chunk(3, dim=-1)
        )  # (B, h, L, d/h)
        # key j is visible to query i if j <= i and j is a real token; i always sees itself, so a
        # fully masked (unconditional) text stays finite. Padding outputs are ignored downstream.
        eye = torch.eye(n, dtype=torch.bool, device=text.device)
        allowed = (torch.ones(n, n, dtype=torch.bool, device=text.device).tril() & mask[:, None, None, :]) | eye
        scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, h, L, L)
        out = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(-1) @ v
        text = text + self.proj(out.transpose(1, 2).flatten(2))
        return text + self.mlp(self.norm2(text))


class LayoutQueries(nn.Module):
    """(B, L, D) text -> (B, C, S, S): S*S learned queries, one per place, attend over the text tokens
    (and a learned null token, as cross-attention); a zero-initialised projection makes it a no-op at init."""

    def __init__(self, side: int, ch: int, cfg: UNetConfig):
        super().__init__()
        inner = cfg.attn_heads * cfg.attn_head_dim
        self.side, self.heads = side, cfg.attn_heads
        self.query = nn.Parameter(torch.randn(side * side, inner) * 0.1)  # (S*S, inner)
        self.to_kv = nn.Linear(cfg.text_embed_dim, 2 * inner, bias=False)
        self.null_kv = nn.Parameter(torch.randn(2, inner) * 0.02)
        self.out = nn.Linear(inner, ch)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = text.shape[0]
        k, v, keep = text_keys_values(self.to_kv, self.null_kv, text, mask)
        q = self.query.to(k.dtype).expand(b, -1, -1)  # (B, S*S, inner): the same queries for every caption
        out = self.out(multihead(q, k, v, self.heads, keep))  # (B, S*S, C)
        return out.transpose(1, 2).reshape(b, -1, self.side, self.side)
