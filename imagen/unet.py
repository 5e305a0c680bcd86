"""Efficient U-Net (Saharia et al. 2022, appendix B.1, figures A.27-A.30).

The paper's three changes to the DDPM U-Net, all here:
  1. more residual blocks at low resolution (`UNetConfig.num_res_blocks` per level);
  2. skip connections scaled by 1/sqrt(2) before they are concatenated in the up path;
  3. in down blocks the (strided-conv) downsampling comes *before* the block's convolutions, in
     up blocks the upsampling comes *after* them: the expensive convs run at low resolution.

Conditioning: noise level (log-SNR) embedding + pooled text embedding (+ augmentation level for
super-resolution stages) form one vector that FiLMs every residual block; text tokens (layer
normed) are attended to by cross-attention at the levels `cross_attn` selects. Beyond the paper,
UNetConfig.extras switches on the modules of unet_extras.py (text layers, token-index and 2-D
position tables, an order-aware pooled vector, a text-to-layout path); all off is the paper's U-Net.

Shapes: x (B, C, H, W); text (B, L, D) with mask (B, L) bool (True = real token);
logsnr (B,); aug_logsnr (B,) for SR stages; lowres (B, C, H, W) already upsampled to H x W.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import multihead, text_keys_values
from .config import UNetConfig
from .unet_extras import LayoutQueries, TextLayer, order_pooled

SKIP_SCALE = 2**-0.5  # Efficient U-Net change 2


def noise_level_embedding(logsnr: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim) of c = 1000 * (2/pi) * atan(exp(-logsnr/2)), which is
    exactly 1000 t for the unclipped cosine schedule, so c spans [0, 1000] like DDPM timesteps."""
    c = 1000.0 * (2.0 / math.pi) * torch.atan(torch.exp(-0.5 * logsnr.float()))
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=logsnr.device, dtype=torch.float32) / half)
    args = c[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def masked_mean(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) token features, (B, L) bool mask -> (B, D) mean over the real tokens (0 if none):
    the pooled text embedding that conditions every residual block."""
    m = mask.to(text.dtype)[..., None]  # (B, L, 1)
    return (text * m).sum(1) / m.sum(1).clamp(min=1.0)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv, FiLM from the conditioning vector, GroupNorm-SiLU-Dropout-Conv, + residual."""

    def __init__(self, cin: int, cout: int, cond_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start as identity: stable training of deep stacks
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(cond))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head attention from image tokens to a context (itself, or text plus a learned null token)."""

    def __init__(self, ch: int, heads: int, head_dim: int, context_dim: int | None, groups: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.to_q = nn.Linear(ch, inner, bias=False)
        self.to_kv = nn.Linear(context_dim or ch, 2 * inner, bias=False)
        # A learned null key/value keeps cross-attention defined when every text token is masked
        # (the unconditional branch of classifier-free guidance).
        self.null_kv = nn.Parameter(torch.randn(2, inner) * 0.02) if context_dim else None
        self.out = nn.Linear(inner, ch)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, text: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q = self.to_q(tokens)
        if self.null_kv is None:
            k, v = self.to_kv(tokens).chunk(2, dim=-1)
            keep = None
        else:
            k, v, keep = text_keys_values(self.to_kv, self.null_kv, text, mask)
        out = self.out(multihead(q, k, v, self.heads, keep))  # (B, HW, C)
        return x + out.transpose(1, 2).reshape(b, c, hgt, wid)


class AttnBlock(nn.Module):
    """Optional self-attention, optional text cross-attention, then a 1x1-conv feed-forward."""

    def __init__(self, ch: int, cfg: UNetConfig, self_attn: bool, cross_attn: bool):
        super().__init__()
        g = cfg.num_groups
        self.self_attn = Attention(ch, cfg.attn_heads, cfg.attn_head_dim, None, g) if self_attn else None
        self.cross_attn = (
            Attention(ch, cfg.attn_heads, cfg.attn_head_dim, cfg.text_embed_dim, g) if cross_attn else None
        )
        self.ff = nn.Sequential(nn.GroupNorm(g, ch), nn.Conv2d(ch, 2 * ch, 1), nn.GELU(), nn.Conv2d(2 * ch, ch, 1))

    def forward(self, x: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.self_attn is not None:
            x = self.self_attn(x)
        if self.cross_attn is not None:
            x = self.cross_attn(x, text, mask)
        return x + self.ff(x)


class Block(nn.Module):
    """DBlock or UBlock: residual blocks then attention, with resampling before (down) or after (up)."""

    def __init__(
        self, cin: int, cout: int, n_res: int, cfg: UNetConfig, level: int, down: bool, resample: bool, cnext: int = 0
    ):
        super().__init__()
        self.pre = nn.Conv2d(cin, cout, 3, stride=2, padding=1) if (down and resample) else None  # change 3
        c = cout if self.pre is not None else cin
        self.res = nn.ModuleList(
            ResBlock(c if i == 0 else cout, cout, cfg.cond_dim, cfg.num_groups, cfg.dropout) for i in range(n_res)
        )
        attn = cfg.self_attn[level] or cfg.cross_attn[level]
        self.attn = AttnBlock(cout, cfg, cfg.self_attn[level], cfg.cross_attn[level]) if attn else None
        # (1, C, S, S) learned "where" for attention at this level (S = R / 2**level); zero at init.
        side = (cfg.extras.pos_emb_resolution or 0) // 2**level
        self.pos_emb = nn.Parameter(torch.zeros(1, cout, side, side)) if (attn and side) else None
        self.post = nn.Conv2d(cout, cnext, 3, padding=1) if (not down and resample) else None  # change 3

    def forward(self, x, cond, text, mask):
        if self.pre is not None:
            x = self.pre(x)
        for block in self.res:
            x = block(x, cond)
        if self.attn is not None:
            if self.pos_emb is not None:
                x = x + self.pos_emb.to(x.dtype)
            x = self.attn(x, text, mask)
        if self.post is not None:
            x = self.post(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class EfficientUNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        chs = [cfg.dim * m for m in cfg.channel_mults]
        d = cfg.cond_dim
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.aug_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d)) if cfg.lowres_cond else None
        self.text_norm = nn.LayerNorm(cfg.text_embed_dim)  # paper: layer norm on text embeddings
        self.text_layers = nn.ModuleList(
            TextLayer(cfg.text_embed_dim, cfg.attn_heads) for _ in range(cfg.extras.text_layers)
        )
        self.text_pool = nn.Sequential(nn.Linear(cfg.text_embed_dim, d), nn.SiLU(), nn.Linear(d, d))
        # (L, D) token-index embedding for cross-attention only; zero-init so it starts as a no-op
        self.text_pos = (
            nn.Parameter(torch.zeros(cfg.extras.text_positions, cfg.text_embed_dim))
            if cfg.extras.text_positions
            else None
        )
        self.null_pooled = nn.Parameter(torch.zeros(d))
        self.order_pool = (
            nn.Sequential(nn.Linear(cfg.text_embed_dim, d), nn.SiLU(), nn.Linear(d, d))
            if cfg.extras.order_pool
            else None
        )
        if self.order_pool is not None:  # a no-op at init, so it can be added to a trained U-Net
            nn.init.zeros_(self.order_pool[-1].weight)
            nn.init.zeros_(self.order_pool[-1].bias)
        cin = cfg.in_channels * (2 if cfg.lowres_cond else 1)
        self.init_conv = nn.Conv2d(cin, chs[0], 3, padding=1)

        self.down = nn.ModuleList()
        prev = chs[0]
        for i, ch in enumerate(chs):
            self.down.append(Block(prev, ch, cfg.num_res_blocks[i], cfg, i, down=True, resample=i > 0))
            prev = ch
        last = len(chs) - 1
        self.layout = (
            LayoutQueries(cfg.extras.layout_resolution // 2**last, prev, cfg) if cfg.extras.layout_resolution else None
        )
        self.mid = Block(prev, prev, 2, cfg, last, down=True, resample=False)
        self.up = nn.ModuleList()
        for i in reversed(range(len(chs))):
            nxt = chs[i - 1] if i > 0 else chs[0]
            self.up.append(
                Block(prev + chs[i], chs[i], cfg.num_res_blocks[i], cfg, i, down=False, resample=i > 0, cnext=nxt)
            )
            prev = nxt
        self.out = nn.Sequential(
            nn.GroupNorm(cfg.num_groups, chs[0]), nn.SiLU(), nn.Conv2d(chs[0], cfg.in_channels, 3, padding=1)
        )
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(
        self,
        x: torch.Tensor,
        logsnr: torch.Tensor,
        text: torch.Tensor,
        mask: torch.Tensor,
        lowres: torch.Tensor | None = None,
        aug_logsnr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.cfg
        if cfg.lowres_cond != (lowres is not None) or cfg.lowres_cond != (aug_logsnr is not None):
            raise ValueError("super-resolution U-Nets need lowres and aug_logsnr; base U-Nets take neither")
        for side in {s for s in (cfg.extras.pos_emb_resolution, cfg.extras.layout_resolution) if s}:  # None / 0: none
            if tuple(x.shape[-2:]) != (side, side):
                raise ValueError(
                    f"this U-Net has position embeddings / layout queries for {side}x{side} inputs only, "
                    f"got {tuple(x.shape[-2:])}"
                )
        if self.text_pos is not None and text.shape[1] > cfg.extras.text_positions:
            raise ValueError(
                f"this U-Net embeds token positions 0..{cfg.extras.text_positions - 1} only, got {text.shape[1]} tokens"
            )
        text = self.text_norm(text)
        for layer in self.text_layers:
            text = layer(text, mask)
        cond = self.time_mlp(noise_level_embedding(logsnr, cfg.cond_dim).to(text.dtype))
        pooled = masked_mean(text, mask)
        has_text = mask.any(1, keepdim=True)
        cond = cond + torch.where(has_text, self.text_pool(pooled), self.null_pooled.to(cond.dtype))
        if self.order_pool is not None:  # unconditional rows (no text) get nothing from it
            cond = cond + self.order_pool(order_pooled(text, mask)) * has_text.to(cond.dtype)
        if self.text_pos is not None:  # after pooling: only cross-attention sees the index table
            text = text + self.text_pos[: text.shape[1]].to(text.dtype) * mask[..., None].to(text.dtype)
        if lowres is not None:
            cond = cond + self.aug_mlp(noise_level_embedding(aug_logsnr, cfg.cond_dim).to(text.dtype))
            x = torch.cat([x, lowres.to(x.dtype)], dim=1)

        h = self.init_conv(x)
        skips = []
        for block in self.down:
            h = block(h, cond, text, mask)
            skips.append(h)
        if self.layout is not None:  # (B, C, S, S) what the caption puts at each place of the lowest map
            h = h + self.layout(text, mask).to(h.dtype)
        h = self.mid(h, cond, text, mask)
        for block in self.up:
            h = block(torch.cat([h, skips.pop() * SKIP_SCALE], dim=1), cond, text, mask)
        return self.out(h)
