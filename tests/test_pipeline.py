import torch

from imagen.guidance import Thresholding
from imagen.pipeline import CascadePipeline, Runtime, StageSampling

PROMPTS = ["a red square on the left", "a blue square on the right", "a green square", "a yellow square on the left"]
SETTINGS = [
    StageSampling(steps=4, guidance=3.0, thresholding=Thresholding("dynamic")),
    StageSampling(steps=3, guidance=2.0, thresholding=Thresholding("static"), aug_level=0.1),
    StageSampling(steps=2, sampler="ddim", guidance=1.0, thresholding=Thresholding("none"), aug_level=0.05),
]


def run(cascade, prompts, seeds, batch_size, precision="fp32"):
    return CascadePipeline(cascade, Runtime(device="cpu", precision=precision, batch_size=batch_size))(
        prompts, seeds, SETTINGS
    )


def test_same_seed_gives_byte_identical_images(tiny_cascade):
    a = run(tiny_cascade, PROMPTS, [0, 1, 2, 3], 4)
    b = run(tiny_cascade, PROMPTS, [0, 1, 2, 3], 4)
    assert a.shape == (4, 32, 32, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert a.float().std() > 5  # non-trivial images, not a constant
    c = run(tiny_cascade, PROMPTS, [10, 11, 12, 13], 4)
    assert not torch.equal(a, c)


def test_batch_of_four_equals_four_batches_of_one(tiny_cascade):
    together = run(tiny_cascade, PROMPTS, [5, 6, 7, 8], 4)
    alone = torch.cat([run(tiny_cascade, [p], [s], 1) for p, s in zip(PROMPTS, [5, 6, 7, 8])])
    assert torch.equal(together, alone)


def test_bf16_autocast_runs_and_stays_close(tiny_cascade):
    fp32 = run(tiny_cascade, PROMPTS[:2], [0, 1], 2).float()
    bf16 = run(tiny_cascade, PROMPTS[:2], [0, 1], 2, precision="bf16").float()
    assert (fp32 - bf16).abs().mean() < 20  # same images up to bf16 rounding, not another sample


def test_stage_prefix_and_settings_validation(tiny_cascade):
    pipe = CascadePipeline(tiny_cascade, Runtime(precision="fp32"))
    base = pipe(PROMPTS[:1], [0], SETTINGS, num_stages=1)
    assert base.shape == (1, 8, 8, 3)
    import pytest

    with pytest.raises(ValueError, match="settings for 3 stages"):
        pipe(PROMPTS[:1], [0], SETTINGS[:2])
    with pytest.raises(ValueError, match="aug_level"):
        StageSampling(aug_level=1.5)
