"""Run a sweep: spec -> cells -> images -> metrics -> run folder (contract 1).

1. rank 0 creates RUN (or checks that RUN belongs to this spec and these weights);
2. every rank loads the prompt sets and models once, expands the cells, and generates its
   share (image i of the sweep -> rank i mod world) of the images not yet recorded;
3. rank 0 merges the shard records into manifest.parquet (sweep order: same for any world size);
4. metrics per (cell, metric) are computed (or loaded from the per-cell cache) and rank 0
   writes cells.parquet, metrics_image.parquet, metrics_cell.parquet and summary.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bench.models import axes_of_kind, build_model
from common.files import write_json_atomic, write_parquet_atomic
from common.runs import SAMPLING_AXES
from common.version import __version__
from drawbench.sets import load_prompt_set
from imagen.pipeline import SAMPLING_FIELDS

from .cells import Cell, check_size, expand_cells, image_relpath, requests_for
from .distributed import World
from .scoring import score
from .spec import DEFAULT_MAX_IMAGES, SweepSpec, load_spec
from .store import RunStore


@dataclass(frozen=True)
class SweepResult:
    run: Path
    images_total: int
    images_generated: int  # by this rank in this call (0 on a finished sweep's rerun)
    metric_pairs_computed: int  # (cell, metric) pairs computed here, not loaded from the cache
    seconds: float


def default_cache_dir() -> Path:
    """One cache per machine (text encodings, FID reference statistics): $IMAGEN_BENCH_CACHE or
    ~/.cache/imagen-bench."""
    return Path(os.environ.get("IMAGEN_BENCH_CACHE") or Path.home() / ".cache" / "imagen-bench").expanduser()


def _default_metric_factory() -> Callable:
    try:
        from bench.metrics import build_metric
    except ImportError as e:
        raise ValueError(f"the spec lists metrics but bench.metrics is not importable: {e}") from None
    return build_metric


def check_metric_inputs(spec: SweepSpec) -> None:
    """The files and folders the metrics name (references, weights) are there: checked before the
    first image, so a typo in a path never costs the generation (parse_spec checked the rest)."""
    if spec.metrics:
        from bench.metrics import check_metric

        for m in spec.metrics:
            check_metric(m.name, m.options, paths=True)


def run_sweep(
    spec_path: str | Path,
    out: str | Path,
    *,
    cache_dir: Path | None = None,
    metric_factory: Callable | None = None,
    progress: bool = True,
    wait: bool = False,
    max_images: int = DEFAULT_MAX_IMAGES,
) -> SweepResult:
    """Run (or resume) the sweep; rank 0 holds the run folder's lock throughout (`wait`: wait for
    another sweep using it to finish instead of refusing). A spec making more than `max_images`
    images is refused before anything is written (cells.check_size)."""
    spec, spec_bytes = load_spec(spec_path)
    check_metric_inputs(spec)
    prompts = {p.label: load_prompt_set(p.name, p.options) for p in spec.prompt_sets}
    check_size(
        spec, {m.name: axes_of_kind(m.kind) for m in spec.models}, {k: len(v) for k, v in prompts.items()}, max_images
    )
    store = RunStore(Path(out), int(os.environ.get("RANK", "0")))
    try:
        return _run_sweep(spec, spec_bytes, prompts, store, cache_dir, metric_factory, progress, wait)
    finally:
        store.unlock()


def _run_sweep(
    spec, spec_bytes: bytes, prompts: dict, store: RunStore, cache_dir, metric_factory, progress: bool, wait: bool
) -> SweepResult:
    t0 = time.perf_counter()
    world = World.from_env()
    error = None
    if world.rank == 0:  # the folder's lock before any slow start-up: the sweep started first runs
        try:
            store.claim(wait)
        except ValueError as e:
            error = str(e)
    error = world.broadcast(error)
    if error:
        raise ValueError(error)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    models = {m.name: build_model(m.name, m.kind, m.config, cache_dir) for m in spec.models}
    for m in models.values():
        for p in spec.prompt_sets:
            m.check(p.label, prompts[p.label], spec.samples_per_prompt, p.name)
    descriptions = {name: m.describe() for name, m in models.items()}
    error = None
    if world.rank == 0:
        try:
            store.init(spec_bytes, spec.sha256, descriptions, wait)
        except ValueError as e:
            error = str(e)
    error = world.broadcast(error)  # every rank stops on rank 0's refusal
    if error:
        raise ValueError(error)

    cells = expand_cells(
        spec,
        {name: m.axes for name, m in models.items()},
        {name: m.identity() for name, m in models.items() if hasattr(m, "identity")},
    )
    for (
        c
    ) in cells:  # a grid point a model cannot take (e.g. past a stage's noise_level bound) is refused before any image
        getattr(models[c.model], "check_sampling", lambda s: None)(c.sampling)
    work = [
        (c, r)
        for c in cells
        for r in requests_for(
            c, prompts[c.prompt_set], spec.samples_per_prompt, getattr(models[c.model].config, "seed", -1)
        )
    ]
    # the unit of work is a fixed batch of one cell's images: batch composition (which can change
    # the last bits of a convolution, hence a pixel) is then the same for any world size or resume
    units = []
    for c in cells:
        reqs = [r for cc, r in work if cc is c]
        bs = max(1, getattr(models[c.model].config, "batch_size", 16))
        units += [(c, reqs[i : i + bs]) for i in range(0, len(reqs), bs)]
    done = store.records()
    world.barrier()  # every rank has read the same finished set before anyone appends
    mine = world.shard(units)
    pending = [(c, reqs) for c, reqs in mine if any((c.cell_id, *r.ref.key()) not in done for r in reqs)]
    generated = _generate(store, models, pending, done, progress and world.rank == 0, sum(len(r) for _, r in mine))
    world.barrier()

    manifest = None
    if world.rank == 0:
        manifest = _write_manifest(store, spec, work)
        write_parquet_atomic(_cells_frame(cells, models, descriptions, prompts, spec), store.root / "cells.parquet")
    world.barrier()
    manifest = pd.read_parquet(store.root / "manifest.parquet")
    image_rows, cell_rows, computed = [], [], 0
    if spec.metrics:
        image_rows, cell_rows, computed = score(
            store,
            manifest,
            [c.cell_id for c in cells],
            spec.metrics,
            metric_factory or _default_metric_factory(),
            cache_dir,
            world,
            progress,
        )
    if world.rank == 0:
        _write_results(store, spec, cells, descriptions, image_rows, cell_rows)
    world.barrier()
    return SweepResult(store.root, len(work), generated, computed, time.perf_counter() - t0)


def _generate(store: RunStore, models: dict, pending: list, done: dict, progress: bool, share: int) -> int:
    """Generate each unit whole; record only its images that are not recorded yet."""
    missing = sum(1 for c, reqs in pending for r in reqs if (c.cell_id, *r.ref.key()) not in done)
    bar = tqdm(total=share, initial=share - missing, desc="images", unit="img", disable=not progress, smoothing=0.1)
    n = 0
    for cell, reqs in pending:
        for req, img in zip(reqs, models[cell.model].generate(cell.sampling, reqs)):
            if (cell.cell_id, *req.ref.key()) in done:
                continue
            store.add_image(
                {
                    "cell_id": cell.cell_id,
                    "model": cell.model,
                    **req.ref.row(),
                    "seed": req.seed,
                    "path": image_relpath(cell, req, img.suffix),
                    "sha256": hashlib.sha256(img.data).hexdigest(),
                    "width": img.width,
                    "height": img.height,
                },
                img.data,
            )
            n += 1
            bar.update(1)
    bar.close()
    return n


def _write_manifest(store: RunStore, spec: SweepSpec, work: list) -> pd.DataFrame:
    records = store.records()
    keys = [(c.cell_id, *r.ref.key()) for c, r in work]
    missing = [k for k in keys if k not in records]
    if missing:
        raise RuntimeError(
            f"{len(missing)} images are not recorded after generation (first: {missing[0]}); rerun the sweep to finish them"
        )
    return store.write_manifest([records[k] for k in keys])


# cells.parquet's nullable number columns (an axis a model does not take is NA): each sampling
# axis's as StageSampling types it (steps Int64; guidance, percentile, aug_level Float64), and seed
CELL_DTYPES = {
    **{
        a: {int: "Int64", float: "Float64"}[SAMPLING_FIELDS[a].type]
        for a in SAMPLING_AXES
        if SAMPLING_FIELDS[a].type in (int, float)
    },
    "seed": "Int64",
}


def _cells_frame(cells: list[Cell], models: dict, descriptions: dict, prompts: dict, spec: SweepSpec) -> pd.DataFrame:
    rows = []
    for c in cells:
        d = descriptions[c.model]
        weights = {s["name"]: s["weights_sha256"] for s in d.get("stages", [])} or d.get("weights_sha256", {})
        rows.append(
            {
                "cell_id": c.cell_id,
                "name": c.name,
                "model": c.model,
                "model_kind": models[c.model].kind,
                "prompt_set": c.prompt_set,
                **asdict(c.sampling),
                "seed": c.seed,
                "n_prompts": len(prompts[c.prompt_set]),
                "samples_per_prompt": spec.samples_per_prompt,
                "weights_sha256": json.dumps(weights, sort_keys=True),
                "model_description": json.dumps(d, sort_keys=True, default=str),
            }
        )
    return pd.DataFrame(rows).astype(CELL_DTYPES)


def _write_results(
    store: RunStore, spec: SweepSpec, cells: list[Cell], descriptions: dict, image_rows: list, cell_rows: list
) -> None:
    img = pd.DataFrame(image_rows, columns=["cell_id", "prompt_set", "prompt_id", "sample", "metric", "value"])
    cel = pd.DataFrame(cell_rows, columns=["cell_id", "metric", "value", "n", "details"])
    write_parquet_atomic(img.astype({"value": "float64"}), store.root / "metrics_image.parquet")
    write_parquet_atomic(cel.astype({"value": "float64", "n": "int64"}), store.root / "metrics_cell.parquet")
    headline = {c: {} for c in (x.cell_id for x in cells)}
    for r in cell_rows:
        headline[r["cell_id"]][r["metric"]] = r["value"]
    write_json_atomic(
        store.root / "summary.json",
        {
            "sweep": spec.name,
            "package_version": __version__,
            "spec_sha256": spec.sha256,
            "models": descriptions,
            "samples_per_prompt": spec.samples_per_prompt,
            "cells": [
                {
                    "cell_id": c.cell_id,
                    "name": c.name,
                    "model": c.model,
                    "prompt_set": c.prompt_set,
                    "seed": c.seed,
                    "sampling": asdict(c.sampling),
                    "metrics": headline[c.cell_id],
                }
                for c in cells
            ],
        },
    )
