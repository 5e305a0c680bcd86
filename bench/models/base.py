"""What every model behind a sweep looks like: requests in, encoded images out.

A model declares which sampling axes change its images (`axes`); the sweep only expands the grid
over those, so a folder of precomputed images is one cell per prompt set, not one per guidance.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from PIL import Image

from common.runs import SAMPLING_AXES, PromptRef


def _sampling_class() -> type:
    """Sampling: one field per axis of common.runs.SAMPLING_AXES, in its order, each None by default
    (their types, defaults and bounds are imagen.pipeline.StageSampling's: a new axis is declared
    there and named in SAMPLING_AXES, never here)."""
    cls = dataclasses.make_dataclass(
        "Sampling", [(axis, Any, dataclasses.field(default=None)) for axis in SAMPLING_AXES], frozen=True
    )
    cls.__module__ = __name__
    cls.__doc__ = (
        "One point of the sampling grid, a field per sampling axis (sampler, steps, guidance w, "
        "thresholding, percentile, aug_level, ...); None = the axis does not apply to this model."
    )
    return cls


Sampling = _sampling_class()


@dataclass(frozen=True)
class ImageRequest:
    """One image a model is asked to make."""

    ref: PromptRef
    seed: int  # -1 when unknown (precomputed images)


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes  # the encoded file, written to the run folder byte for byte
    suffix: str  # ".png", ".jpg", ...
    width: int
    height: int


def encode_png(image: np.ndarray) -> GeneratedImage:
    """(H, W, 3) uint8 -> PNG bytes (PIL's encoder is deterministic: same pixels, same sha256)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return GeneratedImage(buf.getvalue(), ".png", int(image.shape[1]), int(image.shape[0]))


class ImageModel(Protocol):
    name: str
    kind: str
    axes: tuple[str, ...]  # subset of SAMPLING_AXES (+ "seed") that change the images

    def describe(self) -> dict:
        """What makes its images: kind, paths, weights sha256, package version (JSON-able)."""

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        """Raise ValueError before any work if the model cannot serve these requests
        (`prompt_set` is the sweep's label, `source` the drawbench.sets registry name)."""

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        """One image per request, in order (batched internally; yields as batches finish)."""
