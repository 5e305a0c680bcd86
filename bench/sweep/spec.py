"""The sweep spec: a TOML file -> frozen dataclasses. Every table rejects unknown keys, naming the
allowed ones (a typo never silently becomes a default). Format: docs/sweeps.md."""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from common.runs import SAMPLING_AXES
from imagen.pipeline import SAMPLING_FIELDS, stage_sampling

# The Imagen paper's guidance grid (fig. 4 / A.11); the spec may list any subset or other values.
PAPER_GUIDANCE = (1.0, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
# A sweep larger than this is refused unless the user confirms its size (`sweep --max-images N`):
# 200,000 images hold COCO FID-30K at six guidance values (180,000), the largest paper protocol;
# a typo in a grid (10^6 cells) would otherwise plan and start for hours or exhaust memory.
DEFAULT_MAX_IMAGES = 200_000
MAX_SAMPLES = 1000  # images per prompt and cell; 10^9 would only exhaust memory planning the work
# Names that become parts of file paths (the sweep name: runs/<name>; prompt-set labels: image file
# names; metric labels: metric_cache/<cell>/<label>.json; model names: cell ids): a letter or digit,
# then letters, digits, '.', '_', '-'; never a path separator or "..". A shared spec must not be able
# to write outside its run folder.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RULE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"spec: {where} must be 1-100 characters: a letter or digit, then letters, digits, '.', '_' or '-' "
            f"(no '/', no '..'), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    config: Any  # the kind's frozen config (bench.models.*ModelConfig)
    raw: dict = field(default_factory=dict)  # the TOML table, for the cell hash


@dataclass(frozen=True)
class PromptSetSpec:
    label: str  # name in the run folder (default: the set name)
    name: str  # drawbench.sets registry name
    options: dict = field(default_factory=dict)


def _grid_class() -> type:
    """Grid: one tuple field per sampling axis (common.runs.SAMPLING_AXES, in its order), typed and
    defaulted (a one-point tuple) as imagen.pipeline.StageSampling declares it, then `seeds`."""
    axes = [
        (axis, tuple[SAMPLING_FIELDS[axis].type, ...], field(default=(SAMPLING_FIELDS[axis].default,)))
        for axis in SAMPLING_AXES
    ]
    cls = make_dataclass("Grid", [*axes, ("seeds", tuple[int, ...], field(default=(0,)))], frozen=True)
    cls.__module__ = __name__
    cls.__doc__ = (
        "The [grid] table: a tuple of values per sampling axis (sampler, steps, guidance, thresholding, "
        "percentile: dynamic thresholding only, aug_level, ...) and the sweep seeds (each image's seed is "
        "derived from (seed, prompt, sample)). A model expands only the axes it declares. Names, types, "
        "defaults and bounds are imagen.pipeline.StageSampling's, the same as `imagen-bench sample`'s."
    )
    return cls


Grid = _grid_class()


@dataclass(frozen=True)
class MetricSpec:
    name: str  # bench.metrics registry name
    label: str  # column name in the results (default: name); must be unique
    prompt_sets: tuple[str, ...] | None = None  # labels it applies to (None = all)
    categories: tuple[str, ...] | None = None  # categories it applies to (None = all)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    name: str
    samples_per_prompt: int
    models: tuple[ModelSpec, ...]
    prompt_sets: tuple[PromptSetSpec, ...]
    grid: Grid
    metrics: tuple[MetricSpec, ...]
    sha256: str  # of the spec file's bytes


def _keys(where: str, table: dict, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"spec: {where} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ValueError(f"spec: unknown keys {unknown} in {where}; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise ValueError(f"spec: {where} needs {', '.join(missing)}")


def _list(where: str, value: Any, typ: type) -> tuple:
    values = tuple(value) if isinstance(value, list) else (value,)
    if not values:
        raise ValueError(f"spec: {where} is empty")
    for v in values:
        ok = (
            isinstance(v, (int, float)) and not isinstance(v, bool)
            if typ is float
            else isinstance(v, typ) and not isinstance(v, bool)
        )
        if typ is float and ok and not math.isfinite(v):
            raise ValueError(f"spec: {where} must hold finite numbers, got {v!r}")
        if not ok:
            raise ValueError(f"spec: {where} must hold {typ.__name__} values, got {v!r}")
    return tuple(float(v) for v in values) if typ is float else values


def _grid(table: dict) -> Grid:
    types = {**{axis: SAMPLING_FIELDS[axis].type for axis in SAMPLING_AXES}, "seeds": int}
    _keys("[grid]", table, tuple(types))
    grid = Grid(**{k: _list(f"grid.{k}", v, types[k]) for k, v in table.items()})
    # each value checked by the pipeline's own classes (their bounds and names, declared once there):
    # a value the sampler would refuse is refused here, before any image, naming the grid key
    for key in SAMPLING_FIELDS:
        for value in getattr(grid, key):
            try:
                parent = SAMPLING_FIELDS[key].applies_with  # e.g. a percentile is checked with dynamic thresholding
                stage_sampling({key: value, **dict([parent] if parent else [])})
            except ValueError as e:
                raise ValueError(f"spec: grid.{key} = {value!r}: {e}") from None
    return grid


def _tables(key: str, value: Any) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"spec: {key} must be an array of tables, written [[{key}]]")
    return value


def _unique(where: str, names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"spec: duplicate {where} {dup}; give each a distinct name/label")


def parse_spec(text: bytes, source: str = "spec") -> SweepSpec:
    """The spec in `text`; every problem is a ValueError starting with `source` (the file's path)."""
    try:
        return _parse_spec(text, source)
    except ValueError as e:
        if source == "spec":
            raise
        msg = str(e).removeprefix("spec: ")
        raise ValueError(msg if msg.startswith(source) else f"{source}: {msg}") from None


def _parse_spec(text: bytes, source: str) -> SweepSpec:
    from bench.metrics import check_metric
    from bench.models import model_config
    from drawbench.sets import check_prompt_set_options, prompt_set_options

    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{source} is not valid TOML: {e}") from None
    _keys("the spec", data, ("sweep", "models", "prompt_sets", "grid", "metrics"), ("sweep", "models", "prompt_sets"))
    sweep = data["sweep"]
    _keys("[sweep]", sweep, ("name", "samples_per_prompt"), ("name",))
    samples = sweep.get("samples_per_prompt", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(
            f"spec: sweep.samples_per_prompt must be an integer in [1, {MAX_SAMPLES}] (DrawBench protocol: 8), got {samples!r}"
        )
    models = []
    for i, m in enumerate(_tables("models", data["models"])):
        _keys(f"[[models]] #{i + 1}", m, tuple(m), ("name", "kind"))
        opts = {k: v for k, v in m.items() if k not in ("name", "kind")}
        name = check_name(f"[[models]] #{i + 1} name", m["name"])
        models.append(ModelSpec(name=name, kind=str(m["kind"]), config=model_config(str(m["kind"]), opts), raw=m))
    sets = []
    for i, p in enumerate(_tables("prompt_sets", data["prompt_sets"])):
        _keys(f"[[prompt_sets]] #{i + 1}", p, tuple(p), ("name",))
        opts = {k: v for k, v in p.items() if k not in ("name", "label")}
        allowed = prompt_set_options(str(p["name"]))
        _keys(f"[[prompt_sets]] {p['name']!r}", opts, tuple(allowed))
        check_prompt_set_options(str(p["name"]), opts)
        label = check_name(f"[[prompt_sets]] #{i + 1} label", p.get("label", p["name"]))
        sets.append(PromptSetSpec(label=label, name=str(p["name"]), options=opts))
    metrics = []
    for i, m in enumerate(_tables("metrics", data.get("metrics", []))):
        _keys(f"[[metrics]] #{i + 1}", m, ("name", "label", "prompt_sets", "categories", "options"), ("name",))
        if not isinstance(m.get("options", {}), dict):
            raise ValueError(
                f'spec: [[metrics]] #{i + 1} options must be a table, e.g. options = {{ reference = "shapes:test" }}, '
                f"got {m['options']!r}"
            )
        ps = m.get("prompt_sets")
        metrics.append(
            MetricSpec(
                name=str(m["name"]),
                label=check_name(f"[[metrics]] #{i + 1} label", m.get("label", m["name"])),
                prompt_sets=_list("metrics.prompt_sets", ps, str) if ps is not None else None,
                categories=_list("metrics.categories", m["categories"], str) if "categories" in m else None,
                options=dict(m.get("options", {})),
            )
        )
        check_metric(str(m["name"]), m.get("options", {}), paths=False)  # a typo costs no image: refused here
    _unique("model names", [m.name for m in models])
    _unique("prompt set labels", [p.label for p in sets])
    _unique("metric labels", [m.label for m in metrics])
    for m in metrics:
        unknown = sorted(set(m.prompt_sets or ()) - {p.label for p in sets})
        if unknown:
            raise ValueError(
                f"spec: metric {m.label!r} names prompt sets {unknown} that the spec does not define "
                f"({', '.join(p.label for p in sets)})"
            )
    return SweepSpec(
        name=check_name("sweep.name", sweep["name"]),
        samples_per_prompt=samples,
        models=tuple(models),
        prompt_sets=tuple(sets),
        grid=_grid(data.get("grid", {})),
        metrics=tuple(metrics),
        sha256=hashlib.sha256(text).hexdigest(),
    )


def load_spec(path: str | Path) -> tuple[SweepSpec, bytes]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} does not exist")
    text = path.read_bytes()
    return parse_spec(text, str(path)), text
