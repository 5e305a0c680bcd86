"""Export a split of the shapes world as a COCO captions folder (read back by imagen.data.CocoFolder).

    OUT/captions.json   {"info": {... provenance ...}, "images": [{"id", "file_name", "width",
                         "height", "scene"}], "annotations": [{"id", "image_id", "caption"}]}
    OUT/images/<split>-<index:06d>.png
The folder is built next to OUT and renamed into place (common.files.staged_folder), so OUT is
either complete or absent; a non-empty OUT is never touched.
"""

from __future__ import annotations

import time
from pathlib import Path

from common.files import staged_folder, write_json_atomic
from common.version import __version__

from .dataset import split_item
from .grammar import format_caption
from .render import render_scene
from .scene import HELD_OUT, SPLITS, check_name


def export_coco(split: str, n: int, out_dir: str | Path, size: int = 256) -> Path:
    check_name("split", split, SPLITS)
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; refusing to overwrite it")
    with staged_folder(out) as tmp:
        (tmp / "images").mkdir()
        images, annotations = [], []
        for i in range(n):
            scene, caption = split_item(split, i)
            name = f"{split}-{i:06d}.png"
            render_scene(scene, size).save(tmp / "images" / name)
            images.append({"id": i, "file_name": name, "width": size, "height": size, "scene": scene.to_json()})
            annotations.append({"id": i, "image_id": i, "caption": format_caption(caption)})
        info = {
            "description": f"imagen-bench shapes world, split {split!r}, items 0..{n - 1}",
            "generator": "drawbench.shapes.export_coco",
            "package_version": __version__,
            "split": split,
            "n": n,
            "size": size,
            "held_out_pairs": sorted(f"{c} {s}" for c, s in HELD_OUT),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json_atomic(tmp / "captions.json", {"info": info, "images": images, "annotations": annotations})
    return out
