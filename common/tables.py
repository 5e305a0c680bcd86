"""CSV out of the suite, safe to open in a spreadsheet.

A cell whose text starts with '=', '+', '-', '@', a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula (`=HYPERLINK(...)` from a prompt file's category or a
model name): OWASP's CSV-injection guidance is to prefix such a cell with a single quote, which the
spreadsheet shows as text. Only text columns are touched: numbers (a negative difference) stay
numbers. Parquet files are written exactly; use them where the exact text matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell that a spreadsheet would run as a formula prefixed by "'"."""
    out = frame.copy()
    for col in out.columns:
        if not (
            pd.api.types.is_numeric_dtype(out[col])
            or pd.api.types.is_bool_dtype(out[col])
            or pd.api.types.is_datetime64_any_dtype(out[col])
        ):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv(frame: pd.DataFrame, target: str | Path | IO[str] | None = None) -> str | None:
    """frame.to_csv(target, index=False) with formula cells neutralised (returns the text when target is None)."""
    return csv_safe(frame).to_csv(target, index=False)
