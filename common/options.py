"""argparse `type=` functions shared by every command: an out-of-range number is refused while the
command line is parsed, as one line naming the option and the allowed range
(`imagen-bench report: error: argument --resamples: must be an integer in [100, 100000], got '-1'`),
before anything is read, computed or written."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# Seeds: non-negative 32-bit. numpy's legacy RandomState and many tools accept no more, every seed
# the suite records (run.json, study.json, report.json) stays an ordinary JSON integer, and a
# negative seed is what a typo ("--seed -1" for "--seed 1") gives, never an intended value.
SEED_MAX = 2**32 - 1


def int_in(low: int, high: int) -> Callable[[str], int]:
    """A type function accepting the integers in [low, high] (written as plain integers: 1000, not 1e3)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"  # argparse names the type in some messages
    return parse


seed_int = int_in(0, SEED_MAX)  # every command's --seed
