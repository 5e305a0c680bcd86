"""Named cascade presets. `get_preset` rejects unknown names, listing the known ones.

- "paper":  Imagen's sizes, Efficient U-Net widths/depths tuned to the paper's totals (2B base 64x64, 600M SR 64->256, 400M SR 256->1024) on T5-XXL
            (D = 4096); checked by a meta-device parameter-count test (within 15 %).
- "shapes": the suite's offline default, 1/4 of the paper's resolutions (16 -> 64 -> 256) on
            MiniLM (D = 384), sized to train on a 2-core CPU.
- "shapes-pos": "shapes" with learned 2-D position embeddings in the base U-Net (an ablation, see
            the shapes model card: fine-tuned from the shapes base it did not teach relation direction).
- "shapes-text", "shapes-order", "shapes-pool", "shapes-order-v", "shapes-layout-v": further base
            ablations (trainable text layers; token-index + position embeddings; an order-pooled FiLM
            vector; shapes-order with v-prediction; v-prediction with a text-to-layout path), all
            recorded in the shapes model card; only the layout path learned relation direction, and
            "shapes-layout-v" is the shipped default's config (v6: its base, then "shapes"' SR stages).
- "tiny":   8 -> 16 -> 32, a few thousand parameters per stage: for tests.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from .config import CascadeConfig, DiffusionConfig, StageConfig, TextEncoderConfig, UNetConfig

T5_XXL_DIM = 4096


def paper(t5_path: str = "t5-v1_1-xxl") -> CascadeConfig:
    te = TextEncoderConfig(kind="t5", path=t5_path, max_length=128)  # paper: 128 tokens
    d = T5_XXL_DIM
    base = StageConfig(
        name="base",
        resolution=64,
        unet=UNetConfig(
            dim=512,
            channel_mults=(1, 2, 3, 4),
            num_res_blocks=(3, 3, 4, 5),
            self_attn=(False, True, True, True),
            cross_attn=(False, True, True, True),
            attn_heads=8,
            attn_head_dim=64,
            text_embed_dim=d,
            cond_dim=2048,
            num_groups=32,
        ),
        diffusion=DiffusionConfig(prediction="eps"),
    )
    sr256 = StageConfig(
        name="sr256",
        resolution=256,
        lowres_resolution=64,
        unet=UNetConfig(
            dim=128,
            channel_mults=(1, 2, 4, 6, 6),
            num_res_blocks=(2, 4, 8, 8, 8),
            self_attn=(False, False, False, False, True),
            cross_attn=(False, False, False, True, True),
            attn_heads=8,
            attn_head_dim=64,
            text_embed_dim=d,
            cond_dim=512,
            lowres_cond=True,
            num_groups=32,
        ),
        diffusion=DiffusionConfig(prediction="v"),
    )
    sr1024 = StageConfig(  # paper: no self-attention, text cross-attention only; trained on 256x256 crops
        name="sr1024",
        resolution=1024,
        lowres_resolution=256,
        train_crop=256,
        unet=UNetConfig(
            dim=128,
            channel_mults=(1, 2, 4, 6, 6),
            num_res_blocks=(2, 4, 8, 4, 4),
            self_attn=(False,) * 5,
            cross_attn=(False, False, False, False, True),
            attn_heads=8,
            attn_head_dim=64,
            text_embed_dim=d,
            cond_dim=512,
            lowres_cond=True,
            num_groups=32,
        ),
        diffusion=DiffusionConfig(prediction="v"),
    )
    return CascadeConfig(text_encoder=te, stages=(base, sr256, sr1024))


def shapes() -> CascadeConfig:
    te = TextEncoderConfig(kind="minilm", max_length=32)
    d = 384
    base = StageConfig(
        name="base",
        resolution=16,
        unet=UNetConfig(
            dim=64,
            channel_mults=(1, 2, 2),
            num_res_blocks=(2, 2, 3),
            self_attn=(False, True, True),
            cross_attn=(True, True, True),
            attn_heads=4,
            attn_head_dim=32,
            text_embed_dim=d,
            cond_dim=256,
        ),
        diffusion=DiffusionConfig(prediction="eps"),
    )
    sr64 = StageConfig(
        name="sr64",
        resolution=64,
        lowres_resolution=16,
        unet=UNetConfig(
            dim=32,
            channel_mults=(1, 2, 4),
            num_res_blocks=(1, 2, 3),
            self_attn=(False, False, False),
            cross_attn=(False, False, True),
            attn_heads=4,
            attn_head_dim=32,
            text_embed_dim=d,
            cond_dim=128,
            lowres_cond=True,
        ),
        diffusion=DiffusionConfig(prediction="v"),
    )
    sr256 = StageConfig(  # paper's last stage: no self-attention, trained on crops (64x64 of 256x256)
        name="sr256",
        resolution=256,
        lowres_resolution=64,
        train_crop=64,
        unet=UNetConfig(
            dim=16,
            channel_mults=(1, 2, 4),
            num_res_blocks=(1, 1, 2),
            self_attn=(False, False, False),
            cross_attn=(False, False, True),
            attn_heads=2,
            attn_head_dim=32,
            text_embed_dim=d,
            cond_dim=64,
            lowres_cond=True,
        ),
        diffusion=DiffusionConfig(prediction="v"),
    )
    return CascadeConfig(text_encoder=te, stages=(base, sr64, sr256))


def _shapes_base_with(prediction: str = "eps", **extras) -> CascadeConfig:
    """The shapes cascade with the base U-Net's extras (and prediction target) changed (ablations trained with init_from)."""
    c = shapes()
    unet = c.stages[0].unet
    base = dataclasses.replace(
        c.stages[0],
        unet=dataclasses.replace(unet, extras=dataclasses.replace(unet.extras, **extras)),
        diffusion=dataclasses.replace(c.stages[0].diffusion, prediction=prediction),
    )
    return dataclasses.replace(c, stages=(base, *c.stages[1:]))


def shapes_pos() -> CascadeConfig:  # + a learned 2-D position embedding before attention
    return _shapes_base_with(pos_emb_resolution=shapes().stages[0].resolution)


def shapes_text() -> CascadeConfig:  # + two causal text layers over the frozen MiniLM features
    return _shapes_base_with(text_layers=2)


def shapes_order(
    prediction: str = "eps",
) -> CascadeConfig:  # + token-index embeddings for cross-attention and the 2-D one
    base = shapes().stages[0]
    return _shapes_base_with(
        prediction, pos_emb_resolution=base.resolution, text_positions=shapes().text_encoder.max_length
    )


def shapes_pool() -> CascadeConfig:  # + an order-aware pooled text vector in the FiLM conditioning
    return _shapes_base_with(order_pool=True)


def shapes_order_v() -> (
    CascadeConfig
):  # shapes-order with a v-prediction base (as the SR stages): high noise weighs ~1, not SNR
    return shapes_order("v")


def shapes_layout_v() -> (
    CascadeConfig
):  # a v-prediction base with the text-to-layout path (UNetExtras.layout_resolution)
    return _shapes_base_with("v", layout_resolution=shapes().stages[0].resolution)


def tiny(text_embed_dim: int = 384) -> CascadeConfig:
    te = TextEncoderConfig(kind="minilm", max_length=16)
    d = text_embed_dim

    def unet(lowres: bool, self_attn: bool) -> UNetConfig:
        return UNetConfig(
            dim=16,
            channel_mults=(1, 2),
            num_res_blocks=(1, 2),
            self_attn=(False, self_attn),
            cross_attn=(False, True),
            attn_heads=2,
            attn_head_dim=16,
            text_embed_dim=d,
            cond_dim=64,
            lowres_cond=lowres,
            num_groups=4,
        )

    return CascadeConfig(
        text_encoder=te,
        stages=(
            StageConfig(name="base", resolution=8, unet=unet(False, True)),
            StageConfig(
                name="sr16",
                resolution=16,
                lowres_resolution=8,
                unet=unet(True, True),
                diffusion=DiffusionConfig(prediction="v"),
            ),
            StageConfig(
                name="sr32",
                resolution=32,
                lowres_resolution=16,
                train_crop=16,
                unet=unet(True, False),
                diffusion=DiffusionConfig(prediction="v"),
            ),
        ),
    )


def with_t5(cascade: CascadeConfig, t5_path: str) -> CascadeConfig:
    """`cascade` conditioned on the T5 encoder in the local Hugging Face directory `t5_path`: every
    U-Net's text width becomes the T5's d_model (4,096 for T5-XXL, as the paper preset has); the
    preset's token length is kept. For `imagen-bench train --t5 DIR` with any preset."""
    config = Path(t5_path).expanduser() / "config.json"
    try:
        d = int(json.loads(config.read_text())["d_model"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"--t5 {t5_path}: not a Hugging Face T5 directory (need config.json with d_model): {e}"
        ) from None
    te = dataclasses.replace(cascade.text_encoder, kind="t5", path=str(t5_path))
    stages = tuple(dataclasses.replace(s, unet=dataclasses.replace(s.unet, text_embed_dim=d)) for s in cascade.stages)
    return dataclasses.replace(cascade, text_encoder=te, stages=stages)


PRESETS: dict[str, Callable[[], CascadeConfig]] = {
    "paper": paper,
    "shapes": shapes,
    "tiny": tiny,
    # base ablations, each trained with init_from the shapes base (MODEL_CARD.md of the shapes weights)
    "shapes-pos": shapes_pos,
    "shapes-text": shapes_text,
    "shapes-order": shapes_order,
    "shapes-pool": shapes_pool,
    "shapes-order-v": shapes_order_v,
    "shapes-layout-v": shapes_layout_v,
}


def get_preset(name: str) -> CascadeConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
