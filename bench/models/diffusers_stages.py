"""The stages of a `diffusers_cascade` model, read from their saved JSON (no weights), and the
Imagen-style settings of each mapped to the diffusers call / scheduler arguments (docs/sweeps.md).

    aug_level a in [0, 1] -> noise_level = round(a * (T - 1)), T = the stage's noising scheduler's
        num_train_timesteps (IF: 1000): Imagen's aug_level is a time of the noise schedule
        (imagen.pipeline: t in [0, 1]); IF's noise_level is an index of a discrete T-step schedule,
        valid in [0, T - 1]. Both ends map onto each other (0: no noise, 1: the last timestep), and
        IF's recommended 250 (stage II) / 100 (x4 upscaler) are aug_level 0.25 / 0.1 exactly.
    thresholding none -> scheduler thresholding = False, clip_sample = False
                 static -> thresholding = False, clip_sample = True, clip_sample_range = 1 (x0 in [-1, 1])
                 dynamic -> thresholding = True, dynamic_thresholding_ratio = percentile / 100,
                            sample_max_value (the cap on s) as saved unless the stage sets it
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pipeline class -> (role, the stage keys it accepts). The x4 upscaler denoises latents: pixel-space
# thresholding does not apply to it, so it is not offered there.
ROLES = {
    "IFPipeline": ("base", ("steps", "guidance", "thresholding", "percentile", "sample_max_value")),
    "IFSuperResolutionPipeline": (
        "sr",
        ("steps", "guidance", "aug_level", "thresholding", "percentile", "sample_max_value"),
    ),
    "StableDiffusionUpscalePipeline": ("upscaler", ("steps", "guidance", "aug_level")),
}
THRESHOLD_KEYS = ("thresholding", "percentile", "sample_max_value")  # fixed per stage: they configure the scheduler
# components a stage does not load: the benchmark scores the model's own pixels (a safety checker
# would black some out, a watermark would mark them); later IF stages take stage I's encoding
NOT_LOADED = ("safety_checker", "feature_extractor", "watermarker")
NOT_LOADED_LATER_IF = ("text_encoder", "tokenizer")


def stage_names(n: int) -> list[str]:
    return [f"stage{i + 1}" for i in range(n)]


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class StageInfo:
    """One pipeline directory as saved: what it is and which settings it can take."""

    name: str  # stage1, stage2, ...
    path: Path
    pipeline: str  # model_index.json _class_name
    role: str  # base | sr | upscaler
    scheduler: dict  # scheduler/scheduler_config.json
    noise_steps: int | None  # T of the scheduler that noises the low-res input (sr, upscaler)
    max_noise_level: int | None  # the upscaler's own bound on noise_level

    @property
    def keys(self) -> tuple[str, ...]:
        keys = ROLES[self.pipeline][1]
        return keys if self.thresholding_supported else tuple(k for k in keys if k not in THRESHOLD_KEYS)

    @property
    def thresholding_supported(self) -> bool:
        import diffusers

        params = inspect.signature(getattr(diffusers, self.scheduler["_class_name"]).__init__).parameters
        return all(
            p in params
            for p in (
                "thresholding",
                "dynamic_thresholding_ratio",
                "sample_max_value",
                "clip_sample",
                "clip_sample_range",
            )
        )

    @property
    def skipped(self) -> tuple[str, ...]:
        return NOT_LOADED + (NOT_LOADED_LATER_IF if self.role == "sr" else ())

    def aug_bounds(self) -> tuple[float, int]:
        """(largest aug_level, its noise_level) this stage accepts."""
        top = self.noise_steps - 1 if self.max_noise_level is None else min(self.noise_steps - 1, self.max_noise_level)
        return top / (self.noise_steps - 1), top

    def noise_level(self, aug_level: float) -> int:
        level = round(aug_level * (self.noise_steps - 1))
        top_aug, top = self.aug_bounds()
        if level > top:
            raise ValueError(
                f"{self.name} ({self.pipeline}): aug_level {aug_level:g} -> noise_level {level} > its max_noise_level {top}; "
                f"allowed aug_level: [0, {math.floor(top_aug * 1e4) / 1e4:g}]"
            )
        return level


def read_stage(name: str, path: Path, first: bool) -> StageInfo:
    index = path / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(f"{name}: {path} is not a saved diffusers pipeline (model_index.json missing)")
    meta = _json(index)
    cls = meta.get("_class_name")
    allowed = ["IFPipeline"] if first else [c for c in ROLES if c != "IFPipeline"]
    if cls not in allowed:
        raise ValueError(
            f"{name}: pipeline {cls!r} at {path}; allowed {'as the first stage' if first else 'after stage1'}: {', '.join(allowed)}"
        )
    role = ROLES[cls][0]
    noiser = {"sr": "image_noising_scheduler", "upscaler": "low_res_scheduler"}.get(role)
    steps = _json(path / noiser / "scheduler_config.json")["num_train_timesteps"] if noiser else None
    return StageInfo(
        name,
        path,
        cls,
        role,
        _json(path / "scheduler" / "scheduler_config.json"),
        steps,
        meta.get("max_noise_level") if role == "upscaler" else None,
    )


@dataclass(frozen=True)
class StageCall:
    """One stage's settings for one grid point, and the diffusers arguments they become."""

    steps: int
    guidance: float  # diffusers' guidance_scale is Imagen's w (1 = no guidance)
    noise_level: int | None  # sr / upscaler only

    def kwargs(self) -> dict:
        extra = {} if self.noise_level is None else {"noise_level": self.noise_level}
        return {"num_inference_steps": self.steps, "guidance_scale": self.guidance, **extra}


def _number(where: str, value: Any, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool):
        raise ValueError(f"{where} must be {'an integer' if integer else 'a number'}, got {value!r}")
    return value


def check_overrides(model: str, stage: StageInfo, keys: Mapping[str, Any]) -> None:
    """Every key allowed for this stage's pipeline / scheduler, with a valid value; one line naming
    the allowed keys or values otherwise."""
    from imagen.guidance import THRESHOLDING_MODES, Thresholding

    where = f"model {model!r} stage {stage.name!r} ({stage.pipeline}, scheduler {stage.scheduler['_class_name']})"
    if not isinstance(keys, Mapping):
        raise ValueError(f"{where}: settings must be a table, got {keys!r}")
    for key in keys:
        if key not in stage.keys:
            raise ValueError(f"{where}: setting {key!r} does not apply; allowed: {', '.join(stage.keys)}")
    mode = keys.get("thresholding")
    if mode is not None and mode not in THRESHOLDING_MODES:
        raise ValueError(f"{where}: thresholding {mode!r}; allowed: {', '.join(THRESHOLDING_MODES)}")
    for key in ("percentile", "sample_max_value"):
        if key in keys and mode != "dynamic":
            raise ValueError(f'{where}: {key} applies to thresholding = "dynamic" only')
    try:
        if "percentile" in keys:
            Thresholding("dynamic", _number("percentile", keys["percentile"]))
        if "sample_max_value" in keys and not _number("sample_max_value", keys["sample_max_value"]) >= 1:
            raise ValueError(f"sample_max_value must be >= 1 (s is at least 1), got {keys['sample_max_value']!r}")
        resolve_call(stage, 1, 1.0, 0.0, keys)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def resolve_call(
    stage: StageInfo, steps: int, guidance: float, aug_level: float | None, keys: Mapping[str, Any]
) -> StageCall:
    """The grid point's steps / guidance / aug_level, then the stage's fixed settings; bounds are
    imagen.pipeline.StageSampling's (declared once there)."""
    from imagen.pipeline import StageSampling

    steps = _number("steps", keys.get("steps", steps), integer=True)
    guidance = float(_number("guidance", keys.get("guidance", guidance)))
    aug = float(_number("aug_level", keys.get("aug_level", aug_level if aug_level is not None else 0.0)))
    StageSampling(steps=steps, guidance=guidance, aug_level=aug)
    return StageCall(steps, guidance, None if stage.role == "base" else stage.noise_level(aug))


def scheduler_overrides(keys: Mapping[str, Any]) -> dict:
    """The scheduler config values a stage's thresholding settings set ({} = as saved)."""
    mode = keys.get("thresholding")
    if mode is None:
        return {}
    if mode == "dynamic":
        from imagen.pipeline import SAMPLING_FIELDS

        percentile = keys.get("percentile", SAMPLING_FIELDS["percentile"].default)
        out = {"thresholding": True, "dynamic_thresholding_ratio": float(percentile) / 100}
        return out | ({"sample_max_value": float(keys["sample_max_value"])} if "sample_max_value" in keys else {})
    return {"thresholding": False, "clip_sample": mode == "static"} | (
        {"clip_sample_range": 1.0} if mode == "static" else {}
    )
