"""Automated metrics: FID / KID (Inception features vs a reference set), CLIP score, OCR text
score and shapes-verifier accuracy, behind one interface (base.Metric) and one registry.

    m = build_metric("fid", {"reference": "folder:ref_images"}, cache_dir=Path("cache"))
    m.update(scored_images)      # per-image values (may be {}), per-cell state
    results = m.compute()        # list[MetricResult], one or more per cell
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import Metric, MetricResult, ScoredImage, parse_option_groups

# name -> (module, class); modules import heavy dependencies only when their metric is built
REGISTRY: dict[str, tuple[str, str]] = {
    "fid": ("bench.metrics.fid", "FID"),
    "kid": ("bench.metrics.fid", "KID"),
    "prdc": ("bench.metrics.fid", "PRDC"),  # precision / recall, density / coverage
    "cmmd": ("bench.metrics.fid", "CMMD"),  # CLIP-MMD (needs local CLIP weights)
    "clip_score": ("bench.metrics.clip_score", "CLIPScore"),
    "vqascore": ("bench.metrics.vqa", "VQAScore"),  # P("Yes") from a local vision-language model
    "vqa_questions": ("bench.metrics.vqa", "VQAQuestions"),  # TIFA / DSG-style questions from GenEval metadata
    "ocr": ("bench.metrics.ocr", "OCRScore"),
    "shapes_verifier": ("bench.metrics.shapes", "ShapesVerifier"),
}


def metric_class(name: str) -> type:
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def check_metric(name: str, options: Mapping[str, Any] | None, *, paths: bool) -> None:
    """The metric's options checked without building it (no network loads, nothing written): names,
    types, bounds and removed options; with `paths` also the files and folders they name. A sweep
    runs this when it reads the spec (paths=False) and again before its first image (paths=True)."""
    cls = metric_class(name)
    parse_option_groups(cls.option_classes, options, name, removed=getattr(cls, "removed_options", None), paths=paths)


def build_metric(name: str, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None) -> Metric:
    """A metric by registry name; options are parsed into the metric's frozen dataclass(es)."""
    return metric_class(name)(options, cache_dir=cache_dir)


__all__ = ["REGISTRY", "Metric", "MetricResult", "ScoredImage", "build_metric", "check_metric", "metric_class"]
