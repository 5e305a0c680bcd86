"""Run-folder tables and figures, and whole reports: the SD v1.4 vs v1.5 demo with simulated
ratings renders with every image present; existing folders are never overwritten by accident."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from imagen_bench.cli import main
from reports.runs import headline_table, read_run_metrics, shapes_table

SD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "drawbench-sd"


def _meta(name: str, result: str) -> dict:
    """The MetricMeta record a sweep writes into each result's details (bench.metrics.base.described)."""
    from bench.metrics import metric_class

    return {"meta": metric_class(name).meta[result].record()}


def write_run(
    run: Path, guidance=(1.0, 3.0, 5.0), thresholding=("static", "dynamic"), aug_levels=(0.0, 0.3), fid=True
) -> Path:
    """A tiny run folder per contract 1 (cells + per-cell metrics with their meta, as a sweep writes
    them; no images needed for the tables)."""
    run.mkdir(parents=True)
    cells, metrics = [], []
    shapes = json.dumps(_meta("shapes_verifier", "shapes_accuracy"))
    for g in guidance:
        for t in thresholding:
            for a in aug_levels:
                cid = f"g{g:g}-{t}-a{a:g}"
                cells.append(
                    {
                        "cell_id": cid,
                        "model": "tiny",
                        "prompt_set": "coco",
                        "sampler": "ddpm",
                        "steps": 50,
                        "guidance": g,
                        "thresholding": t,
                        "percentile": 99.5,
                        "aug_level": a,
                    }
                )
                fid_value = 30 - 2 * g + (8 if t == "static" else 0) * g / 5 + 10 * a
                if fid:
                    metrics.append(
                        {
                            "cell_id": cid,
                            "metric": "fid",
                            "value": fid_value,
                            "n": 500,
                            "details": json.dumps(
                                {
                                    "resize": "clean",
                                    "reference": "folder:ref",
                                    "feature_weights_sha256": "ab" * 32,
                                    **_meta("fid", "fid"),
                                }
                            ),
                        }
                    )
                metrics.append(
                    {
                        "cell_id": cid,
                        "metric": "clip_score",
                        "value": None,
                        "n": 500,
                        "details": json.dumps(
                            {
                                "unavailable": "CLIP score needs weights: set clip_score model=<dir>",
                                **_meta("clip_score", "clip_score"),
                            }
                        ),
                    }
                )
                metrics.append(
                    {
                        "cell_id": cid,
                        "metric": "shapes_accuracy",
                        "value": 0.3 + 0.05 * g - 0.1 * a,
                        "n": 500,
                        "details": shapes,
                    }
                )
                for cat, off in (("Colors", 0.1), ("Counting", -0.1)):
                    metrics.append(
                        {
                            "cell_id": cid,
                            "metric": f"shapes_accuracy/{cat}",
                            "value": 0.3 + off + 0.05 * g,
                            "n": 250,
                            "details": json.dumps({"category": cat, **_meta("shapes_verifier", "shapes_accuracy")}),
                        }
                    )
    pd.DataFrame(cells).to_parquet(run / "cells.parquet")
    pd.DataFrame(metrics).to_parquet(run / "metrics_cell.parquet")
    return run


def test_metric_tables_carry_n_and_how(tmp_path):
    run = read_run_metrics(write_run(tmp_path / "run"))
    table = headline_table(run).set_index("cell_id")
    row = table.loc["g3-dynamic-a0"]
    assert row["fid"] == pytest.approx(24.0) and row["fid N"] == 500
    assert "resize=clean" in row["fid how"] and "reference=folder:ref" in row["fid how"]
    assert row["clip_score how"].startswith("unavailable: CLIP score needs weights")
    assert pd.isna(row["clip_score"])
    shapes = shapes_table(run).set_index("cell_id")
    assert (
        shapes.loc["g1-static-a0", "Colors"] == pytest.approx(0.45) and shapes.loc["g1-static-a0", "N images"] == 250
    )


def test_run_folder_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="cells.parquet"):
        read_run_metrics(tmp_path)


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "a" and not attrs.get("href", "#").startswith("#"):
            self.links.append(attrs["href"])


def _check_html(report: Path) -> tuple[str, list[str]]:
    text = (report / "index.html").read_text()
    refs = _Refs()
    refs.feed(text)
    for src in refs.images:
        with Image.open(report / src) as im:
            im.load()  # decodes
    for href in refs.links:
        assert (report / href).is_file(), href
    pngs = {f"plots/{p.name}" for p in (report / "plots").iterdir()}
    assert pngs <= set(refs.images)  # every written plot is shown
    return text, refs.images


@pytest.mark.skipif(not (SD / "sd-v1-4").is_dir(), reason=f"SD DrawBench images not found at {SD}")
def test_sd_demo_report_renders_with_every_plot(tmp_path, capsys):
    run = write_run(tmp_path / "sweep-run")
    # flat: guidance swept but no fidelity metric (the Pareto figure says why it is missing); one aug
    # level (no aug_level figure, and no note about it: a figure over one level would be a point)
    flat = write_run(
        tmp_path / "flat-run", guidance=(1.0, 3.0), thresholding=("dynamic",), aug_levels=(0.0,), fid=False
    )
    out = tmp_path / "report"
    args = [
        "report",
        str(run),
        str(flat),
        "--simulate-ratings",
        str(SD / "sd-v1-4"),
        str(SD / "sd-v1-5"),
        "--out",
        str(out),
        "--resamples",
        "300",
        "--power-studies",
        "10",
    ]
    assert main(args) == 0, capsys.readouterr().err
    text, images = _check_html(out)
    for plot in ("drawbench_sd-v1-4_vs_sd-v1-5.png", "power.png", "pareto_sweep-run.png", "aug_level_sweep-run.png"):
        assert f"plots/{plot}" in images
    assert sum(src.startswith("images/") for src in images) == 22  # one pair per DrawBench category
    assert "SIMULATED RATINGS" in text
    assert "Figure &#x27;pareto_flat-run&#x27; skipped: the run has no fidelity metric with values" in text
    assert "aug_level_flat-run" not in text and "No shapes-verifier accuracy" not in text
    assert "excluded" in text and "Krippendorff" in text and "Satterthwaite" in text
    sbs = pd.read_parquet(out / "tables" / "drawbench_sbs.parquet")
    assert set(sbs.category) == {
        "All",
        "Colors",
        "Conflicting",
        "Counting",
        "DALL-E",
        "Descriptions",
        "Gary Marcus et al.",
        "Misspellings",
        "Positional",
        "Rare Words",
        "Reddit",
        "Text",
    }
    meta = json.loads((out / "report.json").read_text())
    assert meta["package_version"] and meta["options"]["ci"]["method"] == "crossed"

    # an existing report is never overwritten without --force ...
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    # ... and with --force it is replaced whole (here by a metrics-only report)
    (out / "stale.txt").write_text("old")
    assert main(["report", str(run), "--out", str(out), "--force"]) == 0
    assert not (out / "stale.txt").exists() and "SIMULATED" not in _check_html(out)[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging / replaced leftovers


def test_force_never_replaces_a_folder_that_is_not_a_report(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert main(["report", str(run), "--out", str(mine), "--force"]) == 2
    assert "not a report folder" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "precious"


def test_failed_report_leaves_nothing_behind(tmp_path, capsys):
    bad = tmp_path / "ratings.csv"
    pd.DataFrame({"rater": ["r1"]}).to_csv(bad, index=False)
    assert main(["report", str(bad), "--out", str(tmp_path / "report")]) == 2
    assert "lacks columns" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv"]
    with pytest.raises(SystemExit):  # argparse rejects it, listing the choices
        main(["report", "--out", str(tmp_path / "r2"), "--ci", "bca"])
    assert "choose from" in capsys.readouterr().err


def test_report_from_a_real_human_eval_study(tmp_path, capsys):
    """Contract 2 end to end: a study made by human_eval, answered through its store, reported."""
    from human_eval_fixtures import sbs_study

    study = sbs_study(tmp_path / "study", prompts="drawbench:Colors", raters=3, batch_size=6, control_share=0.2)
    store = study.store()
    rng = __import__("numpy").random.default_rng(0)
    for rater in ("r01", "r02", "r03"):
        for task in store.tasks(rater):
            if task.is_control:  # answer controls right (de-randomised "A" is on the left when a_on_left)
                right = dict(task.expected)
                shown = {
                    q: ("left" if (right.get(q, "A") == "A") == task.a_on_left else "right")
                    for q in ("quality", "alignment")
                }
            else:
                shown = {q: str(rng.choice(["left", "tie", "right"])) for q in ("quality", "alignment")}
            store.submit(rater, task.task_id, shown, 1000)
    out = tmp_path / "report"
    assert main(["report", str(study.root), "--out", str(out), "--resamples", "200", "--power-studies", "10"]) == 0, (
        capsys.readouterr().err
    )
    _check_html(out)
    sbs = pd.read_csv(out / "tables" / "drawbench_sbs.csv")
    assert set(sbs.category) == {"All", "Colors"} and (sbs.n_raters == 3).all()
    accuracy = pd.read_csv(out / "tables" / "rater_control_accuracy.csv")
    assert (accuracy.accuracy == 1.0).all() and not accuracy.flagged.any()
    agreement = pd.read_csv(out / "tables" / "agreement.csv")  # items rated by several raters are units
    assert (agreement.units_with_2plus_ratings > 0).all() and agreement.alpha_nominal.notna().all()


def test_html_metric_table_shows_how_once_per_metric(tmp_path):
    from reports.runs import split_how

    table = headline_table(read_run_metrics(write_run(tmp_path / "run")))
    values, methods = split_how(table)
    assert not any(c.endswith(" how") for c in values.columns) and len(values) == len(table)
    clip = methods[methods.metric == "clip_score"]
    assert len(clip) == 1 and clip.iloc[0]["cells"] == "all"
    assert clip.iloc[0]["how it was computed"].startswith("unavailable: CLIP score needs weights")
    # every (metric, how) pair of the full table is still there
    for col in [c for c in table.columns if c.endswith(" how")]:
        assert set(table[col]) == set(methods[methods.metric == col[:-4]]["how it was computed"])


def _answer(store, rater: str, controls_right: bool) -> None:
    """Answer every task of `rater`: controls right or wrong, ordinary tasks 'left'."""
    for task in store.tasks(rater):
        if task.is_control:
            right = dict(task.expected)
            good = {
                q: ("left" if (right.get(q, "A") == "A") == task.a_on_left else "right")
                for q in ("quality", "alignment")
            }
            bad = {q: ("right" if v == "left" else "left") for q, v in good.items()}
            store.submit(rater, task.task_id, good if controls_right else bad, 1000)
        else:
            store.submit(rater, task.task_id, {"quality": "left", "alignment": "left"}, 1000)


def test_report_over_two_studies_keeps_their_raters_apart_and_applies_each_threshold(tmp_path, capsys):
    """r01 of one study is not r01 of the other: real studies, answered through their stores."""
    from dataclasses import replace

    from human_eval_fixtures import sd_folders

    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    a, b = sd_folders()
    base = StudySettings(
        protocol="drawbench_sbs",
        a=f"folder:{a}",
        b=f"folder:{b}",
        prompts="drawbench:Colors",
        images_per_set=1,
        plan=PlanSettings(raters=2, batch_size=6, control_share=0.2),
    )
    one = create_study(tmp_path / "one", base)
    two = create_study(tmp_path / "two", replace(base, control_threshold=0.0))  # study two keeps everyone
    s1, s2 = one.store(), two.store()
    _answer(s1, "r01", controls_right=False)  # fails the controls in study one
    _answer(s1, "r02", controls_right=True)
    _answer(s2, "r01", controls_right=True)  # a different person with the same name
    _answer(s2, "r02", controls_right=False)  # fails, but study two's recorded threshold is 0
    out = tmp_path / "report"
    assert (
        main(
            ["report", str(one.root), str(two.root), "--out", str(out), "--resamples", "200", "--power-studies", "10"]
        )
        == 0
    ), capsys.readouterr().err
    acc = pd.read_csv(out / "tables" / "rater_control_accuracy.csv").set_index(["study", "rater"])
    assert acc.loc[(one.key, "r01"), "flagged"] and not acc.loc[(two.key, "r01"), "flagged"]
    assert acc.loc[(two.key, "r02"), "threshold"] == 0.0 and not acc.loc[(two.key, "r02"), "flagged"]
    assert acc["flagged"].sum() == 1
    html = (out / "index.html").read_text()
    assert "1 of 4 raters excluded" in html
    # DrawBench's headline is every rater's answers, as the paper reports it; the filtered table is beside it
    head = pd.read_csv(out / "tables" / "drawbench_sbs.csv")
    filtered = pd.read_csv(out / "tables" / "drawbench_sbs_control_filtered.csv")
    assert (head[head.category == "All"].n_raters == 4).all() and (
        filtered[filtered.category == "All"].n_raters == 3
    ).all()
    for share in ("share_A", "share_tie", "share_B"):  # each share with its interval
        assert (head[f"{share}_low"] <= head[share]).all() and (head[share] <= head[f"{share}_high"]).all()
    assert (head.share_A + head.share_tie + head.share_B).round(9).eq(1).all()
    # a threshold given on the command line applies to every study
    out2 = tmp_path / "report2"
    assert (
        main(
            [
                "report",
                str(one.root),
                str(two.root),
                "--out",
                str(out2),
                "--resamples",
                "200",
                "--power-studies",
                "10",
                "--control-threshold",
                "0.8",
            ]
        )
        == 0
    )
    acc2 = pd.read_csv(out2 / "tables" / "rater_control_accuracy.csv").set_index(["study", "rater"])
    assert acc2["flagged"].sum() == 2 and acc2.loc[(two.key, "r02"), "flagged"]


def test_user_text_in_names_is_drawn_literally_and_kept_apart(tmp_path):
    """Model names and categories are user text: '$' is not mathtext, long names fit in a file
    name, 'a b' and 'a_b' get their own plots, and CSV cells that a spreadsheet would run as a
    formula are neutralised (parquet keeps them exact)."""
    from reports.build import ReportInputs, build_report
    from reports.simulate import RaterModel, StudyDesign, simulate_sbs_frame

    prompts = pd.DataFrame({"id": range(1, 21), "category": ['=HYPERLINK("http://x")', "Colors"] * 10})
    design = StudyDesign(n_prompts=20, n_raters=4, answers_per_rater=20, controls_per_rater=4)
    model = {"quality": RaterModel(preference=0.6), "alignment": RaterModel(preference=0.6)}
    long_a, long_b = "m" * 140, "n" * 140
    frames = [
        simulate_sbs_frame(prompts, a, b, model, design, seed=i, study=f"s{i}")
        for i, (a, b) in enumerate([("$5 and $10", "a b"), ("$5 and $10", "a_b"), (long_a, long_b)])
    ]
    out = build_report(ReportInputs(answers=(("sim", pd.concat(frames, ignore_index=True)),)), tmp_path / "report")
    plots = sorted(p.name for p in (out / "plots").glob("drawbench_*.png"))
    assert len(plots) == 3 and all(len(p) < 120 for p in plots)  # one per pair, none overwritten, short names
    sbs_csv = (out / "tables" / "drawbench_sbs.csv").read_text()
    assert "'=HYPERLINK" in sbs_csv and "\n=HYPERLINK" not in sbs_csv and ",=HYPERLINK" not in sbs_csv
    assert (pd.read_parquet(out / "tables" / "drawbench_sbs.parquet").category == '=HYPERLINK("http://x")').any()


def test_csv_safe_neutralises_formula_cells_only():
    from common.tables import csv_safe

    df = pd.DataFrame({"t": ["=1+1", "+x", "-y", "@z", "\tq", "ok", None], "n": [-1.5, 2, 3, 4, 5, 6, 7]})
    safe = csv_safe(df)
    assert safe.t.tolist()[:6] == ["'=1+1", "'+x", "'-y", "'@z", "'\tq", "ok"] and safe.n.tolist() == df.n.tolist()
