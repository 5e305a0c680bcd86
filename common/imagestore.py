"""The image store: images mapped to prompts, from a sweep's run folder or from a plain folder
of images named by prompt id (how precomputed / closed models are compared, e.g.
`../shared/data/drawbench-sd/sd-v1-4/NNN.jpg`). The one reader human_eval and reports use."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.coco_json import coco_image_files, read_coco_json
from common.folder_manifest import folder_manifest, prompt_key
from common.runs import PromptRef

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class ImageRecord:
    """One image on disk and the prompt it is of."""

    model: str  # the run's cell id, or the name of a folder of images
    ref: PromptRef
    path: Path  # absolute
    seed: int | None = None  # None where unknown (a folder of images)


def open_image(path: str | Path):
    """The fully decoded PIL image at `path` (a context manager, like Image.open). Anything that is
    not a whole, readable image of sane size - truncated or corrupt data, a non-image, an empty
    file, a folder, a decompression-bomb header (> PIL's MAX_IMAGE_PIXELS) - is a ValueError naming
    the file."""
    from PIL import Image

    p = Path(path)
    if p.exists() and not p.is_file() and not p.is_dir():  # a FIFO or device would block the reader forever
        raise ValueError(f"cannot read image {path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            try:
                im.load()  # decode fully now so truncation is caught here, with the file name
            except BaseException:
                im.close()
                raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"cannot read image {path}: too many pixels for an image to evaluate ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image {path}: {e or type(e).__name__}") from None
    return im


def read_run(run_dir: str | Path, cell_id: str | None = None) -> list[ImageRecord]:
    """Records from RUN/manifest.parquet (optionally one cell); paths resolved against RUN."""
    run = Path(run_dir)
    manifest = run / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{run} is not a run folder: manifest.parquet is missing")
    df = pd.read_parquet(manifest)
    if cell_id is not None:
        if cell_id not in set(df.cell_id):
            raise ValueError(f"cell {cell_id!r} not in {run}; cells: {', '.join(sorted(set(df.cell_id)))}")
        df = df[df.cell_id == cell_id]
    return [
        ImageRecord(model=str(r.cell_id), ref=PromptRef.of(r), path=(run / r.path).resolve(), seed=int(r.seed))
        for r in df.itertuples()
    ]


COCO_SPLITS = ("val2014", "val2017", "train2014", "train2017")


def coco_files(root: str | Path) -> tuple[str, dict[str, Path]]:
    """(layout name, COCO image id -> its file) for a COCO folder as downloaded: annotations/
    captions_<split>.json beside <split>/ (COCO_val2014_000000203564.jpg or, for 2017,
    000000203564.jpg: the JSON's file_name is the truth), or the suite's captions.json + images/.
    The layout name is the split ("val2014") or "coco" for captions.json + images/."""
    root = Path(root)
    if (root / "captions.json").is_file():
        candidates = [("coco", root / "captions.json", root / "images")]
    else:
        candidates = [(split, root / "annotations" / f"captions_{split}.json", root / split) for split in COCO_SPLITS]
    for name, ann, images in candidates:
        if ann.is_file():  # shape checked and file names confined to the image folder (common.coco_json)
            return name, {str(i): f for i, f in coco_image_files(ann, read_coco_json(ann), images).items()}
    raise FileNotFoundError(
        f"COCO folder {root}: found neither annotations/captions_<split>.json ({', '.join(COCO_SPLITS)}) "
        "with its <split>/ image folder, nor captions.json + images/"
    )


def read_coco(root: str | Path, prompts: pd.DataFrame, prompt_set: str = "coco") -> list[ImageRecord]:
    """The COCO images of `prompts` (ids are COCO image ids), e.g. the reference side of a COCO human
    evaluation; model "coco-<split>". Every prompt must have its image: a caption without its
    photograph would silently shrink the comparison."""
    name, files = coco_files(root)
    missing = [str(i) for i in prompts["id"] if str(i) not in files or not files[str(i)].is_file()]
    if missing:
        why = (
            f", {files[missing[0]].name}" if missing[0] in files else ": not among the images its captions JSON lists"
        )
        raise ValueError(
            f"COCO folder {root}: {len(missing)} of {len(prompts)} prompts have no image there (e.g. id {missing[0]}{why})"
        )
    model = f"coco-{name}" if name != "coco" else "coco"
    return [
        ImageRecord(model=model, ref=PromptRef(prompt_set, str(i), str(c), str(p), 0), path=files[str(i)].resolve())
        for i, c, p in zip(prompts["id"], prompts["category"], prompts["prompt"])
    ]


COCO_NAME = re.compile(r"COCO_(?:train|val|test)20\d\d_(\d{12})")  # official MS-COCO 2014 file names


def file_key(path: Path) -> tuple[str, int]:
    """(prompt id, sample) a file's name gives: 007.jpg -> ("7", 0), 7_2.png -> ("7", 2), an official
    COCO name COCO_val2014_000000203564.jpg -> ("203564", 0)."""
    official = COCO_NAME.fullmatch(path.stem)
    m = re.fullmatch(r"(.+?)(?:_(\d+))?", official.group(1) if official else path.stem)
    return prompt_key(m.group(1)), int(m.group(2) or 0)


def folder_images(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]


def read_folder(
    folder: str | Path, prompts: pd.DataFrame, model: str | None = None, prompt_set: str = "drawbench"
) -> list[ImageRecord]:
    """Images named `<id>.<ext>` or `<id>_<sample>.<ext>` (id may be zero-padded, e.g. 007.jpg, or an
    official COCO name, COCO_val2014_000000203564.jpg = id 203564), for the prompts of `prompts`
    (columns id, prompt, category) among them. The folder's manifest (common.folder_manifest) says
    which prompt text each id's images were made for: a file it does not list is an error, and so is
    an id whose text differs from `prompts`' (the folder answers another prompt set or version)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = folder_images(folder)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) named by prompt id")
    manifest = folder_manifest(folder, files)
    wanted = {prompt_key(i): (p, c) for i, p, c in zip(prompts["id"], prompts["prompt"], prompts["category"])}
    records, unknown, other, seen = [], [], [], {}
    for f in files:
        key = file_key(f)
        pid = key[0]
        if pid not in manifest.prompts:
            unknown.append(f.name)
            continue
        if key in seen:  # 3.jpg beside 003.jpg: two files for one image, never one silently
            raise ValueError(f"{folder}: {seen[key]} and {f.name} are both prompt {pid} sample {key[1]}; keep one")
        seen[key] = f.name
        if pid not in wanted:
            continue  # an image of a prompt not asked for (another category, say)
        prompt, category = wanted[pid]
        if manifest.prompts[pid].strip() != str(prompt).strip():
            other.append((pid, manifest.prompts[pid], str(prompt)))
            continue
        records.append(
            ImageRecord(
                model=model or folder.name,
                ref=PromptRef(prompt_set, pid, str(category), str(prompt), key[1]),
                path=f.resolve(),
            )
        )
    if unknown:
        raise ValueError(
            f"{folder}: {len(unknown)} images match no prompt id its manifest ({manifest.source}) lists "
            f"(e.g. {unknown[0]}); name them <prompt id>.<ext>"
        )
    if other:
        pid, made_for, asked = other[0]
        theirs = f"{prompt_set} ({prompts.attrs['source']})" if "source" in prompts.attrs else prompt_set
        raise ValueError(
            f"{folder} answers prompt set {manifest.prompt_set!r}, not {prompt_set!r}: {len(other)} prompt ids name "
            f"other prompts, e.g. id {pid}: its image was made for {made_for[:60]!r} (manifest: {manifest.source}), "
            f"{theirs} id {pid} is {asked[:60]!r}"
        )
    if not records:
        raise ValueError(
            f"{folder} holds no images for the {len(wanted)} prompts asked for (its manifest lists "
            f"{len(manifest.prompts)} prompts of {manifest.prompt_set!r})"
        )
    return records
