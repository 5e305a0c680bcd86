"""Paired ablation comparisons: baseline matching, McNemar's exact test against hand-computed values,
the vectorised prompt bootstrap against a plain loop, and the table inside a real report."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imagen_bench.cli import main
from reports.bootstrap import resample_indices
from reports.paired import baselines, mcnemar_exact, paired_difference, paired_table


def cells_frame(rows: list[tuple[str, float, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "cell_id": cid,
                "model": "m",
                "prompt_set": "shapes",
                "sampler": "ddpm",
                "steps": steps,
                "guidance": g,
                "thresholding": t,
                "percentile": pd.NA,
                "aug_level": 0.0,
                "seed": 0,
            }
            for cid, g, t, steps in rows
        ]
    )


def test_baseline_is_the_cell_equal_in_everything_but_guidance():
    cells = cells_frame(
        [
            ("g1-static", 1.0, "static", 32),
            ("g3-static", 3.0, "static", 32),
            ("g5-static", 5.0, "static", 32),
            ("g1-none", 1.0, "none", 32),
            ("g5-none", 5.0, "none", 32),
            ("g5-static-64", 5.0, "static", 64),
        ]
    )
    assert baselines(cells, "guidance") == {"g3-static": "g1-static", "g5-static": "g1-static", "g5-none": "g1-none"}
    with pytest.raises(ValueError, match=r"cannot pair on 'guidnace'.*'guidance'"):
        baselines(cells, "guidnace")


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert mcnemar_exact(8, 2) == pytest.approx(2 * (comb(10, 0) + comb(10, 1) + comb(10, 2)) / 2**10)  # 0.109375
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(12, 0) == pytest.approx(2 / 2**12)


def test_paired_difference_equals_a_plain_loop_bootstrap_over_prompts():
    rng = np.random.default_rng(3)
    prompt = np.repeat([f"p{i}" for i in range(30)], 2)  # two samples per prompt stay together
    y, y_base = (rng.random(60) < 0.6).astype(float), (rng.random(60) < 0.4).astype(float)
    got = paired_difference(prompt, y, y_base, resamples=500, seed=7)
    # reference: the same prompt draws, each replicate built as an explicit list of the drawn prompts' pairs
    codes = np.unique(prompt)
    prompt_idx, _ = resample_indices(7, len(codes), 1, 500)
    reps = []
    for drawn in prompt_idx:
        diffs = [d for i in drawn for d in (y - y_base)[prompt == codes[i]]]
        reps.append(np.mean(diffs))
    from scipy.stats import t

    half = t.ppf(0.975, len(codes) - 1) * np.std(reps, ddof=1) * np.sqrt(len(codes) / (len(codes) - 1))
    lo, hi = (y - y_base).mean() - half, (y - y_base).mean() + half
    assert got["difference"] == pytest.approx(y.mean() - y_base.mean())
    assert (got["CI low"], got["CI high"]) == pytest.approx((lo, hi))
    assert got["better"] == int(((y == 1) & (y_base == 0)).sum()) and got["worse"] == int(
        ((y == 0) & (y_base == 1)).sum()
    )
    assert got["McNemar p"] == pytest.approx(mcnemar_exact(got["better"], got["worse"]))


def test_paired_difference_edge_cases():
    p = np.array([f"p{i}" for i in range(40)])
    same = paired_difference(p, np.ones(40), np.ones(40), resamples=200)
    assert same["difference"] == 0 and same["CI low"] == same["CI high"] == 0 and same["McNemar p"] == 1.0
    strong = paired_difference(p, np.ones(40), np.zeros(40), resamples=200)
    assert strong["CI low"] == strong["CI high"] == 1.0 and strong["better"] == 40 and strong["McNemar p"] < 1e-10
    cont = paired_difference(p, np.full(40, 0.75), np.full(40, 0.5), resamples=200)
    assert cont["difference"] == pytest.approx(0.25) and "McNemar p" not in cont  # not a 0/1 metric


def write_paired_run(run: Path) -> Path:
    """Two guidance cells on 20 prompts x 2 samples; w = 5 right where w = 1 was wrong on 6 prompts' first sample."""
    run.mkdir()
    cells = cells_frame([("g1", 1.0, "static", 32), ("g5", 5.0, "static", 32)])
    cells.to_parquet(run / "cells.parquet")
    rows = []
    for cid in ("g1", "g5"):
        for i in range(20):
            for s in range(2):
                correct = float(i % 2 == 0 or (cid == "g5" and i in (1, 3, 5, 7, 9, 11) and s == 0))
                if cid == "g5" and i == 19 and s == 1:
                    continue  # a missing image: its pair drops out
                rows.append(
                    {
                        "cell_id": cid,
                        "prompt_set": "shapes",
                        "prompt_id": f"shapes-{i:04d}",
                        "sample": s,
                        "metric": "shapes_correct",
                        "value": correct,
                    }
                )
    pd.DataFrame(rows).to_parquet(run / "metrics_image.parquet")
    metrics = [
        {"cell_id": c, "metric": "shapes_accuracy", "value": 0.5, "n": 40, "details": json.dumps({})}
        for c in ("g1", "g5")
    ]
    pd.DataFrame(metrics).to_parquet(run / "metrics_cell.parquet")
    return run


def test_paired_table_from_a_run_folder(tmp_path):
    run = write_paired_run(tmp_path / "run")
    table = paired_table(run, pd.read_parquet(run / "cells.parquet"), resamples=300)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["cell_id"], row["baseline cell"], row["guidance"], row["baseline guidance"]) == ("g5", "g1", 5.0, 1.0)
    assert row["N pairs"] == 39 and row["better"] == 6 and row["worse"] == 0
    assert row["McNemar p"] == pytest.approx(2 / 2**6)
    assert row["difference"] == pytest.approx(6 / 39)
    assert paired_table(
        tmp_path, pd.read_parquet(run / "cells.parquet")
    ).empty  # no metrics_image.parquet: nothing to pair


def test_report_shows_the_paired_guidance_table(tmp_path, capsys):
    run = write_paired_run(tmp_path / "run")
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out)]) == 0, capsys.readouterr().err
    table = pd.read_parquet(out / "tables" / "paired_guidance_run.parquet")
    assert table.loc[0, "better"] == 6
    assert "McNemar" in (out / "index.html").read_text()


def test_paired_p_matches_the_interval():
    """p < 0.05 exactly when the 95 % interval of the difference excludes 0, and equals the t test
    with the bootstrap SE."""
    from reports.paired import paired_difference

    rng = np.random.default_rng(0)
    prompt = np.repeat(np.arange(40), 2).astype(str)
    for shift in (0.0, 0.05, 0.2, 0.5):
        y_base = rng.normal(size=80)
        row = paired_difference(prompt, y_base + shift + rng.normal(0, 0.5, 80), y_base, resamples=2000, seed=1)
        assert (row["p"] < 0.05) == (row["CI low"] > 0 or row["CI high"] < 0)
        assert 0 <= row["p"] <= 1
    same = paired_difference(prompt, np.ones(80), np.ones(80), resamples=200)
    assert same["p"] == 1.0
