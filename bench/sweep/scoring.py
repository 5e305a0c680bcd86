"""Score a run's images: per (cell, metric spec), update on this rank's share of the images, compute
(synced across ranks), and keep the result in RUN/metric_cache/<cell>/<label>.json keyed by
sha256(metric, options, scope, package version, image checksums): a rerun with unchanged inputs
loads it instead of recomputing, and the metric is not even built."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from common.files import write_json_atomic
from common.runs import PROMPT_KEY_COLUMNS, PromptRef
from common.version import __version__

from .distributed import World
from .spec import MetricSpec
from .store import RunStore

BATCH = 16  # images decoded and scored at once: bounds memory (16 x 256^2 x 3 bytes)


def scope(manifest: pd.DataFrame, cell_id: str, m: MetricSpec) -> pd.DataFrame:
    df = manifest[manifest.cell_id == cell_id]
    if m.prompt_sets is not None:
        df = df[df.prompt_set.isin(m.prompt_sets)]
    if m.categories is not None:
        df = df[df.category.isin(m.categories)]
    return df


def cache_key(m: MetricSpec, images: pd.DataFrame) -> str:
    payload = {
        "metric": m.name,
        "label": m.label,
        "options": m.options,
        "prompt_sets": m.prompt_sets,
        "categories": m.categories,
        "package_version": __version__,
        "images": images[["prompt_id", "sample", "sha256"]].astype(str).values.tolist(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _load(run: Path, rows: pd.DataFrame):
    from bench.metrics.base import ScoredImage

    out = []
    for r in rows.itertuples():
        with Image.open(run / r.path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        out.append(ScoredImage(r.cell_id, PromptRef.of(r), arr))
    return out


def _build_rank0_first(build: Callable, m: MetricSpec, cache_dir: Path | None, world: World):
    """Rank 0 builds first, so what a build writes is written once and a build error on rank 0 stops
    every rank with the same message instead of leaving them waiting at the barrier. (FID-family
    reference statistics are made later, at the first compute(), by all ranks together:
    bench.metrics.reference.compute_reference.)"""
    metric, failure, message = None, None, None
    if world.rank == 0:
        try:
            metric = build(m.name, m.options, cache_dir=cache_dir)
        except Exception as e:
            failure, message = e, f"{type(e).__name__}: {e}"
    message = world.broadcast(message)
    if failure is not None:
        raise failure
    if message is not None:
        raise RuntimeError(f"metric {m.label!r} failed to build on rank 0: {message}")
    return metric if world.rank == 0 else build(m.name, m.options, cache_dir=cache_dir)


def score(
    store: RunStore,
    manifest: pd.DataFrame,
    cells: list[str],
    metrics: tuple[MetricSpec, ...],
    build: Callable,
    cache_dir: Path | None,
    world: World,
    progress: bool = True,
) -> tuple[list[dict], list[dict], int]:
    """Returns (per-image rows, per-cell rows, number of (cell, metric) pairs computed rather than
    loaded from the cache) for all cells x metrics."""
    pending = []  # (metric spec, cell, scoped rows, key) whose cache is missing or stale
    for m in metrics:
        for cell in cells:
            rows = scope(manifest, cell, m)
            if rows.empty:
                continue
            key, f = cache_key(m, rows), store.metric_cache(cell, m.label)
            if not (f.is_file() and json.loads(f.read_text()).get("key") == key):
                pending.append((m, cell, rows, key))
    bar = tqdm(
        total=sum(-(-len(r) // world.size) for _, _, r, _ in pending),
        desc="scoring",
        unit="img",
        disable=not progress or world.rank != 0 or not pending,
    )
    from bench.metrics.base import described

    built: dict[str, object] = {}
    for m, cell, rows, key in pending:
        if m.label not in built:  # built once per metric spec, only when something needs it
            built[m.label] = _build_rank0_first(build, m, cache_dir, world)
        metric = built[m.label]
        metric.reset()
        mine, per_image = world.shard(list(range(len(rows)))), []
        for i in range(0, len(mine), BATCH):
            batch = rows.iloc[mine[i : i + BATCH]]
            images = _load(store.root, batch)
            for im, vals in zip(images, metric.update(images)):
                per_image += [
                    {
                        "cell_id": cell,
                        **dict(zip(PROMPT_KEY_COLUMNS, im.ref.key())),
                        "metric": name if m.label == m.name else f"{m.label}/{name}",
                        "value": None if v is None else float(v),
                    }
                    for name, v in vals.items()
                ]
            bar.update(len(batch))
        results = described(metric, metric.compute())  # each result with its MetricMeta (direction, range, interval)
        gathered = [row for part in world.gather(per_image) for row in part]
        if world.rank == 0:
            store.metric_cache(cell, m.label).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                store.metric_cache(cell, m.label),
                {
                    "key": key,
                    "metric": m.name,
                    "label": m.label,
                    "options": m.options,
                    "results": [dataclasses.asdict(r) for r in results],
                    "per_image": sorted(
                        gathered, key=lambda d: (d["prompt_set"], d["prompt_id"], d["sample"], d["metric"])
                    ),
                },
            )
    bar.close()
    world.barrier()
    image_rows, cell_rows = [], []
    for m in metrics:
        declared = _declared_meta(m.name)
        for cell in cells:
            f = store.metric_cache(cell, m.label)
            if scope(manifest, cell, m).empty or not f.is_file():
                continue
            cached = json.loads(f.read_text())
            image_rows += cached["per_image"]
            cell_rows += [
                {
                    "cell_id": cell,
                    "metric": r["metric"] if m.label == m.name else f"{m.label}/{r['metric']}",
                    "value": r["value"],
                    "n": r["n"],
                    "details": json.dumps(_current_meta(r, declared), sort_keys=True, default=str),
                }
                for r in cached["results"]
            ]
    return image_rows, cell_rows, len(pending)


def _declared_meta(name: str) -> dict:
    """The metric's MetricMeta declarations as the installed code states them ({} for a metric the
    registry does not know, e.g. one a test builds through its own factory)."""
    from bench.metrics import REGISTRY, metric_class

    return getattr(metric_class(name), "meta", {}) if name in REGISTRY else {}


def _current_meta(result: dict, declared: dict) -> dict:
    """A cached result's details with its meta as the code declares it now: what a metric means
    (direction, range, role) is not part of the number, so a cached number is not recomputed for it."""
    base = result["metric"].split("/", 1)[0]
    if base not in declared or "meta" not in result["details"]:
        return result["details"]
    return {**result["details"], "meta": declared[base].record()}
