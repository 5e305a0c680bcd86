"""The metric interface the sweep runner calls, plus the small helpers every metric shares:
options parsed into a frozen dataclass (unknown keys are an error) and what a result records
about its metric (MetricMeta). No torch here: the per-cell torchmetrics states that sync across
torch.distributed ranks are in bench.metrics.state, so the numpy statistics (stats, blocks) and
the metadata import without it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from common.fields import check_paths, check_values
from common.runs import PromptRef


@dataclass(frozen=True)
class ScoredImage:
    """One generated image with its prompt."""

    cell_id: str
    ref: PromptRef
    image: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class MetricResult:
    """One per-cell number."""

    metric: str  # "fid", "kid_mean", "kid_std", "clip_score", "ocr_score", "shapes_accuracy", "shapes_accuracy/Colors", ...
    value: float | None  # None only when unavailable
    n: int  # number of images it was computed on
    details: dict  # JSON-able: what made the number (resize mode, reference + sha, weights sha256, ...)
    cell_id: str = ""  # the cell it aggregates (added field; defaulted so 4-argument construction still works)


DIRECTIONS = ("higher", "lower", "none")
# How an interval is made (the leaderboard and report read this from each result's details):
#   wilson-eff        per-image proportions (0/1, or fractions whose spread is at most a coin's): Wilson
#                     score interval at the prompt-cluster effective sample size (reports.intervals)
#   t                 per-image continuous values: mean +- t(P-1) x cluster SE, kept in the range
#   jackknife-blocks  set metrics: delete-a-block jackknife over prompt blocks (bench.metrics.blocks)
#   bootstrap-t-units KID: studentised bootstrap over whole-prompt units, its SE the block jackknife
#                     (bench.metrics.blocks.mmd_blocks)
#   block-means       k-NN set metrics: mean of disjoint prompt blocks at a stated set size, Hall's
#                     skew-corrected t interval on the block values (bench.metrics.blocks.skew_t_interval)
#   none              no interval (a protocol value at N, a spread, a count)
INTERVALS = ("wilson-eff", "t", "jackknife-blocks", "bootstrap-t-units", "block-means", "none")
# What a metric measures, for the report's figures: the Pareto curves put an "alignment" metric
# (text-image agreement) on x and a "fidelity" one (distance to real images) on y; "" = neither.
ROLES = ("alignment", "fidelity", "")


@dataclass(frozen=True)
class MetricMeta:
    """What a metric's number means, declared beside the metric (HELM's MetricMetadata) and
    recorded in every result's details as details["meta"]: the report and leaderboard read
    direction, range and interval method from there, never from a list of names."""

    direction: str  # higher | lower | none (not ranked)
    low: float | None  # the range the value can take (None: unbounded on that side)
    high: float | None
    interval: str  # one of INTERVALS
    estimator: str  # one line: what the value estimates and how
    min_n: int = 0  # below this many images the value is not comparable (FID / FD: 2,048, the feature dimension)
    role: str = ""  # one of ROLES

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS or self.interval not in INTERVALS or self.role not in ROLES:
            raise ValueError(
                f"MetricMeta: direction in {DIRECTIONS}, interval in {INTERVALS}, role in {ROLES}; "
                f"got {self.direction!r}, {self.interval!r}, {self.role!r}"
            )

    def record(self) -> dict:
        return {
            "direction": self.direction,
            "range": [self.low, self.high],
            "interval": self.interval,
            "estimator": self.estimator,
            "min_n": self.min_n,
            "role": self.role,
        }


PROPORTION = MetricMeta("higher", 0.0, 1.0, "wilson-eff", "mean over images of a value in [0, 1]")


def described(metric: Metric, results: Sequence[MetricResult]) -> list[MetricResult]:
    """`results` with details["meta"] from the metric's declaration (`metric.meta`, keyed by result
    name before any "/category"); a result the metric did not declare is an error."""
    out = []
    declared = getattr(metric, "meta", {})
    for r in results:
        base = r.metric.split("/", 1)[0]
        if base not in declared:
            raise ValueError(
                f"metric {metric.name!r} gave a result {r.metric!r} it declares no MetricMeta for "
                f"(declared: {', '.join(declared) or 'none'})"
            )
        out.append(dataclasses.replace(r, details={**r.details, "meta": declared[base].record()}))
    return out


class Metric(Protocol):
    name: str
    meta: Mapping[str, MetricMeta]  # result name -> what it means

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]: ...

    def compute(self) -> list[MetricResult]: ...

    def reset(self) -> None: ...


O = TypeVar("O")  # noqa: E741  (the output type, beside I for the input)


def parse_options(cls: type[O], options: Mapping[str, Any] | None, metric: str) -> O:
    """`options` -> frozen dataclass `cls` (parse_option_groups with one class)."""
    return parse_option_groups((cls,), options, metric)[0]


def parse_option_groups(
    classes: tuple[type, ...],
    options: Mapping[str, Any] | None,
    metric: str,
    *,
    removed: Mapping[str, str] | None = None,
    paths: bool = True,
) -> tuple:
    """Flat `options` split over several frozen dataclasses by field name (e.g. feature settings +
    reference settings). Every problem is one ValueError naming the metric and the option: a key no
    class knows (listing the allowed ones), a `removed` key (with its replacement), a value of the
    wrong type or outside the field's bounds (common.fields), and with `paths` a path that is not
    there. A spec is checked with paths=False when read and with paths=True before the sweep starts."""
    options = dict(options or {})
    gone = sorted(set(options) & set(removed or {}))
    if gone:
        raise ValueError(f"metric {metric!r}: option {gone[0]!r} was removed: {removed[gone[0]]}")
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    unknown = sorted(set(options) - set().union(*names))
    if unknown:
        raise ValueError(
            f"metric {metric!r}: unknown options {unknown}; allowed: {', '.join(sorted(set().union(*names)))}"
        )
    groups = []
    for cls, keys in zip(classes, names):
        values = {k: v for k, v in options.items() if k in keys}
        check_values(f"metric {metric!r}", cls, values)
        try:
            groups.append(cls(**values))
        except ValueError as e:
            raise ValueError(f"metric {metric!r}: {e}") from None
        if paths:
            check_paths(f"metric {metric!r}", groups[-1])
    return tuple(groups)


def check_image(image: np.ndarray, where: str) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"{where}: expected an (H, W, 3) uint8 image, got {got}")
