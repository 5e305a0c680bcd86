"""CLIP score with a tiny random CLIP saved offline (config + safetensors + BPE tokenizer +
preprocessor) vs a hand computation through the model's sub-modules; and the no-weights path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_fixtures import make_tiny_clip
from PIL import Image

from bench.metrics import ScoredImage, build_metric
from bench.metrics.clip_score import UNAVAILABLE
from common.folder_manifest import write_manifest
from common.runs import PromptRef


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_score_equals_hand_computation(tiny_clip):
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    prompts = ["a red cube", "two dogs on a sofa", "x" * 30 + " " + "y " * 60]  # the last is > 77 tokens
    ims = _images(3)
    m = build_metric("clip_score", {"model": str(tiny_clip), "batch_size": 2})
    per_image = m.update(
        [ScoredImage("c1", PromptRef("t", str(i), "cat", p, 0), im) for i, (p, im) in enumerate(zip(prompts, ims))]
    )

    model = CLIPModel.from_pretrained(tiny_clip).eval()
    tok = CLIPTokenizer.from_pretrained(tiny_clip)
    proc = CLIPImageProcessorPil.from_pretrained(tiny_clip)
    expected = []
    with torch.no_grad():
        for p, im in zip(prompts, ims):
            px = proc(images=[Image.fromarray(im)], return_tensors="pt")["pixel_values"]
            ids = tok([p], truncation=True, max_length=77, return_tensors="pt")
            img = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)[0].double().numpy()
            txt = model.text_projection(model.text_model(**ids).pooler_output)[0].double().numpy()
            expected.append(max(100 * img @ txt / np.linalg.norm(img) / np.linalg.norm(txt), 0.0))
    got = [d["clip_score"] for d in per_image]
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
    (res,) = m.compute()
    assert res.metric == "clip_score" and res.cell_id == "c1" and res.n == 3
    assert res.value == pytest.approx(np.mean(expected), rel=1e-5, abs=1e-6)
    assert res.details["prompts_truncated"] == 1 and res.details["max_tokens"] == 77
    assert len(res.details["weights_sha256"]) == 64
    if not torch.cuda.is_available():  # device auto; fp32 unless asked, on every machine (issue 32)
        assert (res.details["device"], res.details["precision"]) == ("cpu", "fp32")


def test_clip_score_in_bf16_when_asked_stays_near_fp32(tiny_clip):
    """precision = "bf16" runs the towers under bf16 autocast (the path auto takes where bf16 is
    native) and says so; the scores move by bf16 rounding only."""
    images = [
        ScoredImage("c1", PromptRef("t", str(i), "cat", p, 0), im)
        for i, (p, im) in enumerate(zip(["a red cube", "two dogs"], _images(2)))
    ]
    fp32, bf16 = (
        build_metric("clip_score", {"model": str(tiny_clip), "device": "cpu", "precision": p})
        for p in ("fp32", "bf16")
    )
    got = [[d["clip_score"] for d in m.update(images)] for m in (fp32, bf16)]
    assert got[1] == pytest.approx(got[0], abs=1.0) and got[1] != got[0]
    (res,) = bf16.compute()
    assert (res.details["device"], res.details["precision"], res.details["precision_reason"]) == (
        "cpu",
        "bf16",
        "asked for",
    )


def test_without_weights_reports_unavailable():
    m = build_metric("clip_score")
    assert m.update([ScoredImage("c1", PromptRef("t", "1", "cat", "a cat", 0), _images(1)[0])]) == [{}]
    (res,) = m.compute()
    assert res.value is None and res.n == 1 and res.details["unavailable"] == UNAVAILABLE


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="allowed: .*model"):
        build_metric("clip_score", {"modle": "x"})
    with pytest.raises(ValueError, match="model: .*missing is neither"):
        build_metric("clip_score", {"model": str(tmp_path / "missing")})


def test_clip_score_equals_torchmetrics_per_image(tiny_clip, capsys):
    """Parity with the reference implementation (torchmetrics 1.9 `clip_score`, its own CLIPProcessor
    and CLIPModel calls) on prompts inside the 77-token window: one call per image, so torchmetrics'
    max(mean, 0) is the per-image max(100 cos, 0) (Hessel et al.'s w = 100 clamp) that we average.
    The same comparison is `imagen-bench parity --clip DIR` for a user's real weights."""
    from bench.metrics.parity import torchmetrics_clip_scores
    from imagen_bench.cli import main

    prompts = ["a red cube", "two dogs on a sofa", "a photo of the number 7 written in chalk"]
    ims = _images(3)
    m = build_metric("clip_score", {"model": str(tiny_clip), "batch_size": 3})
    ours = [
        d["clip_score"]
        for d in m.update(
            [ScoredImage("c", PromptRef("t", str(i), "x", p, 0), im) for i, (p, im) in enumerate(zip(prompts, ims))]
        )
    ]
    theirs = torchmetrics_clip_scores(tiny_clip, list(zip(prompts, ims)))
    assert sum(v > 0 for v in ours) >= 2 and ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)  # not all clamped to 0
    folder = tiny_clip.parent / "parity-images"
    folder.mkdir(exist_ok=True)
    for i, im in enumerate(ims):
        Image.fromarray(im).save(folder / f"{i + 1}.png")
    write_manifest(folder, "mine", {str(i + 1): p for i, p in enumerate(prompts)}, force=True)
    csv = folder.parent / "parity-prompts.csv"
    csv.write_text("id,category,prompt\n" + "".join(f"{i + 1},x,{p}\n" for i, p in enumerate(prompts)))
    assert (
        main(
            [
                "parity",
                "--clip",
                str(tiny_clip),
                "--images",
                str(folder),
                "--prompt-set",
                "drawbench",
                "--options",
                f"path={csv}",
                "--n",
                "3",
            ]
        )
        == 0
    )
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("clip_score")]
    assert len(lines) == 3 and all(float(x.split("|diff| ")[1].split()[0]) < 1e-4 for x in lines)
