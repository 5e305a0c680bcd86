"""DrawBench: the Imagen paper's 200 prompts in 11 categories, shipped with the package and
checksum-verified at every load (see data/PROVENANCE.md)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pandas as pd

DATA = Path(__file__).parent / "data"
DRAWBENCH_SHA256 = "bbd557bba762bbedba0d8bd6fc5ad56d3d844a0d6a9817ca1fc43d160c02f68a"
DRAWBENCH_CATEGORIES = (
    "Colors",
    "Conflicting",
    "Counting",
    "DALL-E",
    "Descriptions",
    "Gary Marcus et al.",
    "Misspellings",
    "Positional",
    "Rare Words",
    "Reddit",
    "Text",
)


class ChecksumError(ValueError):
    pass


def verify_sha256(path: Path, expected: str) -> None:
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != expected:
        raise ChecksumError(f"{path}: sha256 {got} does not match the recorded {expected}; the file was changed")


def read_prompt_csv(src: Path) -> pd.DataFrame:
    """A prompt file (columns id, category, prompt; ids distinct integers, at least one row). Every
    problem is a ValueError naming the file and the column or row."""
    try:
        with warnings.catch_warnings():  # a first row longer than the header would silently become the index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(src, dtype=str, keep_default_na=False, encoding="utf-8", index_col=False)
    except FileNotFoundError:
        raise
    except (
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        ValueError,
        OSError,
    ) as e:
        raise ValueError(f"{src} is not a readable prompt CSV (columns id, category, prompt): {e}") from None
    missing = {"id", "category", "prompt"} - set(df.columns)
    if missing:
        raise ValueError(
            f"{src}: missing columns {sorted(missing)}; need id, category, prompt (got {list(df.columns)})"
        )
    if df.empty:
        raise ValueError(f"{src} holds no prompts (a header but no rows)")
    ids = df["id"].str.strip()
    bad = [i for i, v in enumerate(ids) if not (v.isascii() and v.isdigit() and len(v) <= 18)]
    if bad:
        raise ValueError(
            f"{src}: column 'id' must hold non-negative integers; row {bad[0] + 1} has {df['id'].iloc[bad[0]]!r}"
        )
    df["id"] = ids.astype("int64")
    df.attrs["source"] = str(src)  # named by errors about these prompts (e.g. images matching no id)
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        raise ValueError(f"{src}: duplicate id {int(dup.iloc[0])} in column 'id'; every prompt needs its own id")
    return df


def load_drawbench(categories: list[str] | tuple[str, ...] | None = None, path: Path | None = None) -> pd.DataFrame:
    """DataFrame with columns id (int, 1..200), category, prompt; optionally only some categories.
    A custom `path` is read as-is (no checksum: it is the user's own prompt file)."""
    src = path or DATA / "drawbench.csv"
    if path is None:
        verify_sha256(src, DRAWBENCH_SHA256)
    df = read_prompt_csv(src)
    if categories:
        unknown = sorted(set(categories) - set(df.category))
        if unknown:
            raise ValueError(
                f"unknown DrawBench categories {unknown}; choose from {', '.join(sorted(set(df.category)))}"
            )
        df = df[df.category.isin(categories)]
    return df.reset_index(drop=True)
