"""The coverage command's parts (commands.PARTS), each run by the module that simulates it."""

from __future__ import annotations

import time

from . import crossed
from .paired import paired_set_metrics
from .simulate import Sizes, per_image, ranks, set_metrics


def run(sizes: Sizes, parts: tuple[str, ...], seed: int = 0, log=print) -> list[dict]:
    """The coverage rows of `parts`, in order; each part's time logged."""
    rows = []
    for part in parts:
        start = time.time()
        if part == "per-image":
            rows += per_image(sizes, seed)
        elif part == "ranks":
            rows += ranks(sizes, seed)
        elif part == "crossed":
            rows += crossed.run(sizes.crossed, seed, log)
        elif part == "paired":
            rows += paired_set_metrics(sizes, seed, log)
        else:  # fd, kid, cmmd, prdc
            rows += set_metrics(sizes, seed, (part,))
        log(f"coverage: {part} done in {time.time() - start:.0f} s")
    return rows
