"""Tiny components for the sweep tests: a random 3-stage cascade checkpoint (imagen.presets.tiny,
8 -> 16 -> 32 px) saved the way `imagen-bench train` saves one, a spec writer, and a small real
metric (mean brightness per image, synced across ranks) so runner tests need no metric weights."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.metrics import REGISTRY
from bench.metrics.base import MetricMeta, MetricResult
from bench.metrics.state import KeyedStates, SumCount
from selfcheck.trials.tiny_cascade import make_tiny_checkpoint, tiny_spec  # noqa: F401  (shared with the trials)

# The real Stable Diffusion v1.4 and v1.5 DrawBench images (../shared/data/drawbench-sd, seed 0) as two
# folder models of a sweep spec; {root} is that folder.
SD_FOLDER_MODELS = """
[[models]]
name = "sd-v1-4"
kind = "folder"
path = "{root}/sd-v1-4"
seed = 0

[[models]]
name = "sd-v1-5"
kind = "folder"
path = "{root}/sd-v1-5"
seed = 0
"""


class Brightness:
    """Mean pixel value / 255 per image; per-cell mean via a synced SumCount."""

    name = "brightness"
    option_classes = ()  # no options
    meta = {"brightness": MetricMeta("none", 0.0, 1.0, "t", "mean pixel value / 255")}
    built = 0  # how many times the sweep built this metric (cache tests)

    def __init__(self, options=None, *, cache_dir=None):
        Brightness.built += 1
        self.states = KeyedStates(SumCount)

    def update(self, images):
        out = []
        for im in images:
            v = float(np.asarray(im.image, dtype=np.float64).mean() / 255.0)
            self.states[im.cell_id].update(torch.tensor([v]))
            out.append({"brightness": v})
        return out

    def compute(self):
        results = []
        for _, state in self.states.synced_items():
            total, n = state.compute()
            results.append(MetricResult("brightness", total / n if n else None, n, {"what": "mean pixel / 255"}))
        return results

    def reset(self):
        self.states.reset()


# registered like a shipped metric, so a spec naming it passes the spec's metric check
# (bench.metrics.check_metric); the sweep tests build it through build_test_metric below
REGISTRY.setdefault("brightness", ("tests.sweep_fixtures", "Brightness"))


def build_test_metric(name, options=None, *, cache_dir=None):
    if name != "brightness":
        raise ValueError(f"unknown metric {name!r}; choose one of brightness")
    rank = os.environ.get("RANK")
    if rank is not None and cache_dir is not None:  # under torchrun: the order of builds across ranks
        with open(Path(cache_dir) / "metric-builds.log", "a") as f:
            f.write(f"start {rank}\n")
            f.flush()
            time.sleep(0.5)  # a build that takes a while: another rank starting now would overlap it
            f.write(f"end {rank}\n")
    return Brightness()


def make_coco(root: Path, n: int = 8, people_every: int = 0) -> Path:
    """A COCO folder as downloaded, made here: root/annotations/captions_val2014.json (2 captions per
    image) + root/val2014/COCO_val2014_<12-digit id>.jpg, non-square photographs of noise. With
    `people_every` = k, every k-th image's captions mention a man (the paper's "people" captions)."""
    import json

    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "val2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, annotations = [], []
    for k in range(n):
        image_id = 100 + 37 * k
        name = f"COCO_val2014_{image_id:012d}.jpg"
        h, w = (48, 80) if k % 2 else (80, 48)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "val2014" / name, quality=95)
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        who = "a man holding " if people_every and k % people_every == 0 else ""
        annotations += [
            {"image_id": image_id, "id": 1000 + 2 * k + j, "caption": f"{who}a photo number {k}, caption {j}"}
            for j in (0, 1)
        ]
    (root / "annotations" / "captions_val2014.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    return root


def sigkill_after_records(proc, run: Path, records: int, timeout: float = 300) -> int:
    """SIGKILL the sweep process `proc` once its rank-0 shard of `run` holds `records` image records
    (a real kill mid-run, as a crash or an OOM kill would); the records it had when it died."""
    import signal

    shard = run / "shards" / "images-rank0.jsonl"
    deadline = time.time() + timeout
    while (
        time.time() < deadline
        and proc.poll() is None
        and (not shard.is_file() or len(shard.read_text().splitlines()) < records)
    ):
        time.sleep(
            0.02
        )  # (a sweep that exits by itself is not waited for: the caller's "interrupted" check fails at once)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(shard.read_text().splitlines()) if shard.is_file() else 0
