"""What a folder of images answers: its prompt set and the text of each prompt its images were made
for. A folder matched to prompts by bare id alone pairs DrawBench's "A red colored car." with
GenEval's id 1 ("a photo of a bench") without a word; with the text beside each id, a folder used
with another prompt set (or another version of the same set) is refused, naming both.

    FOLDER/prompt_set.json   {"format": "imagen-bench image folder 1", "prompt_set": "drawbench",
                              "prompts": {"1": "A red colored car.", ...}}

`imagen-bench folder-manifest FOLDER --prompt-set NAME` writes it after checking every image against
the set. Folders the suite documents but cannot write into (the read-only SD DrawBench folders of
../shared/data) are known by the checksums of their files: common/image_folders/*.json, each a
manifest plus {"files": {name: sha256}}; a folder matches one when every image in it is listed
there with that checksum (a copied subset matches too)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.files import read_json, sha256_file, write_json_atomic

MANIFEST = "prompt_set.json"
FORMAT = "imagen-bench image folder 1"
KNOWN = Path(__file__).parent / "image_folders"


@dataclass(frozen=True)
class FolderManifest:
    prompt_set: str  # the set the images were made for (its registry name or the user's label)
    prompts: dict[str, str]  # prompt id (no leading zeros) -> the prompt text the images were made for
    source: str  # where it was read: FOLDER/prompt_set.json or the known folder's manifest file


def prompt_key(prompt_id: object) -> str:
    """The id as files name it: digits without leading zeros (007.jpg is prompt 7), others as written."""
    text = str(prompt_id)
    return text.lstrip("0") or "0" if text.isdigit() else text


def _parse(path: Path) -> FolderManifest:
    data = read_json(path, "rewrite it with imagen-bench folder-manifest")
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or not isinstance(data.get("prompt_set"), str)
        or not isinstance(prompts, dict)
        or not prompts
        or not all(isinstance(v, str) for v in prompts.values())
    ):
        raise ValueError(
            f"{path} is not an image-folder manifest ({{'format': {FORMAT!r}, 'prompt_set': NAME, "
            "'prompts': {ID: TEXT}}); rewrite it with imagen-bench folder-manifest"
        )
    return FolderManifest(data["prompt_set"], {prompt_key(k): v for k, v in prompts.items()}, str(path))


def _known(files: list[Path]) -> FolderManifest | None:
    """The shipped manifest listing every one of `files` with the same checksum, if any."""
    names = {f.name for f in files}
    for path in sorted(KNOWN.glob("*.json")):
        listed = json.loads(path.read_text(encoding="utf-8"))["files"]
        if names <= set(listed) and all(sha256_file(f) == listed[f.name] for f in files):
            return _parse(path)
    return None


def folder_manifest(folder: Path, files: list[Path]) -> FolderManifest:
    """The manifest of `folder` (whose images are `files`): its prompt_set.json, else a known
    folder's; a folder that says nothing is refused with the command that makes it say."""
    if (folder / MANIFEST).is_file():
        return _parse(folder / MANIFEST)
    known = _known(files) if files else None
    if known is None:
        raise ValueError(
            f"{folder} does not say which prompts its images were made for (no {MANIFEST}); matching files by bare "
            f"prompt id could pair an image with another set's prompt. Write it with: imagen-bench folder-manifest "
            f"{folder} --prompt-set NAME"
        )
    return known


def manifest_record(prompt_set: str, prompts: dict[str, str]) -> dict:
    return {"format": FORMAT, "prompt_set": prompt_set, "prompts": {prompt_key(k): v for k, v in prompts.items()}}


def write_manifest(folder: Path, prompt_set: str, prompts: dict[str, str], *, force: bool = False) -> Path:
    """FOLDER/prompt_set.json (atomic); an existing one is replaced only with `force`."""
    path = folder / MANIFEST
    if path.exists() and not force:
        raise FileExistsError(
            f"{path} exists (it says the images answer {_parse(path).prompt_set!r}); pass --force to replace it"
        )
    write_json_atomic(path, manifest_record(prompt_set, prompts))
    return path
