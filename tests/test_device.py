"""Precision, memory format and device chosen by capability (imagen.device), and recorded."""

import json

import pytest
import torch

from imagen.device import resolve, resolve_precision
from imagen.pipeline import CascadePipeline, Runtime, StageSampling


def test_auto_is_float32_on_a_cpu_without_native_bf16(fake_cpu):
    fake_cpu(avx512_bf16=False, amx=False)
    value, why = resolve_precision("auto", "cpu")
    assert value == "fp32" and "without AVX512-BF16/AMX" in why


@pytest.mark.parametrize("avx512_bf16, amx", [(True, False), (False, True), (True, True)])
def test_auto_is_bf16_where_the_cpu_has_it(fake_cpu, avx512_bf16, amx):
    fake_cpu(avx512_bf16=avx512_bf16, amx=amx)
    assert resolve_precision("auto", "cpu")[0] == "bf16"


def test_explicit_precision_is_kept_whatever_the_cpu(fake_cpu):
    fake_cpu(avx512_bf16=False, amx=False)
    assert resolve("cpu", "bf16").precision == "bf16"
    fake_cpu(avx512_bf16=True, amx=True)
    assert resolve("cpu", "fp32").precision == "fp32"


def test_other_cpus_without_known_bf16_get_float32(fake_cpu):
    fake_cpu(avx512_bf16=True, amx=True, machine="riscv64")
    assert resolve_precision("auto", "cpu")[0] == "fp32"


def test_memory_format_per_device():
    assert resolve("cpu").memory_format == "channels_last"
    assert resolve("cpu", memory_format="contiguous").memory_format == "contiguous"


def test_bad_choices_are_one_clear_line():
    with pytest.raises(ValueError, match="unknown precision 'half'; choose from auto, bf16, fp32"):
        Runtime(precision="half")
    with pytest.raises(ValueError, match="choose from auto, cpu, cuda, cuda:N"):
        resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available here"):
            resolve("cuda")


def test_auto_device_is_cpu_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: auto means cuda here")
    assert resolve("auto").device == "cpu"


def test_pipeline_resolves_and_the_choice_matches_explicit(fake_cpu, tiny_cascade):
    """Auto on a CPU without bf16 makes exactly the images of explicit fp32; with bf16 those of bf16."""
    s = [StageSampling(steps=2, guidance=1.0)] * 3
    fake_cpu(avx512_bf16=False, amx=False)
    auto = CascadePipeline(tiny_cascade, Runtime(device="cpu"))
    assert auto.rt.precision == "fp32" and auto.rt.memory_format == "channels_last"
    fp32 = CascadePipeline(tiny_cascade, Runtime(device="cpu", precision="fp32"))
    assert torch.equal(auto(["a red square"], [1], s), fp32(["a red square"], [1], s))
    fake_cpu(avx512_bf16=True, amx=False)
    assert CascadePipeline(tiny_cascade, Runtime(device="cpu")).rt.precision == "bf16"


def test_sample_records_the_resolved_precision(tmp_path, fake_cpu):
    from imagen_bench.cli import main as cli

    fake_cpu(avx512_bf16=False, amx=False)
    assert (
        cli(["sample", "--prompt", "a red circle", "--stages", "1", "--steps", "2", "--out", str(tmp_path / "s")]) == 0
    )
    rt = json.loads((tmp_path / "s" / "sample.json").read_text())["runtime"]
    assert rt["precision"] == "fp32" and rt["device"] == "cpu" and rt["memory_format"] == "channels_last"
    assert "without AVX512-BF16/AMX" in rt["precision_reason"] and rt["cpu_capability"]
    assert cli(["sample", "--prompt", "x", "--precision", "half", "--out", str(tmp_path / "t")]) == 2


def test_fused_attention_used_on_cuda_computes_the_plain_attention():
    """imagen.unet.multihead takes torch's fused kernel on CUDA and plain matmuls on CPU: the two
    give the same numbers (checked here on CPU tensors, float64), masks included."""
    from imagen.attention import multihead

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, n, 4 * 8, generator=g, dtype=torch.float64) for n in (16, 5, 5))
    keep = torch.rand(3, 5, generator=g) > 0.4
    keep[:, 0] = True  # the null token is always kept
    for mask in (None, keep):
        torch.testing.assert_close(multihead(q, k, v, 4, mask, fused=True), multihead(q, k, v, 4, mask, fused=False))
