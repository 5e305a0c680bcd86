"""Training data: anything with __len__ and __getitem__(i) -> (PIL.Image RGB, caption).

Built in: a COCO-format folder (captions JSON + image folder) and a tiny toy set for tests.
The shapes world (drawbench.shapes) provides its own procedural dataset with the same interface;
imagen imports no prompt world, so the `train` command gets it from the shell (imagen_bench.cli.WIRING).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from common.coco_json import coco_captions, coco_image_files, read_coco_json


class CaptionedImages(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[Image.Image, str]: ...


class CocoFolder:
    """COCO captions format: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}.
    Each annotation is one (image, caption) pair, as in COCO's 5-captions-per-image layout."""

    def __init__(self, root: str | Path, captions: str = "captions.json", images: str = "images"):
        self.root = Path(root)
        path = self.root / captions
        if not path.is_file():
            raise FileNotFoundError(
                f"COCO dataset {self.root}: {captions} not found (expected {captions} + {images}/)"
            )
        data = read_coco_json(path)  # shape checked, file names confined to images/ (common.coco_json)
        files = coco_image_files(path, data, self.root / images)
        captions = coco_captions(path, data)
        unknown = [image_id for _, image_id, _ in captions if image_id not in files]
        if unknown:
            raise ValueError(
                f"{path}: {len(unknown)} annotations name an image id not in its images list (e.g. {unknown[0]})"
            )
        self.items = [(files[image_id], caption) for _, image_id, caption in captions]
        if not self.items:
            raise ValueError(f"COCO dataset {self.root} has no annotations")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Image.Image, str]:
        path, caption = self.items[i]
        with Image.open(path) as im:
            return im.convert("RGB"), caption


TOY_COLORS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (230, 210, 40)}


class ToySet:
    """Eight captioned images: a coloured square on the left or right half of a grey canvas.
    Small enough to learn in a few hundred CPU steps; used by the test suite and the tiny demo."""

    def __init__(self, size: int = 16):
        self.size = size
        self.items = [(c, side) for c in TOY_COLORS for side in ("left", "right")]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Image.Image, str]:
        colour, side = self.items[i]
        arr = np.full((self.size, self.size, 3), 128, np.uint8)
        half = self.size // 2
        cols = slice(1, half - 1) if side == "left" else slice(half + 1, self.size - 1)
        arr[self.size // 4 : 3 * self.size // 4, cols] = TOY_COLORS[colour]
        return Image.fromarray(arr), f"a {colour} square on the {side}"


def image_to_tensor(im: Image.Image, size: int) -> torch.Tensor:
    """PIL -> (3, size, size) float in [-1, 1]; resized with PIL bicubic (antialiased) if needed."""
    if im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy())
    return arr.permute(2, 0, 1).float() / 127.5 - 1.0


DatasetFactory = Callable[[str, int], CaptionedImages]  # (the spec after "KIND:", image side) -> dataset


def _coco(arg: str, size: int) -> CaptionedImages:
    if not arg:
        raise ValueError("dataset coco needs its folder: coco:DIR (captions.json + images/)")
    return CocoFolder(arg)


BUILT_IN: dict[str, DatasetFactory] = {"toy": lambda arg, size: ToySet(size), "coco": _coco}


def resolve_dataset(spec: str, size: int, kinds: Mapping[str, DatasetFactory] | None = None) -> CaptionedImages:
    """Dataset from a CLI spec KIND[:ARG]: "toy", "coco:DIR", or a kind in `kinds` (the `train`
    command is given "shapes": drawbench.shapes.dataset.from_spec, "shapes:SPLIT[:CATEGORY,...]")."""
    kind, _, arg = spec.partition(":")
    available = {**BUILT_IN, **(kinds or {})}
    if kind not in available:
        raise ValueError(
            f"unknown dataset {spec!r}; use one of: toy, coco:DIR" + "".join(f", {k}:..." for k in sorted(kinds or {}))
        )
    return available[kind](arg, size)
