"""Synthetic study sources built in code, shared by the fuzz/security trials and the test suite
(tests/human_eval_fixtures.py imports from here): a captions CSV and two folders of images named by
caption id. The tiny cascade checkpoint lives in selfcheck.trials.tiny_cascade."""
from __future__ import annotations

from pathlib import Path


def synthetic_sources(root: Path, n: int = 6, size: int = 64) -> tuple[Path, Path, Path]:
    """A captions CSV (id, category, prompt) and two folders (model-x/, reference/) of small
    distinct random PNGs named <id>.png."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    captions = root / "captions.csv"
    pd.DataFrame({"id": range(1, n + 1), "category": ["coco"] * n,
                  "prompt": [f"a photo of object number {i}" for i in range(1, n + 1)]}).to_csv(captions, index=False)
    rng = np.random.default_rng(0)
    folders = []
    for name in ("model-x", "reference"):
        d = root / name
        d.mkdir()
        for i in range(1, n + 1):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
        folders.append(d)
    return captions, folders[0], folders[1]
