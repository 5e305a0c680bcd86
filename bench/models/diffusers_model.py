"""`kind = "diffusers"`: a diffusers text-to-image pipeline saved in a local directory
(`pipe.save_pretrained(dir)`; never downloaded). Needs the optional extra: pip install -e ".[diffusers]".

Swept axes: steps (num_inference_steps), guidance (guidance_scale; note diffusers' scale is the same
w as Imagen's: 1 = no guidance), seed. One torch.Generator per image, so batch composition does not
matter. A multi-stage cascade such as DeepFloyd IF is one pipeline directory per stage; this adapter
runs one directory (e.g. IF stage I at 64x64); kind "diffusers_cascade" runs the chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .base import GeneratedImage, ImageRequest, Sampling, encode_png


@dataclass(frozen=True)
class DiffusersModelConfig:
    path: str  # local directory with model_index.json
    batch_size: int = 4
    device: str = "cpu"
    height: int | None = None  # None = the pipeline's default resolution
    width: int | None = None


class DiffusersModel:
    kind = "diffusers"
    axes = ("steps", "guidance", "seed")

    def __init__(self, name: str, config: DiffusersModelConfig, cache_dir: Path | None = None):
        try:
            import diffusers
        except ImportError as e:
            raise ValueError(f"model {name!r} (kind diffusers) needs the optional extra: pip install -e \".[diffusers]\" ({e})") from None
        self.name, self.config = name, config
        self.path = Path(config.path).expanduser()
        if not (self.path / "model_index.json").is_file():
            raise FileNotFoundError(f"model {name!r}: {self.path} is not a saved diffusers pipeline (model_index.json missing)")
        self.version = diffusers.__version__
        self.pipe = diffusers.DiffusionPipeline.from_pretrained(self.path, local_files_only=True).to(config.device)
        self.pipe.set_progress_bar_config(disable=True)

    def describe(self) -> dict:
        from common.files import sha256_file
        from common.version import __version__

        weights = sorted(p for p in self.path.rglob("*") if p.suffix in {".safetensors", ".bin"})
        return {"kind": self.kind, "path": str(self.path.resolve()), "diffusers_version": self.version, "package_version": __version__,
                "weights_sha256": {p.relative_to(self.path).as_posix(): sha256_file(p) for p in weights}}

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        pass  # any prompt is a valid request

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        import torch

        bs = self.config.batch_size
        size = {k: v for k, v in (("height", self.config.height), ("width", self.config.width)) if v is not None}
        for i in range(0, len(requests), bs):
            batch = requests[i : i + bs]
            out = self.pipe(prompt=[r.ref.prompt for r in batch], num_inference_steps=sampling.steps, guidance_scale=sampling.guidance,
                            generator=[torch.Generator().manual_seed(r.seed) for r in batch], output_type="np", **size)
            for im in np.asarray(out.images):  # (B, H, W, 3) float in [0, 1]
                yield encode_png((im * 255).round().clip(0, 255).astype(np.uint8))
