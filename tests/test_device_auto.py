"""device = "auto" for every network the suite runs (issue 32), with CUDA faked present or absent at
the level imagen.device reads it (torch.cuda.is_available / device_count / is_bf16_supported /
get_device_name): each network resolves as docs/devices.md says, and no tensor goes to a GPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.metrics.clip_score import CLIPOptions, clip_placement
from bench.metrics.features import FeatureConfig, feature_placement
from bench.metrics.ocr import OCROptions, OCRScore, ocr_device
from bench.metrics.vqa import QuestionOptions, VQAOptions, judge_placement
from bench.models.diffusers_load import pipeline_precision
from imagen.device import resolve, resolve_device

GPU = "NVIDIA H100 80GB HBM3 (faked)"


@pytest.fixture
def cuda(monkeypatch):
    """set(gpus, bf16, rank): torch sees `gpus` GPUs (0: none) that compute bf16 natively or not;
    with `rank` set this process is that local rank of a 2-rank torchrun job."""

    def set_cuda(gpus: int, bf16: bool = True, rank: int | None = None):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: GPU)
        for k in ("WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(k, raising=False)
        if rank is not None:
            monkeypatch.setenv("WORLD_SIZE", "2")
            monkeypatch.setenv("LOCAL_RANK", str(rank))

    return set_cuda


def where(placement) -> tuple[str, str]:
    return placement.device, placement.precision


def test_with_a_bf16_gpu_every_torch_network_goes_to_it(cuda):
    cuda(gpus=1, bf16=True)
    assert where(resolve("auto")) == ("cuda", "bf16")  # the cascade
    assert where(feature_placement(FeatureConfig())) == (
        "cuda",
        "fp32",
    )  # Inception / DINOv2 / CLIP features: fp32 unless asked
    assert where(feature_placement(FeatureConfig(dtype="bfloat16"))) == ("cuda", "bf16")
    assert where(clip_placement(CLIPOptions())) == ("cuda", "fp32")  # CLIP score: fp32 unless asked
    assert where(clip_placement(CLIPOptions(precision="auto"))) == ("cuda", "bf16")
    assert where(judge_placement(VQAOptions())) == ("cuda", "bf16")  # VQA judges: the cascade's rule
    assert pipeline_precision("auto", resolve_device("auto"))[0] == "fp16"  # diffusers pipelines
    summary = judge_placement(VQAOptions()).summary()
    assert summary == {
        "device": "cuda",
        "precision": "bf16",
        "precision_reason": f"auto: {GPU} computes bf16 natively",
        "gpu": GPU,
    }


def test_a_gpu_without_native_bf16_keeps_float32_where_auto_would_pick_bf16(cuda):
    cuda(gpus=1, bf16=False)
    assert where(resolve("auto")) == ("cuda", "fp32")
    assert where(judge_placement(VQAOptions())) == ("cuda", "fp32")
    assert where(clip_placement(CLIPOptions(precision="auto"))) == ("cuda", "fp32")
    assert pipeline_precision("auto", "cuda")[0] == "fp16"  # fp16 is native on every CUDA GPU


def test_under_torchrun_each_rank_takes_its_own_gpu(cuda):
    cuda(gpus=2, rank=1)
    assert resolve("auto").device == "cuda:1"
    for placement in (
        feature_placement(FeatureConfig()),
        clip_placement(CLIPOptions()),
        judge_placement(VQAOptions()),
    ):
        assert (
            placement.device == "cuda:1" and placement.summary()["device"] == "cuda"
        )  # every rank records the same kind
    assert resolve_device(QuestionOptions().device) == "cuda:1"


def test_without_a_gpu_everything_stays_on_the_cpu(cuda, fake_cpu):
    cuda(gpus=0)
    fake_cpu(avx512_bf16=False, amx=False)
    for placement in (
        resolve("auto"),
        feature_placement(FeatureConfig()),
        clip_placement(CLIPOptions()),
        judge_placement(VQAOptions()),
    ):
        assert where(placement) == ("cpu", "fp32")
    assert pipeline_precision("auto", resolve_device("auto")) == ("fp32", "auto: CPU")
    assert ocr_device(OCROptions()) == ("cpu", "auto: no CUDA GPU here")
    fake_cpu(avx512_bf16=True, amx=False)  # the judges follow the cascade's CPU rule; FID / CLIP score features do not
    assert where(judge_placement(VQAOptions())) == ("cpu", "bf16") and where(feature_placement(FeatureConfig())) == (
        "cpu",
        "fp32",
    )


def test_ocr_goes_to_the_gpu_only_through_onnxruntimes_cuda_provider(cuda, monkeypatch):
    import onnxruntime

    cuda(gpus=2, rank=1)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])  # the CPU build
    device, why = ocr_device(OCROptions())
    assert device == "cpu" and "no CUDAExecutionProvider" in why and "onnxruntime-gpu" in why
    with pytest.raises(
        ValueError, match=r"^ocr device 'cuda': onnxruntime .* has no CUDAExecutionProvider .*install onnxruntime-gpu$"
    ):
        ocr_device(OCROptions(device="cuda"))
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert ocr_device(OCROptions())[0] == "cuda:1"


def test_explicit_choices_are_honoured_and_bad_ones_are_one_line(cuda):
    cuda(gpus=0)
    assert pipeline_precision("bf16", "cpu") == ("bf16", "asked for")
    with pytest.raises(ValueError, match=r"precision fp16 needs a CUDA device; on cpu use fp32 or bf16"):
        pipeline_precision("fp16", "cpu")
    with pytest.raises(ValueError, match=r"precision 'half'; allowed: auto, fp32, fp16, bf16"):
        pipeline_precision("half", "cpu")
    with pytest.raises(ValueError, match=r"unknown precision 'fp16'; choose from auto, bf16, fp32"):
        VQAOptions(precision="fp16")
    with pytest.raises(ValueError, match=r"device 'cuda': no CUDA GPU is available here"):
        judge_placement(VQAOptions(device="cuda"))


def test_ocr_records_where_it_ran():
    ocr = OCRScore()
    assert ocr.model_details()["onnxruntime_provider"] is None  # nothing read yet: no session
    ocr.read(np.full((32, 96, 3), 255, np.uint8))
    details = ocr.model_details()
    assert details["device"] in ("cpu", "cuda") and details["precision"] == "fp32" and details["device_reason"]
    if not torch.cuda.is_available():
        assert details["device"] == "cpu" and details["device_reason"] == "auto: no CUDA GPU here"
        assert details["onnxruntime_provider"] == "CPUExecutionProvider"


def test_reference_statistics_of_another_device_are_recomputed_or_refused(tmp_path):
    """Features made on the CPU never serve a GPU metric: the cache key holds the device kind (a new
    entry is made), and a statistics file from the other device is refused naming both."""
    from PIL import Image
    from test_metrics_fid import extractor

    from bench.metrics.reference import compute_reference, load_stats, write_stats_file

    (tmp_path / "ref").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "ref" / f"{i}.png")
    cpu = extractor()
    ref = compute_reference(f"folder:{tmp_path / 'ref'}", cpu, cache_dir=tmp_path / "cache")
    write_stats_file(tmp_path / "cpu.npz", ref)
    assert ref.meta["device"] == "cpu" and ref.meta["precision"] == "fp32"
    # the same extractor as a GPU one records itself (its arithmetic stays on the CPU: no GPU here)
    gpu = extractor()
    gpu.placement = dataclasses.replace(gpu.placement, device="cuda")
    again = compute_reference(f"folder:{tmp_path / 'ref'}", gpu, cache_dir=tmp_path / "cache")
    assert (
        again.meta["device"] == "cuda" and len(list((tmp_path / "cache").iterdir())) == 2
    )  # recomputed, not the CPU entry
    with pytest.raises(
        ValueError,
        match=r"cpu.npz was made with other feature settings; refusing to compare: device: file 'cpu', "
        r"metric 'cuda'$",
    ):
        load_stats(tmp_path / "cpu.npz", gpu)


def test_ocr_refuses_to_run_on_the_cpu_when_it_was_placed_on_the_gpu(cuda, monkeypatch):
    """RapidOCR only warns when onnxruntime cannot give it the CUDA provider and runs on the CPU:
    an OCR placed on the GPU checks what the session got and stops instead of recording a lie."""
    import onnxruntime

    cuda(gpus=1)
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    ocr = OCRScore()
    assert ocr.device == "cuda"
    with pytest.raises(
        RuntimeError, match=r"^ocr on cuda: onnxruntime ran the text detector with CPUExecutionProvider, not CUDA"
    ):
        ocr.read(np.full((32, 96, 3), 255, np.uint8))
