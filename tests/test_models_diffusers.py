"""The `diffusers` model kind on a tiny random StableDiffusionPipeline built in code and saved with
`save_pretrained` (no model hub): image size, seed determinism, batch independence, describe(),
the missing-pipeline error, and a 1-cell sweep end to end."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

diffusers = pytest.importorskip(
    "diffusers",
    reason='diffusers is not installed (optional extra: pip install -e ".[diffusers]"; the test extra includes it)',
)
torch = pytest.importorskip("torch")

from bench.models import ImageRequest, Sampling, build_model, model_config  # noqa: E402
from common.runs import PromptRef  # noqa: E402

SIZE = 16  # unet sample_size 8 x vae scale factor 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: exact float order, no oversubscription


def _tiny_tokenizer():
    """A CLIP BPE tokenizer over single characters (no merges): every word is spelled out."""
    from transformers import CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16), len(vocab)


def make_tiny_pipeline(directory):
    """diffusers' own get_dummy_components for StableDiffusionPipeline, smaller still; random weights
    perturbed so the zero-initialised output layers do not give constant images."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    tokenizer, vocab_size = _tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in (unet, vae, text_encoder):
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return make_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="module")
def model(pipeline_dir):
    return build_model("tiny-sd", "diffusers", model_config("diffusers", {"path": str(pipeline_dir), "batch_size": 2}))


def _requests(seeds, prompts=None):
    prompts = prompts or ["a red cube"] * len(seeds)
    return [
        ImageRequest(PromptRef("drawbench", str(i), "Colors", p, 0), s) for i, (p, s) in enumerate(zip(prompts, seeds))
    ]


def _pixels(img) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(img.data)).convert("RGB"))


SAMPLING = Sampling(steps=2, guidance=3.0)  # w > 1: the classifier-free guidance branch runs too


def test_images_have_the_pipeline_size_and_depend_on_the_seed(model):
    a, b, a2 = list(model.generate(SAMPLING, _requests([1, 2, 1])))
    for img in (a, b, a2):
        assert (
            img.suffix == ".png" and (img.width, img.height) == (SIZE, SIZE) and _pixels(img).shape == (SIZE, SIZE, 3)
        )
    assert a.data == a2.data  # same seed (here in different batches: [1, 2] then [1]) -> same bytes
    assert a.data != b.data
    assert _pixels(a).std() > 1  # not a constant image
    again = next(model.generate(SAMPLING, _requests([1])))
    assert again.data == a.data  # and across calls
    assert next(model.generate(Sampling(steps=2, guidance=1.0), _requests([1]))).data != a.data  # guidance changes it


def _gap(a, b) -> int:
    """The largest difference between two images' subpixels, in levels."""
    return int(np.abs(_pixels(a).astype(int) - _pixels(b).astype(int)).max())


def test_batch_composition_does_not_change_an_image(model):
    """Batch of 2 (one pipeline call, one torch.Generator per image) vs two batches of 1: each image
    has its own noise, so it is the same image either way. The same bits are not promised: a float32
    product's last bits may follow the batch (with torch held to AVX2 and MKL in strict reproducible
    mode, common/blas.py, one image of the two moved by one level); a shared generator would give
    other images, as far apart as two seeds are."""
    prompts = ["a red cube", "two blue spheres on a table"]
    together = list(model.generate(SAMPLING, _requests([5, 6], prompts)))
    alone = [next(model.generate(SAMPLING, [r])) for r in _requests([5, 6], prompts)]
    assert [_pixels(x).shape for x in together] == [(SIZE, SIZE, 3)] * 2
    twins = [_gap(a, b) for a, b in zip(together, alone)]
    assert max(twins) <= 1 and min(_gap(*together), _gap(*alone)) > 16, (twins, _gap(*together))


def test_height_and_width_options(pipeline_dir):
    m = build_model(
        "tiny-sd", "diffusers", model_config("diffusers", {"path": str(pipeline_dir), "height": 24, "width": 32})
    )
    img = next(m.generate(Sampling(steps=1, guidance=1.0), _requests([0])))
    assert (img.width, img.height) == (32, 24) and _pixels(img).shape == (24, 32, 3)


def test_describe_lists_weights_sha256(model, pipeline_dir):
    from common.files import sha256_file

    d = model.describe()
    assert (
        d["kind"] == "diffusers"
        and d["diffusers_version"] == diffusers.__version__
        and d["path"] == str(pipeline_dir.resolve())
    )
    weights = d["weights_sha256"]
    assert {k.split("/")[0] for k in weights} == {"unet", "vae", "text_encoder"}
    for rel, digest in weights.items():
        assert digest == sha256_file(pipeline_dir / rel) and len(digest) == 64
    json.dumps(d)  # goes into run.json


def test_directory_without_model_index_is_refused(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"model 'nope': .* is not a saved diffusers pipeline \(model_index.json missing\)"
    ):
        build_model("nope", "diffusers", model_config("diffusers", {"path": str(tmp_path)}))


SPEC = """
[sweep]
name = "tiny-diffusers"
samples_per_prompt = 1

[[models]]
name = "tiny-sd"
kind = "diffusers"
path = "{path}"
batch_size = 3

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]

[grid]
steps = [2]
guidance = [3.0]
"""


def test_one_cell_sweep(pipeline_dir, tmp_path):
    from bench.sweep.runner import run_sweep
    from bench.sweep.store import MANIFEST_COLUMNS

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(path=pipeline_dir))
    r = run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert r.images_total == r.images_generated == 7
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert list(m.columns) == MANIFEST_COLUMNS and len(m) == 7 and m.cell_id.nunique() == 1
    assert set(m.model) == {"tiny-sd"} and set(m.prompt_set) == {"drawbench"} and set(m.category) == {"Rare Words"}
    assert set(m.width) == {SIZE} and set(m.height) == {SIZE} and m.sha256.is_unique and m.seed.is_unique
    from common.files import sha256_file

    for row in m.itertuples():
        assert sha256_file(tmp_path / "run" / row.path) == row.sha256
    # the manifest's seed reproduces the image through the adapter
    first = m.iloc[0]
    model = build_model("tiny-sd", "diffusers", model_config("diffusers", {"path": str(pipeline_dir)}))
    img = next(model.generate(Sampling(steps=2, guidance=3.0), _requests([int(first.seed)], [first.prompt])))
    assert img.data == (tmp_path / "run" / first.path).read_bytes()
    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    assert len(cells) == 1 and cells.model_kind[0] == "diffusers" and cells.steps[0] == 2 and cells.guidance[0] == 3.0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["models"]["tiny-sd"]["weights_sha256"] == model.describe()["weights_sha256"]
    again = run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert again.images_generated == 0
