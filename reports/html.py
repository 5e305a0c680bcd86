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
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; }
.note { color: #8a5a00; font-style: italic; }
.how { color: #555; font-size: 12px; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; font-weight: bold; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.gallery img { width: 160px; margin-right: 4px; }
"""
FLOAT_FORMAT = "{:.4g}".format  # 4 significant digits: CIs are reported to ~0.001 on a 0-1 scale


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


@dataclass(frozen=True)
class Gallery:
    images: tuple[Image, ...]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list = field(default_factory=list)  # Paragraph | Table | Image | Gallery, in order


def _block(block, stamp: str) -> str:
    if isinstance(block, Paragraph):
        cls = "" if block.kind == "plain" else f' class="{block.kind}"'
        return f"<p{cls}>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        links = f'<a href="tables/{block.name}.csv">CSV</a> / <a href="tables/{block.name}.parquet">parquet</a>'
        body = block.frame.to_html(index=False, float_format=FLOAT_FORMAT, na_rep="–", border=0)
        return f'<p class="how">{html.escape(block.how)} {html.escape(stamp)} ({links})</p>\n{body}'
    if isinstance(block, Image):
        return (f'<figure><img src="{html.escape(block.path)}" alt="{html.escape(block.caption)}">'
                f"<figcaption class=\"how\">{html.escape(block.caption)}</figcaption></figure>")
    if isinstance(block, Gallery):
        cells = "".join(f'<figure style="display:inline-block"><img src="{html.escape(i.path)}" alt="{html.escape(i.caption)}">'
                        f'<figcaption class="how">{html.escape(i.caption)}</figcaption></figure>' for i in block.images)
        return f'<div class="gallery">{cells}</div>'
    raise TypeError(f"unknown block {type(block).__name__}")


def render(title: str, sections: list[Section], stamp: str = "") -> str:
    """The page; `stamp` (e.g. the package version) is appended to every table's how-line."""
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append("<ul>" + "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections)) + "</ul>")
    for i, section in enumerate(sections):
        parts.append(f'<h2 id="s{i}">{html.escape(section.title)}</h2>')
        parts.extend(_block(b, stamp) for b in section.blocks)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def tables_of(sections: list[Section]) -> list[Table]:
    return [b for s in sections for b in s.blocks if isinstance(b, Table)]
