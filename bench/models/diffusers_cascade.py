"""`kind = "diffusers_cascade"`: a pixel cascade of local diffusers pipeline directories, e.g.
DeepFloyd IF stage I (64 x 64) -> stage II (256) -> the x4 upscaler (1024), swept the Imagen way.

    paths = [stage1 dir, stage2 dir, ...]       stage1: IFPipeline; later: IFSuperResolutionPipeline
                                                 or StableDiffusionUpscalePipeline (bench.models.diffusers_stages)
    [models.stages.stage2] steps / guidance / aug_level / thresholding / percentile / sample_max_value

Axes: steps, guidance, aug_level, seed; each stage takes the grid point, then its fixed settings.
Stage I's T5 encodes each batch once (`encode_prompt`); IF stages after it get the result as
`prompt_embeds` / `negative_prompt_embeds` and load no T5 of their own. The x4 upscaler has its own
CLIP encoder, so it gets the prompt text. One torch.Generator per image (CPU, seeded with the
image's seed) runs through all stages, as in IF's reference usage: an image never depends on its
batch. Pipelines load on the first image, so a finished sweep's rerun loads none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.files import sha256_file
from common.version import __version__

from .base import GeneratedImage, ImageRequest, Sampling, encode_png
from .diffusers_load import load_stage, pipeline_precision
from .diffusers_stages import StageInfo, check_overrides, read_stage, resolve_call, scheduler_overrides, stage_names


@dataclass(frozen=True)
class DiffusersCascadeConfig:
    paths: tuple[str, ...]  # ordered local pipeline directories (model_index.json in each)
    num_stages: int | None = None  # run only the first N
    batch_size: int = 4
    device: str = "auto"  # auto | cpu | cuda | cuda:N (imagen.device.resolve_device)
    precision: str = "auto"
    offload: bool = False  # enable_model_cpu_offload: one stage's model on the GPU at a time (CUDA only)
    variant: str | None = None  # from_pretrained variant, e.g. "fp16" for IF's fp16-only downloads
    clean_caption: bool = False  # IF's caption cleaning (needs bs4 + ftfy); off: the prompt text as written
    stages: dict = field(default_factory=dict)  # fixed settings per stage name, e.g. {"stage2": {"steps": 50}}


class DiffusersCascadeModel:
    kind = "diffusers_cascade"
    axes = ("steps", "guidance", "aug_level", "seed")

    def __init__(self, name: str, config: DiffusersCascadeConfig, cache_dir: Path | None = None):
        try:
            import diffusers
        except ImportError as e:
            raise ValueError(
                f'model {name!r} (kind diffusers_cascade) needs the optional extra: pip install -e ".[diffusers]" ({e})'
            ) from None
        from imagen.device import resolve_device

        self.name, self.config, self.version = name, config, diffusers.__version__
        if not config.paths:
            raise ValueError(f"model {name!r}: paths is empty; list the stage directories, stage I first")
        n = config.num_stages or len(config.paths)
        if n > len(config.paths):
            raise ValueError(f"model {name!r}: num_stages = {n} but paths lists {len(config.paths)} stage(s)")
        names = stage_names(n)
        self.stages = [
            read_stage(s, Path(p).expanduser(), i == 0) for i, (s, p) in enumerate(zip(names, config.paths))
        ]
        unknown = sorted(set(config.stages) - set(names))
        if unknown:
            raise ValueError(
                f"model {name!r}: settings for stages {unknown} that do not run; stages: {', '.join(names)}"
            )
        for st in self.stages:
            check_overrides(name, st, config.stages.get(st.name, {}))
        try:
            self.device = resolve_device(config.device)
        except ValueError as e:
            raise ValueError(f"model {name!r}: {e}") from None
        try:
            self.precision, self.precision_reason = pipeline_precision(config.precision, self.device)
        except ValueError as e:
            raise ValueError(f"model {name!r}: {e}") from None
        if config.offload and not self.device.startswith("cuda"):
            raise ValueError(
                f"model {name!r}: offload = true needs a CUDA device (device resolved to {self.device!r})"
            )
        if config.offload and not diffusers.utils.is_accelerate_available():
            raise ValueError(f"model {name!r}: offload = true needs accelerate installed (pip install accelerate)")
        if config.clean_caption:
            from diffusers.utils import is_bs4_available, is_ftfy_available

            if not (is_bs4_available() and is_ftfy_available()):
                raise ValueError(f"model {name!r}: clean_caption = true needs beautifulsoup4 and ftfy installed")
        self._pipes = None
        self._weights: list[dict] | None = None

    def weights(self) -> list[dict]:
        """Per stage: sha256 of each weights file of the components it loads (hashed once)."""
        if self._weights is None:
            self._weights = []
            for st in self.stages:
                files = sorted(
                    p
                    for p in st.path.rglob("*")
                    if p.suffix in {".safetensors", ".bin"} and p.relative_to(st.path).parts[0] not in st.skipped
                )
                self._weights.append({p.relative_to(st.path).as_posix(): sha256_file(p) for p in files})
        return self._weights

    def _stage_record(self, st: StageInfo, weights: dict) -> dict:
        return {
            "name": st.name,
            "path": str(st.path.resolve()),
            "pipeline": st.pipeline,
            "scheduler": st.scheduler["_class_name"],
            "scheduler_overrides": scheduler_overrides(self.config.stages.get(st.name, {})),
            "settings": dict(self.config.stages.get(st.name, {})),
            "not_loaded": list(st.skipped),
            "weights_sha256": weights,
        }

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "diffusers_version": self.version,
            "package_version": __version__,
            "runtime": self.identity(),
            "clean_caption": self.config.clean_caption,
            "variant": self.config.variant,
            "stages": [self._stage_record(st, w) for st, w in zip(self.stages, self.weights())],
        }

    def identity(self) -> dict:
        """Part of the cell id: the resolved device type and precision, offload, and a digest of
        every stage's class, scheduler settings and weights (other weights -> other cells)."""
        stages = [self._stage_record(st, w) | {"path": None} for st, w in zip(self.stages, self.weights())]
        digest = hashlib.sha256(json.dumps(stages, sort_keys=True).encode()).hexdigest()[:16]
        return {
            "device": self.device.split(":")[0],
            "precision": self.precision,
            "offload": self.config.offload,
            "stages_sha256": digest,
        }

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        pass  # any prompt is a valid request; settings were checked when the model was built

    def check_sampling(self, s: Sampling) -> None:
        """Refuse a grid point a stage cannot take (e.g. an aug_level above the upscaler's max) before any image."""
        self.calls(s)

    def calls(self, s: Sampling) -> list:
        out = []
        for st in self.stages:
            try:
                out.append(resolve_call(st, s.steps, s.guidance, s.aug_level, self.config.stages.get(st.name, {})))
            except ValueError as e:
                raise ValueError(f"model {self.name!r} stage {st.name!r}: {e}") from None
        return out

    def pipelines(self) -> list:
        if self._pipes is None:
            self._pipes = [load_stage(st, self.config, self.device, self.precision) for st in self.stages]
        return self._pipes

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        import torch

        calls, pipes, bs = self.calls(sampling), self.pipelines(), self.config.batch_size
        for i in range(0, len(requests), bs):
            batch = requests[i : i + bs]
            prompts = [r.ref.prompt for r in batch]
            gens = [torch.Generator().manual_seed(r.seed) for r in batch]
            # (B, L, D) T5 states for the prompts and for "" (the unconditional branch), once per batch
            pe, ne = pipes[0].encode_prompt(
                prompts,
                do_classifier_free_guidance=True,
                device=pipes[0]._execution_device,
                clean_caption=self.config.clean_caption,
            )
            image = None  # (B, 3, H, W) in IF's [-1, 1] between stages (output_type "pt" of IF stages)
            for st, pipe, call in zip(self.stages, pipes, calls):
                if st.role == "upscaler":  # takes and gives [0, 1] images (its processor maps them to [-1, 1] itself)
                    low = image.clamp(-1, 1) / 2 + 0.5
                    image = (
                        pipe(prompt=prompts, image=low, generator=gens, output_type="pt", **call.kwargs()).images * 2
                        - 1
                    )
                else:
                    text = {"prompt_embeds": pe, "negative_prompt_embeds": ne}
                    low = {} if st.role == "base" else {"image": image}
                    image = pipe(**text, **low, generator=gens, output_type="pt", **call.kwargs()).images
            image = image / 2 + 0.5  # IF's own postprocessing
            pixels = image.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3) in [0, 1]
            for im in pixels:
                yield encode_png((im * 255).round().clip(0, 255).astype(np.uint8))
