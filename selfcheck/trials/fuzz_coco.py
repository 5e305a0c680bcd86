"""Mutations of a COCO captions JSON (annotations/captions_val2014.json beside val2014/, as
downloaded; built by study_sources.synthetic_coco): what a careless or hostile captions file could
do to a study that copies and serves its "reference photographs" (issue 33, item 5).

    hostile    a file_name that is absolute, climbs out with `..`, or is a symlink leading out of the
               image folder: refused, naming the file and the entry (never copied into a study)
    shape      integer / null captions, string or boolean ids, a missing file_name, images that are
               not a list, a top level that is not an object: refused, naming the file and the entry
    harmless   `./name`, a symlink that stays inside the folder, an extra key: accepted
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fuzz_mutations import ANY, BYTES, ERROR, Mutated, Mutation, structure


def _folder(captions: Path) -> Path:
    """The image folder beside annotations/ (val2014/ for captions_val2014.json)."""
    return captions.parent.parent / captions.stem.removeprefix("captions_")


def _edit(change: Callable[[dict, Path, random.Random], str], expect: str, mentions: tuple[str, ...]) -> Mutation:
    """A mutation that edits the parsed document; `change` returns what it did."""

    def apply(path: Path, rng: random.Random) -> Mutated:
        doc = json.loads(path.read_text())
        detail = change(doc, path, rng)
        path.write_text(json.dumps(doc))
        return Mutated(f"{path.name}: {detail}", expect, mentions)

    return apply


def _pick(entries: list, rng: random.Random) -> tuple[int, Any]:
    i = rng.randrange(len(entries))
    return i, entries[i]


def _set(key: str, field: str, value: Callable[[dict, Path], Any]) -> Callable[[dict, Path, random.Random], str]:
    """Set `field` of one random entry of doc[key] to value(entry, captions path)."""

    def change(doc: dict, path: Path, rng: random.Random) -> str:
        i, entry = _pick(doc[key], rng)
        entry[field] = value(entry, path)
        return f"{key}[{i}].{field} = {entry[field]!r}"

    return change


def _outside_file(entry: dict, path: Path) -> str:
    """An absolute path to a readable file outside the image folder (the captions JSON itself)."""
    return str(path.resolve())


def _symlink_out(doc: dict, path: Path, rng: random.Random) -> str:
    i, entry = _pick(doc["images"], rng)
    link = _folder(path) / f"escape-{i}.jpg"
    link.symlink_to(path.resolve())  # inside the folder by name, outside it once resolved
    entry["file_name"] = link.name
    return f"images[{i}].file_name = {link.name!r}, a symlink to {path.name} outside the image folder"


def _symlink_in(doc: dict, path: Path, rng: random.Random) -> str:
    i, entry = _pick(doc["images"], rng)
    link, target = _folder(path) / f"alias-{i}.jpg", entry["file_name"]
    link.symlink_to(target)  # relative: resolves to the same photograph, inside the folder
    entry["file_name"] = link.name
    return f"images[{i}].file_name = {link.name!r}, a symlink to {target!r} inside the folder"


def _delete_file_name(doc: dict, path: Path, rng: random.Random) -> str:
    i, entry = _pick(doc["images"], rng)
    del entry["file_name"]
    return f"deleted images[{i}].file_name"


def _delete_annotations(doc: dict, path: Path, rng: random.Random) -> str:
    del doc["annotations"]
    return "deleted annotations"


def _replace(key: str, value: Any) -> Callable[[dict, Path, random.Random], str]:
    def change(doc: dict, path: Path, rng: random.Random) -> str:
        doc[key] = value
        return f"{key} = {value!r}"

    return change


def _top_level_list(path: Path, rng: random.Random) -> Mutated:
    doc = json.loads(path.read_text())
    path.write_text(json.dumps([doc]))
    return Mutated(f"{path.name}: the document wrapped in a list", ERROR, ("top level",))


IMAGES, ANNOTATIONS = ("images[",), ("annotations[",)

COCO: dict[str, Mutation] = {
    "absolute_file_name": _edit(_set("images", "file_name", _outside_file), ERROR, IMAGES),
    "dotdot_file_name": _edit(
        _set("images", "file_name", lambda e, p: f"../../{p.parent.name}/{p.name}"), ERROR, IMAGES
    ),
    "dotdot_back_inside": _edit(
        _set("images", "file_name", lambda e, p: f"../{_folder(p).name}/{e['file_name']}"), ERROR, IMAGES
    ),
    "symlink_escape": _edit(_symlink_out, ERROR, IMAGES),
    "integer_caption": _edit(_set("annotations", "caption", lambda e, p: 12345), ERROR, ANNOTATIONS),
    "null_caption": _edit(_set("annotations", "caption", lambda e, p: None), ERROR, ANNOTATIONS),
    "string_image_id": _edit(_set("annotations", "image_id", lambda e, p: str(e["image_id"])), ERROR, ANNOTATIONS),
    "boolean_id": _edit(_set("images", "id", lambda e, p: True), ERROR, IMAGES),
    "missing_file_name": _edit(_delete_file_name, ERROR, IMAGES),
    "images_not_a_list": _edit(_replace("images", {"1": "COCO_val2014_000000000001.jpg"}), ERROR, ("'images'",)),
    "annotations_missing": _edit(_delete_annotations, ERROR, ("'annotations'",)),
    "top_level_list": _top_level_list,
    "dot_slash_file_name": _edit(_set("images", "file_name", lambda e, p: f"./{e['file_name']}"), ANY, ()),
    "symlink_inside": _edit(_symlink_in, ANY, ()),
    "extra_key": _edit(_set("images", "license", lambda e, p: 3), ANY, ()),
}


def coco_mutations() -> dict[str, Mutation]:
    """The fuzz domain's table: any file's byte damage, any JSON's structure edits, and the above."""
    return {**BYTES, **structure("json"), **COCO}
