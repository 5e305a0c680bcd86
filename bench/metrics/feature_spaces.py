"""Feature spaces other than the FID Inception, loaded from a local directory in their real format
(a Hugging Face `save_pretrained` folder: config.json, model.safetensors, preprocessor_config.json).
No weights are downloaded and none are substituted: without a directory the metric reports
"unavailable: <how to supply weights>".

    space    model (transformers)   feature                                    preprocessing
    dinov2   Dinov2Model            pooler_output: the final layer-normed CLS   dgm-eval's (DGM_EVAL_DINOV2 below):
             (FD-DINOv2, Stein et al. 2023: ViT-L/14, facebook/dinov2-large)    the whole image, PIL bicubic to
                                                                                 224 x 224, ImageNet mean / std
    clip     CLIPModel              get_image_features: the projected image     the released CMMD code's
             (CMMD, Jayasumana et al. 2024: ViT-L/14@336px,      embedding       (CMMD_RELEASED below): centre
              openai/clip-vit-large-patch14-336)                                  square crop, PIL bicubic to the
                                                                                 model's size, CLIP mean / std

FD-DINOv2 follows the implementation that defined it and publishes its numbers, not the model
folder's processor (which resizes to 256 and crops the centre 224, cutting content away). CLIP
follows the code that defined CMMD, which crops before it resizes (the folder's processor resizes
the short side first, then crops: the same pixels only for square images). The preprocessing is
recorded with every result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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
        return f"unavailable: {HOW_TO_SUPPLY[space]}" + (
            f" ({folder} holds no config.json + *.safetensors)" if folder else ""
        )
    return ""


@dataclass(frozen=True)
class Backbone:
    """A loaded feature network: uint8 images -> (B, D) float32 features on `device`."""

    embed: Callable[[Sequence[np.ndarray]], torch.Tensor]
    feature_dim: int
    weights_sha256: str
    details: dict  # recorded with every result: space, model class, processor settings


# dgm-eval (layer6ai-labs/dgm-eval @d57a6d2, dgm_eval/models/dinov2.py, DINOv2Encoder.transform with
# clean_resize off, its command line's default): torchvision Resize((224, 224), BICUBIC) of the PIL
# image (PIL's own bicubic resize for a PIL input), ToTensor (/ 255), Normalize(ImageNet mean, std)
DGM_EVAL_DINOV2 = {
    "size": 224,
    "resample": "PIL bicubic, whole image (no crop)",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "source": "layer6ai-labs/dgm-eval@d57a6d2 dgm_eval/models/dinov2.py",
}


def dgm_eval_pixels(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 images -> (B, 3, 224, 224) float32 as dgm-eval feeds DINOv2."""
    s = DGM_EVAL_DINOV2["size"]
    x = np.stack([np.asarray(Image.fromarray(im).resize((s, s), Image.BICUBIC), np.float32) / 255.0 for im in images])
    x = (x - np.array(DGM_EVAL_DINOV2["mean"], np.float32)) / np.array(DGM_EVAL_DINOV2["std"], np.float32)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


# The released CMMD (google-research/google-research @4c42994, cmmd/io_util.py `_center_crop_and_resize`
# and cmmd/embedding.py `_clip_preprocess`): PIL crop of the centred square of side min(w, h) (offsets
# (h - l) // 2, (w - l) // 2), PIL BICUBIC resize to the model's input size (336 for ViT-L/14@336px),
# / 255, then jax.image.resize to the same size (the identity) and CLIP's mean / std.
CMMD_RELEASED = {
    "size": "the model's image_size (336 for ViT-L/14@336px)",
    "resample": "centre square crop, then PIL bicubic",
    "mean": (0.48145466, 0.4578275, 0.40821073),
    "std": (0.26862954, 0.26130258, 0.27577711),
    "source": "google-research/google-research@4c42994 cmmd/io_util.py, cmmd/embedding.py",
}


def cmmd_pixels(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(H, W, 3) uint8 images -> (B, 3, size, size) float32 as the released CMMD feeds CLIP."""
    out = []
    for im in images:
        h, w = im.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(im).crop((left, top, left + side, top + side))
        out.append(np.asarray(square.resize((size, size), Image.BICUBIC), np.float32) / 255.0)
    x = (np.stack(out) - np.array(CMMD_RELEASED["mean"], np.float32)) / np.array(CMMD_RELEASED["std"], np.float32)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def load_backbone(space: str, weights: str, device: str) -> Backbone:
    from transformers import CLIPModel, Dinov2Model

    folder = Path(weights).expanduser()
    model_cls = {"dinov2": Dinov2Model, "clip": CLIPModel}[space]
    model = model_cls.from_pretrained(folder).to(device).eval()
    size = model.config.vision_config.image_size if space == "clip" else DGM_EVAL_DINOV2["size"]
    settings = DGM_EVAL_DINOV2 if space == "dinov2" else {**CMMD_RELEASED, "size": size}

    @torch.inference_mode()
    def embed(images: Sequence[np.ndarray]) -> torch.Tensor:
        if space == "dinov2":
            return model(
                pixel_values=dgm_eval_pixels(images).to(device)
            ).pooler_output  # (B, hidden): layer-normed CLS token
        out = model.get_image_features(pixel_values=cmmd_pixels(images, size).to(device))
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # (B, projection_dim)

    dim = model.config.hidden_size if space == "dinov2" else model.config.projection_dim
    weight_file = sorted(folder.glob("*.safetensors"))[0]
    details = {
        "feature_space": space,
        "feature_model": model_cls.__name__,
        "feature_weights": str(folder),
        "preprocessing": json.dumps(settings, sort_keys=True),
    }
    return Backbone(embed=embed, feature_dim=int(dim), weights_sha256=sha256_file(weight_file), details=details)
