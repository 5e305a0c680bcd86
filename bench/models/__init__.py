"""Models behind one interface (bench.models.base.ImageModel), built by kind:

imagen     a cascade checkpoint directory (imagen.pipeline)
folder     precomputed images named by prompt id (closed models)
diffusers  a local diffusers pipeline directory (optional extra)
diffusers_cascade  local diffusers pipeline directories run as a pixel cascade (DeepFloyd IF)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagen.config import from_dict

from .base import SAMPLING_AXES, GeneratedImage, ImageModel, ImageRequest, Sampling
from .diffusers_cascade import DiffusersCascadeConfig, DiffusersCascadeModel
from .diffusers_model import DiffusersModel, DiffusersModelConfig
from .folder import FolderModel, FolderModelConfig
from .imagen_model import ImagenModel, ImagenModelConfig


def _kinds() -> dict[str, tuple[type, type]]:
    return {
        "imagen": (ImagenModel, ImagenModelConfig),
        "folder": (FolderModel, FolderModelConfig),
        "diffusers": (DiffusersModel, DiffusersModelConfig),
        "diffusers_cascade": (DiffusersCascadeModel, DiffusersCascadeConfig),
    }


MODEL_KINDS = ("imagen", "folder", "diffusers", "diffusers_cascade")


def model_config(kind: str, options: Mapping[str, Any]):
    """The kind's frozen config from a spec table; unknown kinds / keys name the allowed ones."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    _, cfg_cls = _kinds()[kind]
    try:
        config = from_dict(cfg_cls, dict(options))
    except TypeError as e:  # a required key is missing
        raise ValueError(f"model kind {kind!r}: {e}") from None
    check_sizes(f"model kind {kind!r}", config)
    return config


def check_sizes(where: str, config) -> None:
    """Counts and sizes of a model config are >= 1 (types are checked by from_dict)."""
    for key in ("batch_size", "num_stages", "height", "width"):
        value = getattr(config, key, None)
        if value is not None and value < 1:
            raise ValueError(f"{where}: {key} must be >= 1, got {value!r}")


def axes_of_kind(kind: str) -> tuple[str, ...]:
    """The sampling axes a kind's images depend on (its class's `axes`), known before building it."""
    return tuple(_kinds()[kind][0].axes)


def build_model(name: str, kind: str, config, cache_dir: Path | None = None) -> ImageModel:
    cls, _ = _kinds()[kind]
    return cls(name, config, cache_dir)


__all__ = [
    "MODEL_KINDS",
    "SAMPLING_AXES",
    "GeneratedImage",
    "ImageModel",
    "ImageRequest",
    "Sampling",
    "axes_of_kind",
    "build_model",
    "model_config",
]
