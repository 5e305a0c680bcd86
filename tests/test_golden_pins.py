"""Golden pins of the shipped cascade: each stage's x0 at fixed seeds, a small corner slice, pinned
in tests/golden/shipped_cascade.json, so "the same images before and after a refactor" is a test,
not a claim (issue 31).

float32 on the CPU (precision "fp32": "auto" is bf16 where it is fast, which is another number);
tolerant across CPU kinds: AVX2, AVX-512 and AMX kernels round differently in the last bits (~1e-6 in
one U-Net output, docs/devices.md), which 4 steps x 3 stages carry to 3.6e-6 here (measured: these
pins written on AVX-512, rerun with ATEN_CPU_CAPABILITY=avx2); a change in what the code computes
moves x0 by 1e-2 and more. To re-pin after an intended change:

    .venv/bin/python tests/test_golden_pins.py --write      # then say why in the commit
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from imagen.checkpoint import load_cascade
from imagen.commands import DEFAULT_CHECKPOINT
from imagen.guidance import Thresholding
from imagen.pipeline import CascadePipeline, Runtime, StageSampling

PINS = Path(__file__).parent / "golden" / "shipped_cascade.json"
PROMPTS = ("a red circle to the left of a blue square",)
SEEDS = (7,)
SETTINGS = (
    StageSampling(steps=4, guidance=3.0),
    StageSampling(steps=4, guidance=1.0, aug_level=0.1),
    StageSampling(steps=4, guidance=1.0, aug_level=0.1, thresholding=Thresholding("static")),
)
ATOL = 1e-3


def stage_slices() -> dict[str, list]:
    """{stage: x0[:, :, :4, :4] as lists} from one call of the real pipeline (each stage's
    sample_stage output recorded on its way through)."""
    import imagen.pipeline as pipeline

    out, real = {}, pipeline.sample_stage

    def recorded(unet, stage, *args, **kwargs):
        x = real(unet, stage, *args, **kwargs)
        out[stage.name] = x[:, :, :4, :4].tolist()
        return x

    pipe = CascadePipeline(load_cascade(DEFAULT_CHECKPOINT), Runtime(device="cpu", precision="fp32"))
    pipeline.sample_stage = recorded
    try:
        pipe(list(PROMPTS), list(SEEDS), SETTINGS)
    finally:
        pipeline.sample_stage = real
    return out


def test_the_shipped_cascade_still_makes_its_pinned_images():
    pins = json.loads(PINS.read_text())
    slices = stage_slices()
    assert list(slices) == list(pins["x0_corner"])
    for name, values in slices.items():
        diff = (torch.tensor(values) - torch.tensor(pins["x0_corner"][name])).abs().max().item()
        assert diff <= ATOL, (
            f"stage {name}: x0 moved by {diff:.2e} (> {ATOL}): the cascade computes something else now"
        )


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    torch.set_num_threads(1)
    slices = stage_slices()
    PINS.write_text(
        json.dumps(
            {
                "checkpoint": "imagen/weights/shapes",
                "prompts": PROMPTS,
                "seeds": SEEDS,
                "precision": "fp32",
                "settings": [repr(s) for s in SETTINGS],
                "x0_corner": slices,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {PINS}")
