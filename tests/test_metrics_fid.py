"""FID / KID: our pipeline vs an independent float64 numpy/scipy reference and vs torchmetrics,
with a tiny deterministic random feature module in place of the Inception (fast), plus the
reference-set paths (folder, stats file, cache, bad images) and a 2-process gloo run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.multiprocessing as mp
from PIL import Image

from bench.metrics import ScoredImage, build_metric
from bench.metrics.features import FeatureConfig, FeatureExtractor
from bench.metrics.fid import FID, KID
from bench.metrics.reference import read_stats_file
from bench.metrics.stats import feature_stats, frechet_distance, kernel_inception_distance
from common.runs import PromptRef

DIM = 16
SIZE = 299  # images already at the Inception size, so no resize differs between pipelines


class TinyFeatures(torch.nn.Module):
    """Deterministic random features: (B, 3, 299, 299) in [-1, 1] -> (B, 16)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 13, stride=13)
        self.lin = torch.nn.Linear(8 * 4, DIM)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x))  # (B, 8, 23, 23)
        h = torch.nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)  # (B, 32)
        return self.lin(h)


class TorchmetricsWrapper(torch.nn.Module):
    """torchmetrics feeds uint8 (B, 3, H, W) to a custom feature module: apply our x/128 - 1."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 128 - 1)


def images(n: int, seed: int, bright: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (n, 1, 1, 3))  # per-image colour so features vary across images
    noise = rng.integers(0, 56, (n, SIZE, SIZE, 3))
    return list(np.clip(base + noise + bright, 0, 255).astype(np.uint8))


def scored(ims: list[np.ndarray], cell: str = "a") -> list[ScoredImage]:
    return [ScoredImage(cell, PromptRef("test", str(i), "c", "p", 0), im) for i, im in enumerate(ims)]


def write_folder(folder: Path, ims: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(ims):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    return folder


def extractor(dtype: str = "float32") -> FeatureExtractor:
    return FeatureExtractor(
        FeatureConfig(dtype=dtype, batch_size=8), TinyFeatures(), "tiny-test-module", feature_dim=DIM
    )


def numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Independent float64 reference: trace term via eigenvalues of S1 S2 (sum of their square roots)."""
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s1 @ s2)
    return float(
        ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig.real.clip(0)).sum()
    )


def tiny_features(ims: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float() / 128 - 1
    with torch.no_grad():
        return TinyFeatures()(x).double().numpy()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    ref = images(48, seed=1, bright=30)
    gen = images(40, seed=2)
    folder = write_folder(tmp_path_factory.mktemp("ref") / "imgs", ref)
    return ref, gen, folder


def test_fid_equals_numpy_reference_and_torchmetrics(data, tmp_path):
    from torchmetrics.image.fid import FrechetInceptionDistance

    ref, gen, folder = data
    m = FID({"reference": f"folder:{folder}", "batch_size": 8}, cache_dir=tmp_path, extractor=extractor())
    m.update(scored(gen))
    (res,) = m.compute()
    expected = numpy_fid(tiny_features(ref), tiny_features(gen))
    tm = FrechetInceptionDistance(feature=TorchmetricsWrapper(TinyFeatures()), normalize=False)
    tm.update(torch.from_numpy(np.stack(ref)).permute(0, 3, 1, 2), real=True)
    tm.update(torch.from_numpy(np.stack(gen)).permute(0, 3, 1, 2), real=False)
    assert res.value > 1.0  # the sets differ (brightness), so this is a real comparison
    # float32 features computed in other batch sizes (8 here, all at once in the references) round
    # differently; FID ~9 then agrees to ~2e-6 relative, so 1e-5 (a real error is orders larger)
    assert res.value == pytest.approx(expected, rel=1e-5)
    assert res.value == pytest.approx(float(tm.compute()), rel=1e-5)
    assert res.metric == "fid" and res.cell_id == "a" and res.n == 40
    d = res.details
    assert (
        d["resize"] == "pil_bicubic" and d["feature_weights_sha256"] == "tiny-test-module" and d["reference_n"] == 48
    )
    json.dumps(d)  # JSON-able


def test_set_against_itself_is_zero(data):
    ref, _, folder = data
    m = FID({"reference": f"folder:{folder}", "batch_size": 8}, extractor=extractor())
    m.update(scored(ref))
    assert abs(m.compute()[0].value) < 1e-6


def test_kid_equals_torchmetrics(data):
    from torchmetrics.image.kid import KernelInceptionDistance

    ref, gen, folder = data
    # subset_size = all images of the smaller set (40), so every subset's MMD is permutation-free
    m = KID({"reference": f"folder:{folder}", "batch_size": 8, "subsets": 3, "subset_size": 40}, extractor=extractor())
    m.update(scored(gen))
    mean, std = m.compute()
    assert (mean.metric, std.metric) == ("kid_mean", "kid_std")
    tm = KernelInceptionDistance(
        feature=TorchmetricsWrapper(TinyFeatures()), subsets=3, subset_size=40, normalize=False
    )
    tm.update(
        torch.from_numpy(np.stack(ref[:40])).permute(0, 3, 1, 2), real=True
    )  # torchmetrics needs equal-size draws
    tm.update(torch.from_numpy(np.stack(gen)).permute(0, 3, 1, 2), real=False)
    ours_40 = kernel_inception_distance(tiny_features(ref[:40]), tiny_features(gen), subsets=3, subset_size=40)
    assert ours_40[0] == pytest.approx(float(tm.compute()[0]), rel=1e-6)
    assert mean.value > 0 and mean.details["subset_size"] == 40


def test_mmd_matches_naive_loops():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.5, 1, size=(7, 5))
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    m = 7
    naive = (
        sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        - 2 * sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    )
    mean, std, size = kernel_inception_distance(x, y, subsets=4, subset_size=100)
    assert size == 7 and mean == pytest.approx(naive, rel=1e-10) and std == pytest.approx(0, abs=1e-12)


def test_frechet_pure_function_on_known_gaussians():
    # 1-D: (mu1 - mu2)^2 + s1 + s2 - 2 sqrt(s1 s2) = (1 - 3)^2 + 4 + 9 - 12 = 5
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(
        5.0
    )
    f = np.random.default_rng(0).normal(size=(50, 3))
    mu, sigma = feature_stats(f)
    assert np.allclose(sigma, np.cov(f, rowvar=False)) and sigma.dtype == np.float64


@pytest.mark.parametrize("n", [40, 400])  # N < D: singular covariances (small-sample FID); N > D: full rank
def test_frechet_equals_scipy_sqrtm_form(n):
    """The eigh-based trace term == pytorch-fid's scipy.linalg.sqrtm(S1 S2) form."""

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(n, 64)), rng.normal(size=(n, 64)) @ rng.normal(size=(64, 64)) * 0.3 + 0.2
    (m1, s1), (m2, s2) = feature_stats(a), feature_stats(b)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = (m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-6)


def test_reference_cache_and_stats_file(data, tmp_path):
    ref, gen, folder = data
    opts = {"reference": f"folder:{folder}", "batch_size": 8}
    m1 = FID(opts, cache_dir=tmp_path / "cache", extractor=extractor())
    m1.update(scored(gen))
    v1 = m1.compute()[0].value
    cached = list((tmp_path / "cache").glob("fid-ref-*.npz"))
    assert len(cached) == 1
    saved = read_stats_file(cached[0])
    assert saved.n == 48 and saved.meta["resize"] == "pil_bicubic" and saved.meta["content_sha256"]
    m2 = FID({**opts, "reference": f"stats:{cached[0]}"}, extractor=extractor())
    m2.update(scored(gen))
    assert m2.compute()[0].value == pytest.approx(v1, rel=1e-12)
    # another resize mode is another cache entry, and a stats file made with another mode is refused
    m3 = FID(
        {**opts, "resize": "torch_bilinear"},
        cache_dir=tmp_path / "cache",
        extractor=FeatureExtractor(
            FeatureConfig(resize="torch_bilinear", batch_size=8), TinyFeatures(), "tiny-test-module", feature_dim=DIM
        ),
    )
    m3.update(scored(gen))
    m3.compute()
    assert len(list((tmp_path / "cache").glob("fid-ref-*.npz"))) == 2
    m4 = FID(
        {**opts, "reference": f"stats:{cached[0]}", "resize": "torch_bilinear"},
        extractor=FeatureExtractor(
            FeatureConfig(resize="torch_bilinear", batch_size=8), TinyFeatures(), "tiny-test-module", feature_dim=DIM
        ),
    )
    m4.update(scored(gen))
    with pytest.raises(ValueError, match="resize"):
        m4.compute()


def test_bad_reference_images(tmp_path):
    folder = write_folder(tmp_path / "ref", images(4, seed=3))
    Image.fromarray(images(1, seed=4)[0]).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(images(1, seed=5)[0]).convert("L").save(folder / "gray.png")
    m = FID({"reference": f"folder:{folder}", "batch_size": 8}, extractor=extractor())
    m.update(scored(images(4, seed=6)))
    assert m.compute()[0].details["reference_converted_to_rgb"] == {"RGBA": 1, "L": 1}
    data = (folder / "000.png").read_bytes()
    (folder / "000.png").write_bytes(data[: len(data) // 2])  # truncated
    m = FID({"reference": f"folder:{folder}", "batch_size": 8}, extractor=extractor())
    m.update(scored(images(4, seed=6)))
    with pytest.raises(ValueError, match="000.png"):
        m.compute()


def test_registry_and_options_errors():
    with pytest.raises(ValueError, match="clip_score.*fid|fid.*clip_score"):
        build_metric("fidd")
    with pytest.raises(ValueError, match="allowed:.*reference"):
        build_metric("fid", {"reference": "folder:x", "resise": "pil_bicubic"})
    with pytest.raises(ValueError, match="pil_bicubic"):
        build_metric("fid", {"reference": "folder:x", "resize": "nearest"})
    with pytest.raises(ValueError, match="folder:DIR"):
        build_metric("kid", {"reference": "imagefolder:x"})
    with pytest.raises(ValueError, match="need a reference"):
        build_metric("fid", {})


def fid_and_kid(folder: str, gen: list[ScoredImage]) -> dict[str, tuple[float, int]]:
    """{"<cell>/<metric>": (value, n)} of FID and KID (5 subsets of 8) over `gen`."""
    results = {}
    for metric, extra in ((FID, {}), (KID, {"subsets": 5, "subset_size": 8})):
        m = metric({"reference": f"folder:{folder}", "batch_size": 8, **extra}, extractor=extractor())
        m.update(gen)
        results.update({f"{r.cell_id}/{r.metric}": (r.value, r.n) for r in m.compute()})
    return results


def _ddp_worker(rank: int, world: int, port: int, folder: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gen = scored(images(40, seed=2)) + scored(images(8, seed=7), cell="b")
        mine = gen[rank::world] if rank == 0 else gen[rank:40:world]  # rank 1 never sees cell "b"
        results = fid_and_kid(folder, mine)  # compute() syncs the states of both ranks
        if rank == 0:
            Path(out).write_text(json.dumps(results))
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_gloo_equals_one_process(data, tmp_path):
    _, _, folder = data
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(folder), str(tmp_path / "ddp.json")), nprocs=2, join=True)
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    gen = scored(images(40, seed=2))
    gen = gen[0::2] + gen[1:40:2] + scored(images(8, seed=7), cell="b")[0::2]  # the union the two ranks saw
    single = fid_and_kid(str(folder), gen)
    assert set(ddp) == set(single) == {"a/fid", "b/fid", "a/kid_mean", "a/kid_std", "b/kid_mean", "b/kid_std"}
    for k in single:
        assert ddp[k][1] == single[k][1], k
        # KID's seeded subsets index rows; gathered rows are rank-major, the order fed above
        assert ddp[k][0] == pytest.approx(single[k][0], rel=1e-9, abs=1e-12), k


def test_shapes_reference(data):
    _, gen, _ = data
    m = FID({"reference": "shapes:test", "n": 20, "shapes_size": 64, "batch_size": 8}, extractor=extractor())
    m.update(scored(gen))
    (res,) = m.compute()
    assert res.details["reference_n"] == 20 and res.details["reference"] == "shapes:test" and res.value > 0
    with pytest.raises(ValueError, match="split"):
        FID({"reference": "shapes:nosuchsplit", "batch_size": 8}, extractor=extractor()).reference()


def test_kid_needs_reference_features(data, tmp_path):
    from bench.metrics.reference import compute_reference, write_stats_file

    _, gen, folder = data
    path = tmp_path / "mu_sigma_only.npz"
    write_stats_file(path, compute_reference(f"folder:{folder}", extractor()), with_features=False)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_stats_file(path, read_stats_file(path))
    m = KID({"reference": f"stats:{path}", "batch_size": 8}, extractor=extractor())
    m.update(scored(gen))
    with pytest.raises(ValueError, match="kid needs reference features"):
        m.compute()


def _loops_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int):
    """Obviously correct reference: the papers' definitions with Python loops over samples."""
    dist = lambda a, b: float(np.sqrt(((a - b) ** 2).sum()))  # noqa: E731

    def kth(points, i, k):
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r_real = [kth(real, i, k_pr) for i in range(len(real))]
    r_fake = [kth(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(f, real[i]) <= r_real[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= r_fake[j] for j in range(len(fake))) for r in real])
    r_dc = [kth(real, i, k_dc) for i in range(len(real))]
    density = sum(dist(f, real[i]) <= r_dc[i] for f in fake for i in range(len(real))) / (k_dc * len(fake))
    coverage = np.mean([any(dist(real[i], f) <= r_dc[i] for f in fake) for i in range(len(real))])
    return precision, recall, density, coverage


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_precision_recall_density_coverage_equal_the_papers_definitions(shift):
    from bench.metrics.stats import density_coverage, precision_recall

    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(40, 6)), rng.normal(shift, 1.3, size=(30, 6))
    p, r, d, c = _loops_prdc(real, fake, 3, 5)
    assert precision_recall(real, fake, 3) == pytest.approx((p, r), abs=1e-12)
    assert density_coverage(real, fake, 5) == pytest.approx((d, c), abs=1e-12)


@pytest.mark.parametrize("entries", [7, 64, 2**24])
def test_prdc_in_bounded_memory_equals_the_papers_definitions_per_group(monkeypatch, entries):
    """The streamed computation (BLOCK_ENTRIES distances at a time: 7 = one row per block, 64 =
    uneven blocks, 2^24 = all at once) gives exactly the loops' values, for every group of images."""
    from bench.metrics import stats

    monkeypatch.setattr(stats, "BLOCK_ENTRIES", entries)
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(37, 5)), rng.normal(0.4, 1.2, size=(33, 5))
    groups = np.arange(33) % 3
    got = stats.prdc_groups(real, fake, groups, 3, 5)
    for g in range(3):
        want = _loops_prdc(real, fake[groups == g], 3, 5)
        assert [got[n][g] for n in ("precision", "recall", "density", "coverage")] == pytest.approx(want, abs=1e-12)
    assert stats.knn_radii(real, 4) == pytest.approx(
        np.sort(stats._pairwise(real, real), axis=1)[:, 4], abs=1e-12
    )  # 1 ulp: GEMM blocking


@pytest.mark.parametrize("n", [12, 60])
def test_fid_blocks_with_fewer_images_than_dimensions_equal_the_moments_path(n):
    """n <= D (FID-N below 2,048): each FD from an n x n eigendecomposition of the features equals the
    D x D one from their moments (stats.frechet_distance), leave-one-block-out sets included."""
    from bench.metrics import blocks as B
    from bench.metrics.stats import feature_stats, frechet_distance

    rng = np.random.default_rng(n)
    ref, gen = rng.normal(size=(80, 40)), rng.normal(0.2, 1.1, size=(n, 40))
    mu, sigma = feature_stats(ref)
    groups = np.arange(n) % 5
    r = B.frechet_blocks(mu, sigma, gen, groups)
    # 1e-7: the D x D path sums the square roots of D - n + 1 round-off eigenvalues (~1e-15 each) of a
    # rank-deficient matrix; the n x n path has none of them
    assert r["value_n"] == pytest.approx(frechet_distance(mu, sigma, *feature_stats(gen)), rel=1e-7)
    loo = [frechet_distance(mu, sigma, *feature_stats(gen[groups != g])) for g in range(5)]
    assert r["value_debiased"] == pytest.approx(
        5 * r["value_n"] - 4 * np.mean(loo), rel=1e-6
    )  # G FD - (G-1) mean: x9 the error


def test_prdc_metric_on_features_of_images(data):
    """The registry's `prdc` on the tests' tiny feature network: a set of the reference's own images
    has precision, recall and coverage 1; a shifted set scores lower."""
    from bench.metrics import build_metric  # noqa: F401  (the name is registered)
    from bench.metrics.fid import PRDC

    ref, gen, folder = data
    same = PRDC({"reference": f"folder:{folder}", "batch_size": 8}, extractor=extractor())
    same.update(scored(ref, "same"))
    by = {r.metric: r for r in same.compute()}
    assert (
        by["precision"].value == by["recall"].value == by["coverage"].value == 1.0
        and by["density"].details["k_dc"] == 5
    )
    other = PRDC({"reference": f"folder:{folder}", "batch_size": 8, "k_pr": 3, "k_dc": 5}, extractor=extractor())
    other.update(scored(gen, "gen"))
    got = {r.metric: r.value for r in other.compute()}  # brightness-shifted images: fewer inside the real manifold
    assert got["precision"] < 1.0 and got["coverage"] < 1.0 and got["density"] < by["density"].value


def plain_blocks(n_images: int, blocks: int) -> np.ndarray:
    """The block rule written out: prompts (here one image each, ids "0".."n-1" of prompt set
    "test") in the order of their sha256 code, dealt round-robin."""
    import hashlib

    codes = [int(hashlib.sha256(f"test\0{i}".encode()).hexdigest()[:13], 16) for i in range(n_images)]
    out = np.empty(n_images, int)
    out[np.argsort(codes)] = np.arange(n_images) % blocks
    return out


def test_fid_blocks_equal_a_plain_jackknife_loop(data):
    """FID with blocks = 5: "fid" is the plain value; "fid_debiased" is G FD_N - (G-1) mean FD_(-g)
    with FD_(-g) recomputed by the numpy reference without block g, and the interval
    value +- t(G-1) SE_J (floored at 0)."""
    from scipy.stats import t as student

    ref, gen, folder = data
    plain = FID({"reference": f"folder:{folder}", "batch_size": 8}, extractor=extractor())
    blocked = FID({"reference": f"folder:{folder}", "batch_size": 8, "blocks": 5}, extractor=extractor())
    for m in (plain, blocked):
        m.update(scored(gen))
    (p,), (f, d) = plain.compute(), blocked.compute()
    assert (f.metric, d.metric) == ("fid", "fid_debiased") and f.value == pytest.approx(p.value, rel=1e-9)
    fr, fg = tiny_features(ref), tiny_features(gen)
    b = plain_blocks(len(gen), 5)
    leave = np.array([numpy_fid(fr, fg[b != g]) for g in range(5)])
    pseudo = 5 * numpy_fid(fr, fg) - 4 * leave
    assert d.value == pytest.approx(pseudo.mean(), rel=1e-4)
    se = pseudo.std(ddof=1) / np.sqrt(5)
    assert d.details["se"] == pytest.approx(se, rel=1e-3)
    half = student.ppf(0.975, 4) * se
    assert (d.details["ci_low"], d.details["ci_high"]) == pytest.approx(
        (max(0, d.value - half), d.value + half), rel=1e-3
    )
    assert d.details["block_values"] == pytest.approx(list(pseudo), rel=1e-4) and "ci_low" not in f.details
    with pytest.raises(ValueError, match=r"blocks must be 0 \(off\) or a whole number in \[5, 100\]"):
        FID({"reference": f"folder:{folder}", "blocks": 3})
    with pytest.raises(ValueError, match="blocks must be"):
        FID({"reference": f"folder:{folder}", "blocks": 20.5})
    with pytest.raises(ValueError, match="'bootstrap' was removed.*use blocks = 20"):
        FID({"reference": f"folder:{folder}", "bootstrap": 200})


def test_kid_and_prdc_blocks_equal_plain_loops(data):
    """KID with blocks: the subsets' mean +- t(G-1) sqrt(SE^2 + std^2 / subsets), SE^2 the
    jackknife variance of the all-images U-statistic written as a plain double loop, less its
    second-order excess; precision / recall /
    density / coverage: the mean over blocks of each block's metric computed directly, with Hall's
    skew-corrected t interval solved numerically."""
    from scipy.optimize import brentq
    from scipy.stats import skew
    from scipy.stats import t as student

    from bench.metrics.fid import PRDC
    from bench.metrics.stats import density_coverage, precision_recall

    ref, gen, folder = data
    fr, fg = tiny_features(ref), tiny_features(gen)
    opts = {"reference": f"folder:{folder}", "batch_size": 8, "blocks": 5}
    kid = KID({**opts, "subsets": 10, "subset_size": 20}, extractor=extractor())
    prdc = PRDC(opts, extractor=extractor())
    for m in (kid, prdc):
        m.update(scored(gen))
    results = {r.metric: r for m in (kid, prdc) for r in m.compute()}
    b = plain_blocks(len(gen), 5)

    def u_stat(x):  # the generated-dependent part of the unbiased MMD^2 (the reference term is a constant)
        k = (x @ x.T / DIM + 1) ** 3
        n = len(x)
        return (k.sum() - np.trace(k)) / (n * (n - 1)) - 2 * ((x @ fr.T / DIM + 1) ** 3).mean()

    pseudo = 5 * u_stat(fg) - 4 * np.array([u_stat(fg[b != g]) for g in range(5)])
    k = results["kid_mean"]
    mean, std, _ = kernel_inception_distance(fr, fg, 10, 20, 0)
    assert k.value == pytest.approx(mean, rel=1e-6)
    v_j = pseudo.var(ddof=1) / 5
    assert k.details["se_jackknife"] == pytest.approx(np.sqrt(v_j), rel=1e-4)
    # less the jackknife's second-order excess (common.second_order.mmd_second_order; its truth is checked by
    # simulation in test_intervals_blocks.py): block-pair kernel means, U-centred, in loops
    kxx = (fg @ fg.T / DIM + 1) ** 3
    g, n = 5, len(fg)
    size = [int((b == a).sum()) for a in range(g)]
    pair = np.zeros((g, g))
    for a in range(g):
        for c in range(g):
            if a != c:
                pair[a, c] = kxx[np.ix_(b == a, b == c)].sum() / (size[a] * size[c])
    row = [sum(pair[a, c] for c in range(g) if c != a) for a in range(g)]
    tau2 = sum(
        (pair[a, c] - row[a] / (g - 2) - row[c] / (g - 2) + pair.sum() / ((g - 1) * (g - 2))) ** 2
        for a in range(g)
        for c in range(g)
        if a != c
    ) / (g * (g - 3))
    m = n / g
    alpha, alpha_out = g * (g - 1) * m * m / (n * (n - 1)), (g - 1) * (g - 2) * m * m / ((n - m) * (n - m - 1))
    excess = alpha_out**2 * 4 * tau2 / (g * (g - 2)) - alpha**2 * 2 * tau2 / (g * (g - 1))
    v = min(v_j, max(v_j - excess, v_j * (g - 2) / (2 * (g - 1))))
    se = np.sqrt(v + results["kid_std"].value ** 2 / 10)
    assert k.details["se"] == pytest.approx(se, rel=1e-4)
    # the bootstrap-t interval: value - q_hi se, value - q_lo se, the quantiles of the resampled
    # studentised statistic (their coverage is checked against known truths in test_intervals_blocks.py)
    boot = k.details["bootstrap_t"]
    q_lo, q_hi = boot["quantiles"]
    assert q_lo < 0 < q_hi and boot["units"] == len(gen) and boot["draws"] >= 500
    assert (k.details["ci_low"], k.details["ci_high"]) == pytest.approx(
        (k.value - q_hi * se, k.value - q_lo * se), rel=1e-9
    )
    for name, fn in (
        ("precision", lambda f: precision_recall(fr, f, 3)[0]),
        ("recall", lambda f: precision_recall(fr, f, 3)[1]),
        ("density", lambda f: density_coverage(fr, f, 5)[0]),
        ("coverage", lambda f: density_coverage(fr, f, 5)[1]),
    ):
        per = np.array([fn(fg[b == g]) for g in range(5)])
        r = results[name]
        assert r.value == pytest.approx(per.mean(), abs=1e-12) and r.details["set_size"] == 8, name
        # Hall's (1992) transformation of T = (mean - mu) / se: h(T) = T + a T^2 + a^2 T^3 / 3 + b,
        # a = g / (3 sqrt G), b = g / (6 sqrt G), g scipy's bias-adjusted skewness; h(T) = +-t solved numerically
        g_adj, se_b = skew(per, bias=False), per.std(ddof=1) / np.sqrt(5)
        a_h, b_h = g_adj / (3 * np.sqrt(5)), g_adj / (6 * np.sqrt(5))
        q = student.ppf(0.975, 4)
        root = [
            brentq(lambda x, y=y, a=a_h, c=b_h: x + a * x * x + a * a * x**3 / 3 + c - y, -50, 50) for y in (q, -q)
        ]
        lo, hi = per.mean() - se_b * root[0], per.mean() - se_b * root[1]
        hi = hi if name == "density" else min(1.0, hi)
        assert (r.details["ci_low"], r.details["ci_high"]) == pytest.approx((max(0.0, lo), hi), abs=1e-9), name
        assert 0 <= r.details["ci_low"] <= r.details["ci_high"] and (name == "density" or r.details["ci_high"] <= 1)
    assert "ci_low" not in results["kid_std"].details
