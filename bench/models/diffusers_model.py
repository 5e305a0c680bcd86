"""`kind = "diffusers"`: a diffusers text-to-image pipeline saved in a local directory
(`pipe.save_pretrained(dir)`; never downloaded). Needs the optional extra: pip install -e ".[diffusers]".

Swept axes: steps (num_inference_steps), guidance (guidance_scale; note diffusers' scale is the same
w as Imagen's: 1 = no guidance), seed. One torch.Generator per image, so batch composition does not
matter. A multi-stage cascade such as DeepFloyd IF is one pipeline directory per stage; this adapter
runs one directory (e.g. IF stage I at 64x64); kind "diffusers_cascade" runs the chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.files import sha256_file
from common.version import __version__

from .base import GeneratedImage, ImageRequest, Sampling, encode_png
from .diffusers_load import DTYPES, pipeline_precision


@dataclass(frozen=True)
class DiffusersModelConfig:
    path: str  # local directory with model_index.json
    batch_size: int = 4
    device: str = "auto"  # auto | cpu | cuda | cuda:N (imagen.device.resolve_device: this rank's GPU under torchrun)
    precision: str = (
        "auto"  # auto | fp32 | fp16 | bf16 (diffusers_load.pipeline_precision: auto = fp16 on CUDA, fp32 on CPU)
    )
    height: int | None = None  # None = the pipeline's default resolution
    width: int | None = None


class DiffusersModel:
    kind = "diffusers"
    axes = ("steps", "guidance", "seed")

    def __init__(self, name: str, config: DiffusersModelConfig, cache_dir: Path | None = None):
        try:
            import diffusers
        except ImportError as e:
            raise ValueError(
                f'model {name!r} (kind diffusers) needs the optional extra: pip install -e ".[diffusers]" ({e})'
            ) from None
        self.name, self.config = name, config
        self.path = Path(config.path).expanduser()
        if not (self.path / "model_index.json").is_file():
            raise FileNotFoundError(
                f"model {name!r}: {self.path} is not a saved diffusers pipeline (model_index.json missing)"
            )
        self.version = diffusers.__version__
        import torch

        from imagen.device import resolve_device

        try:
            self.device = resolve_device(config.device)
            self.precision, self.precision_reason = pipeline_precision(config.precision, self.device)
        except ValueError as e:
            raise ValueError(f"model {name!r}: {e}") from None
        dtype = getattr(torch, DTYPES[self.precision])
        self.pipe = diffusers.DiffusionPipeline.from_pretrained(self.path, local_files_only=True, dtype=dtype).to(
            self.device
        )
        self.pipe.set_progress_bar_config(disable=True)

    def describe(self) -> dict:
        weights = sorted(p for p in self.path.rglob("*") if p.suffix in {".safetensors", ".bin"})
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "diffusers_version": self.version,
            "package_version": __version__,
            "runtime": {
                "device": self.device.split(":")[0],
                "precision": self.precision,
                "precision_reason": self.precision_reason,
            },
            "weights_sha256": {p.relative_to(self.path).as_posix(): sha256_file(p) for p in weights},
        }

    def identity(self) -> dict:
        """Part of the cell id: where and in what the images are made. Empty for CPU fp32, the only
        placement this kind had before device = "auto", so cells made then keep their ids."""
        if (self.device, self.precision) == ("cpu", "fp32"):
            return {}
        return {"device": self.device.split(":")[0], "precision": self.precision}

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        pass  # any prompt is a valid request

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        import torch

        bs = self.config.batch_size
        size = {k: v for k, v in (("height", self.config.height), ("width", self.config.width)) if v is not None}
        for i in range(0, len(requests), bs):
            batch = requests[i : i + bs]
            out = self.pipe(
                prompt=[r.ref.prompt for r in batch],
                num_inference_steps=sampling.steps,
                guidance_scale=sampling.guidance,
                generator=[torch.Generator().manual_seed(r.seed) for r in batch],
                output_type="np",
                **size,
            )
            for im in np.asarray(out.images):  # (B, H, W, 3) float in [0, 1]
                yield encode_png((im * 255).round().clip(0, 255).astype(np.uint8))
