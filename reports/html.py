"""A self-contained HTML page from sections of paragraphs, tables and images (PNG files beside
the HTML, referenced by relative path). Text is escaped; tables are pandas' to_html."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field

import pandas as pd


def file_slug(text: str, keep: int = 40) -> str:
    """A file-name part for user text (model names, categories, run names): the text itself when it
    is short and already safe, else up to `keep` safe characters plus 8 hex digits of its sha256,
    so "a b" and "a_b" never share a file and a 140-character name stays well under NAME_MAX."""
    text = str(text)
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", text)[:keep]
    if safe == text and not text.startswith("."):
        return text
    return f"{safe.lstrip('.')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


STYLE = """
* { box-sizing: border-box; }
body { font-family: sans-serif; max-width: 1240px; margin: 1.5em auto; padding: 0 16px; color: #222; background: #fff;
       line-height: 1.4; }
p, li, figcaption, summary { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; margin: 0.3em 0 1.5em 0; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
.note { color: #8a5a00; font-style: italic; }
.how { color: #555; font-size: 12px; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; font-weight: bold; }
.findings { background: #f5f8fc; border-left: 4px solid #4C72B0; padding: 0.6em 1em 0.6em 2em; margin: 0.5em 0 1em 0; }
.findings li { margin: 0.2em 0; }
.findings li.more { list-style: none; margin-left: -1em; }
.findings details { border: none; padding: 0; margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0.5em 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.figures figure { flex: 1 1 520px; }
.gallery { display: flex; flex-wrap: wrap; gap: 8px; }
.gallery figure { width: 172px; margin: 0; }
.grid { display: grid; gap: 6px; align-items: start; width: max-content; }
.grid .head { font-size: 12px; font-weight: bold; text-align: center; align-self: end; }
.grid .prompt { font-size: 12px; color: #333; width: 190px; }
.grid img, .gallery img { display: block; width: 100%; height: auto; border: 1px solid #ddd; }
.grid a, .gallery a { display: block; }
details { border: 1px solid #ddd; border-radius: 4px; padding: 0.3em 0.8em; margin: 0.4em 0; }
details > summary { cursor: pointer; font-weight: bold; }
nav ul { margin: 0; padding-left: 1.2em; columns: 2; }
@media print {
  body { max-width: none; margin: 0; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
  figure, .grid, tr { break-inside: avoid; }
}
"""
FLOAT_FORMAT = "{:.4g}".format  # 4 significant digits: CIs are reported to ~0.001 on a 0-1 scale
# a table longer than this (a sequential study's one row per batch: 70-150 rows) is shown collapsed,
# its "how" line and CSV / parquet links visible: a log to audit, not the finding the page leads with
TABLE_ROWS_OPEN = 30


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = "how"  # "how" (how a number was computed), "note" (a skipped figure), "banner", "plain"


@dataclass(frozen=True)
class Table:
    name: str  # file stem of the CSV / parquet copies under tables/
    frame: pd.DataFrame
    how: str  # how every number in it was computed


@dataclass(frozen=True)
class Image:
    path: str  # relative to the HTML
    caption: str
    link: str = ""  # the full-size image (relative to the HTML) the thumbnail opens; "" for none


@dataclass(frozen=True)
class Figures:
    """Figures side by side (wrapping at the page's width)."""

    images: tuple[Image, ...]


@dataclass(frozen=True)
class Bullets:
    """Findings, one a line: the first `shown` visible, the rest behind a "more" toggle."""

    items: tuple[str, ...]
    shown: int = 7


@dataclass(frozen=True)
class Grid:
    """Sample images: one row per prompt (`rows`: its caption and one Image or None per column),
    one column per compared entry (`columns`: their labels)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Image | None, ...]], ...]
    thumb: int = 128  # px


@dataclass(frozen=True)
class Gallery:
    images: tuple[Image, ...]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list = field(
        default_factory=list
    )  # Paragraph | Bullets | Table | Image | Figures | Gallery | Grid, in order
    details: bool = False  # provenance, methods, cell ids: a collapsed <details> at the end of the page


def natural_key(text) -> tuple:
    """Sort key reading the numbers in a text as numbers: "E2" before "E10", "w=5" before "w=10",
    "w=1.5" between them."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(text))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p.lower()) for i, p in enumerate(parts) if p)


def _img(image: Image) -> str:
    tag = f'<img src="{html.escape(image.path)}" alt="{html.escape(image.caption)}" loading="lazy">'
    return f'<a href="{html.escape(image.link)}">{tag}</a>' if image.link else tag


def _block(block, stamp: str) -> str:
    if isinstance(block, Paragraph):
        cls = "" if block.kind == "plain" else f' class="{block.kind}"'
        return f"<p{cls}>{html.escape(block.text)}</p>"
    if isinstance(block, Bullets):
        items = [f"<li>{html.escape(t)}</li>" for t in block.items]
        more = items[block.shown :]
        rest = (
            f'<li class="more"><details><summary>{len(more)} more</summary><ul>{"".join(more)}</ul></details></li>'
            if more
            else ""
        )
        return f'<ul class="findings">{"".join(items[: block.shown])}{rest}</ul>'

    if isinstance(block, Table):
        links = f'<a href="tables/{block.name}.csv">CSV</a> / <a href="tables/{block.name}.parquet">parquet</a>'
        body = block.frame.to_html(index=False, float_format=FLOAT_FORMAT, na_rep="–", border=0)
        if len(block.frame) > TABLE_ROWS_OPEN:
            body = f"<details><summary>all {len(block.frame)} rows</summary>{body}</details>"
        return f'<p class="how">{html.escape(block.how)} {html.escape(stamp)} ({links})</p>\n<div class="scroll">{body}</div>'
    if isinstance(block, Image):
        return (
            f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.caption)}">'
            f'<figcaption class="how">{html.escape(block.caption)}</figcaption></figure>'
        )
    if isinstance(block, Figures):
        return '<div class="figures">' + "".join(_block(i, stamp) for i in block.images) + "</div>"
    if isinstance(block, Gallery):
        cells = "".join(
            f'<figure>{_img(i)}<figcaption class="how">{html.escape(i.caption)}</figcaption></figure>'
            for i in block.images
        )
        return f'<div class="gallery">{cells}</div>'
    if isinstance(block, Grid):
        style = f"grid-template-columns: 190px repeat({len(block.columns)}, {block.thumb}px)"
        cells = ['<div class="head"></div>'] + [f'<div class="head">{html.escape(c)}</div>' for c in block.columns]
        for caption, images in block.rows:
            cells.append(f'<div class="prompt">{html.escape(caption)}</div>')
            cells += [f"<div>{_img(i)}</div>" if i else '<div class="how">–</div>' for i in images]
        return f'<div class="scroll"><div class="grid" style="{style}">{"".join(cells)}</div></div>'
    raise TypeError(f"unknown block {type(block).__name__}")


def render(title: str, sections: list[Section], stamp: str = "") -> str:
    """The page; `stamp` (e.g. the package version) is appended to every table's how-line. Sections
    marked `details` (provenance, methods, cell ids) come last, each collapsed in a <details>."""
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    main = [(i, s) for i, s in enumerate(sections) if not s.details]
    extra = [(i, s) for i, s in enumerate(sections) if s.details]
    toc = [f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in main]
    if extra:
        toc.append('<li><a href="#details">Details: provenance, methods, cell ids</a></li>')
    parts.append(f"<nav><ul>{''.join(toc)}</ul></nav>")
    for i, section in main:
        parts.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        parts.extend(_block(b, stamp) for b in section.blocks)
    if extra:
        parts.append('<h2 id="details">Details: provenance, methods, cell ids</h2>')
        for i, section in extra:
            parts.append(f'<details id="s{i}"><summary>{html.escape(section.title)}</summary>')
            parts.extend(_block(b, stamp) for b in section.blocks)
            parts.append("</details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def tables_of(sections: list[Section]) -> list[Table]:
    return [b for s in sections for b in s.blocks if isinstance(b, Table)]
