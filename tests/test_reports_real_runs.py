"""Reports built from real sweeps, not hand-made frames: a 3 x 2 guidance x thresholding sweep of a
tiny cascade scored with the real FID and shapes verifier draws one Pareto line per thresholding
mode; runs with image-folder models (real Stable Diffusion images) report without paired rows."""
from __future__ import annotations

import pandas as pd
import pytest
from sweep_fixtures import make_tiny_checkpoint

from bench.sweep.runner import run_sweep
from reports.build import ReportInputs, build_report
from reports.runs import read_run_metrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_MODEL = '''
[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{checkpoint}"
batch_size = 4
precision = "fp32"
[models.stages.sr32]
steps = 2
'''

GRID_SPEC = '''
[sweep]
name = "grid"
samples_per_prompt = 1
''' + TINY_MODEL + '''
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
'''

FOLDERS_SPEC = '''
[sweep]
name = "sd"
samples_per_prompt = 1
{extra_model}
[[models]]
name = "sd-v1-4"
kind = "folder"
path = "{root}/sd-v1-4"
seed = 0

[[models]]
name = "sd-v1-5"
kind = "folder"
path = "{root}/sd-v1-5"
seed = 0

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]
'''


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
    assert cells["name"].nunique() == 6 and cells["model_description"].nunique() == 1  # the columns that broke the plots
    assert read_run_metrics(run).varying() == ["guidance", "thresholding"]  # percentile: 99.5 where it applies, else NA


def test_pareto_plot_draws_one_line_per_thresholding_mode_in_guidance_order(grid_report):
    _, report = grid_report
    assert (report / "plots" / "pareto_run.png").is_file()
    points = pd.read_csv(report / "tables" / "pareto_run.csv")
    assert list(points.columns) == ["panel", "series", "x_name", "x", "y_name", "y", "low", "high", "label"]
    series = {s: rows for s, rows in points.groupby("series")}
    assert sorted(series) == ["thresholding=dynamic", "thresholding=static"]
    for rows in series.values():
        assert rows["label"].tolist() == ["w=1", "w=3", "w=5"]
        assert rows["x_name"].eq("shapes_accuracy").all() and rows["y_name"].eq("fid").all() and rows["y"].notna().all()
    wide = read_run_metrics(grid_report[0]).wide().set_index(["thresholding", "guidance"])
    dyn = series["thresholding=dynamic"]
    assert dyn["y"].tolist() == pytest.approx([wide.loc[("dynamic", g), "fid"] for g in (1.0, 3.0, 5.0)])  # the run's numbers


def test_every_report_figure_has_its_points_table(grid_report):
    _, report = grid_report
    for png in (report / "plots").glob("*.png"):
        assert (report / "tables" / f"{png.stem}.csv").is_file(), png.name


def test_report_of_two_folder_models_on_real_images(shared_data, tmp_path):
    """Image folders have no sampling axes: no paired-guidance rows, and no 'all NA' crash."""
    spec = tmp_path / "sd.toml"
    spec.write_text(FOLDERS_SPEC.format(root=shared_data / "drawbench-sd", extra_model=""))
    run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    report = build_report(ReportInputs(runs=(tmp_path / "run",)), tmp_path / "report")
    assert (report / "index.html").is_file() and not list((report / "tables").glob("paired_guidance_*"))
    assert read_run_metrics(tmp_path / "run").varying() == ["model"]


def test_report_of_a_mixed_imagen_and_folder_run(shared_data, checkpoint, tmp_path):
    spec = tmp_path / "mixed.toml"
    spec.write_text(FOLDERS_SPEC.format(root=shared_data / "drawbench-sd", extra_model=TINY_MODEL.format(checkpoint=checkpoint))
                    + '\n[grid]\nsteps = [2]\nguidance = [1.0, 3.0]\nthresholding = ["static"]\n')
    run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    from reports.paired import baselines

    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    pairs = baselines(cells, "guidance")
    tiny_cells = cells[cells.model == "tiny"].set_index("guidance").cell_id
    assert pairs == {tiny_cells[3.0]: tiny_cells[1.0]}  # only the imagen cells pair; folders are left out
    assert (build_report(ReportInputs(runs=(tmp_path / "run",)), tmp_path / "report") / "index.html").is_file()


TWO_SETS_SPEC = '''
[sweep]
name = "two_sets"
samples_per_prompt = 1
''' + TINY_MODEL + '''
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
'''


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
    assert set(points["series"]) == {"prompt_set=shapes, thresholding=dynamic", "prompt_set=shapes, thresholding=static"}
    gallery = list((report / "images").glob("overview-*.png"))
    assert any("-shapes-" in p.name for p in gallery) and any("-drawbench-" in p.name for p in gallery)
    html = (report / "index.html").read_text()
    assert "N &lt; 2,048: not comparable" in html or "N < 2,048: not comparable" in html
    assert "What the run found:" in html and "• Compared: 4 entries" in html  # the opening, one line per finding
