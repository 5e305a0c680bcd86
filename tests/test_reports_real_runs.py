"""Reports built from real sweeps, not hand-made frames: a 3 x 2 guidance x thresholding sweep of a
tiny cascade scored with the real FID and shapes verifier draws one Pareto line per thresholding
mode; runs with image-folder models (real Stable Diffusion images) report without paired rows."""

from __future__ import annotations

import pandas as pd
import pytest
from report_browser import as_a_reader_sees_it, chromium, look
from sweep_fixtures import SD_FOLDER_MODELS, make_tiny_checkpoint

from bench.sweep.runner import run_sweep
from reports.build import ReportInputs, build_report
from reports.runs import read_run_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_MODEL = """
[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{checkpoint}"
batch_size = 4
precision = "fp32"
[models.stages.sr32]
steps = 2
"""

GRID_SPEC = (
    """
[sweep]
name = "grid"
samples_per_prompt = 1
"""
    + TINY_MODEL
    + """
[[prompt_sets]]
name = "shapes"
n_per_category = 1

[grid]
steps = [2]
guidance = [1.0, 3.0, 5.0]
thresholding = ["static", "dynamic"]

[[metrics]]
name = "shapes_verifier"

[[metrics]]
name = "fid"
options = {{ reference = "shapes:test", n = 12, shapes_size = 32 }}
"""
)

FOLDERS_SPEC = (
    """
[sweep]
name = "sd"
samples_per_prompt = 1
{extra_model}"""
    + SD_FOLDER_MODELS
    + """
[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]
"""
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def grid_report(checkpoint, tmp_path_factory):
    d = tmp_path_factory.mktemp("grid")
    (d / "spec.toml").write_text(GRID_SPEC.format(checkpoint=checkpoint))
    run_sweep(d / "spec.toml", d / "run", cache_dir=d / "cache", progress=False)
    return d / "run", build_report(ReportInputs(runs=(d / "run",)), d / "report")


def test_varying_is_the_cell_axes_not_bookkeeping_columns(grid_report):
    run, _ = grid_report
    cells = pd.read_parquet(run / "cells.parquet")
    assert (
        cells["name"].nunique() == 6 and cells["model_description"].nunique() == 1
    )  # the columns that broke the plots
    assert read_run_metrics(run).varying() == [
        "guidance",
        "thresholding",
    ]  # percentile: 99.5 where it applies, else NA


def test_pareto_plot_draws_one_line_per_thresholding_mode_in_guidance_order(grid_report):
    _, report = grid_report
    assert (report / "plots" / "pareto_run.png").is_file()
    points = pd.read_csv(report / "tables" / "pareto_run.csv")
    assert list(points.columns) == ["panel", "series", "x_name", "x", "y_name", "y", "low", "high", "label"]
    series = {s: rows for s, rows in points.groupby("series")}
    assert sorted(series) == ["thresholding=dynamic", "thresholding=static"]
    for rows in series.values():
        assert rows["label"].tolist() == ["w=1", "w=3", "w=5"]
        assert (
            rows["x_name"].eq("shapes_accuracy").all() and rows["y_name"].eq("fid").all() and rows["y"].notna().all()
        )
    wide = read_run_metrics(grid_report[0]).wide().set_index(["thresholding", "guidance"])
    dyn = series["thresholding=dynamic"]
    assert dyn["y"].tolist() == pytest.approx(
        [wide.loc[("dynamic", g), "fid"] for g in (1.0, 3.0, 5.0)]
    )  # the run's numbers


def test_every_report_figure_has_its_points_table(grid_report):
    _, report = grid_report
    for png in (report / "plots").glob("*.png"):
        assert (report / "tables" / f"{png.stem}.csv").is_file(), png.name


def test_report_of_a_mixed_imagen_and_folder_run(shared_data, checkpoint, tmp_path):
    spec = tmp_path / "mixed.toml"
    spec.write_text(
        FOLDERS_SPEC.format(root=shared_data / "drawbench-sd", extra_model=TINY_MODEL.format(checkpoint=checkpoint))
        + '\n[grid]\nsteps = [2]\nguidance = [1.0, 3.0]\nthresholding = ["static"]\n'
    )
    run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    from reports.paired import baselines

    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    pairs = baselines(cells, "guidance")
    tiny_cells = cells[cells.model == "tiny"].set_index("guidance").cell_id
    assert pairs == {tiny_cells[3.0]: tiny_cells[1.0]}  # only the imagen cells pair; folders are left out
    assert (build_report(ReportInputs(runs=(tmp_path / "run",)), tmp_path / "report") / "index.html").is_file()


TWO_SETS_SPEC = (
    """
[sweep]
name = "two_sets"
samples_per_prompt = 1
"""
    + TINY_MODEL
    + """
[[prompt_sets]]
name = "shapes"
n_per_category = 2

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]

[grid]
steps = [2]
guidance = [1.0, 3.0]
thresholding = ["static", "dynamic"]

[[metrics]]
name = "shapes_verifier"
prompt_sets = ["shapes"]

[[metrics]]
name = "fid"
options = {{ reference = "shapes:test", n = 12, shapes_size = 32, blocks = 5 }}
"""
)


def test_a_two_prompt_set_run_reports_whole(checkpoint, tmp_path):
    """A real sweep over two prompt sets (8 shapes + 7 DrawBench prompts): FID's N differs between the
    sets (8 vs 7 images) and is not "made differently"; each set is ranked on its own; FID below
    2,048 images is marked, never ranked; the Pareto figure has no empty series; the gallery shows
    both sets; no interval leaves its metric's range."""
    from reports.leaderboard import LeaderboardOptions, by_category, leaderboard

    spec = tmp_path / "two.toml"
    spec.write_text(TWO_SETS_SPEC.format(checkpoint=checkpoint))
    run = tmp_path / "run"
    run_sweep(spec, run, cache_dir=tmp_path / "cache", progress=False)
    board, pairs = leaderboard([run], LeaderboardOptions(resamples=200))
    fid = board[board.metric == "fid"]
    assert set(fid["prompt_set"]) == {"shapes", "drawbench"} and set(fid["n"]) == {8, 7}
    assert (fid["note"] == "N < 2,048: not comparable").all() and fid["rank"].isna().all()
    debiased = board[board.metric == "fid_debiased"]
    assert len(debiased) == 8 and (debiased["CI low"] >= 0).all() and (debiased["note"] != "").all()
    assert not pairs["metric"].str.startswith("fid").any()  # never compared at N < 2,048
    shapes = board[board.metric == "shapes_accuracy"]
    assert set(shapes["prompt_set"]) == {"shapes"} and len(shapes) == 4
    assert ((shapes["CI low"] >= 0) & (shapes["CI high"] <= 1)).all()
    cats = by_category([run], LeaderboardOptions(resamples=200))
    assert ((cats["CI low"].fillna(0) >= 0) & (cats["CI high"].fillna(1) <= 1)).all()
    report = build_report(ReportInputs(runs=(run,)), tmp_path / "report")
    points = pd.read_csv(report / "tables" / "pareto_run.csv")
    assert points.groupby("series")["y"].count().min() >= 2 and points["y"].notna().all()  # no empty legend entries
    assert set(points["series"]) == {
        "prompt_set=shapes, thresholding=dynamic",
        "prompt_set=shapes, thresholding=static",
    }
    gallery = list((report / "images").glob("overview-*.png"))
    assert any("-shapes-" in p.name for p in gallery) and any("-drawbench-" in p.name for p in gallery)
    html = (report / "index.html").read_text()
    assert "N &lt; 2,048: not comparable" in html or "N < 2,048: not comparable" in html
    assert "What the run found" in html and "<li>Compared: 4 entries" in html  # the opening, one line per finding


# --- the reports as a person sees them: Chromium at laptop size --------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_natural_order():
    from reports.html import natural_key

    assert sorted(["E10", "E2", "E1"], key=natural_key) == ["E1", "E2", "E10"]
    assert sorted(["w=10, static", "w=5, static", "w=1.5, static"], key=natural_key) == [
        "w=1.5, static",
        "w=5, static",
        "w=10, static",
    ]


@pytest.mark.browser
def test_sweep_report_in_chromium_at_laptop_width(grid_report, browser, tmp_path):
    """The 3 x 2 guidance x thresholding sweep's report: findings and the leaderboard / Pareto figures on
    the first screen, a prompts x cells sample grid, entries in natural order (w=1 before w=3 before w=5)."""
    _, report = grid_report
    facts = look(browser, report, tmp_path / "screenshots", "sweep")
    as_a_reader_sees_it(facts, report)
    guidance = [float(label.split(",")[0].removeprefix("w=")) for label in facts["heads"]]
    assert guidance == [1, 1, 3, 3, 5, 5] and facts["firstColumn"][:2] == ["w=1, dynamic", "w=1, static"]


@pytest.mark.browser
def test_human_study_report_in_chromium_at_laptop_width(browser, tmp_path):
    """A side-by-side study of the real SD v1.4 and v1.5 DrawBench images (two categories, every task
    answered as the app stores answers): its report read in Chromium as the sweep's is, the study's
    own images side by side."""
    import random

    from human_eval_fixtures import sbs_study

    from reports.answers import load_answers
    from reports.build import ReportOptions
    from reports.preference import CIConfig

    study = sbs_study(
        tmp_path / "study", prompts="drawbench:Colors,Counting", raters=3, batch_size=8, control_share=0.2, seed=1
    )
    store, rng = study.store(), random.Random(0)
    for rater in ("r01", "r02", "r03"):
        for task in store.tasks(rater):
            right = dict(task.expected)
            want = {
                q: right[q] if task.is_control and q in right else rng.choice(["A", "A", "B", "tie"])
                for q in ("quality", "alignment")
            }
            store.submit(
                rater,
                task.task_id,
                {
                    q: "tie" if w == "tie" else "left" if (w == "A") == task.a_on_left else "right"
                    for q, w in want.items()
                },
                3000,
            )
    store.close()
    frame, settings = load_answers(study.root)
    report = build_report(
        ReportInputs(answers=((str(study.root), frame),), study_settings=settings),
        tmp_path / "human",
        ReportOptions(ci=CIConfig(resamples=200), power_studies=10),
    )
    facts = look(browser, report, tmp_path / "screenshots", "sd-study")
    as_a_reader_sees_it(facts, report)
    assert facts["heads"] == ["sd-v1-4", "sd-v1-5"] and "quality: sd-v1-" in facts["visibleText"]


# --- a metric the reports were never told about -----------------------------------------------------


class Toy:
    """Two per-cell numbers from pixels, declared only here: "redness" (alignment, higher is better,
    in [0, 1]) and "flatness" (fidelity, lower is better): the share of red among the channels and the
    mean absolute difference between neighbouring pixels."""

    name = "toy"
    option_classes = ()

    def __init__(self, options=None, *, cache_dir=None):
        from bench.metrics.base import MetricMeta

        self.meta = {
            "redness": MetricMeta("higher", 0.0, 1.0, "t", "mean red share", role="alignment"),
            "flatness": MetricMeta("lower", 0.0, None, "t", "mean neighbour difference", role="fidelity"),
        }
        self.values: dict[str, list] = {}

    def update(self, images):
        import numpy as np

        out = []
        for im in images:
            x = im.image.astype(float)
            v = (x[..., 0].sum() / max(x.sum(), 1.0), np.abs(np.diff(x, axis=1)).mean())
            self.values.setdefault(im.cell_id, []).append(v)
            out.append({"redness": v[0], "flatness": v[1]})  # per image: the leaderboard's paired comparisons
        return out

    def compute(self):
        import numpy as np

        from bench.metrics.base import MetricResult

        return [
            MetricResult(name, float(np.mean([v[i] for v in vals])), len(vals), {}, cell_id=cell)
            for cell, vals in sorted(self.values.items())
            for i, name in enumerate(("redness", "flatness"))
        ]

    def reset(self):
        self.values = {}


def test_a_metric_the_reports_never_heard_of_is_ranked_and_plotted(checkpoint, tmp_path, monkeypatch):
    """Issue 31: a new metric touches bench/metrics only. Declared with its MetricMeta (direction,
    range, role), it is ranked by the leaderboard the way it says and drawn on the Pareto axes its
    roles name, with no name of it anywhere in reports/."""
    from bench import metrics
    from reports.leaderboard import LeaderboardOptions, leaderboard

    monkeypatch.setitem(metrics.REGISTRY, "toy", (__name__, "Toy"))
    spec = tmp_path / "toy.toml"
    spec.write_text(
        GRID_SPEC.format(checkpoint=checkpoint).split("[[metrics]]")[0].replace("5.0]", "5.0]\n")
        + '[[metrics]]\nname = "toy"\n'
    )
    run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    board, pairs = leaderboard([tmp_path / "run"], LeaderboardOptions(resamples=200))
    for metric, way in (("redness", "higher"), ("flatness", "lower")):
        rows = board[board.metric == metric]
        assert len(rows) == 6 and rows["rank"].notna().all()  # compared and ranked, by nothing but its declaration
        assert list(rows["value"]) == sorted(rows["value"], reverse=way == "higher")  # best first, its declared way
        assert set(pairs.loc[pairs.metric == metric, "direction"]) == {way}
    report = build_report(ReportInputs(runs=(tmp_path / "run",)), tmp_path / "report")
    points = pd.read_csv(report / "tables" / "pareto_run.csv")
    assert set(points["x_name"]) == {"redness"} and set(points["y_name"]) == {"flatness"} and len(points) == 6
