"""Synthetic study sources built in code, shared by the fuzz/security trials and the test suite
(tests/human_eval_fixtures.py imports from here): a captions CSV and two folders of images named by
caption id. The tiny cascade checkpoint lives in selfcheck.trials.tiny_cascade."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def synthetic_sources(root: Path, n: int = 6, size: int = 64) -> tuple[Path, Path, Path]:
    """A captions CSV (id, category, prompt) and two folders (model-x/, reference/) of small
    distinct random PNGs named <id>.png."""
    import numpy as np
    import pandas as pd

    from common.folder_manifest import write_manifest

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    captions = root / "captions.csv"
    pd.DataFrame(
        {
            "id": range(1, n + 1),
            "category": ["coco"] * n,
            "prompt": [f"a photo of object number {i}" for i in range(1, n + 1)],
        }
    ).to_csv(captions, index=False)
    rng = np.random.default_rng(0)
    folders = []
    for name in ("model-x", "reference"):
        d = root / name
        d.mkdir()
        for i in range(1, n + 1):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
        write_manifest(
            d, "captions", {str(i): f"a photo of object number {i}" for i in range(1, n + 1)}
        )  # what they answer
        folders.append(d)
    return captions, folders[0], folders[1]


def synthetic_coco(root: Path, n: int = 4, size: int = 32) -> Path:
    """A COCO folder as downloaded, for ids 1..n (the ids of synthetic_sources' captions and images):
    root/annotations/captions_val2014.json (one caption per image, no people) + root/val2014/
    COCO_val2014_<12-digit id>.jpg, small random photographs. Returns root."""
    import numpy as np

    root = Path(root)
    (root / "val2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(1)
    images, annotations = [], []
    for i in range(1, n + 1):
        name = f"COCO_val2014_{i:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            root / "val2014" / name, quality=90
        )
        images.append({"id": i, "file_name": name, "height": size, "width": size})
        annotations.append({"id": 100 + i, "image_id": i, "caption": f"a photo of object number {i}"})
    (root / "annotations" / "captions_val2014.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    return root
