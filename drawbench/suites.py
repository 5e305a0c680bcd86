"""PartiPrompts and GenEval: the prompt suites later text-to-image papers report on, shipped with
the package like DrawBench and checksum-verified at every load (see data/PROVENANCE.md).

    load_parti(categories=["Animals"], challenges=["Quantity"])  # both given: prompts in both
    load_geneval(tags=["counting"])

Both return DataFrame(id: str, category: str, prompt: str), the prompt-set contract of
drawbench.sets. Ids are stable: Parti = 1-based row of PartiPrompts.tsv (header not counted),
GenEval = 1-based line of its evaluation_metadata.jsonl. category is Parti's Category and
GenEval's tag. The rest of each record (Parti's challenge and note; GenEval's tag, include and
exclude as JSON text) is in parti_metadata() / geneval_metadata(), keyed by the same ids.
Prompts are stripped of surrounding spaces (ten Parti prompts have them).
"""

from __future__ import annotations

import csv
import json

import pandas as pd

from . import prompts

PARTI_FILE, GENEVAL_FILE = "PartiPrompts.tsv", "geneval_evaluation_metadata.jsonl"
PARTI_SHA256 = "fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb"
GENEVAL_SHA256 = "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"
PARTI_CATEGORIES = (
    "Abstract",
    "Animals",
    "Artifacts",
    "Arts",
    "Food & Beverage",
    "Illustrations",
    "Indoor Scenes",
    "Outdoor Scenes",
    "People",
    "Produce & Plants",
    "Vehicles",
    "World Knowledge",
)
PARTI_CHALLENGES = (
    "Basic",
    "Complex",
    "Fine-grained Detail",
    "Imagination",
    "Linguistic Structures",
    "Perspective",
    "Properties & Positioning",
    "Quantity",
    "Simple Detail",
    "Style & Format",
    "Writing & Symbols",
)
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")  # GenEval's task order


def _check(kind: str, wanted: list[str] | tuple[str, ...] | None, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(wanted or ()) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; choose from {', '.join(allowed)}")


def parti_metadata() -> pd.DataFrame:
    """All 1,632 PartiPrompts: columns id, category, prompt, challenge, note ("" where none)."""
    src = prompts.DATA / PARTI_FILE
    prompts.verify_sha256(src, PARTI_SHA256)
    # QUOTE_NONE: the file is plain TSV; with CSV quoting one prompt ('"G I G G L E" painted ...') would lose its quotes
    df = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="utf-8")
    out = pd.DataFrame(
        {
            "id": [str(i) for i in range(1, len(df) + 1)],
            "category": df["Category"],
            "prompt": df["Prompt"].str.strip(),
            "challenge": df["Challenge"],
            "note": df["Note"],
        }
    )
    out.attrs["source"] = str(src)
    return out


def load_parti(
    categories: list[str] | tuple[str, ...] | None = None, challenges: list[str] | tuple[str, ...] | None = None
) -> pd.DataFrame:
    """PartiPrompts as DataFrame(id, category, prompt); optionally only some categories and/or
    challenge aspects (a prompt is kept when it matches both selections)."""
    _check("Parti categories", categories, PARTI_CATEGORIES)
    _check("Parti challenges", challenges, PARTI_CHALLENGES)
    df = parti_metadata()
    keep = pd.Series(True, index=df.index)
    if categories:
        keep &= df["category"].isin(categories)
    if challenges:
        keep &= df["challenge"].isin(challenges)
    if not keep.any():  # e.g. no Abstract prompt is Complex
        raise ValueError(
            f"no PartiPrompts are in categories {sorted(categories or ())} with challenges {sorted(challenges or ())}"
        )
    return _select(df, keep)


def geneval_metadata() -> pd.DataFrame:
    """All 553 GenEval prompts: columns id, category (= tag), prompt, tag, include, exclude; include
    and exclude are JSON text (exclude "[]" where the record has none), as GenEval's scorer reads them."""
    src = prompts.DATA / GENEVAL_FILE
    prompts.verify_sha256(src, GENEVAL_SHA256)
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines()]
    out = pd.DataFrame(
        {
            "id": [str(i) for i in range(1, len(rows) + 1)],
            "category": [r["tag"] for r in rows],
            "prompt": [r["prompt"].strip() for r in rows],
            "tag": [r["tag"] for r in rows],
            "include": [json.dumps(r["include"]) for r in rows],
            "exclude": [json.dumps(r.get("exclude", [])) for r in rows],
        }
    )
    out.attrs["source"] = str(src)
    return out


def load_geneval(tags: list[str] | tuple[str, ...] | None = None) -> pd.DataFrame:
    """GenEval as DataFrame(id, category = tag, prompt); optionally only some tags."""
    _check("GenEval tags", tags, GENEVAL_TAGS)
    df = geneval_metadata()
    return _select(df, df["tag"].isin(tags) if tags else pd.Series(True, index=df.index))


def _select(df: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    out = df.loc[keep, ["id", "category", "prompt"]].reset_index(drop=True)
    out.attrs["source"] = df.attrs["source"]  # named by errors about these prompts (e.g. images matching no id)
    return out


_NUMBERS = {
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
    10: "ten",
}


def geneval_questions(include: str | list) -> list[str]:
    """TIFA / DSG-style yes/no questions from a GenEval prompt's `include` metadata (JSON text or the
    parsed list): one per object (its presence, or its count when more than one), one per colour,
    one per relative position. GenEval's own `exclude` (e.g. "not three clocks") is left out: a
    yes/no question about an absence reads ambiguously to a VQA model.

    [{"class": "teddy bear", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}] ->
    ['Is there a teddy bear in the image?', 'Is there a dog in the image?', 'Is the dog right of the teddy bear?']"""
    objects = json.loads(include) if isinstance(include, str) else list(include)
    questions = []
    for obj in objects:
        name, count = obj["class"], int(obj.get("count", 1))
        article = "an" if name[0].lower() in "aeiou" else "a"
        questions.append(
            f"Is there {article} {name} in the image?"
            if count == 1
            else f"Are there {_NUMBERS.get(count, count)} {name}{'' if name.endswith('s') else 's'} in the image?"
        )
    for obj in objects:
        if "color" in obj:
            questions.append(f"Is the {obj['class']} {obj['color']}?")
    for obj in objects:
        if "position" in obj:
            relation, other = obj["position"]
            questions.append(f"Is the {obj['class']} {relation} the {objects[int(other)]['class']}?")
    return questions
