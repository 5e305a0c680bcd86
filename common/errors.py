"""Errors the user can act on: the router (imagen_bench.cli) prints them as one line, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; printed as one clear line, no traceback."""


def check_choice(kind: str, value, allowed):
    """The project's one check for a name chosen from a fixed set: returns value, or raises a
    ValueError naming the allowed values (used by configs, the shapes world and the reports)."""
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; choose from {', '.join(map(str, allowed))}")
    return value
