"""Prompt sets by name: each returns DataFrame(id: str, category: str, prompt: str).

    load_prompt_set("drawbench", {"categories": ["Text"]})
    load_prompt_set("coco", {"n": 100, "seed": 0, "no_people": True})
    load_prompt_set("shapes", {"n_per_category": 5})
    load_prompt_set("parti", {"challenges": ["Quantity"]})
    load_prompt_set("geneval", {"tags": ["counting"]})

Unknown set names and unknown options are errors that list what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def _drawbench(categories: list[str] | None = None, path: str | None = None) -> pd.DataFrame:
    from .prompts import load_drawbench

    return load_drawbench(categories=categories, path=Path(path) if path else None)


def _coco(n: int | None = None, seed: int = 0, no_people: bool = False, path: str | None = None) -> pd.DataFrame:
    from .coco import load_coco_captions

    return load_coco_captions(n=n, seed=seed, no_people=no_people, path=path)


def _shapes(n_per_category: int = 50, start: int = 0) -> pd.DataFrame:
    try:
        from .shapes import test_prompts
    except ImportError as e:
        raise ValueError(
            f"prompt set 'shapes' needs the shapes world (drawbench.shapes), which failed to import: {e}"
        ) from None
    return test_prompts(n_per_category=n_per_category, start=start)


def _parti(categories: list[str] | None = None, challenges: list[str] | None = None) -> pd.DataFrame:
    from .suites import load_parti

    return load_parti(categories=categories, challenges=challenges)


def _geneval(tags: list[str] | None = None) -> pd.DataFrame:
    from .suites import load_geneval

    return load_geneval(tags=tags)


PROMPT_SETS: dict[str, Callable[..., pd.DataFrame]] = {
    "drawbench": _drawbench,
    "coco": _coco,
    "shapes": _shapes,
    "parti": _parti,
    "geneval": _geneval,
}


def prompt_set_options(name: str) -> list[str]:
    return list(inspect.signature(_get(name)).parameters)


_TYPES = {"int": int, "str": str, "bool": bool, "list[str]": list}
MAX_COUNT = 100_000  # n / n_per_category: more prompts than any set holds only exhausts memory


def check_prompt_set_options(name: str, options: Mapping[str, Any]) -> None:
    """Types (from the loader's annotations) and bounds of a prompt set's options, checked before
    any work: one line naming the option, what it must be and what it got."""
    params = inspect.signature(_get(name)).parameters
    for key, value in options.items():
        if key not in params:
            continue  # unknown keys are reported by the caller with the allowed list
        kinds = [k.strip() for k in str(params[key].annotation).split("|")]
        allowed = tuple(_TYPES[k] for k in kinds if k in _TYPES)
        if value is None and "None" in kinds:
            continue
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(
                f"prompt set {name!r}: {key} must be {' or '.join(k for k in kinds if k != 'None')}, got {value!r}"
            )
        if isinstance(value, list) and (not value or not all(isinstance(v, str) for v in value)):
            raise ValueError(
                f"prompt set {name!r}: {key} must be a non-empty list of names (omit it for all), got {value!r}"
            )
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and key in ("n", "n_per_category")
            and not 1 <= value <= MAX_COUNT
        ):
            raise ValueError(f"prompt set {name!r}: {key} must be in [1, {MAX_COUNT}], got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"prompt set {name!r}: {key} must be >= 0, got {value}")


def options_from_text(name: str, text: str) -> dict[str, Any]:
    """ "n=200,seed=0,no_people=true" -> {"n": 200, "seed": 0, "no_people": True}: a prompt set's
    options written on a command line, each converted by its loader's annotation (int, bool as
    true/false, str; list[str] as A|B|C), then checked like a spec's."""
    params = inspect.signature(_get(name)).parameters
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in params:
            raise ValueError(f"prompt set {name!r}: {part!r} must be KEY=VALUE with KEY one of {', '.join(params)}")
        kinds = [k.strip() for k in str(params[key].annotation).split("|")]
        if "bool" in kinds:
            if value.lower() not in ("true", "false"):
                raise ValueError(f"prompt set {name!r}: {key} must be true or false, got {value!r}")
            out[key] = value.lower() == "true"
        elif "int" in kinds:
            try:
                out[key] = int(value)
            except ValueError:
                raise ValueError(f"prompt set {name!r}: {key} must be an integer, got {value!r}") from None
        elif "list[str]" in kinds:
            out[key] = [v.strip() for v in value.split("|") if v.strip()]
        else:
            out[key] = value
    check_prompt_set_options(name, out)
    return out


def _get(name: str) -> Callable[..., pd.DataFrame]:
    if name not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {name!r}; choose one of {', '.join(PROMPT_SETS)}")
    return PROMPT_SETS[name]


def load_prompt_set(name: str, options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The prompts of set `name` with `options` (keyword arguments of that set's loader)."""
    fn, options = _get(name), dict(options or {})
    unknown = sorted(set(options) - set(prompt_set_options(name)))
    if unknown:
        raise ValueError(
            f"prompt set {name!r}: unknown options {unknown}; allowed: {', '.join(prompt_set_options(name))}"
        )
    df = fn(**options)
    attrs = dict(df.attrs)
    df = pd.DataFrame(
        {"id": df["id"].astype(str), "category": df["category"].astype(str), "prompt": df["prompt"].astype(str)}
    )
    df.attrs.update(attrs)
    if df["id"].duplicated().any():
        raise ValueError(f"prompt set {name!r} has duplicate ids, e.g. {df['id'][df['id'].duplicated()].iloc[0]!r}")
    return df.reset_index(drop=True)
