"""The shapes world as data: a virtual training set, the benchmark's test prompts, FID references.

Item i of a split is category CATEGORIES[i % 4], index i // 4 of that category, so the first
4 * n items of the test split are exactly the scenes of `test_prompts(n)`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from PIL import Image

from .generate import sample_item
from .grammar import Caption, format_caption
from .render import render_scene
from .scene import CATEGORIES, SPLITS, Scene, check_name

# Virtual lengths: train is effectively unlimited (rendered on the fly, ~1 ms per 256^2 image);
# validation/test are sized for loss curves and metrics.
DEFAULT_LENGTH = {"train": 1_000_000, "validation": 10_000, "test": 10_000}


def split_item(split: str, i: int) -> tuple[Scene, Caption]:
    """Ground truth (scene, structured caption) of item i of a split."""
    return sample_item(split, CATEGORIES[i % len(CATEGORIES)], i // len(CATEGORIES))


def mix_item(split: str, categories: tuple[str, ...], i: int) -> tuple[Scene, Caption]:
    """Item i of a split drawn with the category mix `categories` (cycled; a category listed twice
    comes twice as often, each occurrence with its own items): the default mix CATEGORIES gives
    exactly split_item(split, i)."""
    j, block = i % len(categories), i // len(categories)
    name = categories[j]
    reps, occurrence = categories.count(name), categories[:j].count(name)
    return sample_item(split, name, block * reps + occurrence)


class ShapesDataset:
    """__getitem__(i) -> (PIL RGB image size x size, caption str); deterministic per (split, i).
    `categories` sets the mix (default: the four categories in turn), e.g. ("Positional",) or
    ("Colors", "Counting", "Positional", "Positional", "Descriptions") for twice the relations."""

    def __init__(
        self,
        split: str = "train",
        size: int = 256,
        length: int | None = None,
        categories: tuple[str, ...] = CATEGORIES,
    ):
        self.split = check_name("split", split, SPLITS)
        if not categories:
            raise ValueError(f"ShapesDataset needs at least one category of {', '.join(CATEGORIES)}")
        self.categories = tuple(check_name("category", c, CATEGORIES) for c in categories)
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"ShapesDataset size must be an integer >= 8, got {size!r}")
        self.size = size
        self.length = DEFAULT_LENGTH[split] if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"ShapesDataset length must be >= 1, got {length}")

    def __len__(self) -> int:
        return self.length

    def scene(self, i: int) -> tuple[Scene, Caption]:
        if not 0 <= i < self.length:
            raise IndexError(f"shapes {self.split} index {i} out of range 0..{self.length - 1}")
        return mix_item(self.split, self.categories, i)

    def __getitem__(self, i: int) -> tuple[Image.Image, str]:
        scene, caption = self.scene(int(i))
        return render_scene(scene, self.size), format_caption(caption)


def test_prompts(n_per_category: int = 50, start: int = 0) -> pd.DataFrame:
    """The benchmark's prompts: columns id ("shapes-0001"...), category, prompt, scene (JSON of the
    ground-truth scene). Drawn from the test split, so about 2/3 name a held-out pair.
    `start` skips the first prompts of each category: start=25 gives prompts disjoint from
    n_per_category=25 (for a confirmation run on prompts no setting was chosen on)."""
    if n_per_category < 1 or start < 0:
        raise ValueError(f"n_per_category must be >= 1 and start >= 0, got {n_per_category}, {start}")
    rows = []
    for category in CATEGORIES:
        for k in range(start, start + n_per_category):
            scene, caption = sample_item("test", category, k)
            rows.append((category, format_caption(caption), scene.to_json()))
    df = pd.DataFrame(rows, columns=["category", "prompt", "scene"])
    offset = len(CATEGORIES) * start  # ids continue after the skipped prompts' count
    df.insert(0, "id", [f"shapes-{j + 1 + offset:04d}" for j in range(len(df))])
    return df


def reference_images(split: str, size: int, n: int | None = None) -> Iterator[np.ndarray]:
    """uint8 (size, size, 3) renders of the split's first n ground-truth scenes (the shapes FID
    reference). n defaults to 200 = the 4 x 50 scenes of test_prompts() for the test split."""
    check_name("split", split, SPLITS)
    for i in range(200 if n is None else n):
        yield np.asarray(render_scene(split_item(split, i)[0], size))


def from_spec(arg: str, size: int) -> ShapesDataset:
    """The training dataset of a `--data shapes:SPLIT[:CATEGORY,...]` spec (`arg` is what follows
    "shapes:"): the split (default train) and an optional category mix, a category named twice
    drawn twice as often."""
    split, _, mix = arg.partition(":")
    if not mix:
        return ShapesDataset(split=split or "train", size=size)
    return ShapesDataset(split=split or "train", size=size, categories=tuple(c.strip() for c in mix.split(",")))


DATASET_KINDS = {"shapes": from_spec}  # what the shell hands `imagen-bench train --data` (imagen_bench.cli.WIRING)
