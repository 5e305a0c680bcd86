"""Seeded mutations of the inputs users write, as data: each table maps a mutation name to a function
`(path, rng) -> Mutated` that rewrites the file (or folder) in place and says what it did.

    bytes      any file: empty, garbage, truncated, a flipped byte, BOM, invalid UTF-8, NULs
    structure  JSON / TOML documents: delete / rename / duplicate keys, wrong types, out-of-range
               numbers, unknown names, unicode
    csv        prompt files: drop / rename / add columns, duplicate ids, bad ids, empty prompts, ragged rows
    image      one image of a folder: corrupt, truncated PNG / JPEG, modes L RGBA P I;16 CMYK, zero
               bytes, a decompression-bomb header, text named .png, a folder named .png, an unmatched name
    checkpoint tensors of the wrong shape, missing / extra tensors, a corrupt safetensors header,
               truncated or deleted weights, flipped weight bytes, a deleted stage folder
"""

from __future__ import annotations

import copy
import csv
import io
import json
import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fuzz_toml import dumps_toml

ERROR, ANY = "error", "any"  # what a mutation must give: exit 2, or exit 0 / exit 2 (harmless or converted)


@dataclass(frozen=True)
class Mutated:
    detail: str  # what was done, for the failure report
    expect: str = ANY
    mentions: tuple[str, ...] = ()  # an error must name one of these (the file's name always counts)


Mutation = Callable[[Path, random.Random], Mutated]

# -- bytes ---------------------------------------------------------------------------------------


def _bytes(fn: Callable[[bytes, random.Random], bytes], expect: str, what: str) -> Mutation:
    def apply(path: Path, rng: random.Random) -> Mutated:
        path.write_bytes(fn(path.read_bytes(), rng))
        return Mutated(f"{what} ({path.name})", expect)

    return apply


def _at(data: bytes, rng: random.Random) -> int:
    return rng.randrange(max(len(data), 1))


BYTES: dict[str, Mutation] = {
    "empty": _bytes(lambda d, r: b"", ERROR, "emptied"),
    "garbage": _bytes(lambda d, r: r.randbytes(r.randint(16, 512)), ERROR, "replaced by random bytes"),
    "truncated": _bytes(lambda d, r: d[: r.randrange(1, max(len(d), 2))], ANY, "truncated"),
    "flip_byte": _bytes(
        lambda d, r: (lambda i: d[:i] + bytes([d[i] ^ 0xFF]) + d[i + 1 :])(_at(d, r)) if d else d,
        ANY,
        "one byte flipped",
    ),
    "bom": _bytes(lambda d, r: b"\xef\xbb\xbf" + d, ANY, "UTF-8 BOM prepended"),
    "invalid_utf8": _bytes(
        lambda d, r: (lambda i: d[:i] + b"\xff\xfe\xc3(" + d[i:])(_at(d, r)), ANY, "invalid UTF-8 inserted"
    ),
    "nul": _bytes(lambda d, r: (lambda i: d[:i] + b"\x00" * 4 + d[i:])(_at(d, r)), ANY, "NUL bytes inserted"),
}

# -- structure (JSON / TOML documents) -----------------------------------------------------------

UNICODE = "ünïcødé ☃ 𝕏 \u202e‮ 名前"


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts / lists (list items by index)."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for k in path[:-1]:
        doc = doc[k]
    return doc


def _wrong_type(v: Any, rng: random.Random) -> Any:
    choices = ["text", 7, 2.5, True, [1, "x"], {"k": 1}]
    if isinstance(v, str):
        choices.remove("text")
    elif isinstance(v, bool):
        choices.remove(True)
    elif isinstance(v, (list, dict)):
        choices = [c for c in choices if type(c) is not type(v)]
    return rng.choice(choices)


def _out_of_range(v: Any, rng: random.Random) -> Any:
    return rng.choice([-1, 0, 10**12, -3.5, 1e300, float("inf"), float("nan")])


def _unknown_name(v: Any, rng: random.Random) -> Any:
    return f"no-such-{v}" if isinstance(v, str) else rng.choice(["no-such-name", "../../etc/passwd"])


def _unicode(v: Any, rng: random.Random) -> Any:
    return (v + " " + UNICODE) if isinstance(v, str) else UNICODE


def _edit_value(fn: Callable[[Any, random.Random], Any], leaves: Callable[[Any], bool]) -> Callable:
    def edit(doc: Any, rng: random.Random) -> tuple[str, tuple]:
        paths = [p for p in _paths(doc) if leaves(_parent(doc, p)[p[-1]])] or _paths(doc)
        p = rng.choice(paths)
        parent = _parent(doc, p)
        old = parent[p[-1]]
        new = parent[p[-1]] = fn(old, rng)
        values = tuple(v for v in (old, new) if isinstance(v, str) and v)
        return f"{_dotted(p)}: {_short(old)} -> {_short(new)}", _names(p) + values

    return edit


def _delete(doc: Any, rng: random.Random) -> tuple[str, tuple]:
    p = rng.choice(_paths(doc))
    del _parent(doc, p)[p[-1]]
    return f"deleted {_dotted(p)}", _names(p)


def _rename(doc: Any, rng: random.Random) -> tuple[str, tuple]:
    p = rng.choice([p for p in _paths(doc) if isinstance(p[-1], str)] or _paths(doc))
    parent = _parent(doc, p)
    if isinstance(p[-1], str):
        parent[p[-1] + "_typo"] = parent.pop(p[-1])
        return f"renamed {_dotted(p)} to {p[-1]}_typo", _names(p) + (p[-1] + "_typo",)
    return _delete(doc, rng)


def _duplicate(doc: Any, rng: random.Random) -> tuple[str, tuple]:
    lists = [p for p in _paths(doc) if isinstance(_parent(doc, p)[p[-1]], list) and _parent(doc, p)[p[-1]]]
    if not lists:
        return _delete(doc, rng)
    p = rng.choice(lists)
    items = _parent(doc, p)[p[-1]]
    items.append(copy.deepcopy(rng.choice(items)))
    return f"duplicated an item of {_dotted(p)}", _names(p)


STRUCTURE_EDITS: dict[str, Callable] = {
    "delete_key": _delete,
    "rename_key": _rename,
    "duplicate_item": _duplicate,
    "wrong_type": _edit_value(_wrong_type, lambda v: True),
    "out_of_range": _edit_value(_out_of_range, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "unknown_name": _edit_value(_unknown_name, lambda v: isinstance(v, str)),
    "unicode": _edit_value(_unicode, lambda v: isinstance(v, str)),
}


def _dotted(p: tuple) -> str:
    return ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in p)


def _names(p: tuple) -> tuple:
    return tuple(str(k) for k in p if isinstance(k, str))[-2:]


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _structured(edit: Callable, fmt: str) -> Mutation:
    def apply(path: Path, rng: random.Random) -> Mutated:
        text = path.read_text()
        doc = tomllib.loads(text) if fmt == "toml" else json.loads(text)
        detail, names = edit(doc, rng)
        path.write_text(dumps_toml(doc) if fmt == "toml" else json.dumps(doc, indent=2, allow_nan=True))
        return Mutated(f"{path.name}: {detail}", ANY, names)

    return apply


def structure(fmt: str) -> dict[str, Mutation]:
    return {name: _structured(edit, fmt) for name, edit in STRUCTURE_EDITS.items()}


def _hostile(edit: Callable[[dict], None], what: str, mentions: tuple[str, ...]) -> Mutation:
    """A sweep spec a careless or hostile author could share: it must be refused (exit 2), naming it."""

    def apply(path: Path, rng: random.Random) -> Mutated:
        doc = tomllib.loads(path.read_text())
        edit(doc)
        path.write_text(dumps_toml(doc))
        return Mutated(f"{path.name}: {what}", ERROR, mentions)

    return apply


# targeted at what a shared spec could do (issue 22): write outside the run folder, make black
# images or allocate terabytes; each is refused at parse time
SPEC_HOSTILE: dict[str, Mutation] = {
    "label_traversal": _hostile(
        lambda d: d["prompt_sets"][0].update(label="../../../../escape/pwned"),
        "prompt-set label ../../../../escape/pwned",
        ("label",),
    ),
    "name_traversal": _hostile(lambda d: d["sweep"].update(name="../../escape"), "sweep name ../../escape", ("name",)),
    "metric_label_traversal": _hostile(
        lambda d: d.setdefault("metrics", []).append({"name": "fid", "label": "../x"}), "metric label ../x", ("label",)
    ),
    "nan_guidance": _hostile(
        lambda d: d.setdefault("grid", {}).update(guidance=[float("nan")]), "guidance nan", ("guidance",)
    ),
    "inf_guidance": _hostile(
        lambda d: d.setdefault("grid", {}).update(guidance=[float("inf")]), "guidance inf", ("guidance",)
    ),
    "huge_steps": _hostile(lambda d: d.setdefault("grid", {}).update(steps=[10**12]), "steps 10**12", ("steps",)),
    "huge_samples": _hostile(
        lambda d: d["sweep"].update(samples_per_prompt=10**9), "samples_per_prompt 10**9", ("samples_per_prompt",)
    ),
    # issue 33: a metric option's typo, refused before the first image (bench.metrics.check_metric)
    "metric_option_zero": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "kid", "options": {"reference": "shapes:test", "subset_size": 0}}
        ),
        "kid subset_size 0",
        ("subset_size",),
    ),
    "metric_option_huge": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "kid", "options": {"reference": "shapes:test", "subsets": 10**9}}
        ),
        "kid subsets 10**9",
        ("subsets",),
    ),
    "metric_option_float": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "fid", "options": {"reference": "shapes:test", "blocks": 150.5}}
        ),
        "fid blocks 150.5",
        ("blocks",),
    ),
    "metric_option_text": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "fid", "options": {"reference": "shapes:test", "n": "200"}}
        ),
        "fid n '200'",
        ("n must be",),
    ),
    "metric_removed_option": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "fid", "options": {"reference": "shapes:test", "bootstrap": -1}}
        ),
        "fid bootstrap -1",
        ("bootstrap",),
    ),
    "metric_weights_typo": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "cmmd", "options": {"reference": "shapes:test", "weights": "/no/such/clip-weights"}}
        ),
        "cmmd weights /no/such/clip-weights",
        ("weights",),
    ),
    "metric_reference_typo": _hostile(
        lambda d: d.setdefault("metrics", []).append(
            {"name": "fid", "options": {"reference": "folder:/no/such/reference"}}
        ),
        "fid reference folder:/no/such/reference",
        ("reference",),
    ),
    # a folder of images made for one prompt set, used with another (issue 33): refused, naming both
    "folder_other_prompt_set": _hostile(
        lambda d: d["prompt_sets"][0].clear() or d["prompt_sets"][0].update(name="parti", label="mine"),
        "prompt set parti for the captions folder",
        ("answers prompt set",),
    ),
    "huge_grid": _hostile(
        lambda d: d.setdefault("grid", {}).update(
            guidance=[1.0 + i / 100 for i in range(100)],
            aug_level=[i / 1000 for i in range(100)],
            seeds=list(range(100)),
        ),
        "a 10**6-point grid (100 guidance x 100 aug levels x 100 seeds)",
        ("--max-images",),
    ),
}


# -- prompt CSVs ---------------------------------------------------------------------------------


def _csv_edit(fn: Callable[[list[list[str]], random.Random], tuple[str, str, tuple]]) -> Mutation:
    def apply(path: Path, rng: random.Random) -> Mutated:
        rows = list(csv.reader(io.StringIO(path.read_text())))
        detail, expect, names = fn(rows, rng)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        path.write_text(buf.getvalue())
        return Mutated(f"{path.name}: {detail}", expect, names)

    return apply


def _col(rows, name):
    return rows[0].index(name)


def _drop_column(rows, rng):
    c = rng.randrange(len(rows[0]))
    name = rows[0][c]
    for r in rows:
        del r[c]
    return f"dropped column {name!r}", ERROR, (name,)


def _rename_column(rows, rng):
    c = rng.randrange(len(rows[0]))
    name = rows[0][c]
    rows[0][c] = name.upper() + " "
    return f"renamed column {name!r}", ERROR, (name,)


def _set_cell(column: str, values: list[str], expect: str):
    def fn(rows, rng):
        r = rng.randrange(1, len(rows))
        v = rng.choice(values)
        rows[r][_col(rows, column)] = v
        return f"row {r}: {column} = {v!r}", expect, (column,)

    return fn


def _duplicate_id(rows, rng):
    rows.append(list(rng.choice(rows[1:])))
    return "a row duplicated (duplicate id)", ERROR, ("id", "duplicate")


def _ragged(rows, rng):
    r = rng.randrange(1, len(rows))
    rows[r] = rows[r] + ["extra", "fields"]
    return f"row {r} has extra fields", ANY, ("line", "field")


def _extra_column(rows, rng):
    rows[0].append("notes")
    for r in rows[1:]:
        r.append(UNICODE)
    return "extra column 'notes'", ANY, ("notes",)


def _header_only(rows, rng):
    del rows[1:]
    return "no rows, header only", ERROR, ("no prompts", "empty", "no images")


CSV: dict[str, Mutation] = {
    name: _csv_edit(fn)
    for name, fn in {
        "drop_column": _drop_column,
        "rename_column": _rename_column,
        "bad_id": _set_cell("id", ["abc", "1.5", "", "-3", "99999999999999999999999", UNICODE], ANY),
        "empty_prompt": _set_cell("prompt", ["", " "], ANY),
        "unicode_prompt": _set_cell("prompt", [UNICODE, "=cmd|' /C calc'!A0", "<script>alert(1)</script>"], ANY),
        "duplicate_id": _duplicate_id,
        "ragged_row": _ragged,
        "extra_column": _extra_column,
        "header_only": _header_only,
    }.items()
}
