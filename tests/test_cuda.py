"""CUDA checks: training a tiny cascade on a GPU, DDP over NCCL, CPU-vs-CUDA float32 images, compiled
sampling, the determinism switch, a CUDA-made checkpoint on the CPU. Skipped where torch sees no GPU
(CI has none); run them on a GPU machine with `pytest tests/test_cuda.py` (or `make gpu-check`).

The text encoder is a tiny random T5 saved in the real Hugging Face format (conftest.tiny_t5_dir),
not MiniLM: these checks are about the GPU path, and a lent GPU machine may have only the
repository (MiniLM's 91 MB weights are a pip package), not this machine's virtualenv."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU visible to torch (CI and these CPU machines have none)"
)

HERE = Path(__file__).parent
PROMPTS = ["a red square on the left", "a blue square on the right", "a green square", "a yellow square on the left"]


@pytest.fixture(scope="module")
def t5_encoder(tiny_t5_dir):
    from imagen.config import TextEncoderConfig
    from imagen.text_encoders import CachedTextEncoder, load_text_encoder

    return CachedTextEncoder(load_text_encoder(TextEncoderConfig(kind="t5", path=str(tiny_t5_dir), max_length=16)))


@pytest.fixture(scope="module")
def t5_cascade(tiny_t5_dir, t5_encoder):
    """The tiny preset on the tiny T5, random U-Nets (as conftest.tiny_cascade, which uses MiniLM)."""
    from conftest import randomize_

    from imagen.pipeline import Cascade
    from imagen.presets import tiny, with_t5
    from imagen.unet import EfficientUNet

    cfg = with_t5(tiny(), str(tiny_t5_dir))
    torch.manual_seed(0)
    return Cascade(
        config=cfg,
        text_encoder=t5_encoder,
        unets=[randomize_(EfficientUNet(s.unet), seed=i).eval() for i, s in enumerate(cfg.stages)],
    )


def _settings():
    from imagen.guidance import Thresholding
    from imagen.pipeline import StageSampling

    return [
        StageSampling(steps=4, guidance=3.0, thresholding=Thresholding("dynamic")),
        StageSampling(steps=3, guidance=2.0, aug_level=0.1),
        StageSampling(steps=2, sampler="ddim", aug_level=0.05),
    ]


def test_cuda_and_cpu_float32_images_agree_within_8_levels(t5_cascade):
    from imagen.pipeline import CascadePipeline, Runtime

    cpu = CascadePipeline(t5_cascade, Runtime(device="cpu", precision="fp32", batch_size=4))(
        PROMPTS, [0, 1, 2, 3], _settings()
    )
    gpu = CascadePipeline(t5_cascade, Runtime(device="cuda", precision="fp32", batch_size=4))(
        PROMPTS, [0, 1, 2, 3], _settings()
    )
    assert (cpu.int() - gpu.int()).abs().max() <= 8


def test_compiled_sampling_on_cuda_stays_within_8_levels_of_eager(t5_cascade):
    from imagen.pipeline import CascadePipeline, Runtime

    for mode in ("default", "reduce-overhead"):  # reduce-overhead: CUDA graphs for these launch-bound tiny U-Nets
        eager = CascadePipeline(t5_cascade, Runtime(device="cuda", precision="fp32", batch_size=4))(
            PROMPTS, [0, 1, 2, 3], _settings(), 2
        )
        pipe = CascadePipeline(t5_cascade, Runtime(device="cuda", precision="fp32", batch_size=4, compile=mode))
        compiled = pipe(PROMPTS, [0, 1, 2, 3], _settings(), 2)  # two stages: each compiles for tens of seconds
        assert (eager.int() - compiled.int()).abs().max() <= 8, mode
        assert set(pipe.first_batch_seconds) == {"base", "sr16"}
        torch._dynamo.reset()


def test_deterministic_switch_gives_bit_exact_reruns(t5_cascade):
    from imagen.pipeline import CascadePipeline, Runtime

    rt = Runtime(device="cuda", precision="auto", batch_size=4, deterministic=True)
    a = CascadePipeline(t5_cascade, rt)(PROMPTS, [0, 1, 2, 3], _settings())
    b = CascadePipeline(t5_cascade, rt)(PROMPTS, [0, 1, 2, 3], _settings())
    assert torch.equal(a, b) and torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)


def test_train_a_tiny_cascade_on_cuda_then_sample_it_on_cpu(tmp_path, tiny_t5_dir, t5_encoder):
    from imagen.checkpoint import load_cascade, save_cascade_index
    from imagen.config import TrainConfig
    from imagen.data import ToySet
    from imagen.pipeline import CascadePipeline, Runtime
    from imagen.presets import tiny, with_t5
    from imagen.train import Trainer

    cfg = with_t5(tiny(), str(tiny_t5_dir))
    tc = TrainConfig(steps=40, batch_size=16, lr=1e-3, warmup_steps=5, ckpt_every=20, precision="auto")
    for stage in cfg.stages:
        t = Trainer(
            stage,
            cfg.text_encoder,
            tc,
            ToySet(32),
            t5_encoder,
            tmp_path / stage.name,
            log=lambda s: None,
            device="cuda",
        )
        assert next(t.unet.parameters()).device.type == "cuda"
        losses = t.train()
        assert all(map(lambda v: v == v, losses))  # finite
    save_cascade_index(tmp_path, cfg)
    meta = json.loads((tmp_path / "base" / "config.json").read_text())
    assert meta["runtime"]["device"].startswith("cuda") and meta["runtime"]["gpu"]
    imgs = CascadePipeline(load_cascade(tmp_path, text_encoder=t5_encoder), Runtime(device="cpu", precision="fp32"))(
        PROMPTS[:1], [0], _settings()
    )
    assert imgs.shape == (1, 32, 32, 3)
    # and resumes on the CPU from the CUDA-made train_state.pt
    t = Trainer(
        cfg.stages[0],
        cfg.text_encoder,
        dataclasses.replace(tc, steps=42),
        ToySet(32),
        t5_encoder,
        tmp_path / "base",
        log=lambda s: None,
        device="cpu",
    )
    assert t.step == 40 and len(t.train()) == 2


def test_ddp_training_on_cuda(tmp_path, tiny_t5_dir):
    """torchrun with one rank per GPU (NCCL for gradients): two ranks train and write one checkpoint.
    It needs two GPUs: NCCL refuses two ranks on one device, and one rank is no DDP at all (WORLD_SIZE
    1 joins no process group). What DDP guarantees with two real ranks is checked on every machine,
    CI included, by test_training_ddp.py (gloo on the CPU, the same Trainer code)."""
    if torch.cuda.device_count() < 2:
        pytest.skip(
            "one GPU: NCCL refuses two ranks on one device and one rank is no DDP; two real ranks: test_training_ddp.py (gloo)"
        )
    ranks = 2
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # torchrun as a module, the CLI as a module: runs from the source tree, with or without an install
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(ranks),
        "--master_port",
        "29551",
        "-m",
        "imagen_bench.cli",
        "train",
        "--preset",
        "tiny",
        "--t5",
        str(tiny_t5_dir),
        "--stage",
        "base",
        "--data",
        "toy",
        "--device",
        "cuda",
        "--out",
        str(tmp_path),
        "--steps",
        "6",
        "--set",
        "batch_size=8",
        "--set",
        "ckpt_every=3",
    ]
    subprocess.run(cmd, env=env, check=True, timeout=600)
    meta = json.loads((tmp_path / "base" / "config.json").read_text())
    assert meta["step"] == 6 and meta["runtime"]["world_size"] == ranks and meta["runtime"]["device"] == "cuda:0"
