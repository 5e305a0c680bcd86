"""The one check for a value a user wrote into a typed config field (a model config, a metric's
options): its type from the field's annotation, its bounds and its path rule from the field's
metadata. Bounds live beside the field they bound, declared once:

    subsets: int = bounded(100, 1, 10_000)          # [lo, hi], inclusive
    n: int | None = bounded(None, 2, None)          # None passes; hi None = unbounded
    weights: str = path_field("", check_weights)    # a function raising ValueError, run on use

A type or a bound is checked where the config is read (a spec is refused before any image); a
path rule only where the config is used (a spec may be read on another machine). Text a user typed
(`n=200,no_people=true,categories=A|B`) becomes typed values by the same annotations
(values_from_text): one codec for model configs, metric options and prompt-set options."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

# annotation word -> the Python types it admits (bool is never an int here; an int is a float)
SCALARS = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
    "dict": dict,
    "list[str]": list,
    "None": type(None),
}
WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "dict": "a table",
    "list[str]": "a non-empty list of names",
    "None": "none",
}


def bounded(default: Any, lo: float | None, hi: float | None) -> Any:
    """A dataclass field whose numeric value must lie in [lo, hi] (None: unbounded on that side)."""
    return dataclasses.field(default=default, metadata={"range": (lo, hi)})


def path_field(default: str, check: Callable[[str], None]) -> Any:
    """A dataclass field naming a local path; `check(value)` raises ValueError / FileNotFoundError
    when a non-empty value is not usable (run by check_paths, where the config is used)."""
    return dataclasses.field(default=default, metadata={"path": check})


def _range_text(names: list[str], lo: float | None, hi: float | None) -> str:
    what = " or ".join(WORDS[n] for n in names if n != "None")
    if lo is not None and hi is not None:
        return f"{what} in [{lo:,}, {hi:,}]"
    return f"{what} >= {lo:,}" if lo is not None else f"{what} <= {hi:,}" if hi is not None else what


def check_value(owner: str, field: dataclasses.Field, value: Any) -> None:
    """Raise ValueError "<owner>: <name> must be <what>, got <value>" when `value` does not fit the
    field. Annotations of other kinds (tuples, nested configs) are left to their own checks."""
    names = _names(field)
    if not all(n in SCALARS for n in names):
        return
    lo, hi = field.metadata.get("range", (None, None))
    fits = isinstance(value, tuple(SCALARS[n] for n in names)) and not (
        isinstance(value, bool) and "bool" not in names
    )
    if fits and isinstance(value, float):
        fits = math.isfinite(value)
    if fits and isinstance(value, list):  # list[str]: names, at least one (omit the option for all)
        fits = bool(value) and all(isinstance(v, str) for v in value)
    if fits and value is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
        fits = (lo is None or value >= lo) and (hi is None or value <= hi)
    if not fits:
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**15 else f"{value:.3g}"
        raise ValueError(f"{owner}: {field.name} must be {_range_text(names, lo, hi)}, got {shown[:80]}")


def check_values(owner: str, cls: type, values: dict[str, Any]) -> None:
    """check_value for each key of `values` that is a field of dataclass `cls`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key in fields:
            check_value(owner, fields[key], value)


def check_paths(owner: str, config: Any) -> None:
    """Run each path field's rule on its non-empty value: '<owner>: <name> <what is wrong>'."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "path" in f.metadata and value:
            try:
                f.metadata["path"](value)
            except (ValueError, FileNotFoundError) as e:
                raise ValueError(f"{owner}: {f.name}: {e}") from None


def _names(field: dataclasses.Field) -> list[str]:
    typ = field.type.__name__ if isinstance(field.type, type) else str(field.type)
    return [t.strip() for t in typ.split("|")]


def values_from_text(owner: str, cls: type, text: str) -> dict[str, Any]:
    """ "n=200,seed=0,no_people=true,tags=a|b" -> typed values of dataclass `cls`'s fields, each by
    its annotation (int, float, bool as true / false, list[str] as A|B|C, str), then checked
    (check_values): one line naming the key, what it must be and what it got."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in fields:
            raise ValueError(f"{owner}: {part!r} must be KEY=VALUE with KEY one of {', '.join(fields)}")
        names = _names(fields[key])
        if "bool" in names:
            if value.lower() not in ("true", "false"):
                raise ValueError(f"{owner}: {key} must be true or false, got {value!r}")
            out[key] = value.lower() == "true"
        elif "int" in names or "float" in names:
            try:
                out[key] = int(value) if "int" in names else float(value)
            except ValueError:
                raise ValueError(
                    f"{owner}: {key} must be {WORDS['int' if 'int' in names else 'float']}, got {value!r}"
                ) from None
        elif "list[str]" in names:
            out[key] = [v.strip() for v in value.split("|") if v.strip()]
        else:
            out[key] = value
    check_values(owner, cls, out)
    return out


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field's type hint holds: X, X | None, tuple[X, ...] (None for scalars)."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    return next((c for c in map(_dataclass_in, typing.get_args(hint)) if c is not None), None)


def from_dict(cls: type, data: Mapping[str, Any], legacy: Mapping[str, Callable[[dict], dict]] | None = None) -> Any:
    """Dataclass `cls` from a dict (a config.json, a spec table): nested dataclasses, and tuples of
    them, built from the fields' type hints (recursively); lists become tuples; scalars checked by
    check_value. Unknown keys are refused naming the allowed ones (kwargs never swallow typos).
    `legacy`: class name -> a function upgrading an old layout of its dict first."""
    if legacy and cls.__name__ in legacy:
        data = legacy[cls.__name__](dict(data))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        nested = _dataclass_in(hints[name])
        if nested is not None and isinstance(value, dict):
            value = from_dict(nested, value, legacy)
        elif nested is not None and isinstance(value, (list, tuple)):
            value = tuple(from_dict(nested, v, legacy) for v in value)
        elif isinstance(value, list):
            value = tuple(value)
        else:
            check_value(cls.__name__, fields[name], value)
        kwargs[name] = value
    return cls(**kwargs)
