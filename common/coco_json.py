"""COCO captions JSON, the one reader of its shape for every user of it (common.imagestore's COCO
folders, drawbench.coco's caption sets, imagen.data.CocoFolder):

    {"images": [{"id": int, "file_name": str, ...}], "annotations": [{"id": int, "image_id": int, "caption": str}]}

A captions file is input from outside (downloaded, shared, edited): every entry is checked, and a
file_name must stay inside the image folder once resolved (no absolute names, no `..`, no symlink
leading out), so a study never copies and serves an arbitrary readable file as a "photograph".
Every refusal is one line naming the file and the offending entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_KEYS = "an object with an integer id and a string file_name"
CAPTION_KEYS = "an object with an integer id, an integer image_id and a string caption"


def read_coco_json(path: str | Path) -> dict[str, Any]:
    """The parsed document (a JSON object); anything else is a ValueError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a COCO captions JSON: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} is not a COCO captions JSON: the top level must be an object with images and annotations, "
            f"got {type(data).__name__}"
        )
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not an id


def _entries(path: Path, data: dict[str, Any], key: str, shape: str) -> list[Any]:
    entries = data.get(key)
    if not isinstance(entries, list):
        raise ValueError(
            f"{path} is not a COCO captions JSON: {key!r} must be a list of entries, each {shape}; "
            f"got {type(entries).__name__ if key in data else 'nothing'}"
        )
    return entries


def _bad(path: Path, key: str, i: int, entry: Any, shape: str) -> ValueError:
    return ValueError(f"{path}: {key}[{i}] must be {shape}, got {json.dumps(entry, default=str)[:120]}")


def coco_image_files(path: str | Path, data: dict[str, Any], folder: str | Path) -> dict[int, Path]:
    """image id -> its file inside `folder`, from data["images"]. A file_name that is absolute,
    climbs out with `..` or resolves (through a symlink) outside the folder is refused."""
    path, root = Path(path), Path(folder).resolve()
    out: dict[int, Path] = {}
    for i, entry in enumerate(_entries(path, data, "images", IMAGE_KEYS)):
        if not (
            isinstance(entry, dict)
            and _is_int(entry.get("id"))
            and isinstance(entry.get("file_name"), str)
            and entry["file_name"].strip()
        ):
            raise _bad(path, "images", i, entry, IMAGE_KEYS)
        out[entry["id"]] = confined(path, i, entry["file_name"], root)
    return out


def confined(path: Path, i: int, name: str, root: Path) -> Path:
    """`root / name` resolved (symlinks followed), refused unless it stays inside `root`."""
    if "\x00" in name:  # the OS would refuse it with a message naming no file
        raise ValueError(f"{path}: images[{i}] file_name {name!r} holds a NUL byte; a file name never does")
    named_outside = Path(name).is_absolute() or ".." in Path(name).parts
    target = root if named_outside else (root / name).resolve()
    if named_outside or not target.is_relative_to(root) or target == root:
        raise ValueError(
            f"{path}: images[{i}] file_name {name!r} leads outside the image folder {root}; "
            "file names must be relative to it, without '..' or symlinks that leave it"
        )
    return target


def coco_captions(path: str | Path, data: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(annotation id, image id, caption) for every entry of data["annotations"], in file order."""
    path = Path(path)
    out = []
    for i, entry in enumerate(_entries(path, data, "annotations", CAPTION_KEYS)):
        if not (
            isinstance(entry, dict)
            and _is_int(entry.get("id"))
            and _is_int(entry.get("image_id"))
            and isinstance(entry.get("caption"), str)
        ):
            raise _bad(path, "annotations", i, entry, CAPTION_KEYS)
        out.append((entry["id"], entry["image_id"], entry["caption"]))
    return out
