"""`kind = "imagen"`: a cascade checkpoint directory sampled with imagen.pipeline.

Loaded once per sweep (U-Nets + text encoder); every cell of a guidance / thresholding sweep reuses
it, and prompt encodings come from an on-disk cache, so a G-point sweep costs about G x one point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.version import __version__
from imagen.commands import DEFAULT_CHECKPOINT

from .base import SAMPLING_AXES, GeneratedImage, ImageRequest, Sampling, encode_png


@dataclass(frozen=True)
class ImagenModelConfig:
    checkpoint: str | None = None  # cascade or stage dir; None = imagen.commands.DEFAULT_CHECKPOINT
    num_stages: int | None = None  # run only the first N stages
    # images per pipeline call; on CPU in float32 images do not depend on it, elsewhere the sweep
    # fixes batch composition (one unit of work = one batch of one cell)
    batch_size: int = 8
    # auto | bf16 | fp32 (imagen.device: bf16 only where it is fast). The resolved value changes
    # pixels, so it is part of the cell identity and recorded in run.json
    precision: str = "auto"
    memory_format: str = "auto"  # auto | channels_last | contiguous (auto: channels_last on CPU)
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N; under torchrun "cuda" is cuda:LOCAL_RANK
    deterministic: bool = False  # torch deterministic algorithms: bit-exact CUDA reruns (slower); no effect on CPU
    # off | default | reduce-overhead | max-autotune: torch.compile the U-Nets (changes the last bits of
    # pixels, so part of the cell identity; compilation costs minutes first: docs/devices.md)
    compile: str = "off"
    # fixed per-stage settings that override the swept grid for that stage, e.g. {"sr256": {"steps": 16}}
    stages: dict = field(default_factory=dict)


class ImagenModel:
    kind = "imagen"
    axes = (*SAMPLING_AXES, "seed")

    def __init__(self, name: str, config: ImagenModelConfig, cache_dir: Path | None = None):
        from imagen.checkpoint import load_cascade_checkpoint

        self.name, self.config = name, config
        self.checkpoint = Path(config.checkpoint).expanduser() if config.checkpoint else DEFAULT_CHECKPOINT
        if not self.checkpoint.exists():
            raise FileNotFoundError(
                f"model {name!r}: checkpoint {self.checkpoint} not found"
                + (
                    ""
                    if config.checkpoint
                    else " (the default shapes cascade is not installed; train one with "
                    '`imagen-bench train --out DIR` and set checkpoint = "DIR")'
                )
            )
        from imagen.pipeline import STAGE_KEYS

        for stage, keys in config.stages.items():
            if not isinstance(keys, dict):
                raise ValueError(
                    f"model {name!r}: stages.{stage} must be a table of sampling overrides "
                    f"(keys {', '.join(STAGE_KEYS)}), got {keys!r}"
                )
        from imagen.pipeline import Runtime

        try:
            self.runtime = Runtime(
                device=config.device,
                precision=config.precision,
                memory_format=config.memory_format,
                batch_size=config.batch_size,
                deterministic=config.deterministic,
                compile=config.compile,
            )
            self.placement = self.runtime.placement()
        except ValueError as e:
            raise ValueError(f"model {name!r}: {e}") from None
        cfg, unets, self.metas = load_cascade_checkpoint(self.checkpoint, config.num_stages)
        self.stage_names = [s.name for s in cfg.stages]
        self._cfg, self._unets, self._cache_dir = cfg, unets, cache_dir
        self._pipeline = None  # text encoder + pipeline load on first generate: a finished sweep's rerun skips them

    @property
    def text_encoder_fingerprint(self) -> str:
        from imagen.text_encoders import encoder_fingerprint, encoder_placement

        # same fingerprint the encoder computes, without loading it
        return encoder_fingerprint(self._cfg.text_encoder, *encoder_placement(self.placement.device))

    def pipeline(self):
        if self._pipeline is None:
            from imagen.pipeline import Cascade, CascadePipeline
            from imagen.text_encoders import CachedTextEncoder, encoder_placement, load_text_encoder

            text_cache = self._cache_dir / "text" if self._cache_dir else None
            te = load_text_encoder(self._cfg.text_encoder, *encoder_placement(self.placement.device))
            encoder = CachedTextEncoder(te, cache_dir=text_cache)
            self._pipeline = CascadePipeline(
                Cascade(config=self._cfg, text_encoder=encoder, unets=self._unets), self.runtime
            )
        return self._pipeline

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "checkpoint": str(self.checkpoint),
            "package_version": __version__,
            "text_encoder_fingerprint": self.text_encoder_fingerprint,
            "stages": [
                {
                    "name": n,
                    "resolution": m["stage"]["resolution"],
                    "weights_sha256": m["weights_sha256"],
                    "checkpoint_package_version": m.get("package_version"),
                    "step": m.get("step"),
                }
                for n, m in zip(self.stage_names, self.metas)
            ],
            "runtime": self.identity(),  # compared on resume: a folder never mixes precisions or devices
            "stage_overrides": self.config.stages,
        }

    def identity(self) -> dict:
        """What changes this model's pixels besides its table and the grid point: the resolved
        precision, memory format and device type, compilation (part of the cell id, so cells never
        mix them; eager cells keep the ids they had before compilation existed)."""
        from imagen.device import compile_record

        p = self.placement
        return {
            "device": p.device.split(":")[0],
            "precision": p.precision,
            "memory_format": p.memory_format,
            "deterministic": self.config.deterministic,
            **compile_record(self.config.compile),
        }

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        from imagen.pipeline import SAMPLING_FIELDS

        self.stage_sampling(
            Sampling(**{k: f.default for k, f in SAMPLING_FIELDS.items()})
        )  # validates the overrides early

    def stage_sampling(self, s: Sampling):
        """Per-stage StageSampling: the grid point for every stage, then the spec's fixed per-stage
        overrides, passed as the typed values they are (imagen.pipeline.stage_samplings, which
        checks the stage names and keys: one check, named here by model)."""
        from imagen.pipeline import SAMPLING_FIELDS, stage_samplings

        # the grid point, field for field (Sampling's fields are the sampling axes); percentile is None
        # where thresholding is not dynamic: the declared default then (unused by the sampler)
        base = {k: v if v is not None else SAMPLING_FIELDS[k].default for k, v in dataclasses.asdict(s).items()}
        try:
            return stage_samplings(
                self.stage_names, base, {stage: dict(keys) for stage, keys in self.config.stages.items()}
            )
        except ValueError as e:
            raise ValueError(f"model {self.name!r}: {e}") from None

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        settings = self.stage_sampling(sampling)
        bs = self.config.batch_size
        for i in range(0, len(requests), bs):
            batch = requests[i : i + bs]
            images = self.pipeline()([r.ref.prompt for r in batch], [r.seed for r in batch], settings)
            for im in images:
                yield encode_png(im.numpy())
