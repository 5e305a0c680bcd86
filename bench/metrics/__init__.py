"""Automated metrics: FID / KID (Inception features vs a reference set), CLIP score, OCR text
score and shapes-verifier accuracy, behind one interface (base.Metric) and one registry.

    m = build_metric("fid", {"reference": "folder:ref_images"}, cache_dir=Path("cache"))
    m.update(scored_images)      # per-image values (may be {}), per-cell state
    results = m.compute()        # list[MetricResult], one or more per cell
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

from .base import Metric, MetricResult, ScoredImage

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


def build_metric(name: str, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None) -> Metric:
    """A metric by registry name; options are parsed into the metric's frozen dataclass(es)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)(options, cache_dir=cache_dir)


__all__ = ["REGISTRY", "Metric", "MetricResult", "ScoredImage", "build_metric"]
