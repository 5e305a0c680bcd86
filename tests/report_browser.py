"""A report read as a person sees it: Chromium (Debian's, driven by Playwright) at laptop size, the
page's facts measured in the browser, screenshots kept for a human to look at. Used by the tests of
real reports (test_reports_real_runs.py: a sweep and an SD study; test_reports_demo_and_sd.py: the
demo and a two-model SD folder run)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
LAPTOP = {"width": 1366, "height": 768}
# `rows`: each sample-grid row (the grid is one flat CSS grid: a corner cell and a head per column,
# then per prompt its caption and one cell per column): the caption, each image's alt text and place
PAGE_FACTS = """() => {
  const el = document.scrollingElement, first = document.querySelector('table');
  const before = n => !first || (n.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING);
  const summary = document.querySelector('ul.findings');
  const figure = [...document.querySelectorAll('figure img')].find(before);
  const samples = [...document.querySelectorAll('.grid img')];
  const outside = [...document.body.childNodes].filter(n => n.nodeName !== 'DETAILS').map(n => n.textContent).join(' ');
  const rows = [...document.querySelectorAll('.grid')].flatMap(g => {
    const cells = [...g.children], k = g.querySelectorAll('.head').length, out = [];
    for (let i = k; i < cells.length; i += k) {
      const imgs = cells.slice(i + 1, i + k).map(c => c.querySelector('img'));
      out.push({prompt: cells[i].textContent, alts: imgs.map(im => im && im.alt),
                tops: imgs.map(im => im && Math.round(im.getBoundingClientRect().top)),
                lefts: imgs.map(im => im && Math.round(im.getBoundingClientRect().left))});
    }
    return out;
  });
  return {scrollWidth: el.scrollWidth, viewport: window.innerWidth, tables: document.querySelectorAll('table').length,
          summaryFirst: !!summary && before(summary), summaryTop: summary ? summary.getBoundingClientRect().top : null,
          figureFirst: !!figure, figureTop: figure ? figure.getBoundingClientRect().top : null,
          samples: samples.length, loaded: samples.filter(i => i.complete && i.naturalWidth > 0).length,
          links: samples.map(i => i.closest('a') && i.closest('a').getAttribute('href')),
          heads: [...document.querySelectorAll('.grid .head')].map(h => h.textContent).filter(t => t), rows: rows,
          findings: summary ? [...summary.querySelectorAll('li')].map(li => li.textContent) : [],
          firstColumn: [...document.querySelectorAll('table')].slice(0, 1).flatMap(t => [...t.querySelectorAll('tbody tr')]
                         .map(r => r.cells[0].textContent)),
          visibleText: outside, detailsOpen: [...document.querySelectorAll('details')].filter(d => d.open).length};
}"""


@contextmanager
def chromium():
    """Headless Chromium, or a skip naming what to install."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"chromium not installed at {CHROMIUM}: run `make system-deps` (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (python package) not installed: pip install '.[browser]'"
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def look(browser, report: Path, shots: Path, name: str) -> dict:
    """Open REPORT/index.html at 1366 x 768 as a reader would; screenshots of the first screen and the
    whole page (NAME-first-screen.png, NAME-page.png) go to `shots` (the test's temp dir, which pytest
    keeps for its last three runs only), or to $IMAGEN_BENCH_SCREENSHOTS when set, to keep them."""
    shots = Path(os.environ.get("IMAGEN_BENCH_SCREENSHOTS") or shots)
    page = browser.new_page(viewport=LAPTOP)
    page.goto((report / "index.html").as_uri(), wait_until="load")
    page.evaluate(
        "() => Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
    )  # lazy thumbnails too
    facts = page.evaluate(PAGE_FACTS)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}-first-screen.png"))
    page.screenshot(path=str(shots / f"{name}-page.png"), full_page=True)
    page.close()
    return facts


def as_a_reader_sees_it(facts: dict, report: Path) -> None:
    from reports.html import natural_key

    assert facts["scrollWidth"] <= facts["viewport"] == LAPTOP["width"], facts[
        "scrollWidth"
    ]  # no page-level sideways scroll
    assert facts["tables"] and facts["summaryFirst"] and facts["figureFirst"]  # findings and a figure before any table
    assert facts["summaryTop"] < LAPTOP["height"] and facts["figureTop"] < LAPTOP["height"]  # both on the first screen
    assert facts["samples"] >= 4 and facts["loaded"] == facts["samples"]  # sample images, every one decoded
    assert all(link and (report / link).is_file() for link in facts["links"])  # each thumbnail opens its full image
    assert facts["heads"] == sorted(facts["heads"], key=natural_key)  # sample columns in natural order
    assert facts["detailsOpen"] == 0 and "Provenance" not in facts["visibleText"].split("Details: provenance")[0]
