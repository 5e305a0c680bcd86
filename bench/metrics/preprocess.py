"""Image preprocessing for feature metrics, recorded with every result.

Resize modes (to the feature network's 299 x 299):
- "pil_bicubic": PIL bicubic with antialiasing on uint8 (clean-fid's default, Parmar et al. 2022:
  aliasing-free resizing changes FID less across libraries).
- "torch_bilinear": F.interpolate bilinear, align_corners=False, no antialias (the legacy
  pytorch-fid / torchmetrics behaviour; kept to compare with numbers made that way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common.errors import check_choice

RESIZE_MODES = ("pil_bicubic", "torch_bilinear")
# How a reference image is brought to the evaluated resolution before the feature network's own
# resize: "none" (as stored) or "center" (the largest centred square, as every published COCO FID-30K
# protocol does: the Imagen paper evaluates 256 x 256 samples against COCO images made square).
CROP_MODES = ("none", "center")


def to_eval_resolution(image: np.ndarray, crop: str, size: int | None) -> np.ndarray:
    """(H, W, 3) uint8 -> the reference at the evaluated resolution: centre-cropped to a square when
    crop == "center", then resized to size x size with PIL bicubic (antialiased) when size is given."""
    check_choice("reference crop", crop, CROP_MODES)
    if crop == "center":
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    if size is not None and image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BICUBIC))
    return np.ascontiguousarray(image)


def resize_batch(images: list[np.ndarray], size: int, mode: str) -> torch.Tensor:
    """list of (H, W, 3) uint8 -> (B, 3, size, size) float32 in [0, 255] (not yet normalised)."""
    check_choice("resize", mode, RESIZE_MODES)
    if mode == "pil_bicubic":
        arrs = [
            im if im.shape[:2] == (size, size) else np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC))
            for im in images
        ]
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float()
    # "torch_bilinear"
    out = []
    for im in images:  # images may differ in size, so resize one at a time
        x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        out.append(x)
    return torch.cat(out)


def load_rgb(path: Path) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 from an image file and the converted-from mode (None if it was RGB).
    Unreadable / truncated files raise ValueError naming the file."""
    from common.imagestore import open_image

    with open_image(path) as im:
        mode = im.mode
        try:
            rgb = im.convert("RGB") if mode != "RGB" else im
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot convert image {path} from mode {mode} to RGB: {e}") from None
        arr = np.asarray(rgb, dtype=np.uint8).copy()
    return arr, (None if mode == "RGB" else mode)
