"""A minimal TOML writer for the fuzz trial (no TOML writer is installed): enough for sweep specs
after a structural mutation - tables, arrays of tables, inline tables, arrays, str / int / float /
bool, nan and inf. Values of mixed or odd types are written as they are: the reader must judge them."""

from __future__ import annotations

import json
import math
from typing import Any


def _key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "-_" for c in k) else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(lines: list[str], name: tuple[str, ...], table: dict, header: str | None) -> None:
    if header is not None:
        lines += ["", header]
    for k, v in table.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        path = (*name, k)
        dotted = ".".join(_key(p) for p in path)
        if isinstance(v, dict):
            _table(lines, path, v, f"[{dotted}]")
        elif _is_table_array(v):
            for item in v:
                _table(lines, path, item, f"[[{dotted}]]")


def dumps_toml(doc: dict) -> str:
    lines: list[str] = []
    _table(lines, (), doc, None)
    return "\n".join(lines).lstrip("\n") + "\n"
