"""Where a study's images and prompts come from, as given on the command line.

Image sources (read only through common.imagestore):
    run:DIR[@CELL]   a sweep run folder: one cell by id, or by its settings (run:DIR@guidance=5,thresholding=static)
    folder:DIR       a folder of images named by prompt id (e.g. ../shared/data/drawbench-sd/sd-v1-4)
    coco:DIR         COCO as downloaded (DIR/annotations/captions_val2014.json + DIR/val2014/COCO_val2014_*.jpg,
                     or 2017): the photographs of the chosen captions, the reference of Table 2
Prompt sets:
    drawbench                  all 200 DrawBench prompts
    drawbench:CAT[,CAT...]     some DrawBench categories
    coco[:KEY=VALUE,...]       COCO captions sampled with a seed, as a sweep's coco prompt set: n, seed,
                               no_people, path (a captions_*.json as downloaded; default the shipped 30K
                               val2014 captions). Each caption's category is coco-no-people or
                               coco-people (drawbench.coco.people_subset), so the report gives Table 2's
                               rows for all captions and for those without people.
    parti[:KEY=VALUE,...]      PartiPrompts, as a sweep's parti prompt set: categories, challenges (A|B|C)
    geneval[:tags=A|B]         GenEval's prompts, as a sweep's geneval prompt set (category = tag)
    csv:PATH                   your own prompts (columns id, category, prompt)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from common.imagestore import ImageRecord, read_coco, read_folder, read_run
from drawbench import load_drawbench
from drawbench.coco import people_subset
from drawbench.sets import load_prompt_set, options_from_text

SOURCE_FORMS = "run:DIR[@CELL], run:DIR@KEY=VALUE[,KEY=VALUE...], folder:DIR or coco:DIR"
PROMPT_FORMS = (
    "drawbench, drawbench:CAT[,CAT...], coco[:n=N,seed=S,no_people=true,path=CAPTIONS.json], "
    "parti[:categories=A|B,challenges=C|D], geneval[:tags=A|B] or csv:PATH"
)
SUITES = ("parti", "geneval")  # shipped suites read with their sweep options (drawbench.sets)


@dataclass(frozen=True)
class Source:
    spec: str  # as given
    kind: str  # "run" | "folder" | "coco"
    path: Path
    cell: str | None = None


def parse_source(spec: str) -> Source:
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("run", "folder", "coco") or not rest:
        raise ValueError(f"image source {spec!r} not understood; use {SOURCE_FORMS}")
    cell = None
    if kind == "run" and "@" in rest:
        rest, cell = rest.rsplit("@", 1)
        if not cell:
            raise ValueError(f"image source {spec!r}: empty cell after '@'; use {SOURCE_FORMS}")
    return Source(spec=spec, kind=kind, path=Path(rest).expanduser().resolve(), cell=cell)


def load_prompts(spec: str) -> tuple[pd.DataFrame, str]:
    """(prompts with columns id, category, prompt; prompt-set name) for a --prompts value."""
    kind, sep, rest = spec.partition(":")
    if kind == "drawbench":
        cats = [c.strip() for c in rest.split(",") if c.strip()] if sep else None
        return load_drawbench(cats), "drawbench"
    if kind == "csv" and rest:
        path = Path(rest).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"prompt file {path} does not exist")
        return load_drawbench(path=path), path.stem
    if kind == "coco":
        prompts = load_prompt_set("coco", options_from_text("coco", rest))
        return prompts.assign(category=prompts["prompt"].map(people_subset)), "coco"
    if kind in SUITES:
        return load_prompt_set(kind, options_from_text(kind, rest)), kind
    raise ValueError(f"prompt set {spec!r} not understood; use {PROMPT_FORMS}")


def read_source(source: Source, prompts: pd.DataFrame, prompt_set: str) -> list[ImageRecord]:
    """The source's images for the given prompts (other prompts' images are ignored)."""
    if source.kind == "run":
        cell = select_cell(source) if source.cell and "=" in source.cell else source.cell
        records = [r for r in read_run(source.path, cell) if r.ref.prompt_set == prompt_set]
        cells = sorted({r.model for r in records})  # a run record's model is its cell id
        if len(cells) > 1:  # one side of a study is one model at one setting, never a mix of cells
            raise ValueError(
                f"{source.spec}: the run has {len(cells)} cells with {prompt_set} images; choose one as "
                f"run:{source.path}@CELL, CELL one of: {', '.join(cells)}"
            )
    elif source.kind == "coco":
        records = read_coco(source.path, prompts, prompt_set)
    else:  # the folder's manifest says which prompts its images answer: another set's folder is refused
        records = read_folder(source.path, prompts, prompt_set=prompt_set)
    wanted = {str(i) for i in prompts["id"]}
    category = dict(zip(prompts["id"].astype(str), prompts["category"].astype(str)))
    # the study's prompt set decides each prompt's category (a run's manifest says "coco" for every caption)
    chosen = [
        replace(r, ref=replace(r.ref, category=category[r.ref.prompt_id]))
        for r in records
        if r.ref.prompt_id in wanted
    ]
    if not chosen:
        raise ValueError(f"{source.spec}: no images for the chosen prompts ({len(wanted)} {prompt_set} prompts)")
    return chosen


def select_cell(source: Source) -> str:
    """The one cell of the run whose settings (cells.parquet columns: model, guidance, thresholding,
    ...) equal every KEY=VALUE of the selector; none or several is refused, listing the candidates."""
    cells = pd.read_parquet(source.path / "cells.parquet")
    wanted = {}
    for part in source.cell.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in cells.columns:
            raise ValueError(
                f"{source.spec}: selector {part!r} must be KEY=VALUE with KEY one of {', '.join(map(str, cells.columns))}"
            )
        wanted[key.strip()] = value.strip()

    def same(actual, text: str) -> bool:
        if pd.isna(actual):
            return text.lower() in ("", "none", "nan")
        try:
            return float(actual) == float(text)
        except (TypeError, ValueError):
            return str(actual) == text

    hits = [r.cell_id for r in cells.itertuples() if all(same(getattr(r, k), v) for k, v in wanted.items())]
    if len(hits) != 1:
        raise ValueError(
            f"{source.spec}: {len(hits)} cells match {source.cell!r} (need exactly one); cells: "
            + ", ".join(sorted(hits or cells.cell_id))
        )
    return hits[0]


def by_prompt(records: list[ImageRecord], images_per_set: int, source: str = "source") -> dict[str, list[ImageRecord]]:
    """prompt id -> exactly `images_per_set` records (the first ones in sample order). A prompt with
    fewer is refused, naming it: a set of fewer images is not the design the study says it has."""
    out: dict[str, list[ImageRecord]] = {}
    for r in sorted(records, key=lambda r: (r.ref.prompt_id, r.ref.sample)):
        out.setdefault(r.ref.prompt_id, [])
        if len(out[r.ref.prompt_id]) < images_per_set:
            out[r.ref.prompt_id].append(r)
    short = {pid: len(recs) for pid, recs in out.items() if len(recs) < images_per_set}
    if short:
        first = ", ".join(f"{pid} ({k})" for pid, k in sorted(short.items())[:5])
        raise ValueError(
            f"{source}: {len(short)} of {len(out)} prompts have fewer than {images_per_set} images per set "
            f"(prompt id (images): {first}{', ...' if len(short) > 5 else ''}); generate more samples per prompt "
            f"or choose another design with --images-per-set N"
        )
    return out


def distinct_models(
    a: Source, recs_a: dict[str, list[ImageRecord]], b: Source, recs_b: dict[str, list[ImageRecord]]
) -> tuple[dict[str, list[ImageRecord]], dict[str, list[ImageRecord]]]:
    """The two sides of a study under names that tell them apart. Two sources whose models share a
    name (folders X/sd and Y/sd, one cell id in two runs) are named by the shortest tail of their
    paths that differs (X/sd, Y/sd); the same images on both sides are refused, naming both."""
    name_a, name_b = _model(recs_a), _model(recs_b)
    if name_a != name_b:
        return recs_a, recs_b
    if a.path == b.path:
        raise ValueError(
            f"--a {a.spec} and --b {b.spec} are the same images ({a.path}, model {name_a!r}); "
            "compare two different models"
        )
    tail_a, tail_b = _distinct_tails(a.path, b.path)
    return _renamed(recs_a, a.path, tail_a), _renamed(recs_b, b.path, tail_b)


def _model(recs: dict[str, list[ImageRecord]]) -> str:
    return next(iter(recs.values()))[0].model


def _distinct_tails(pa: Path, pb: Path) -> tuple[str, str]:
    """The shortest trailing parts of two different paths that differ: (X/sd, Y/sd) for /d/X/sd, /d/Y/sd."""
    k = 1
    while pa.parts[-k:] == pb.parts[-k:]:
        k += 1
    return str(Path(*pa.parts[-k:])), str(Path(*pb.parts[-k:]))


def _renamed(recs: dict[str, list[ImageRecord]], path: Path, tail: str) -> dict[str, list[ImageRecord]]:
    """A folder's model is its folder's name, so its tail replaces it; a run's cell keeps its id after '@'."""

    def name(model: str) -> str:
        return tail if model == path.name else f"{tail}@{model}"

    return {pid: [replace(r, model=name(r.model)) for r in rs] for pid, rs in recs.items()}


@dataclass(frozen=True)
class StudySources:
    """What a study rates, resolved: the prompt set's name and each side's source with its sets of
    images by prompt id (b: None for a one-source protocol), the two sides' models told apart."""

    prompt_set: str
    a: Source
    recs_a: dict[str, list[ImageRecord]]
    b: Source | None = None
    recs_b: dict[str, list[ImageRecord]] | None = None

    def models(self, prompt_id: str) -> dict[str, dict[str, str]]:
        """side -> {"source": as resolved (an absolute path), "model": the side's model at `prompt_id`}:
        a model is its source, whatever its folder is called."""
        return {
            side: {
                "source": f"{src.kind}:{src.path}" + (f"@{src.cell}" if src.cell else ""),
                "model": recs[prompt_id][0].model,
            }
            for side, src, recs in (("a", self.a, self.recs_a), ("b", self.b, self.recs_b))
            if src is not None
        }


def study_sources(a: str, b: str | None, prompts: str, images_per_set: int) -> StudySources:
    """The --prompts set and the --a / --b sources read for it, `images_per_set` images per prompt."""
    frame, prompt_set = load_prompts(prompts)
    src_a = parse_source(a)
    src_b = parse_source(b) if b else None
    recs_a = by_prompt(read_source(src_a, frame, prompt_set), images_per_set, a)
    if src_b is None:
        return StudySources(prompt_set, src_a, recs_a)
    recs_b = by_prompt(read_source(src_b, frame, prompt_set), images_per_set, b)
    recs_a, recs_b = distinct_models(src_a, recs_a, src_b, recs_b)
    return StudySources(prompt_set, src_a, recs_a, src_b, recs_b)
