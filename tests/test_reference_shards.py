"""Reference statistics under torchrun (issue 32): two real gloo ranks on the CPU share the
extraction (each reads and runs only its batches) and both end with the statistics, features and
record one process makes, bit for bit; the cache is written once and then read by both ranks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from PIL import Image
from test_metrics_fid import extractor as tiny_extractor

from bench.metrics.features import FeatureConfig, FeatureExtractor
from bench.metrics.reference import compute_reference

N_IMAGES, BATCH = (
    21,
    4,
)  # 6 batches: rank 0 gets 0, 2, 4 (12 images), rank 1 gets 1, 3, 5 (9): a last round with one batch


def extractor() -> FeatureExtractor:
    """The tiny deterministic feature module of test_metrics_fid at batch size 4."""
    tiny = tiny_extractor()
    return FeatureExtractor(
        FeatureConfig(batch_size=BATCH), tiny.module, tiny.weights_sha256, feature_dim=tiny.feature_dim
    )


def reference_folder(root: Path) -> Path:
    rng = np.random.default_rng(3)
    root.mkdir()
    for i in range(N_IMAGES):
        im = rng.integers(
            0, 255, (40, 56, 4 if i == 5 else 3), dtype=np.uint8
        )  # one RGBA file: converted, and recorded
        Image.fromarray(im).save(root / f"{i:03d}.png")
    return root


def _rank(rank: int, world: int, port: int, folder: str, cache: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank)
    )  # one node, as torchrun sets it
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ext = extractor()
        ref = compute_reference(f"folder:{folder}", ext, cache_dir=Path(cache))
        made = ext.extracted
        again = compute_reference(
            f"folder:{folder}", ext, cache_dir=Path(cache), verify=True
        )  # both ranks find it; bytes rehashed
        np.savez(Path(out) / f"rank{rank}.npz", mu=ref.mu, sigma=ref.sigma, features=ref.features, cached_mu=again.mu)
        try:  # a broken file in rank 1's share: both ranks stop (rank 0 must not wait for it forever)
            compute_reference(f"folder:{Path(folder).parent / 'broken'}", extractor())
            error = None
        except (ValueError, RuntimeError) as e:
            error = f"{type(e).__name__}: {e}"
        (Path(out) / f"rank{rank}.json").write_text(
            json.dumps({"extracted": [made, ext.extracted], "meta": ref.meta, "error": error})
        )
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_share_the_reference_extraction_and_equal_one_process(tmp_path):
    folder = reference_folder(tmp_path / "ref")
    (tmp_path / "broken").mkdir()
    for i in range(6):  # batches 0 (rank 0) and 1 (rank 1, holding 005.png)
        (tmp_path / "broken" / f"{i:03d}.png").write_bytes(
            (folder / f"{i:03d}.png").read_bytes() if i != 5 else b"not a png"
        )
    (tmp_path / "cache").mkdir()
    port = 29600 + os.getpid() % 1000
    mp.spawn(_rank, args=(2, port, str(folder), str(tmp_path / "cache"), str(tmp_path)), nprocs=2, join=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks' thread count: the same arithmetic
    try:
        ext = extractor()
        single = compute_reference(f"folder:{folder}", ext)  # no process group: one process does it all
    finally:
        torch.set_num_threads(threads)
    assert ext.extracted == N_IMAGES
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["extracted"] for r in records] == [
        [12, 12],
        [9, 9],
    ]  # each its own batches; nothing extracted on the cached call
    for r in (0, 1):
        got = np.load(tmp_path / f"rank{r}.npz")
        for name in ("mu", "sigma", "features"):
            assert np.array_equal(got[name], getattr(single, name)), (r, name)
        assert np.array_equal(got["cached_mu"], single.mu)
        assert records[r]["meta"] == single.meta  # content sha256 (hashed in shares), converted modes, key
    assert (
        single.meta["converted_to_rgb"] == {"RGBA": 1}
        and single.meta["device"] == "cpu"
        and single.meta["precision"] == "fp32"
    )
    assert len(list((tmp_path / "cache").iterdir())) == 1  # written once (local rank 0), no temp file left
    assert records[1]["error"].startswith("ValueError: ") and "005.png" in records[1]["error"]
    assert records[0]["error"] == f"RuntimeError: reference extraction failed on rank 1: {records[1]['error']}"
