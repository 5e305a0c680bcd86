"""MS-COCO captions as a prompt set: the shipped 30K captions (checksum-verified at load) or an
official COCO captions JSON (e.g. `captions_val2014.json`), sampled with a seed, optionally with
the Imagen paper's "no people" filter (sec. 4.3: COCO human evaluation also on captions without
people).

The paper does not publish its word list; ours (PEOPLE_WORDS) drops a caption when any whole word
(case-insensitive, after stripping punctuation) is a person noun, a role noun that implies a person
in COCO captions (skier, batter, ...), or a personal pronoun. It is deliberately broad: a false
drop costs one caption out of 30K, a missed person spoils a "no people" comparison.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from common.coco_json import coco_captions, read_coco_json

from .prompts import DATA, verify_sha256

COCO_30K_SHA256 = "42c57b188c8f1f8a77cddfa11cde89e83fcbdd4dcd4fc6c840fb4e046d395383"

PEOPLE_WORDS = frozenset(
    """
    person persons people man men woman women boy boys girl girls child children kid kids baby babies
    toddler toddlers infant guy guys lady ladies gentleman gentlemen adult adults teen teens teenager
    teenagers youngster human humans someone somebody anyone everyone crowd crowds family families
    couple couples friend friends mother mom father dad son daughter brother sister wife husband bride
    groom player players skier skiers surfer surfers skateboarder skateboarders snowboarder snowboarders
    rider riders biker bikers cyclist cyclists batter batters catcher catchers pitcher pitchers umpire
    umpires athlete athletes tourist tourists pedestrian pedestrians driver drivers chef chefs cook
    cooks worker workers officer officers policeman policemen soldier soldiers student students
    teacher vendor vendors spectators audience fans team he she him her his hers they them their
    himself herself themselves
    """.split()
)


# Category names: the whole set, and the paper's "no people" subset (a caption mentioning no one)
ALL_CAPTIONS, NO_PEOPLE, WITH_PEOPLE = "coco", "coco-no-people", "coco-people"


def mentions_people(caption: str) -> bool:
    return any(w in PEOPLE_WORDS for w in re.findall(r"[a-z]+", caption.lower()))


def people_subset(caption: str) -> str:
    """NO_PEOPLE or WITH_PEOPLE: the category a COCO human evaluation gives each caption, so its
    report can give Table 2's rows for all captions and for those without people."""
    return WITH_PEOPLE if mentions_people(caption) else NO_PEOPLE


def _read_shipped(path: Path) -> pd.DataFrame:
    verify_sha256(path, COCO_30K_SHA256)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.DataFrame({"id": df["image_id"].str.lstrip("0").replace("", "0"), "prompt": df["prompt"].str.strip()})


def _read_json(path: Path) -> pd.DataFrame:
    """Official COCO captions JSON: {"annotations": [{"image_id", "id", "caption"}, ...]}. The first
    caption per image (lowest annotation id) is used, so the set has one prompt per image."""
    captions = coco_captions(path, read_coco_json(path))  # every entry's shape checked, naming the file
    if not captions:
        raise ValueError(f"{path} holds no captions (its annotations list is empty)")
    ann = pd.DataFrame(captions, columns=["id", "image_id", "caption"])
    ann = ann.sort_values(["image_id", "id"]).drop_duplicates("image_id")
    return pd.DataFrame({"id": ann["image_id"].astype(str), "prompt": ann["caption"].str.strip()})


def load_coco_captions(
    n: int | None = None, seed: int = 0, no_people: bool = False, path: str | Path | None = None
) -> pd.DataFrame:
    """DataFrame(id: str COCO image id, category, prompt). `n` captions sampled without replacement
    with `seed` (all when None), after the optional no-people filter; rows sorted by id so the
    same (n, seed, filter) always gives the same set. category is "coco" or "coco-no-people"."""
    src = Path(path) if path else DATA / "coco_30k_captions.csv"
    if not src.is_file():
        raise FileNotFoundError(f"COCO captions file {src} does not exist")
    if path is None:
        df = _read_shipped(src)
    else:
        df = _read_json(src) if src.suffix.lower() == ".json" else _read_csv(src)
    if no_people:
        df = df[~df["prompt"].map(mentions_people)]
    if n is not None:
        if not 0 < n <= len(df):
            raise ValueError(
                f"coco: n={n} but {len(df)} captions are available{' after the no-people filter' if no_people else ''}"
            )
        df = df.sample(n=n, random_state=seed)
    df = df.assign(category=NO_PEOPLE if no_people else ALL_CAPTIONS)
    df = df.sort_values("id", key=lambda s: s.str.zfill(12)).reset_index(drop=True)
    return df[["id", "category", "prompt"]]


def _read_csv(path: Path) -> pd.DataFrame:
    """A user's CSV in the shipped layout (image_id, prompt); read as-is, no checksum."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"image_id", "prompt"} <= set(df.columns):
        raise ValueError(f"{path}: need columns image_id, prompt (got {', '.join(df.columns)})")
    return pd.DataFrame({"id": df["image_id"].str.lstrip("0").replace("", "0"), "prompt": df["prompt"].str.strip()})
