"""Shared result types: repeated timings, rows of the ratio table (optionally a target), sections."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timing:
    """Wall seconds of `repeats` runs of the same work (after warm-up runs that are not kept)."""

    seconds: tuple[float, ...]
    items: int = 1  # images / answers / FLOP-units one run processes (for the rate)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.items / self.median

    def as_dict(self, unit: str = "items") -> dict:
        return {
            "seconds": [round(s, 6) for s in self.seconds],
            "repeats": len(self.seconds),
            "median_seconds": round(self.median, 6),
            f"{unit}_per_run": self.items,
            f"{unit}_per_second": self.rate,
        }


def time_it(fn: Callable[[], object], repeats: int, warmup: int = 1, items: int = 1) -> Timing:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Timing(tuple(out), items)


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, items: int = 1
) -> dict[str, Timing]:
    """Like time_it for several contenders, taking turns (A B A B ...): on a shared machine each
    then sees the same background load on average."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return {k: Timing(tuple(v), items) for k, v in out.items()}


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured ratio or value, with its target when the issue sets one.
    `op` is ">=" or "<=" (value against threshold); threshold None = informational."""

    label: str
    value: float
    unit: str = "x"
    threshold: float | None = None
    op: str = ">="
    note: str = ""

    def __post_init__(self) -> None:
        if self.op not in (">=", "<="):
            raise ValueError(f"op must be '>=' or '<=', got {self.op!r}")

    @property
    def met(self) -> bool | None:
        if self.threshold is None:
            return None
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def target_text(self) -> str:
        if self.threshold is None:
            return ""
        return f"{self.op} {_fmt(self.threshold)}" + ("" if self.unit in ("x", "") else f" {self.unit}")

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": self.target_text() or None,
            "threshold": self.threshold,
            "op": self.op if self.threshold is not None else None,
            "met": self.met,
            "note": self.note,
        }


@dataclass
class Section:
    name: str
    settings: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)  # raw numbers: seconds per repeat, rates, counts
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is measured, stated causes of gaps
    skipped: str | None = None  # reason when the whole section could not run

    def as_dict(self) -> dict:
        return {
            "settings": self.settings,
            "measurements": self.measurements,
            "rows": [r.as_dict() for r in self.rows],
            "notes": self.notes,
            "skipped": self.skipped,
        }


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.3g}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def fmt_value(v: float, unit: str) -> str:
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "%":
        return f"{v:.1f} %"
    return f"{_fmt(v)} {unit}"


def run_marked(module: str, payload: dict, marker: str, what: str, env: dict | None = None) -> dict:
    """Run `python -m module JSON(payload)` in a fresh process and return the JSON object it prints
    after `marker` (sections that measure a process's own peak memory or its allocator rule)."""
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(payload)], capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(marker):
            return json.loads(line[len(marker) :])
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    raise RuntimeError(f"{what} exited {proc.returncode}: {tail}")
