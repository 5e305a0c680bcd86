"""`imagen-bench trials detect-controls` at CI size (issue 30): two bot raters in headless Chromium
through the real server; every served image one length and one JPEG table, nothing repeated in a
queue, no image over HTTP, detectors at chance. The full-size run (>= 200 trials) is in
docs/human_eval.md. Also: the detectors catch what they claim to catch on views made to leak."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil

import numpy as np
import pytest
from human_eval_fixtures import sd_folders
from PIL import Image

from selfcheck.trials import detect_controls
from selfcheck.trials.detect_features import (
    Digest,
    Shown,
    TaskView,
    balanced_accuracy,
    colluding_scores,
    single_rater_scores,
    strip_comments,
    wilson,
)


def _jpeg(seed: int, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=quality
    )
    return buf.getvalue()


def _view(rater: str, i: int, control: bool, caption: str, left: bytes, right: bytes) -> TaskView:
    shown = tuple(
        Shown(f"data:image/jpeg;base64,{k}-{i}-{len(d)}", d, (32, 32), k) for k, d in enumerate((left, right))
    )
    return TaskView(rater, i, control, caption, shown, "stImage stImage", 0.5, 1000, ())


def test_the_detectors_catch_the_leaks_the_issue_found():
    """The old app: a control reused an ordinary task's image (same file), its degraded copy had
    another JPEG table, and the two colluding raters' ordinary tasks matched while controls did not."""
    views, partner = [], []
    for i in range(40):
        control = i % 4 == 1  # reuses the previous (ordinary) task's left image
        ordinary = (_jpeg(i), _jpeg(1000 + i))
        views.append(
            _view(
                "r1",
                i,
                control,
                f"c{i}",
                _jpeg(i - 1) if control else ordinary[0],
                _jpeg(2000 + i, quality=40) if control else ordinary[1],
            )
        )
        partner.append(_view("r2", i, False, f"c{i}", *ordinary))
    dg = Digest(views + partner)
    truth = [v.is_control for v in views]
    one = single_rater_scores(views, dg)
    for name in ("file (padding stripped) seen in another task", "rare JPEG table"):
        right, n = balanced_accuracy(one[name], truth, random.Random(0))
        assert right / n == 1.0, name
    two = colluding_scores(views, partner, dg)
    right, n = balanced_accuracy(
        two["files differ from the partner's task with this caption"], truth, random.Random(0)
    )
    assert right / n == 1.0
    lo, hi = wilson(10, 20)
    assert lo < 0.5 < hi and wilson(20, 20)[0] > 0.8


def test_strip_comments_keeps_the_picture():
    from human_eval.serving import pad

    raw = _jpeg(3)
    assert strip_comments(pad(raw, len(raw) + 70_000)) == raw


@pytest.mark.slow
@pytest.mark.browser
def test_detect_controls_small(tmp_path):
    if not (os.path.exists("/usr/bin/chromium") or shutil.which("chromium")):
        pytest.skip("chromium not installed: apt-get install chromium")
    pytest.importorskip(
        "playwright.async_api", reason="playwright (python package) not installed: pip install '.[browser]'"
    )
    sd = sd_folders()[0].parent
    p = argparse.ArgumentParser()
    detect_controls.add_arguments(p)
    args = p.parse_args(
        ["--prompts", "drawbench:Colors", "--min-trials", "20", "--images", str(sd), "--workdir", str(tmp_path / "wd")]
    )
    detect_controls.run(args)
    summary = json.loads((tmp_path / "wd" / "summary.json").read_text())
    checks = {c["name"]: c["passed"] for c in summary["checks"]}
    # what must hold exactly: one length, one table, no repeats, no image over HTTP, the trials counted.
    # The two "at chance" verdicts are statistics: at 32 trials a 95 % interval misses 0.5 one run in
    # twenty by chance, so CI reads them only as numbers; the full-size run (README) is the claim.
    assert len(checks) == 7 and all(list(checks.values())[:5]), summary["checks"]
    combined = [d for d in summary["detectors"] if d["detector"].startswith("ALL:")]
    assert len(combined) == 2 and all(d["trials"] == 32 and d["low"] <= d["accuracy"] <= d["high"] for d in combined)
    # Colors: 25 prompts, 10 set aside: 6 fidelity + 2 alignment controls (with their donors) beside 15 ordinary tasks
    assert summary["tasks_seen"] == {"r01": 23, "r02": 23}  # every task of both queues seen in the browser
    assert {b["rater"] for b in summary["bots"]} == {"r01", "r02"} and all(b["controls"] > 0 for b in summary["bots"])
