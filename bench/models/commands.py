"""`imagen-bench folder-manifest FOLDER --prompt-set NAME`: say which prompts a folder of images
(a `kind = "folder"` model, a study's folder:DIR side) was made for, after checking every image
against the set (common.folder_manifest has the why and the format)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.folder_manifest import prompt_key, write_manifest
from common.imagestore import file_key, folder_images
from drawbench.sets import load_prompt_set, options_from_text


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Writes FOLDER/prompt_set.json: the set's name and the "
        "text of each prompt the folder has images for; sweeps and studies then refuse the folder with any "
        "other prompt set or version.",
    )
    p.add_argument("folder", type=Path, help="folder of images named <prompt id>.<ext> or <prompt id>_<sample>.<ext>")
    p.add_argument(
        "--prompt-set",
        required=True,
        help="the prompt set the images were made for (drawbench, coco, parti, geneval, shapes)",
    )
    p.add_argument(
        "--options",
        default="",
        metavar="KEY=VALUE,...",
        help="the prompt set's options, as in a spec's [[prompt_sets]] table, e.g. path=my_prompts.csv",
    )
    p.add_argument("--force", action="store_true", help="replace an existing prompt_set.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        raise FileNotFoundError(f"image folder {args.folder} does not exist")
    prompts = load_prompt_set(args.prompt_set, options_from_text(args.prompt_set, args.options))
    text = {prompt_key(i): p for i, p in zip(prompts["id"], prompts["prompt"])}
    files = folder_images(args.folder)
    ids = {f.name: file_key(f)[0] for f in files}
    unknown = sorted(name for name, pid in ids.items() if pid not in text)
    if not files or unknown:
        raise ValueError(
            f"{args.folder}: {len(unknown)} of {len(files)} images match no id of prompt set {args.prompt_set!r}"
            + (f" (e.g. {unknown[0]})" if unknown else "")
            + "; is it the set the images were made for?"
        )
    made_for = {pid: text[pid] for pid in sorted(set(ids.values()))}
    path = write_manifest(args.folder, args.prompt_set, made_for, force=args.force)
    print(f"{path}: {len(files)} images of {len(made_for)} {args.prompt_set} prompts")
    return 0
