"""DrawBench: the Imagen paper's 200 prompts in 11 categories, shipped with the package and
checksum-verified at every load (see data/PROVENANCE.md)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

DATA = Path(__file__).parent / "data"
DRAWBENCH_SHA256 = "bbd557bba762bbedba0d8bd6fc5ad56d3d844a0d6a9817ca1fc43d160c02f68a"
DRAWBENCH_CATEGORIES = (
    "Colors", "Conflicting", "Counting", "DALL-E", "Descriptions", "Gary Marcus et al.",
    "Misspellings", "Positional", "Rare Words", "Reddit", "Text",
)


class ChecksumError(ValueError):
    pass


def verify_sha256(path: Path, expected: str) -> None:
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != expected:
        raise ChecksumError(f"{path}: sha256 {got} does not match the recorded {expected}; the file was changed")


def load_drawbench(categories: list[str] | tuple[str, ...] | None = None, path: Path | None = None) -> pd.DataFrame:
    """DataFrame with columns id (int, 1..200), category, prompt; optionally only some categories.
    A custom `path` is read as-is (no checksum: it is the user's own prompt file)."""
    src = path or DATA / "drawbench.csv"
    if path is None:
        verify_sha256(src, DRAWBENCH_SHA256)
    df = pd.read_csv(src, dtype={"id": int, "category": str, "prompt": str}, keep_default_na=False)
    missing = {"id", "category", "prompt"} - set(df.columns)
    if missing:
        raise ValueError(f"{src}: missing columns {sorted(missing)}; need id, category, prompt")
    if categories:
        unknown = sorted(set(categories) - set(df.category))
        if unknown:
            raise ValueError(f"unknown DrawBench categories {unknown}; choose from {', '.join(sorted(set(df.category)))}")
        df = df[df.category.isin(categories)]
    return df.reset_index(drop=True)
