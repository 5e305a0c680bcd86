"""A Prolific-style batch in a real browser through the real server (issue 30 item 3): `imagen-bench
rate` serves a --platform prolific study; headless Debian Chromium arrives through the study link
with PROLIFIC_PID / STUDY_ID / SESSION_ID, is refused another participant's queue, answers its
batch and is sent to Prolific's completion URL with the study's code (Prolific itself is not
reachable here: the browser's request to app.prolific.com is answered in the test, after the
browser made it). A second participant with no slot left is screened out with the other code."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from human_eval_fixtures import rating_server, synthetic_sources
from test_human_eval_browser import ARGS, CHROMIUM

from human_eval import participants
from human_eval.plan import PlanSettings
from human_eval.platforms import make_platform
from human_eval.study import StudySettings, create_study

pytestmark = pytest.mark.browser
PID, SESSION, STUDY_ID = "5f0c" + "1" * 20, "6a1d" + "2" * 20, "7b2e" + "3" * 20


@pytest.fixture
def server(tmp_path):
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(
            f"chromium not installed at {CHROMIUM}: run `make system-deps` (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip(
        "playwright.sync_api", reason="playwright (python package) not installed: pip install '.[browser]'"
    )
    captions, model, _ = synthetic_sources(tmp_path / "src")
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(
                raters=1, batch_size=50, control_share=0.25
            ),  # one slot, one batch of 6 tasks (2 controls)
            platform=make_platform("prolific", "C0MPL3TE", "SCR33N0UT", "0.05"),
        ),
    )
    with rating_server(study) as port:
        yield study, port


def link(port: int, entry: str, pid: str = PID, session: str = SESSION) -> str:
    return f"http://127.0.0.1:{port}/?e={entry}&PROLIFIC_PID={pid}&STUDY_ID={STUDY_ID}&SESSION_ID={session}"


def test_prolific_participant_finishes_a_batch_and_lands_on_the_completion_url(server):
    from playwright.sync_api import expect, sync_playwright

    study, port = server
    entry = json.loads((study.root / "secrets.json").read_text())["entry"]
    rater_token = json.loads((study.root / "secrets.json").read_text())["raters"]["r01"]
    store = study.store()
    tasks = store.tasks("r01")
    prolific: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        referers: list[str | None] = []  # no-referrer (web_guard): the entry token and ids never reach Prolific
        page.route(
            "https://app.prolific.com/**",
            lambda route: (
                prolific.append(route.request.url),
                referers.append(route.request.headers.get("referer")),
                route.fulfill(status=200, body="Prolific: submission complete"),
            ),
        )
        page.goto(f"http://127.0.0.1:{port}/?t={rater_token}")  # invite links are no way into a crowd study
        expect(page.get_by_text("This link is not valid")).to_be_visible(timeout=60_000)
        page.goto(link(port, entry)[: -len(SESSION)] + "nothex!")
        expect(page.get_by_text("SESSION_ID is not an id")).to_be_visible(timeout=60_000)
        page.goto(link(port, entry))
        for i, task in enumerate(tasks):
            expect(page.get_by_text(f"Batch 1 of 1: {i} of {len(tasks)} done")).to_be_visible(timeout=60_000)
            if i == 2:  # a reload mid-batch: the same slot, the ids recorded once, the queue where it was
                page.reload()
                expect(page.get_by_text(f"Batch 1 of 1: {i} of {len(tasks)} done")).to_be_visible(timeout=60_000)
            # click only once the run that drew this task is over: a click while it still renders can be
            # lost when the form is drawn again (the server then sees no answer and asks for one)
            page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=60_000)
            radio = page.locator("[data-testid='stRadio']").first
            label = "No" if task.is_control else "Yes"
            radio.get_by_text(label, exact=True).click()
            expect(radio.get_by_role("radio", name=label)).to_be_checked(timeout=30_000)
            page.get_by_role("button", name="Submit").click()
        page.wait_for_url("https://app.prolific.com/submissions/complete?cc=C0MPL3TE", timeout=60_000)
        assert "submission complete" in page.content()

        # someone who knows the participant id but not the session: refused, sees none of their queue
        other = browser.new_page()
        other.goto(link(port, entry, session="9" * 24))
        expect(other.get_by_text("already taking part with another SESSION_ID")).to_be_visible(timeout=60_000)
        assert (
            other.locator("[data-testid='stImage']").count() == 0
            and other.locator("[data-testid='stRadio']").count() == 0
        )
        # a second participant: the one slot is taken: screened out with the other code
        other.route(
            "https://app.prolific.com/**",
            lambda route: (prolific.append(route.request.url), route.fulfill(status=200, body="ok")),
        )
        other.goto(link(port, entry, pid="8" * 24, session="a" * 24))
        other.wait_for_url("https://app.prolific.com/submissions/complete?cc=SCR33N0UT", timeout=60_000)
        browser.close()
    assert referers == [None]
    assert prolific == [
        "https://app.prolific.com/submissions/complete?cc=C0MPL3TE",
        "https://app.prolific.com/submissions/complete?cc=SCR33N0UT",
    ]
    answered = store.answered("r01")
    assert set(answered) == {t.task_id for t in tasks}
    assert all(answered[t.task_id] == {"caption": "no" if t.is_control else "yes"} for t in tasks)
    assert participants.participants(store) == {
        "r01": (PID, {"PROLIFIC_PID": PID, "SESSION_ID": SESSION, "STUDY_ID": STUDY_ID})
    }
