"""Prompt sets by name: each returns DataFrame(id: str, category: str, prompt: str).

    load_prompt_set("drawbench", {"categories": ["Text"]})
    load_prompt_set("coco", {"n": 100, "seed": 0, "no_people": True})
    load_prompt_set("shapes", {"n_per_category": 5})
    load_prompt_set("parti", {"challenges": ["Quantity"]})
    load_prompt_set("geneval", {"tags": ["counting"]})

Unknown set names and unknown options are errors that list what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from common.fields import bounded, check_values, values_from_text

from .coco import load_coco_captions
from .prompts import load_drawbench
from .suites import load_geneval, load_parti

MAX_COUNT = 100_000  # n / n_per_category: more prompts than any set holds only exhausts memory


# Each set's options: a frozen dataclass, types and bounds declared once (common.fields checks them,
# from a spec's table or from text typed on a command line).
@dataclass(frozen=True)
class DrawBenchOptions:
    categories: list[str] | None = None
    path: str | None = None  # a CSV with DrawBench's columns instead of the shipped one


@dataclass(frozen=True)
class CocoOptions:
    n: int | None = bounded(None, 1, MAX_COUNT)
    seed: int = bounded(0, 0, None)
    no_people: bool = False
    path: str | None = None


@dataclass(frozen=True)
class ShapesOptions:
    n_per_category: int = bounded(50, 1, MAX_COUNT)
    start: int = bounded(0, 0, None)


@dataclass(frozen=True)
class PartiOptions:
    categories: list[str] | None = None
    challenges: list[str] | None = None


@dataclass(frozen=True)
class GenEvalOptions:
    tags: list[str] | None = None


def _drawbench(o: DrawBenchOptions) -> pd.DataFrame:
    return load_drawbench(categories=o.categories, path=Path(o.path) if o.path else None)


def _coco(o: CocoOptions) -> pd.DataFrame:
    return load_coco_captions(n=o.n, seed=o.seed, no_people=o.no_people, path=o.path)


def _shapes(o: ShapesOptions) -> pd.DataFrame:
    try:
        from .shapes import test_prompts
    except ImportError as e:
        raise ValueError(
            f"prompt set 'shapes' needs the shapes world (drawbench.shapes), which failed to import: {e}"
        ) from None
    return test_prompts(n_per_category=o.n_per_category, start=o.start)


def _parti(o: PartiOptions) -> pd.DataFrame:
    return load_parti(categories=o.categories, challenges=o.challenges)


def _geneval(o: GenEvalOptions) -> pd.DataFrame:
    return load_geneval(tags=o.tags)


# name -> (its options, its loader)
PROMPT_SETS: dict[str, tuple[type, Callable[[Any], pd.DataFrame]]] = {
    "drawbench": (DrawBenchOptions, _drawbench),
    "coco": (CocoOptions, _coco),
    "shapes": (ShapesOptions, _shapes),
    "parti": (PartiOptions, _parti),
    "geneval": (GenEvalOptions, _geneval),
}


def prompt_set_options(name: str) -> list[str]:
    return [f.name for f in fields(_get(name)[0])]


def check_prompt_set_options(name: str, options: Mapping[str, Any]) -> None:
    """Types and bounds of a prompt set's options (its options dataclass), checked before any work:
    one line naming the option, what it must be and what it got. Unknown keys are the caller's to
    report (with the allowed list)."""
    check_values(f"prompt set {name!r}", _get(name)[0], dict(options))


def options_from_text(name: str, text: str) -> dict[str, Any]:
    """ "n=200,seed=0,no_people=true" -> {"n": 200, "seed": 0, "no_people": True}: a prompt set's
    options written on a command line (common.fields.values_from_text: list[str] as A|B|C)."""
    return values_from_text(f"prompt set {name!r}", _get(name)[0], text)


def _get(name: str) -> tuple[type, Callable[[Any], pd.DataFrame]]:
    if name not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {name!r}; choose one of {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]


def load_prompt_set(name: str, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The prompts of set `name` with `options` (keyword arguments of that set's loader)."""
    (cls, fn), options = _get(name), dict(options or {})
    unknown = sorted(set(options) - set(prompt_set_options(name)))
    if unknown:
        raise ValueError(
            f"prompt set {name!r}: unknown options {unknown}; allowed: {', '.join(prompt_set_options(name))}"
        )
    check_prompt_set_options(name, options)
    df = fn(cls(**options))
    attrs = dict(df.attrs)
    df = pd.DataFrame(
        {"id": df["id"].astype(str), "category": df["category"].astype(str), "prompt": df["prompt"].astype(str)}
    )
    df.attrs.update(attrs)
    if df["id"].duplicated().any():
        raise ValueError(f"prompt set {name!r} has duplicate ids, e.g. {df['id'][df['id'].duplicated()].iloc[0]!r}")
    return df.reset_index(drop=True)
