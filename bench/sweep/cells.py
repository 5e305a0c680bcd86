"""Spec -> cells -> work items.

A cell is one (model, prompt set, grid point) and gets a stable id: a readable name plus a hash of
everything that changes its images (model table, prompt set + options, grid point, and what the
model resolved on this machine: precision, memory format, device type), so the same settings
always land in the same images/<cell_id>/ folder and images made in bf16 never mix with fp32 ones. Axes a model does not declare are None
and do not multiply its cells.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass

import pandas as pd

from bench.models import ImageRequest, Sampling
from common.runs import CELL_AXES, SAMPLING_AXES, PromptRef  # noqa: F401  (the run-folder contract's axes)
from imagen.pipeline import SAMPLING_FIELDS

from .spec import Grid, SweepSpec

# The axes cell ids and names were first made of: always in the hash (and named their own way), so
# the ids of existing run folders never move. An axis added later enters a cell's id and name only
# where the cell sets it apart from its declared default (StageSampling's): adding an axis whose
# default reproduces today's images leaves every existing cell, id and image where it was.
FIRST_AXES = ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level")
# an axis that applies at one value of another only: it expands with that axis, so a grid of
# thresholding none / static / dynamic x percentiles 95, 99.5 makes none, static, dynamic95, dynamic99.5
APPLIES_WITH = {k: f.applies_with for k, f in SAMPLING_FIELDS.items() if f.applies_with}  # declared in imagen


@dataclass(frozen=True)
class Cell:
    cell_id: str
    name: str
    model: str
    prompt_set: str  # label
    seed: int | None  # sweep seed (None: the model's images do not depend on it)
    sampling: Sampling


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _axes(grid: Grid, axes: tuple[str, ...]) -> list[tuple[tuple, ...]]:
    """The points of each axis in grid_points' order (seed, then SAMPLING_AXES; an APPLIES_WITH
    axis expands with its parent, e.g. (thresholding, percentile)), each point a tuple of (axis,
    value) pairs; (None,) for an axis the model does not have. Percentiles pair with dynamic
    thresholding only: none / static appear once whatever the percentiles."""

    def axis(key: str) -> tuple:
        return getattr(grid, "seeds" if key == "seed" else key) if key in axes else (None,)

    out = []
    for key in ("seed", *SAMPLING_AXES):
        if key in APPLIES_WITH:
            continue  # expanded with its parent below
        points = tuple(((key, v),) for v in axis(key))
        for child, (parent, when) in APPLIES_WITH.items():
            if parent == key:
                values = getattr(grid, child)
                points = tuple(
                    dict.fromkeys((*p, (child, c if p[0][1] == when else None)) for p in points for c in values)
                )
        out.append(points)
    return out


def count_grid_points(grid: Grid, axes: tuple[str, ...]) -> int:
    """len(grid_points(grid, axes)), without making them (a hostile grid may have 10^12)."""
    return math.prod(len(values) for values in _axes(grid, axes))


def grid_points(grid: Grid, axes: tuple[str, ...]) -> list[tuple[int | None, Sampling]]:
    """(seed, Sampling) for every grid point over `axes`; dynamic thresholding x percentiles,
    none/static once (percentile does not apply to them)."""
    points = [dict(itertools.chain.from_iterable(p)) for p in itertools.product(*_axes(grid, axes))]
    return [(p.pop("seed"), Sampling(**p)) for p in points]


def _later_axes(s: Sampling) -> dict:
    """The axes after FIRST_AXES that this grid point sets apart from their declared defaults."""
    return {
        k: v for k, v in asdict(s).items() if k not in FIRST_AXES and v is not None and v != SAMPLING_FIELDS[k].default
    }


def cell_identity(s: Sampling) -> dict:
    """What of a grid point enters its cell's id: every first axis, and the later ones it sets."""
    return {**{k: getattr(s, k) for k in FIRST_AXES}, **_later_axes(s)}


def cell_name(model: str, prompt_set: str, seed: int | None, s: Sampling) -> str:
    parts = [model, prompt_set]
    if s.sampler is not None:
        parts.append(f"{s.sampler}{s.steps}")
    elif s.steps is not None:
        parts.append(f"steps{s.steps}")
    if s.guidance is not None:
        parts.append(f"g{_fmt(s.guidance)}")
    if s.thresholding is not None:
        parts.append(s.thresholding + (_fmt(s.percentile) if s.percentile is not None else ""))
    if s.aug_level is not None:
        parts.append(f"aug{_fmt(s.aug_level)}")
    parts += [f"{k}{_fmt(v)}" for k, v in _later_axes(s).items()]
    if seed is not None:
        parts.append(f"seed{seed}")
    return re.sub(r"[^A-Za-z0-9._]+", "-", "_".join(parts))


def expand_cells(
    spec: SweepSpec, axes_of: dict[str, tuple[str, ...]], identity_of: dict[str, dict] | None = None
) -> list[Cell]:
    """All cells, in spec order (model, prompt set, grid point). `axes_of[model name]` = its axes;
    `identity_of[model name]` = what it resolved at run time (empty or absent for models whose
    images depend on nothing else, e.g. image folders: their ids stay as they were)."""
    cells = []
    for m in spec.models:
        for ps in spec.prompt_sets:
            for seed, s in grid_points(spec.grid, axes_of[m.name]):
                settings = {
                    "model": m.raw,
                    "prompt_set": {"name": ps.name, "label": ps.label, "options": ps.options},
                    "seed": seed,
                    "sampling": cell_identity(s),
                }
                if (identity_of or {}).get(m.name):
                    settings["runtime"] = identity_of[m.name]
                digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
                name = cell_name(m.name, ps.label, seed, s)
                cells.append(Cell(f"{name}-{digest}", name, m.name, ps.label, seed, s))
    return cells


def image_seed(seed: int | None, prompt_set: str, prompt_id: str, sample: int) -> int:
    """Deterministic per-image seed from (sweep seed, prompt, sample), shared by all cells of a
    sweep so a guidance sweep compares the same noise. 31 bits: imagen.seeding uses the low 32."""
    if seed is None:
        return -1
    h = hashlib.sha256(f"{seed}|{prompt_set}|{prompt_id}|{sample}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def requests_for(cell: Cell, prompts: pd.DataFrame, samples: int, fixed_seed: int = -1) -> list[ImageRequest]:
    """The cell's images in a stable order (prompt order, then sample)."""
    return [
        ImageRequest(
            PromptRef(cell.prompt_set, str(r.id), str(r.category), str(r.prompt), k),
            image_seed(cell.seed, cell.prompt_set, str(r.id), k) if cell.seed is not None else fixed_seed,
        )
        for r in prompts.itertuples()
        for k in range(samples)
    ]


def image_relpath(cell: Cell, req: ImageRequest, suffix: str) -> str:
    """Contract 1: images/<cell_id>/<prompt_set>-<prompt_id>-<sample><suffix>."""
    pid = re.sub(r"[^A-Za-z0-9._-]+", "_", req.ref.prompt_id)
    return f"images/{cell.cell_id}/{req.ref.prompt_set}-{pid}-{req.ref.sample}{suffix}"


def planned_images(
    spec: SweepSpec, axes_of: dict[str, tuple[str, ...]], prompt_counts: dict[str, int]
) -> tuple[int, int]:
    """(cells, images) the spec makes: sum over models and prompt sets of grid points x prompts x
    samples, counted without expanding anything."""
    cells = images = 0
    for m in spec.models:
        points = count_grid_points(spec.grid, axes_of[m.name])
        for ps in spec.prompt_sets:
            cells += points
            images += points * prompt_counts[ps.label] * spec.samples_per_prompt
    return cells, images


def check_size(
    spec: SweepSpec, axes_of: dict[str, tuple[str, ...]], prompt_counts: dict[str, int], max_images: int
) -> int:
    """The number of images; above `max_images` a ValueError names the size and how to confirm it."""
    cells, images = planned_images(spec, axes_of, prompt_counts)
    if images > max_images:
        raise ValueError(
            f"spec {spec.name!r} makes {images:,} images ({cells:,} cells x their prompts x {spec.samples_per_prompt} "
            f"samples), over the limit of {max_images:,}; check the grid, or confirm with --max-images {images}"
        )
    return images
