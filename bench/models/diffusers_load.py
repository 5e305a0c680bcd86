"""Loading one stage of a `diffusers_cascade` model: its pipeline class from its own directory,
without the components it does not use (StageInfo.skipped), its scheduler set to the stage's
thresholding settings, placed on the device (or CPU-offloaded one model at a time)."""

from __future__ import annotations

from .diffusers_stages import StageInfo, scheduler_overrides

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("auto", *DTYPES)


def pipeline_precision(precision: str, device: str) -> tuple[str, str]:
    """(precision, why) of a diffusers pipeline on resolved `device`, for both diffusers kinds.
    auto: fp16 on CUDA (every CUDA GPU computes it natively, and it is the half precision IF and
    Stable Diffusion are released and run in), fp32 on a CPU (the precision the pipelines are
    checked in there; half-precision CPU kernels are slow or missing). Explicit ones are honoured,
    but fp16 needs CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    cuda = device.startswith("cuda")
    if precision == "auto":
        return ("fp16", "auto: CUDA, the pipelines' released half precision") if cuda else ("fp32", "auto: CPU")
    if precision == "fp16" and not cuda:
        raise ValueError(f"precision fp16 needs a CUDA device; on {device} use fp32 or bf16")
    return precision, "asked for"


def load_stage(st: StageInfo, config, device: str, precision: str):
    import diffusers
    import torch

    cls = getattr(diffusers, st.pipeline)
    skip = {k: None for k in st.skipped if k in cls._optional_components}
    variant = {"variant": config.variant} if config.variant else {}
    pipe = cls.from_pretrained(
        st.path, local_files_only=True, dtype=getattr(torch, DTYPES[precision]), **skip, **variant
    )
    overrides = scheduler_overrides(config.stages.get(st.name, {}))
    if overrides:  # the scheduler's config is frozen: a new one from the saved config + these values
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **overrides)
    pipe.set_progress_bar_config(disable=True)
    if config.offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe
