"""Loading one stage of a `diffusers_cascade` model: its pipeline class from its own directory,
without the components it does not use (StageInfo.skipped), its scheduler set to the stage's
thresholding settings, placed on the device (or CPU-offloaded one model at a time)."""
from __future__ import annotations

from .diffusers_stages import StageInfo, scheduler_overrides

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def load_stage(st: StageInfo, config, device: str, precision: str):
    import diffusers
    import torch

    cls = getattr(diffusers, st.pipeline)
    skip = {k: None for k in st.skipped if k in cls._optional_components}
    variant = {"variant": config.variant} if config.variant else {}
    pipe = cls.from_pretrained(st.path, local_files_only=True, dtype=getattr(torch, DTYPES[precision]), **skip, **variant)
    overrides = scheduler_overrides(config.stages.get(st.name, {}))
    if overrides:  # the scheduler's config is frozen: a new one from the saved config + these values
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **overrides)
    pipe.set_progress_bar_config(disable=True)
    if config.offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe
