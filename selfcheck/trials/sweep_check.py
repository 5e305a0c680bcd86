"""The kill-sweep trial's sweep and its yardsticks: the trial spec (tiny random cascade, shapes
prompts, the real shapes verifier as metric; sizes `small` for CI and `full`), a comparison of a
run folder with the uninterrupted reference (images, manifest, metrics, temp files), and a guess
of what a SIGKILL interrupted, read from the folder it left."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .harness import Check

KEY = ["cell_id", "prompt_set", "prompt_id", "sample"]
RESULT_FILES = ("cells.parquet", "metrics_image.parquet", "metrics_cell.parquet")


@dataclass(frozen=True)
class SweepSize:
    per_category: int  # shapes prompts per category (4 categories)
    samples: int
    guidance: tuple[float, ...]
    thresholding: tuple[str, ...]
    steps: int = 4  # base and sr16
    sr32_steps: int = 2
    batch_size: int = 4

    @property
    def images(self) -> int:
        return 4 * self.per_category * self.samples * len(self.guidance) * len(self.thresholding)


SIZES: dict[str, SweepSize] = {
    "small": SweepSize(
        per_category=1, samples=1, guidance=(1.0,), thresholding=("static", "dynamic")
    ),  # 8 images (CI)
    # 192 images: generation long enough next to the fixed start-up (imports, model, text encoder)
    # that a uniformly drawn kill moment often lands in it
    "full": SweepSize(per_category=4, samples=3, guidance=(1.0, 3.0), thresholding=("static", "dynamic")),
}


def spec_text(checkpoint: Path, size: SweepSize) -> str:
    g = ", ".join(f"{x:g}" for x in size.guidance)
    t = ", ".join(f'"{x}"' for x in size.thresholding)
    return f'''# written by `imagen-bench trials kill-sweep`: a tiny random cascade, {size.images} images
[sweep]
name = "kill-sweep"
samples_per_prompt = {size.samples}

[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{checkpoint}"
batch_size = {size.batch_size}
precision = "fp32"
[models.stages.sr32]
steps = {size.sr32_steps}

[[prompt_sets]]
name = "shapes"
n_per_category = {size.per_category}

[grid]
steps = [{size.steps}]
guidance = [{g}]
thresholding = [{t}]

[[metrics]]
name = "shapes_verifier"
'''


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temp_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*.tmp")) if run.is_dir() else []


def valid_records(run: Path) -> int:
    """Images recorded as finished (record + file with that sha256), as the sweep itself counts them."""
    from bench.sweep.store import RunStore

    return len(RunStore(run).records()) if (run / "shards").is_dir() else 0


def compare(ref: Path, run: Path) -> list[Check]:
    """A finished run folder against the uninterrupted reference."""
    checks = []
    ref_imgs = {str(p.relative_to(ref)): _sha(p) for p in (ref / "images").rglob("*") if p.is_file()}
    run_imgs = (
        {str(p.relative_to(run)): _sha(p) for p in (run / "images").rglob("*") if p.is_file()}
        if (run / "images").is_dir()
        else {}
    )
    same = sum(run_imgs.get(k) == v for k, v in ref_imgs.items())
    extra = sorted(set(run_imgs) - set(ref_imgs))
    checks.append(
        Check(
            "images byte-identical (sha256)",
            same == len(ref_imgs) and not extra,
            f"{same}/{len(ref_imgs)} identical, {len(extra)} extra files" + (f" (e.g. {extra[0]})" if extra else ""),
        )
    )
    if (run / "manifest.parquet").is_file():
        a, b = pd.read_parquet(ref / "manifest.parquet"), pd.read_parquet(run / "manifest.parquet")
        dup = int(b.duplicated(KEY).sum())
        ka, kb = set(map(tuple, a[KEY].values.tolist())), set(map(tuple, b[KEY].values.tolist()))
        equal = a.reset_index(drop=True).equals(b.reset_index(drop=True))
        checks.append(
            Check(
                "manifest rows = reference",
                equal and dup == 0,
                f"{len(b)} rows (reference {len(a)}), {dup} duplicate, {len(ka - kb)} missing, {len(kb - ka)} extra, "
                f"checksums {'equal' if equal else 'DIFFER'}",
            )
        )
    else:
        checks.append(Check("manifest rows = reference", False, "manifest.parquet missing"))
    differ = []
    for name in RESULT_FILES:
        if not (run / name).is_file() or not pd.read_parquet(ref / name).equals(pd.read_parquet(run / name)):
            differ.append(name)
    if not (run / "summary.json").is_file() or json.loads((ref / "summary.json").read_text()) != json.loads(
        (run / "summary.json").read_text()
    ):
        differ.append("summary.json")
    checks.append(
        Check(
            "metrics and results = reference",
            not differ,
            "cells, per-image and per-cell metrics, summary.json equal"
            if not differ
            else f"differ: {', '.join(differ)}",
        )
    )
    tmp = temp_files(run)
    checks.append(
        Check("no leftover temp files", not tmp, f"{len(tmp)} temp files" + (f": {', '.join(tmp[:3])}" if tmp else ""))
    )
    return checks


def write_marks(run: Path) -> frozenset[str]:
    """Traces a kill inside a write leaves: temp files, images without a record, torn record lines."""
    marks = {f"tmp:{t}" for t in temp_files(run)}
    recorded = set()
    for f in sorted((run / "shards").glob("images-rank*.jsonl")) if (run / "shards").is_dir() else []:
        data = f.read_bytes()
        if data and not data.endswith(b"\n"):
            marks.add(f"torn-end:{f.name}:{len(data)}")
        for i, line in enumerate(data.decode(errors="replace").splitlines()):
            try:
                recorded.add(json.loads(line)["path"])
            except (json.JSONDecodeError, KeyError, TypeError):
                marks.add(f"torn-line:{f.name}:{i}")
    files = (
        {str(p.relative_to(run)) for p in (run / "images").rglob("*") if p.is_file() and not p.name.endswith(".tmp")}
        if (run / "images").is_dir()
        else set()
    )
    return frozenset(marks | {f"unrecorded:{x}" for x in files - recorded})


def kill_phase(run: Path, elapsed: float, startup: float, before: tuple[int, frozenset[str]], total: int) -> str:
    """What the kill most likely interrupted, from the state it left compared with the state
    before the cycle (`before` = (valid records, write marks)): a write (new temp file, image
    without its record, torn record line), start-up, generation, or the tail (manifest, scoring,
    results)."""
    if write_marks(run) - before[1]:
        return "write"
    records = valid_records(run)
    if records == before[0] and elapsed < startup:
        return "start-up"
    return "generation" if records < total else "tail"
