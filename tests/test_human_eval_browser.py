"""A real browser against the real server: `imagen-bench rate` serves a side-by-side study of the
real SD v1.4 vs v1.5 DrawBench images on 127.0.0.1; headless Debian Chromium (driven by
Playwright) completes a batch as a rater; the answers are in the database. Saves the screenshot
docs/img/human_eval_sbs.png."""

from __future__ import annotations

import os
import shutil

import pytest
from human_eval_fixtures import REPO, rating_server, sbs_study, tokens

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The README's screenshot is refreshed only on request (IMAGEN_BENCH_UPDATE_SCREENSHOT=1), so a
# test run never modifies tracked files; otherwise it goes to pytest's temp dir and is checked.
SCREENSHOT = REPO / "docs" / "img" / "human_eval_sbs.png"

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path):
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(
            f"chromium not installed at {CHROMIUM}: run `make system-deps` (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip(
        "playwright.sync_api", reason="playwright (python package) not installed: pip install '.[browser]'"
    )
    study = sbs_study(
        tmp_path / "study", prompts="drawbench:Colors", raters=2, batch_size=4, control_share=0.25, seed=3
    )
    with rating_server(study) as port:
        yield study, port


def test_rater_completes_a_batch_in_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    study, port = server
    store = study.store()
    batch = [t for t in store.tasks("r01") if t.batch == 1]
    n_batches = store.tasks("r01")[-1].batch
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1250})
        page.goto(f"http://127.0.0.1:{port}/?t=forged-{tokens(study)['raters']['r01'][7:]}")
        expect(page.get_by_text("This link is not valid")).to_be_visible(timeout=60_000)
        assert page.locator("img[src*='/media/']").count() == 0
        page.goto(f"http://127.0.0.1:{port}/?t={tokens(study)['raters']['r01']}")
        shot = False
        for i, task in enumerate(batch):
            expect(page.get_by_text(f"Batch 1 of {n_batches}: {i} of {len(batch)} done")).to_be_visible(timeout=60_000)
            expect(page.locator("[data-testid='stImage'] img")).to_have_count(2, timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            html = page.content()
            assert task.task_id not in html and "control" not in html.lower()
            srcs = page.locator("[data-testid='stImage'] img").evaluate_all(
                "els => els.map(e => e.getAttribute('src'))"
            )
            assert all(s.startswith("data:image/jpeg;base64,") for s in srcs), [
                s[:40] for s in srcs
            ]  # never a /media/ URL
            if not task.is_control and not shot:
                shot = tmp_path / "sbs.png"
                page.screenshot(path=str(shot), full_page=True)
                if os.environ.get("IMAGEN_BENCH_UPDATE_SCREENSHOT") == "1":
                    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                    SCREENSHOT.write_bytes(shot.read_bytes())
            # act only once the Streamlit run that drew this task is over: a click during the run
            # could be lost under load (the crowd-platform test's fix, 0 failures in 6 runs after)
            page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=60_000)
            radios = page.locator("[data-testid='stRadio']")
            for k, label in ((0, "I prefer set A"), (1, "I am indifferent")):
                radios.nth(k).get_by_text(label, exact=True).click()
                # the choice must be registered before Submit (under load a click can land before the widget is live)
                expect(radios.nth(k).get_by_role("radio", name=label)).to_be_checked(timeout=30_000)
            page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("button", name="Start batch 2")).to_be_visible(timeout=60_000)
        browser.close()
    answered = store.answered("r01")
    assert set(answered) == {t.task_id for t in batch}
    assert all(
        a == {"quality": "A" if t.a_on_left else "B", "alignment": "tie"} for t in batch for a in [answered[t.task_id]]
    )
    assert store.answered("r02") == {}
    assert shot and shot.stat().st_size > 10_000  # a real rendered page, not an empty capture
