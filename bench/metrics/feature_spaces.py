"""Feature spaces other than the FID Inception, loaded from a local directory in their real format
(a Hugging Face `save_pretrained` folder: config.json, model.safetensors, preprocessor_config.json).
No weights are downloaded and none are substituted: without a directory the metric reports
"unavailable: <how to supply weights>".

    space    model (transformers)   feature                                    preprocessing
    dinov2   Dinov2Model            pooler_output: the final layer-normed CLS   the folder's image processor
             (FD-DINOv2, Stein et al. 2023: ViT-L/14, facebook/dinov2-large)    (BitImageProcessor: resize 256,
                                                                                 centre crop 224, ImageNet norm)
    clip     CLIPModel              get_image_features: the projected image     the folder's image processor
             (CMMD, Jayasumana et al. 2024: ViT-L/14@336px,                      (CLIPImageProcessor)
              openai/clip-vit-large-patch14-336)

Processors run as transformers' PIL implementations (no torchvision on this torch), configured
by the folder's preprocessor_config.json; their settings are recorded with every result.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from common.files import sha256_file

SPACES = ("inception", "dinov2", "clip")

HOW_TO_SUPPLY = {
    "dinov2": "FD-DINOv2 needs DINOv2 weights: set options weights = DIR, a Hugging Face Dinov2Model folder (config.json, "
              "model.safetensors, preprocessor_config.json), e.g. facebook/dinov2-large saved with save_pretrained",
    "clip": "CLIP image features need CLIP weights: set options weights = DIR, a Hugging Face CLIPModel folder (config.json, "
            "model.safetensors, preprocessor_config.json), e.g. openai/clip-vit-large-patch14-336 saved with save_pretrained",
}


def check_weights_folder(weights: str) -> None:
    """A weights folder given by the user must be a saved Hugging Face model: a missing or mistyped
    one is an error where the options are used, never a quiet "unavailable"."""
    folder = Path(weights).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    if not (folder / "config.json").is_file() or not list(folder.glob("*.safetensors")):
        raise ValueError(f"{folder} holds no config.json + *.safetensors (a Hugging Face save_pretrained folder)")


def unavailable(space: str, weights: str) -> str:
    """'' when the space can run, else "unavailable: <how to supply weights>"."""
    if space == "inception":
        return ""
    folder = Path(weights).expanduser() if weights else None
    if folder is None or not (folder / "config.json").is_file() or not list(folder.glob("*.safetensors")):
        return f"unavailable: {HOW_TO_SUPPLY[space]}" + (f" ({folder} holds no config.json + *.safetensors)" if folder else "")
    return ""


@dataclass(frozen=True)
class Backbone:
    """A loaded feature network: uint8 images -> (B, D) float32 features on `device`."""
    embed: Callable[[Sequence[np.ndarray]], torch.Tensor]
    feature_dim: int
    weights_sha256: str
    details: dict  # recorded with every result: space, model class, processor settings


def _processor(folder: Path):
    """The folder's image processor as transformers' PIL implementation (same settings)."""
    kind = json.loads((folder / "preprocessor_config.json").read_text()).get("image_processor_type", "")
    if kind.startswith("BitImageProcessor"):
        from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil as cls
    elif kind.startswith("CLIPImageProcessor"):
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as cls
    else:
        raise ValueError(f"{folder}/preprocessor_config.json: image processor {kind!r} is not supported; "
                         "supported: BitImageProcessor (DINOv2), CLIPImageProcessor (CLIP)")
    return cls.from_pretrained(folder)


def load_backbone(space: str, weights: str, device: str) -> Backbone:
    from PIL import Image
    from transformers import CLIPModel, Dinov2Model

    folder = Path(weights).expanduser()
    model_cls = {"dinov2": Dinov2Model, "clip": CLIPModel}[space]
    model = model_cls.from_pretrained(folder).to(device).eval()
    processor = _processor(folder)
    settings = {k: v for k, v in processor.to_dict().items() if k in ("size", "crop_size", "do_center_crop", "image_mean", "image_std",
                                                                    "resample", "do_normalize", "rescale_factor")}

    @torch.inference_mode()
    def embed(images: Sequence[np.ndarray]) -> torch.Tensor:
        pixels = processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"].to(device)
        if space == "dinov2":
            return model(pixel_values=pixels).pooler_output  # (B, hidden): layer-normed CLS token
        out = model.get_image_features(pixel_values=pixels)
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # (B, projection_dim)

    dim = model.config.hidden_size if space == "dinov2" else model.config.projection_dim
    weight_file = sorted(folder.glob("*.safetensors"))[0]
    details = {"feature_space": space, "feature_model": model_cls.__name__, "feature_weights": str(folder),
               "preprocessing": json.dumps(settings, sort_keys=True)}
    return Backbone(embed=embed, feature_dim=int(dim), weights_sha256=sha256_file(weight_file), details=details)
