"""Training under torchrun with DistributedDataParallel (gloo on CPU): 2 processes with the global
batch split between them train the weights 1 process trains on the whole batch, and resume exactly;
a checkpoint keeps its format whatever device made it. CUDA checks are in test_cuda.py.

The one-step test runs in `make test` (CI): two real ranks on different rows end with identical,
averaged gradients and weights. The torchrun runs of the whole command are marked slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

HERE = Path(__file__).parent
VENV_BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(HERE.parent),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
# the tiny base stage, a global batch of 8, float32 so the comparison is about DDP, not bf16 rounding
ARGS = [
    "train",
    "--preset",
    "tiny",
    "--stage",
    "base",
    "--data",
    "toy",
    "--device",
    "cpu",
    "--set",
    "batch_size=8",
    "--set",
    "precision=fp32",
    "--set",
    "num_threads=1",
    "--set",
    "ckpt_every=3",
    "--set",
    "warmup_steps=2",
    "--set",
    "lr=0.001",
]


def train(out: Path, steps: int, ranks: int, port: int = 29541) -> None:
    cli = [*ARGS, "--out", str(out), "--steps", str(steps)]
    if ranks == 1:
        cmd = [str(VENV_BIN / "imagen-bench"), *cli]
    else:
        cmd = [
            str(VENV_BIN / "torchrun"),
            "--nproc_per_node",
            str(ranks),
            "--master_port",
            str(port),
            str(VENV_BIN / "imagen-bench"),
            *cli,
        ]
    subprocess.run(cmd, env=ENV, check=True, timeout=600)


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "base" / "model.safetensors"))


def losses(out: Path) -> list[float]:
    return [float(r.split(",")[1]) for r in (out / "base" / "log.csv").read_text().splitlines()[1:]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    train(d / "one", 6, 1)
    train(d / "two", 6, 2)
    return d


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_with_the_same_global_batch(runs):
    one, two = weights(runs / "one"), weights(runs / "two")
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    assert losses(runs / "two") == pytest.approx(losses(runs / "one"), rel=1e-4)
    meta = json.loads((runs / "two" / "base" / "config.json").read_text())
    assert (
        meta["runtime"]["world_size"] == 2
        and meta["runtime"]["precision"] == "fp32"
        and meta["runtime"]["device"] == "cpu"
    )
    assert (
        not (runs / "two" / "base" / "log_unsaved.csv").exists() and len(losses(runs / "two")) == 6
    )  # rank 0 wrote once


@pytest.mark.slow
def test_two_gloo_ranks_resume_exactly(runs, tmp_path):
    """Stopped at a checkpoint (as after a kill) and resumed: the same weights, bit for bit."""
    train(tmp_path / "r", 3, 2, port=29542)
    train(tmp_path / "r", 6, 2, port=29543)
    straight, resumed = weights(runs / "two"), weights(tmp_path / "r")
    for k in straight:
        assert torch.equal(resumed[k], straight[k]), k
    assert losses(tmp_path / "r") == losses(runs / "two")


class Encodings:
    """The ToySet captions' MiniLM encodings made once by the test and looked up in every process: the
    ranks start without loading a text encoder (seconds each on a shared 2-core machine)."""

    def __init__(self, table: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        self.table = table

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([self.table[c][0] for c in captions]), torch.stack([self.table[c][1] for c in captions])


def _one_step(out: Path, table: dict) -> dict:
    """One training step of the tiny base stage on a global batch of 8 (float32, no gradient clipping:
    the raw averaged gradient is compared); this rank's batch rows, gradients and updated weights."""
    from conftest import randomize_

    from imagen.config import TrainConfig
    from imagen.data import ToySet
    from imagen.presets import tiny
    from imagen.train import Trainer

    cfg = TrainConfig(batch_size=8, steps=1, precision="fp32", num_threads=1, warmup_steps=1, lr=1e-3, grad_clip=1e9)
    preset = tiny()
    t = Trainer(
        preset.stages[0], preset.text_encoder, cfg, ToySet(), Encodings(table), out, log=lambda s: None, device="cpu"
    )
    randomize_(
        t.unet
    )  # the same on every rank: a fresh U-Net's zero-initialised layers pass gradients to its last layers only
    state = t.rng.getstate()
    x, _ = t.batch()  # the rows this rank trains on (drawn again by the step)
    t.rng.setstate(state)
    t.train()
    return {
        "x": x,
        "params": {n: p.detach().clone() for n, p in t.unet.named_parameters()},
        "grads": {n: p.grad.clone() for n, p in t.unet.named_parameters() if p.grad is not None},
    }


def _ddp_rank(rank: int, world: int, port: int, out: str, table: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    try:
        torch.save(
            _one_step(Path(out) / "run", table), Path(out) / f"rank{rank}.pt"
        )  # Trainer joins the gloo group (init_from_env)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_two_gloo_ranks_on_different_rows_average_their_gradients(tmp_path, minilm):
    """What DDP must guarantee, with two real ranks on one machine: they train on different rows of
    the global batch, yet after the step both hold the same averaged gradient and the same weights,
    those of one process stepping on the whole batch (float tolerance: another summation order)."""
    import torch.multiprocessing as mp

    from imagen.data import ToySet

    captions = sorted({ToySet()[i][1] for i in range(len(ToySet()))})
    table = {c: (t[0], m[0]) for c in captions for t, m in [minilm.encode([c])]}
    mp.spawn(_ddp_rank, args=(2, 29700 + os.getpid() % 1000, str(tmp_path), table), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    threads = torch.get_num_threads()
    try:
        single = _one_step(tmp_path / "single", table)
    finally:
        torch.set_num_threads(threads)
    assert ranks[0]["x"].shape[0] == ranks[1]["x"].shape[0] == 4 and not torch.equal(ranks[0]["x"], ranks[1]["x"])
    assert torch.equal(torch.cat([ranks[0]["x"], ranks[1]["x"]]), single["x"])  # the two shares make the whole batch
    assert ranks[0]["grads"].keys() == single["grads"].keys()
    moved = 0
    for name, g in single["grads"].items():
        assert torch.equal(ranks[0]["grads"][name], ranks[1]["grads"][name]), (
            name
        )  # identical on both ranks, bit for bit
        scale = float(g.abs().max())
        assert float((ranks[0]["grads"][name] - g).abs().max()) <= 1e-5 * scale, name  # averaged (a sum would be 2x)
        moved += scale > 0
    assert moved == len(single["grads"]) > 50  # every layer got a real gradient
    for name, p in single["params"].items():
        assert torch.equal(ranks[0]["params"][name], ranks[1]["params"][name]), name
        # Adam's first step is lr * g / (|g| + eps): a gradient near 0 amplifies rounding, so 1 % of lr
        torch.testing.assert_close(ranks[0]["params"][name], p, rtol=0, atol=1e-5, msg=name)


def test_global_batch_must_split_over_ranks(monkeypatch, tmp_path, minilm):
    """The ranks' shares of a global batch are equal, or the gradient would not be the batch's."""
    from imagen import train as train_module
    from imagen.config import TrainConfig
    from imagen.data import ToySet
    from imagen.distributed import Dist
    from imagen.presets import tiny

    monkeypatch.setattr(train_module, "init_from_env", lambda device: Dist(rank=0, size=3))
    with pytest.raises(ValueError, match="batch_size 8 .* must split evenly over 3 ranks"):
        train_module.Trainer(
            tiny().stages[0], tiny().text_encoder, TrainConfig(batch_size=8), ToySet(), minilm, tmp_path, device="cpu"
        )


def test_stage_loss_of_a_rank_share_is_its_rows_of_the_whole_batch(minilm):
    """Each rank draws the whole batch's randomness and keeps its rows: the two halves' losses
    average to the whole batch's loss."""
    from conftest import randomize_

    from imagen.config import TrainConfig
    from imagen.presets import tiny
    from imagen.train import stage_loss
    from imagen.unet import EfficientUNet

    for stage in tiny().stages[:2]:  # a base and an SR stage (aug noise drawn per row too)
        unet = randomize_(EfficientUNet(stage.unet)).eval()
        cfg = TrainConfig(batch_size=4, precision="fp32")
        x = torch.rand(4, 3, stage.resolution, stage.resolution) * 2 - 1
        text, mask = minilm.encode(["a red square", "a blue square", "a green square", "a yellow square"])
        whole = stage_loss(unet, stage, x, text, mask, cfg, torch.Generator().manual_seed(1))
        halves = [
            stage_loss(unet, stage, x[r], text[r], mask[r], cfg, torch.Generator().manual_seed(1), rows=r, total=4)
            for r in (slice(0, 2), slice(2, 4))
        ]
        assert (halves[0] + halves[1]).item() / 2 == pytest.approx(whole.item(), rel=1e-5)


def test_a_checkpoint_saved_from_device_tensors_loads_on_cpu(tmp_path, minilm):
    """The saved formats hold CPU tensors whatever device trained them (the Trainer moves its state to
    the CPU before writing), so a GPU-made checkpoint resumes and samples on a CPU; test_cuda.py
    checks it with a real GPU where there is one."""
    from imagen.checkpoint import load_stage, torch_load_state
    from imagen.config import TrainConfig
    from imagen.data import ToySet
    from imagen.presets import tiny
    from imagen.train import Trainer, _to_cpu

    stage = tiny().stages[0]
    cfg = TrainConfig(steps=2, batch_size=4, precision="fp32", ckpt_every=2, warmup_steps=1)
    Trainer(
        stage, tiny().text_encoder, cfg, ToySet(), minilm, tmp_path / "s", log=lambda s: None, device="cpu"
    ).train()
    st = torch_load_state(tmp_path / "s" / "train_state.pt")
    assert all(t.device.type == "cpu" for t in _flat(st["opt"]) + _flat(st["model"]) + _flat(st["ema"]))
    assert _to_cpu({"a": [torch.zeros(1)], "b": (1, torch.ones(2))})["b"][1].device.type == "cpu"
    _, _, unet, meta = load_stage(tmp_path / "s")
    assert meta["runtime"]["device"] == "cpu" and next(unet.parameters()).device.type == "cpu"


def _flat(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _flat(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _flat(v)]
    return []
