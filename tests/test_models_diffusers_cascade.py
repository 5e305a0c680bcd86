"""The `diffusers_cascade` kind on a tiny random DeepFloyd-IF-style chain built in code and saved
with save_pretrained (no model hub): IFPipeline (8 px, T5) -> IFSuperResolutionPipeline (16 px) ->
StableDiffusionUpscalePipeline (x4: 64 px, own CLIP encoder and VAE). A guidance x aug_level sweep
through the runner, each pipeline's call arguments recorded by wrapping the classes' __call__."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

diffusers = pytest.importorskip(
    "diffusers",
    reason='diffusers is not installed (optional extra: pip install -e ".[diffusers]"; the test extra includes it)',
)
import torch  # noqa: E402  (a core dependency: never skipped)
from test_models_diffusers import _tiny_tokenizer  # noqa: E402  (CLIP tokenizer over characters)

from bench.models import ImageRequest, Sampling, build_model, model_config  # noqa: E402
from common.runs import PromptRef  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SIZES = {1: 8, 2: 16, 3: 64}  # stage1 unet sample_size; stage2 unet sample_size; x4 upscaler (VAE scale factor 4)
T5_DIM = 32  # IF's cross-attention group norm has 32 groups: the text width must divide by 32


def _t5_tokenizer():
    """A T5 (Unigram) tokenizer over single characters, built from a vocab list (no sentencepiece file)."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)] + [
        (c, -3.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"
    ]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=77), len(vocab)


def _if_unet(in_channels: int, size: int, sr: bool):
    """diffusers' IF test components, smaller: out 6 = eps + learned variance range."""
    from diffusers import UNet2DConditionModel

    extra = (
        dict(
            class_embed_type="timestep",
            mid_block_scale_factor=1.414,
            time_embedding_act_fn="gelu",
            time_embedding_dim=32,
        )
        if sr
        else {}
    )
    return UNet2DConditionModel(
        sample_size=size,
        layers_per_block=1,
        block_out_channels=[8, 16],
        norm_num_groups=4,
        in_channels=in_channels,
        out_channels=6,
        down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
        cross_attention_dim=T5_DIM,
        encoder_hid_dim=T5_DIM,
        attention_head_dim=4,
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        **extra,
    )


def _if_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        thresholding=True,
        dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5,
        variance_type="learned_range",
    )


def _perturb(*modules):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _upscaler(directory):
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer, vocab_size = _tiny_tokenizer()
    text = CLIPTextModel(
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
    unet = UNet2DConditionModel(  # in 7 = 4 latent + 3 low-res image channels; class labels = noise_level in [0, 350]
        sample_size=16,
        in_channels=7,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        num_class_embeds=351,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        scaling_factor=0.08333,
    )
    _perturb(text, unet, vae)
    StableDiffusionUpscalePipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        unet=unet,
        low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction", steps_offset=1),
        max_noise_level=350,
    ).save_pretrained(directory)


def make_tiny_if(root):
    """Three saved stage directories, as IF's are (stage II saved without a text encoder)."""
    from diffusers import DDPMScheduler, IFPipeline, IFSuperResolutionPipeline
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    tokenizer, vocab = _t5_tokenizer()
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=vocab,
            d_model=T5_DIM,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=1,
        )
    )
    u1, u2 = _if_unet(3, SIZES[1], False), _if_unet(6, SIZES[2], True)
    _perturb(t5, u1, u2)
    none = dict(safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    IFPipeline(tokenizer=tokenizer, text_encoder=t5, unet=u1, scheduler=_if_scheduler(), **none).save_pretrained(
        root / "I"
    )
    IFSuperResolutionPipeline(
        tokenizer=None,
        text_encoder=None,
        unet=u2,
        scheduler=_if_scheduler(),
        **none,
        image_noising_scheduler=DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
    ).save_pretrained(root / "II")
    _upscaler(root / "III")
    return [str(root / s) for s in ("I", "II", "III")]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return make_tiny_if(tmp_path_factory.mktemp("tiny-if"))


class Calls:
    """Wraps the pipeline classes' __call__: (class, kwargs, output shape) of every stage call."""

    def __init__(self, monkeypatch):
        self.log, self.loads = [], 0
        for name in ("IFPipeline", "IFSuperResolutionPipeline", "StableDiffusionUpscalePipeline"):
            cls = getattr(diffusers, name)
            monkeypatch.setattr(cls, "__call__", self._wrap(name, cls.__call__))
        original = diffusers.IFPipeline.from_pretrained.__func__
        monkeypatch.setattr(
            diffusers.IFPipeline, "from_pretrained", classmethod(lambda c, *a, **k: self._load(original, c, *a, **k))
        )

    def _load(self, original, cls, *args, **kwargs):
        self.loads += 1
        return original(cls, *args, **kwargs)

    def _wrap(self, name, call):
        def wrapped(pipe, *args, **kwargs):
            out = call(pipe, *args, **kwargs)
            self.log.append((name, kwargs, tuple(out.images.shape), pipe))
            return out

        return wrapped


def _requests(seeds, prompts=None):
    prompts = prompts or ["a red cube"] * len(seeds)
    return [
        ImageRequest(PromptRef("drawbench", str(i), "Colors", p, 0), s) for i, (p, s) in enumerate(zip(prompts, seeds))
    ]


def _model(paths, **options):
    return build_model(
        "tiny-if", "diffusers_cascade", model_config("diffusers_cascade", {"paths": paths, "device": "cpu", **options})
    )


SPEC = """
[sweep]
name = "tiny-if"
samples_per_prompt = 1

[[models]]
name = "tiny-if"
kind = "diffusers_cascade"
paths = {paths}
device = "cpu"
batch_size = 4
[models.stages.stage1]
thresholding = "static"
[models.stages.stage3]
steps = 1
aug_level = 0.1

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]

[grid]
steps = [2]
guidance = [1.0, 4.0]
aug_level = [0.05, 0.25]
"""


def test_guidance_x_aug_level_sweep(paths, tmp_path, monkeypatch):
    from bench.sweep.runner import run_sweep
    from imagen_bench.cli import main as cli

    calls = Calls(monkeypatch)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(paths=json.dumps(paths)))
    r = run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert r.images_total == r.images_generated == 4 * 7 and calls.loads == 1  # T5 stage loaded once for 4 cells
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert set(m.width) == set(m.height) == {SIZES[3]} and m.cell_id.nunique() == 4
    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    assert sorted(zip(cells.guidance, cells.aug_level)) == [(1.0, 0.05), (1.0, 0.25), (4.0, 0.05), (4.0, 0.25)]
    # 4 cells x 2 batches (4 + 3 prompts) x 3 stages, in cascade order
    assert [c[0] for c in calls.log] == [
        "IFPipeline",
        "IFSuperResolutionPipeline",
        "StableDiffusionUpscalePipeline",
    ] * 8
    for k in range(0, len(calls.log), 3):
        (_, a, sa, p1), (_, b, sb, p2), (_, c, sc, _) = calls.log[k : k + 3]
        g = a["guidance_scale"]
        assert (
            a["num_inference_steps"] == b["num_inference_steps"] == 2 and c["num_inference_steps"] == 1
        )  # stage3's fixed steps
        assert b["guidance_scale"] == c["guidance_scale"] == g in (1.0, 4.0) and "noise_level" not in a
        assert b["noise_level"] in (50, 250) and c["noise_level"] == 100  # round(aug * 999); stage3 fixed at 0.1
        assert torch.equal(a["prompt_embeds"], b["prompt_embeds"]) and torch.equal(
            a["negative_prompt_embeds"], b["negative_prompt_embeds"]
        )
        assert (
            "prompt_embeds" not in c and len(c["prompt"]) == sa[0]
        )  # the upscaler encodes the text with its own CLIP
        assert (
            0 <= c["image"].min() and c["image"].max() <= 1 and c["image"].shape[1:] == (3, 16, 16)
        )  # stage II's images in [0, 1]
        assert sa[1:] == (3, 8, 8) and sb[1:] == (3, 16, 16) and sc[1:] == (3, 64, 64)
        assert p2.text_encoder is None and p2.tokenizer is None  # stage II loads no T5
    assert sorted(
        {(c[1]["guidance_scale"], c[1]["noise_level"]) for c in calls.log if c[0] == "IFSuperResolutionPipeline"}
    ) == [(1.0, 50), (1.0, 250), (4.0, 50), (4.0, 250)]
    s1 = calls.log[0][3].scheduler.config  # static thresholding: x0 clipped to [-1, 1], no dynamic thresholding
    assert (s1.thresholding, s1.clip_sample, s1.clip_sample_range) == (False, True, 1.0)
    assert calls.log[1][3].scheduler.config.thresholding is True  # stage2 as saved
    info = json.loads((tmp_path / "run" / "run.json").read_text())["models"]["tiny-if"]
    assert [s["pipeline"] for s in info["stages"]] == [
        "IFPipeline",
        "IFSuperResolutionPipeline",
        "StableDiffusionUpscalePipeline",
    ]
    assert not any(k.startswith("text_encoder/") for k in info["stages"][1]["weights_sha256"])

    n = len(calls.log)
    again = run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert again.images_generated == 0 and len(calls.log) == n and calls.loads == 1  # no image, no pipeline loaded
    ids = sorted(cells.cell_id)
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "drawbench_sbs",
                "--prompts",
                "drawbench:Rare Words",
                "--raters",
                "2",
                "--batch-size",
                "4",
                "--images-per-set",
                "1",
                "--a",
                f"run:{tmp_path / 'run'}@{ids[0]}",
                "--b",
                f"run:{tmp_path / 'run'}@{ids[3]}",
                "--out",
                str(tmp_path / "study"),
            ]
        )
        == 0
    )


def test_num_stages_sizes_seeds_and_batch_independence(paths):
    from PIL import Image

    s = Sampling(steps=1, guidance=3.0, aug_level=0.25)
    for n in (1, 2):
        model = _model(paths, num_stages=n, batch_size=2)
        together = list(model.generate(s, _requests([5, 6, 5], ["a red cube", "two blue spheres", "a red cube"])))
        alone = [next(model.generate(s, [r])) for r in _requests([5, 6], ["a red cube", "two blue spheres"])]
        assert {(im.width, im.height) for im in together} == {(SIZES[n], SIZES[n])}
        assert Image.open(io.BytesIO(together[0].data)).size == (SIZES[n], SIZES[n])
        assert [im.data for im in together[:2]] == [im.data for im in alone] and together[2].data == together[0].data
        assert together[0].data != together[1].data


def test_describe_and_identity_cover_every_stage(paths):
    from common.files import sha256_file

    a = _model(paths, stages={"stage2": {"steps": 3}})
    d = a.describe()
    assert [s["name"] for s in d["stages"]] == ["stage1", "stage2", "stage3"] and d["runtime"]["precision"] == "fp32"
    for st, path in zip(d["stages"], paths):
        assert st["weights_sha256"] and all(v == sha256_file(f"{path}/{k}") for k, v in st["weights_sha256"].items())
    assert {k.split("/")[0] for k in d["stages"][0]["weights_sha256"]} == {"unet", "text_encoder"}
    assert d["stages"][1]["settings"] == {"steps": 3}
    json.dumps(d)
    b = _model(paths, stages={"stage1": {"thresholding": "dynamic", "percentile": 99.5}})
    assert a.identity()["stages_sha256"] != b.identity()["stages_sha256"] != _model(paths).identity()["stages_sha256"]
    assert b.describe()["stages"][0]["scheduler_overrides"] == {
        "thresholding": True,
        "dynamic_thresholding_ratio": 0.995,
    }


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"stages": {"stage1": {"aug_level": 0.1}}},
            r"stage 'stage1' \(IFPipeline.*setting 'aug_level' does not apply; allowed: steps, guidance, "
            r"thresholding, percentile, sample_max_value",
        ),
        (
            {"stages": {"stage3": {"thresholding": "static"}}},
            r"setting 'thresholding' does not apply; allowed: steps, guidance, aug_level$",
        ),
        ({"stages": {"stage2": {"thresholding": "soft"}}}, r"thresholding 'soft'; allowed: none, static, dynamic"),
        ({"stages": {"stage2": {"percentile": 99.0}}}, r"percentile applies to thresholding = \"dynamic\" only"),
        (
            {"stages": {"stage3": {"aug_level": 0.5}}},
            r"aug_level 0.5 -> noise_level 500 > its max_noise_level 350; allowed aug_level: \[0, 0.3503\]",
        ),
        ({"num_stages": 2, "stages": {"stage3": {"steps": 2}}}, r"settings for stages \['stage3'\] that do not run"),
        ({"num_stages": 4}, r"num_stages = 4 but paths lists 3"),
        ({"precision": "fp16"}, r"precision fp16 needs a CUDA device"),
        ({"offload": True}, r"offload = true needs a CUDA device \(device resolved to 'cpu'\)"),
    ],
)
def test_unsupported_settings_are_refused_in_one_line(paths, options, message):
    with pytest.raises(ValueError, match=message):
        _model(paths, **options)


def test_order_and_grid_bounds_are_refused(paths):
    with pytest.raises(
        ValueError, match=r"stage1: pipeline 'IFSuperResolutionPipeline' .*; allowed as the first stage: IFPipeline"
    ):
        _model([paths[1], paths[0]])
    with pytest.raises(
        ValueError, match=r"stage 'stage3': .*aug_level 0.4 -> noise_level 400 > its max_noise_level 350"
    ):
        _model(paths).check_sampling(Sampling(steps=1, guidance=1.0, aug_level=0.4))


def test_if_coco_recipe_runs_stage_one_and_two_as_documented(paths):
    """bench/specs/if_coco_fid30k.toml with its IF paths pointed at the tiny stages: stage II's calls
    are IF's defaults whatever stage I's guidance; 256 px would come from IF-II's sample_size."""
    from pathlib import Path

    from bench.sweep.cells import grid_points
    from bench.sweep.spec import parse_spec

    text = (Path(__file__).parents[1] / "bench" / "specs" / "if_coco_fid30k.toml").read_text()
    for old, new in (
        ('["/models/IF-I-XL-v1.0", "/models/IF-II-L-v1.0"]', json.dumps(paths[:2])),
        ('variant = "fp16"\n', ""),
        ('device = "auto"', 'device = "cpu"'),
    ):
        assert old in text
        text = text.replace(old, new)
    spec = parse_spec(text.encode())
    m = spec.models[0]
    model = build_model(m.name, m.kind, m.config)
    points = grid_points(spec.grid, model.axes)
    assert [s.guidance for _, s in points] == [1.0, 3.0, 5.0, 7.0]
    for _, s in points:
        one, two = (c.kwargs() for c in model.calls(s))
        assert one == {"num_inference_steps": 100, "guidance_scale": s.guidance}
        assert two == {"num_inference_steps": 50, "guidance_scale": 4.0, "noise_level": 250}


def test_if_drawbench_recipe_parses_without_weights_and_runs_as_documented(paths, tmp_path):
    """bench/specs/if_drawbench_sbs.toml parses as shipped (no weights: the folders are checked when
    the sweep runs, before its run folder is made); pointed at the tiny stages, its three stages get
    IF's defaults (100 / 50 / 75 steps, w = 7 / 4 / 9, noise_level 250 / 100)."""
    from pathlib import Path

    from bench.sweep.cells import grid_points, planned_images
    from bench.sweep.runner import run_sweep
    from bench.sweep.spec import parse_spec

    source = Path(__file__).parents[1] / "bench" / "specs" / "if_drawbench_sbs.toml"
    spec = parse_spec(source.read_bytes())
    assert [(m.name, m.kind) for m in spec.models] == [("deepfloyd-if", "diffusers_cascade"), ("my-model", "folder")]
    assert spec.samples_per_prompt == 8 and [m.name for m in spec.metrics] == ["clip_score", "ocr"]
    axes = {"deepfloyd-if": ("steps", "guidance", "aug_level", "seed"), "my-model": ()}
    assert planned_images(spec, axes, {"drawbench": 200}) == (2, 2 * 200 * 8)
    with pytest.raises(ValueError, match=r"metric .clip_score.: model: /models/clip-vit-large-patch14 is neither"):
        run_sweep(source, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()

    old = '["/models/IF-I-XL-v1.0", "/models/IF-II-L-v1.0", "/models/stable-diffusion-x4-upscaler"]'
    text = source.read_text()
    assert old in text
    spec = parse_spec(
        text.replace(old, json.dumps(paths))
        .replace('variant = "fp16"', "")
        .replace('device = "auto"', 'device = "cpu"')
        .encode()
    )
    m = spec.models[0]
    model = build_model(m.name, m.kind, m.config)
    [(_, s)] = grid_points(spec.grid, model.axes)
    assert [c.kwargs() for c in model.calls(s)] == [
        {"num_inference_steps": 100, "guidance_scale": 7.0},
        {"num_inference_steps": 50, "guidance_scale": 4.0, "noise_level": 250},
        {"num_inference_steps": 75, "guidance_scale": 9.0, "noise_level": 100},
    ]
