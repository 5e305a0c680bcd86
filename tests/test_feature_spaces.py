"""Feature spaces beyond the FID Inception, tested with tiny randomly initialised models saved in
their real formats (Hugging Face save_pretrained folders: config.json, model.safetensors,
preprocessor_config.json): FD-DINOv2 and CMMD against direct computations, "unavailable" without
weights, and one extraction per image shared by every metric on a space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.metrics import build_metric
from bench.metrics.base import ScoredImage
from bench.metrics.features import FeatureConfig, shared_extractor
from bench.metrics.stats import cmmd, frechet_distance, gaussian_mmd2_unbiased
from common.runs import PromptRef

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel, Dinov2Config, Dinov2Model
    from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
        )
    ).save_pretrained(d / "dinov2")
    BitImageProcessorPil(
        size={"shortest_edge": 32},
        crop_size={"height": 28, "width": 28},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        resample=3,
    ).save_pretrained(d / "dinov2")
    text = {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "vocab_size": 100,
    }
    vision = {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "image_size": 32,
        "patch_size": 16,
    }
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(d / "clip")
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        d / "clip"
    )
    return d


def _images(seed: int, n: int, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8) for _ in range(n)]


def _folder(path, images):
    path.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(path / f"{i:03d}.png")
    return path


def _scored(images, cell="c"):
    return [ScoredImage(cell, PromptRef("p", str(i), "x", "prompt", 0), im) for i, im in enumerate(images)]


def _direct(space: str, folder, images) -> np.ndarray:
    """The features as transformers computes them from the folder, no project code."""
    from transformers import CLIPModel, Dinov2Model

    model = (Dinov2Model if space == "dinov2" else CLIPModel).from_pretrained(folder).eval()
    if space == "dinov2":  # dgm-eval's transform, transcribed: PIL bicubic to 224 x 224, / 255, ImageNet mean / std
        mean, std = (
            torch.tensor([0.485, 0.456, 0.406])[:, None, None],
            torch.tensor([0.229, 0.224, 0.225])[:, None, None],
        )
        x = torch.stack(
            [
                (
                    torch.from_numpy(np.array(Image.fromarray(im).resize((224, 224), Image.BICUBIC))).permute(2, 0, 1)
                    / 255.0
                    - mean
                )
                / std
                for im in images
            ]
        ).float()
    else:  # the released CMMD's transform, transcribed (io_util._center_crop_and_resize; embedding._clip_preprocess)
        size = model.config.vision_config.image_size
        mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
        arrays = []
        for im in images:
            side = min(im.shape[:2])
            top, left = (im.shape[0] - side) // 2, (im.shape[1] - side) // 2
            square = Image.fromarray(np.ascontiguousarray(im[top : top + side, left : left + side]))
            arrays.append((np.asarray(square.resize((size, size), Image.BICUBIC), np.float64) / 255.0 - mean) / std)
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        out = model(pixel_values=x).pooler_output if space == "dinov2" else model.get_image_features(pixel_values=x)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    return out.double().numpy()


def test_fd_dinov2_equals_the_frechet_distance_of_direct_features(weights, tmp_path):
    ref, gen = _images(0, 12), _images(1, 10)
    m = build_metric(
        "fid",
        {
            "space": "dinov2",
            "weights": str(weights / "dinov2"),
            "reference": f"folder:{_folder(tmp_path / 'ref', ref)}",
        },
        cache_dir=tmp_path / "cache",
    )
    m.update(_scored(gen))
    (res,) = m.compute()
    # the reference is read back from PNG files: identical pixels, so identical features
    fr, fg = _direct("dinov2", weights / "dinov2", ref), _direct("dinov2", weights / "dinov2", gen)
    mu = lambda f: f.mean(0)  # noqa: E731
    cov = lambda f: np.cov(f, rowvar=False)  # noqa: E731
    assert res.metric == "fd_dinov2" and res.value == pytest.approx(
        frechet_distance(mu(fr), cov(fr), mu(fg), cov(fg)), rel=1e-4
    )
    assert res.details["feature_space"] == "dinov2" and res.details["feature_model"] == "Dinov2Model"
    assert len(res.details["feature_weights_sha256"]) == 64 and "dgm-eval@d57a6d2" in res.details["preprocessing"]


def test_cmmd_equals_a_direct_computation(weights, tmp_path):
    ref, gen = _images(2, 9), _images(3, 7)
    m = build_metric(
        "cmmd", {"weights": str(weights / "clip"), "reference": f"folder:{_folder(tmp_path / 'ref', ref)}"}
    )
    m.update(_scored(gen))
    (res,) = m.compute()
    direct = cmmd(_direct("clip", weights / "clip", ref), _direct("clip", weights / "clip", gen))
    assert res.metric == "cmmd" and res.value == pytest.approx(direct, rel=1e-4)
    assert res.details["sigma"] == 10.0 and res.details["scale"] == 1000.0 and res.details["feature_space"] == "clip"


def test_cmmd_released_estimator_equals_the_released_code_transcribed():
    """google-research/google-research @4c42994 cmmd/distance.py `mmd`, transcribed in numpy: squared
    norms from the diagonal of x x^T, gamma = 1 / (2 sigma^2), the mean of every kernel entry (i = j
    included), scaled by 1000; applied to L2-normalised embeddings as CMMD is."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 12)), rng.normal(0.3, 1.0, size=(30, 12))
    ux, uy = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (x, y))
    gamma = 1 / (2 * 10**2)
    sq = lambda a: np.diag(a @ a.T)  # noqa: E731

    def k_mean(a, b):
        return np.mean(np.exp(-gamma * (-2 * a @ b.T + sq(a)[:, None] + sq(b)[None, :])))

    released = 1000 * (k_mean(ux, ux) + k_mean(uy, uy) - 2 * k_mean(ux, uy))
    assert cmmd(x, y, "released") == pytest.approx(released, rel=1e-10)
    assert cmmd(x, y, "released") > cmmd(
        x, y, "unbiased"
    )  # the V-statistic's O(1/n) upward bias (k(x, x) = 1 counted)


def test_gaussian_mmd_matches_a_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(1.0, 1.0, size=(5, 3))
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * 10.0**2))  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    xy = sum(k(a, b) for a in x for b in y) / 30
    assert gaussian_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert cmmd(x, x * 3.0) == pytest.approx(
        1000
        * gaussian_mmd2_unbiased(
            x / np.linalg.norm(x, axis=1, keepdims=True), x / np.linalg.norm(x, axis=1, keepdims=True)
        )
    )


@pytest.mark.parametrize(
    "name, options, names, text",
    [
        (
            "fid",
            {"space": "dinov2"},
            ["fd_dinov2"],
            "unavailable: FD-DINOv2 needs DINOv2 weights: set options weights = DIR",
        ),
        ("cmmd", {}, ["cmmd"], "unavailable: CLIP image features need CLIP weights"),
    ],
)
def test_without_weights_the_metric_says_how_to_supply_them(name, options, names, text, tmp_path):
    m = build_metric(name, {**options, "reference": "shapes:test"})
    m.update(_scored(_images(4, 3)))
    results = m.compute()
    assert [r.metric for r in results] == names and all(r.value is None and r.n == 3 for r in results)
    assert text in results[0].details["unavailable"]


@pytest.mark.parametrize(
    "weights, text", [("/nowhere", "folder /nowhere does not exist"), ("{tmp}", "holds no config.json")]
)
def test_a_weights_folder_that_is_not_there_is_an_error_not_unavailable(weights, text, tmp_path):
    """A mistyped weights folder used to pass as "unavailable" (exit 0, no number): now the options are refused."""
    with pytest.raises(ValueError, match=f"metric 'prdc': weights: .*{text}"):
        build_metric("prdc", {"space": "clip", "weights": weights.format(tmp=tmp_path), "reference": "shapes:test"})


def test_metrics_on_one_space_extract_each_image_once(weights, tmp_path):
    """FID, KID and PRDC on the same space, fed the same batches as a sweep feeds them: the network
    sees each generated image and each reference image once."""
    ref, gen = _images(5, 8), _images(6, 6)
    opts = {
        "space": "dinov2",
        "weights": str(weights / "dinov2"),
        "reference": f"folder:{_folder(tmp_path / 'ref', ref)}",
    }
    metrics = [
        build_metric("fid", opts),
        build_metric("kid", {**opts, "subsets": 3, "subset_size": 4}),
        build_metric("prdc", opts),
    ]
    extractor = shared_extractor(FeatureConfig(space="dinov2", weights=str(weights / "dinov2")))
    before = extractor.extracted
    for batch in (gen[:3], gen[3:]):
        for m in metrics:
            m.update(_scored(batch))
    names = [r.metric for m in metrics for r in m.compute()]
    assert names == ["fd_dinov2", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"]
    assert extractor.extracted - before == len(gen) + len(ref)  # not 3 x


def test_cmmd_blocks_interval_is_the_jackknife_of_leave_one_block_out_cmmd(weights, tmp_path):
    """CMMD with blocks = 5: the value is CMMD on all images and the SE the delete-a-block jackknife
    of CMMD recomputed (stats.cmmd on the direct CLIP features) without each block."""
    import hashlib

    from scipy.stats import t as student

    ref, gen = _images(7, 8), _images(8, 10)
    m = build_metric(
        "cmmd",
        {"weights": str(weights / "clip"), "reference": f"folder:{_folder(tmp_path / 'ref', ref)}", "blocks": 5},
    )
    m.update(_scored(gen))
    (res,) = m.compute()
    fr, fg = _direct("clip", weights / "clip", ref), _direct("clip", weights / "clip", gen)
    codes = [int(hashlib.sha256(f"p\0{i}".encode()).hexdigest()[:13], 16) for i in range(len(gen))]
    b = np.empty(len(gen), int)
    b[np.argsort(codes)] = np.arange(len(gen)) % 5
    assert res.value == pytest.approx(cmmd(fr, fg), rel=1e-4)
    pseudo = 5 * cmmd(fr, fg) - 4 * np.array([cmmd(fr, fg[b != g]) for g in range(5)])
    se = pseudo.std(ddof=1) / np.sqrt(5)
    assert (
        res.details["se"] == res.details["se_jackknife"] == pytest.approx(se, rel=1e-3, abs=1e-6)
    )  # CMMD: the plain jackknife
    half = student.ppf(0.975, 4) * se
    assert (res.details["ci_low"], res.details["ci_high"]) == pytest.approx(
        (res.value - half, res.value + half), rel=1e-3, abs=1e-6
    )


def test_clip_features_crop_the_square_before_resizing_as_the_released_cmmd(weights):
    """The released CMMD crops the centred square and then resizes; the folder's CLIPImageProcessor
    resizes the short side and then crops. On square images both give the same pixels (checked with
    transformers' own processor, code we did not write); on a 40 x 48 image they differ, and ours
    follows the released code."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from bench.metrics.feature_spaces import cmmd_pixels

    processor = CLIPImageProcessorPil.from_pretrained(weights / "clip")
    square = [np.random.default_rng(3).integers(0, 255, (45, 45, 3), dtype=np.uint8)]
    hf = processor(images=[Image.fromarray(im) for im in square], return_tensors="pt")["pixel_values"]
    assert torch.allclose(cmmd_pixels(square, 32), hf, atol=1e-5)
    wide = _images(4, 1)
    hf_wide = processor(images=[Image.fromarray(im) for im in wide], return_tensors="pt")["pixel_values"]
    assert not torch.allclose(cmmd_pixels(wide, 32), hf_wide, atol=1e-3)
