"""The two reports a new user meets first, built for real and read in Chromium at 1366 x 768 (issue 34):
the demo's (`imagen-bench demo`, its own command and spec at a reduced size) and a two-model run of the
real Stable Diffusion v1.4 / v1.5 DrawBench images (folder models, metrics that run offline). Also on
these real run folders: the headline finding said in a sentence with its interval, and a metric
without weights said to be unavailable once, not once per row."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_browser import as_a_reader_sees_it, chromium, look
from sweep_fixtures import SD_FOLDER_MODELS

from bench import SPECS
from reports.build import ReportInputs, build_report
from reports.runs import read_run_metrics

# The shipped demo spec, smaller where size only buys precision (each line must still be in
# bench/specs/demo.toml, so the test follows the demo as it changes): 8 prompts (2 per category)
# instead of 100, 8 sampling steps instead of 32 (base) and 24 (SR), a 20-image shapes reference for FID / KID instead
# of 500, and 5 prompt blocks (the fewest an interval takes) instead of 20. Same model, grid
# (guidance x thresholding), metrics and command: 32 images, ~30 s of one core here (the full demo: 400
# images, ~5 min).
DEMO_AT_TEST_SIZE = {
    "n_per_category = 25": "n_per_category = 2",
    "steps = [32]": "steps = [8]",
    "steps = 24\n": "steps = 8\n",
    "n = 500 }": "n = 20 }",
    "n = 500, subset_size = 100, blocks = 20": "n = 20, subset_size = 100, blocks = 5",
}

SD_SPEC = (
    """
[sweep]
name = "sd"
samples_per_prompt = 1
"""
    + SD_FOLDER_MODELS
    + """
[[prompt_sets]]
name = "drawbench"
path = "{prompts}"

[[metrics]]
name = "ocr"

[[metrics]]
name = "clip_score"
"""
)  # OCR: RapidOCR's weights come with its wheel; clip_score without a model: unavailable, as on any offline machine
SD_PROMPTS = 8  # the first DrawBench Text prompts (of 21): OCR reads ~0.6 s of CPU per 512 px image


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    from imagen_bench.cli import main as cli

    d = tmp_path_factory.mktemp("demo")
    text = (SPECS / "demo.toml").read_text()
    for old, new in DEMO_AT_TEST_SIZE.items():
        assert text.count(old) == 1, (
            f"bench/specs/demo.toml changed: {old!r} is not there once; update DEMO_AT_TEST_SIZE"
        )
        text = text.replace(old, new)
    (d / "demo.toml").write_text(text)
    assert (
        cli(["demo", "--spec", str(d / "demo.toml"), "--out", str(d / "demo"), "--cache-dir", str(d / "cache")]) == 0
    )
    return d / "demo", d / "demo" / "report"


@pytest.fixture(scope="module")
def sd_report(shared_data, tmp_path_factory):
    from bench.sweep.runner import run_sweep
    from drawbench.prompts import load_drawbench

    d = tmp_path_factory.mktemp("sd")
    load_drawbench(["Text"]).head(SD_PROMPTS).to_csv(
        d / "drawbench_text.csv", index=False
    )  # the set's own rows, a copy
    (d / "sd.toml").write_text(SD_SPEC.format(root=shared_data / "drawbench-sd", prompts=d / "drawbench_text.csv"))
    run_sweep(d / "sd.toml", d / "sd", cache_dir=d / "cache", progress=False)
    return d / "sd", build_report(ReportInputs(runs=(d / "sd",)), d / "sd-report")


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.mark.browser
def test_demo_report_in_chromium_at_laptop_width(demo_report, browser, tmp_path):
    """The demo's report: findings, the leaderboard and Pareto figures on the first screen, 4 prompts
    x the 4 cells in natural order; KID on the leaderboard beside FID's small-N note."""
    run, report = demo_report
    facts = look(browser, report, tmp_path / "screenshots", "demo")
    as_a_reader_sees_it(facts, report)
    assert facts["heads"] == ["w=1, dynamic", "w=1, none", "w=5, dynamic", "w=5, none"] and len(facts["rows"]) == 4
    assert facts["firstColumn"] == facts["heads"]  # the leaderboard's rows in the same order
    html = (report / "index.html").read_text()
    assert "Left out of the leaderboard" not in html  # KID's per-cell jackknife SE is not "made differently"
    assert "kid_mean" in pd.read_csv(report / "tables" / "leaderboard.csv").columns
    assert any(line.startswith("fid: N < 2,048: not comparable (N = 8)") for line in facts["findings"])


def test_demo_report_states_its_headline_finding_with_its_interval(demo_report, monkeypatch):
    """The first finding after "Compared" is the verifier accuracy's headline: the better entry, its
    lead and the 95 % interval of the paired difference, whether or not Holm's correction separates it
    (at 8 prompts it rarely does); the numbers are the leaderboard's (the report's options: its defaults)."""
    import html

    from reports import paired
    from reports.findings import short_labels
    from reports.leaderboard import LeaderboardOptions, leaderboard
    from reports.paired import PROMPT_BOOTSTRAP_TEST, block_difference
    from reports.paired import SECOND_ORDER_MIN_BLOCKS as MIN
    from reports.runs import parse_details

    run, report = demo_report
    lines = [html.unescape(x) for x in re.findall(r"<li>([^<]*)</li>", (report / "index.html").read_text())]
    assert lines[0].startswith("Compared: 4 entries (w=1, dynamic; w=1, none; w=5, dynamic; w=5, none) on shapes")
    head = re.match(
        r"shapes_accuracy on shapes: (?:.*; largest difference: )?(w=\d, \w+) (?:beats|over) (w=\d, \w+), higher by "
        r"(\d\.\d{3}) \[(-?\d\.\d{3}), (-?\d\.\d{3})\] \(95% interval; 8 paired images\), Holm-adjusted p = ",
        lines[1],
    )
    assert head, lines[1]
    better, worse, lead, low, high = head[1], head[2], *map(float, head.groups()[2:])
    assert low <= lead <= high
    board, pairs = leaderboard([run], LeaderboardOptions(leave_out_mixed=True))
    label = short_labels([run], board)
    shapes = pairs[pairs.metric == "shapes_accuracy"].assign(
        A=lambda f: f["A"].map(label), B=lambda f: f["B"].map(label)
    )
    assert (shapes["test"] == PROMPT_BOOTSTRAP_TEST).all()
    kid = pairs[pairs.metric == "kid_mean"]  # a real run's KID at 5 blocks: too few to take the excess off
    assert len(kid) == 6 and (kid["unit"] == "prompt blocks").all()
    assert kid["test"].str.endswith(f"plain jackknife (its second-order excess is taken off from {MIN} blocks)").all()
    # the real run's recorded second-order parts, through the corrected path (as at >= MIN blocks): the
    # same difference, a variance between the whole-degenerate floor and the plain one
    cells = pd.read_parquet(run / "metrics_cell.parquet")
    a, b = (parse_details(d) for d in cells.loc[cells["metric"] == "kid_mean", "details"].iloc[:2])
    assert np.asarray(a["second_order"]["pair_sums"]).shape == (5, 5) and sum(a["second_order"]["sizes"]) == 8
    plain = block_difference(a["block_values"], b["block_values"])
    monkeypatch.setattr(paired, "SECOND_ORDER_MIN_BLOCKS", 5)
    fixed = block_difference(a["block_values"], b["block_values"], second_order=(a["second_order"], b["second_order"]))
    width = {k: r["CI high"] - r["CI low"] for k, r in (("plain", plain), ("fixed", fixed))}
    assert fixed["difference"] == plain["difference"] and fixed["test"].endswith("less its second-order excess")
    assert np.sqrt(3 / 8) * width["plain"] - 1e-12 <= width["fixed"] <= width["plain"] + 1e-12
    top = shapes[shapes["separated"]] if shapes["separated"].any() else shapes
    top = top.loc[top["difference"].abs().idxmax()]
    assert {better, worse} == {top["A"], top["B"]} and abs(top["difference"]) == pytest.approx(lead, abs=5e-4)
    turned = (
        (top["CI low"], top["CI high"]) if better == top["A"] else (-top["CI high"], -top["CI low"])
    )  # B's lead over A
    assert (low, high) == pytest.approx(turned, abs=5e-4)
    value = (
        board[board.metric == "shapes_accuracy"]
        .assign(entry=lambda f: f["entry"].map(label))
        .set_index("entry")["value"]
    )
    assert value[better] - value[worse] == pytest.approx(lead, abs=5e-4)  # the better entry named first


@pytest.mark.browser
def test_sd_folder_report_in_chromium_at_laptop_width(sd_report, browser, tmp_path):
    """Two real models on 8 DrawBench Text prompts: their images side by side, one row per prompt,
    both images of a row made for that row's prompt; OCR's finding with its interval first."""
    _, report = sd_report
    facts = look(browser, report, tmp_path / "screenshots", "sd-folders")
    as_a_reader_sees_it(facts, report)
    assert facts["heads"] == ["sd-v1-4", "sd-v1-5"] and facts["firstColumn"] == ["sd-v1-4", "sd-v1-5"]
    assert len(facts["rows"]) == 4
    for row in facts["rows"]:
        prompt = re.match(r"#(\d+) \(Text\): ", row["prompt"])
        assert prompt and row["alts"] == [f"{m}, drawbench #{prompt[1]}" for m in ("sd-v1-4", "sd-v1-5")], row
        assert row["tops"][0] == row["tops"][1] and row["lefts"][0] < row["lefts"][1]  # side by side, v1.4 on the left
    assert re.search(
        r"ocr_score on drawbench: .* by \d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\] \(95% interval; 8 paired images\)",
        " ".join(facts["findings"]),
    )


def test_an_unavailable_metric_is_said_once_not_once_per_row(sd_report):
    """CLIP score without weights, on a real run of two entries: the summary says why once; the
    leaderboard's cells say only "unavailable"; the collapsed methods table has one row for it."""
    from bench.metrics.clip_score import UNAVAILABLE

    run, report = sd_report
    cells = pd.read_parquet(run / "metrics_cell.parquet")
    assert (
        len(cells[cells.metric == "clip_score"]) == 2 and cells.loc[cells.metric == "clip_score", "value"].isna().all()
    )
    html = (report / "index.html").read_text()
    shown, collapsed = html.split('<h2 id="details">')
    assert shown.count(UNAVAILABLE.replace("<", "&lt;").replace(">", "&gt;")) == 1
    board = pd.read_csv(report / "tables" / "leaderboard.csv")
    assert board["clip_score"].tolist() == ["unavailable (see the summary)"] * 2
    methods = pd.read_csv(report / "tables" / "metric_methods_sd.csv")
    assert methods["metric"].tolist().count("clip_score") == 1 and collapsed.count("CLIP score needs weights") == 1


def test_report_of_two_folder_models_on_real_images(sd_report):
    """Image folders have no sampling axes: no paired-guidance rows, and no 'all NA' crash."""
    run, report = sd_report
    assert (report / "index.html").is_file() and not list((report / "tables").glob("paired_guidance_*"))
    assert read_run_metrics(run).varying() == ["model"]
