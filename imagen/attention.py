"""Multi-head attention pieces shared by the Efficient U-Net (imagen/unet.py) and its extras
(imagen/unet_extras.py): keys / values of text tokens plus a learned null token, and the attention
itself (fused SDPA on CUDA, plain matmuls elsewhere; the same numbers, checked in float64).

Shapes: q (B, N, inner); k, v (B, M, inner); keep (B, M) bool or None.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def text_keys_values(to_kv: nn.Linear, null_kv: torch.Tensor, text: torch.Tensor, mask: torch.Tensor):
    """Keys and values of the text tokens behind a learned null token (so attention stays defined when
    every token is masked: the unconditional branch of guidance): (B, 1 + L, inner) twice, keep (B, 1 + L)."""
    b = text.shape[0]
    k, v = to_kv(text).chunk(2, dim=-1)  # (B, L, inner)
    nk, nv = (t.to(k.dtype).expand(b, 1, -1) for t in null_kv)
    return torch.cat([nk, k], 1), torch.cat([nv, v], 1), torch.cat([mask.new_ones(b, 1), mask], 1)


def multihead(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    heads: int,
    keep: torch.Tensor | None = None,
    fused: bool | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over `heads` heads: q (B, N, inner), k and v (B, M, inner), keep
    (B, M) or None -> (B, N, inner). On CPU plain matmuls: with <= 256 queries and short contexts they
    are several times faster there than the fused kernel, whose backward pass dominated training time.
    On CUDA the fused kernel (flash / memory-efficient; measured on an H200: 39 -> 42 % of the bf16
    peak for the paper-size base), which computes the same softmax attention. `fused` overrides the
    choice (None: fused exactly on CUDA)."""
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, h, N, d)
    if q.is_cuda if fused is None else fused:
        mask = None if keep is None else keep[:, None, None, :]  # True = attend
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, h, N, M)
    if keep is not None:
        scores = scores.masked_fill(~keep[:, None, None, :], torch.finfo(scores.dtype).min)
    return (scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(2)
