"""Shared fixtures: tiny random components built in code (as diffusers' tests do)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from common.blas import reproducible_blas

reproducible_blas()  # before torch loads MKL, as every imagen-bench command does (common/blas.py)

import torch  # noqa: E402

from common.allocator import reuse_freed_memory  # noqa: E402
from imagen.device import cpu_native_bf16  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# torch.compile's kernel cache, private to this test session: compiled tests then measure what a fresh
# machine does, and never load kernels another configuration left in /tmp/torchinductor_$USER (with
# torch and oneDNN held to AVX2 on an AVX-512 CPU, kernels cached by an unrestricted run crashed)
_INDUCTOR_CACHE = (
    None if "TORCHINDUCTOR_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="imagen-bench-inductor-")
)
if _INDUCTOR_CACHE:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE

# Torch threads per test process. `make test` runs the suite in pytest-xdist workers (one per core, at
# most 4): each gets its share of the cores, and so do the CLIs and torchrun ranks it starts
# (OMP_NUM_THREADS is what a fresh torch reads). Alone: $IMAGEN_BENCH_THREADS, else 2.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
THREADS = int(os.environ.get("IMAGEN_BENCH_THREADS") or (max(1, _CORES // _WORKERS) if _WORKERS > 1 else 2))
if _WORKERS > 1:
    os.environ.setdefault("IMAGEN_BENCH_THREADS", str(THREADS))
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
torch.set_num_threads(THREADS)
reuse_freed_memory()  # as every imagen-bench command does (common/allocator.py)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Each test leaves torch's thread count as it found it (a Trainer sets its TrainConfig.num_threads
    process-wide): a later test's float reductions must not depend on which tests ran before it."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """The checks marked `slow` (compilation, perf --quick, training, kill/resume, torchrun: ~56 % of
    the suite's time) run on CPUs with native bf16 (AVX512-BF16 or AMX) and are skipped, each with
    this reason, on the slowest kind this project runs on, an AVX2-only CPU: there the whole suite
    would take ~18-19 minutes against the 15 the project allows (README "Tests").
    IMAGEN_BENCH_SLOW=1 (`make test-slow`) runs them anywhere."""
    native, why = cpu_native_bf16()
    if native or os.environ.get("IMAGEN_BENCH_SLOW") == "1":
        return
    skip = pytest.mark.skip(
        reason=f"slow check, skipped on the slowest CPU kind ({why}); IMAGEN_BENCH_SLOW=1 or `make test-slow` runs it"
    )
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    if _INDUCTOR_CACHE:
        import shutil

        shutil.rmtree(_INDUCTOR_CACHE, ignore_errors=True)


def randomize_(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Zero-initialised layers make a fresh U-Net output exactly 0; give every parameter small
    random values so determinism tests compare non-trivial images."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return module


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory):
    """A tiny random T5 encoder (d_model 32) saved as Hugging Face saves one, with a word-level
    tokenizer built offline: the real format of a user's T5 directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = "a red blue green circle square triangle on the left right of above below".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    d = tmp_path_factory.mktemp("t5")
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def minilm():
    from imagen.config import TextEncoderConfig
    from imagen.text_encoders import CachedTextEncoder, load_text_encoder

    return CachedTextEncoder(load_text_encoder(TextEncoderConfig(kind="minilm", max_length=16)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture()
def tiny_cascade(minilm):
    from imagen.pipeline import Cascade
    from imagen.presets import tiny
    from imagen.unet import EfficientUNet

    cfg = tiny()
    torch.manual_seed(0)
    unets = [randomize_(EfficientUNet(s.unet), seed=i).eval() for i, s in enumerate(cfg.stages)]
    return Cascade(config=cfg, text_encoder=minilm, unets=unets)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: fixes the order of float reductions (exact image equality
    across processes) and avoids oversubscription when tests run beside other jobs."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture()
def fake_cpu(monkeypatch):
    """Fake this CPU's bf16 capability at the level torch reports it (x86 flags)."""
    from imagen import device

    def set_cpu(avx512_bf16: bool, amx: bool, machine: str = "x86_64"):
        monkeypatch.setattr(device.platform, "machine", lambda: machine)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        device.cpu_native_bf16.cache_clear()

    yield set_cpu
    device.cpu_native_bf16.cache_clear()


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The PID of a Python process that has exited, as a killed writer's is (its leftovers are stale)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
