"""The leaderboard across run folders: built from real sweeps of a tiny cascade (shapes verifier per
image, FID as a set metric), intervals whose coverage is checked by simulation, ranks from paired
comparisons, and the refusal to put numbers made differently side by side."""

from __future__ import annotations

import errno
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from sweep_fixtures import make_tiny_checkpoint, tiny_spec

from bench.sweep.runner import run_sweep
from imagen_bench.cli import main as cli
from reports.leaderboard import LeaderboardOptions, direction, leaderboard, wide
from reports.paired import prompt_bootstrap

pytestmark = pytest.mark.usefixtures("one_torch_thread")

METRICS = """
[[metrics]]
name = "shapes_verifier"

[[metrics]]
name = "fid"
options = {{ reference = "shapes:test", n = {reference_n}, shapes_size = 32 }}
"""


def spec(checkpoint, guidance: tuple, reference_n: int) -> str:
    """The sweep tests' tiny spec on 3 shapes prompts per category (12), 2 samples, with the shapes
    verifier (per image) and FID (a set metric) against `reference_n` reference renders."""
    text = tiny_spec(
        checkpoint,
        guidance=guidance,
        thresholding=("static",),
        samples=2,
        metrics=False,
        extra=METRICS.format(reference_n=reference_n),
    )
    return text.replace('name = "drawbench"\ncategories = ["Rare Words"]', 'name = "shapes"\nn_per_category = 3')


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("lb")
    checkpoint = make_tiny_checkpoint(d / "ckpt")
    out = {}
    for name, guidance, reference_n in (("a", (1.0, 5.0), 12), ("b", (3.0,), 12), ("c", (3.0,), 8)):
        (d / f"{name}.toml").write_text(spec(checkpoint, guidance, reference_n))
        run_sweep(d / f"{name}.toml", d / name, cache_dir=d / "cache", progress=False)
        out[name] = d / name
    return out


def test_board_from_real_runs(runs):
    board, pairs = leaderboard([runs["a"], runs["b"]], LeaderboardOptions(resamples=500))
    shapes = board[board.metric == "shapes_accuracy"]
    assert len(shapes) == 3 and shapes["entry"].str.startswith(("a/", "b/")).all()
    images = pd.concat([pd.read_parquet(runs[r] / "metrics_image.parquet") for r in ("a", "b")])
    means = images[images.metric == "shapes_correct"].groupby("cell_id")["value"].mean()
    assert shapes.set_index("cell_id")["value"].to_dict() == pytest.approx(means.to_dict())  # the run's own numbers
    assert (shapes["CI low"] <= shapes["value"]).all() and (shapes["value"] <= shapes["CI high"]).all()
    assert (
        (shapes["CI low"] >= 0).all()
        and (shapes["CI high"] <= 1).all()
        and shapes["interval"].str.startswith("wilson-eff over 12").all()
    )
    assert shapes["value"].is_monotonic_decreasing and shapes["rank"].between(1, 3).all()  # higher is better
    fid = board[board.metric == "fid"]
    # 24 images: far below 2,048, so marked, never ranked or ordered (and no interval: blocks off)
    assert (
        fid["CI low"].isna().all() and fid["rank"].isna().all() and (fid["note"] == "N < 2,048: not comparable").all()
    )
    assert "reference=shapes:test" in fid["how"].iloc[0] and "reference_n=12" in fid["how"].iloc[0]
    assert not pairs["metric"].eq("fid").any()
    binary = pairs[pairs.metric == "shapes_accuracy"]
    assert (
        len(binary) == 3 and binary["McNemar p"].between(0, 1).all() and (binary["N pairs"] == 24).all()
    )  # 12 prompts x 2 samples
    assert (binary["p (Holm)"] >= binary["p"]).all() and (binary["separated"] == (binary["p (Holm)"] < 0.05)).all()
    # a rank counts the entries that beat this one in a Holm-separated paired comparison, nothing else
    for row in shapes.itertuples():
        beaten_by = sum(
            1
            for p in binary.to_dict("records")  # mean(A - B) > 0: A beat B
            if p["separated"]
            and ((p["B"] == row.entry and p["difference"] > 0) or (p["A"] == row.entry and p["difference"] < 0))
        )
        assert row.rank == 1 + beaten_by
    text = wide(board)
    assert list(text.columns[:1]) == ["entry"] and text["shapes_accuracy"].str.contains(r"\[.*\] #\d").all()


def test_numbers_made_differently_are_refused_naming_the_difference(runs):
    with pytest.raises(
        ValueError,
        match=r"fid was made differently for a/.* and c/.* \(reference_n: 12 vs 8 and 1 more key\); not "
        r"compared: leave it out with --metrics$",
    ) as refused:
        leaderboard([runs["a"], runs["c"]])
    assert len(str(refused.value)) <= 200  # one terminal line
    board, _ = leaderboard([runs["a"], runs["c"]], LeaderboardOptions(metrics=("shapes_accuracy",), resamples=200))
    assert set(board.metric) == {"shapes_accuracy"} and len(board) == 3


def test_leaderboard_command_writes_what_made_it(runs, tmp_path, capsys):
    out = tmp_path / "lb"
    assert cli(["leaderboard", str(runs["a"]), str(runs["b"]), "--out", str(out), "--resamples", "300"]) == 0
    printed = capsys.readouterr().out
    assert "shapes_accuracy" in printed and "Holm-corrected" in printed
    assert {p.name for p in out.iterdir()} == {
        "leaderboard.csv",
        "leaderboard.parquet",
        "pairs.csv",
        "pairs.parquet",
        "leaderboard.json",
    }
    made = json.loads((out / "leaderboard.json").read_text())
    assert (
        made["options"]["resamples"] == 300
        and set(made["runs"]) == {str(runs["a"]), str(runs["b"])}
        and made["package_version"]
    )
    assert cli(["leaderboard", str(runs["a"]), "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert cli(["leaderboard", str(runs["a"]), "--metrics", "fidd"]) == 2
    assert "no metric ['fidd'] in these runs; metrics:" in capsys.readouterr().err


def test_direction_comes_from_the_metric_own_declaration(runs):
    """Which way is better is read from each result's recorded MetricMeta, declared beside the
    metric: every registered metric declares every result it gives."""
    from bench.metrics import REGISTRY
    from reports.leaderboard import entries

    frame = entries([runs["a"]])
    ways = {m: direction(d) for m, d in zip(frame["metric"], frame["details"])}
    assert ways["fid"] == "lower" and ways["shapes_accuracy"] == "higher" and ways["shapes_claim_accuracy"] == "higher"
    assert direction({}) is None and direction({"meta": {"direction": "none"}}) is None
    import importlib

    for name, (module, cls) in REGISTRY.items():
        assert getattr(importlib.import_module(module), cls).meta, name


@pytest.mark.parametrize("n_prompts, binary", [(21, False), (100, True)])
def test_prompt_bootstrap_interval_covers_the_truth(n_prompts, binary):
    """Simulated per-image scores, two samples per prompt with a prompt effect: the 95 % interval
    holds the true mean in 94-96 % of 2,000 data sets (21 prompts: DrawBench Text; 100: a binary
    verifier score)."""
    rng = np.random.default_rng(1)
    prompt = np.repeat(np.arange(n_prompts), 2)
    truth = float(np.mean(1 / (1 + np.exp(-rng.normal(0.5, 1, 1_000_000))))) if binary else 0.0
    hits = 0
    for k in range(2000):
        if binary:
            p = 1 / (1 + np.exp(-rng.normal(0.5, 1, n_prompts)))
            y = (rng.random(2 * n_prompts) < p[prompt]).astype(float)
        else:
            y = rng.normal(0, 1, n_prompts)[prompt] + rng.normal(0, 1, 2 * n_prompts)
        _, lo, hi = prompt_bootstrap(prompt, y, resamples=1000, seed=k)
        hits += lo <= truth <= hi
    assert 0.94 <= hits / 2000 <= 0.96


def test_per_category_breakdown_and_the_report_opening(runs, tmp_path):
    from reports.build import ReportInputs, build_report
    from reports.leaderboard import by_category

    table = by_category([runs["a"]], LeaderboardOptions(resamples=200))
    shapes = table[table.metric == "shapes_correct"]
    assert set(shapes.category) == {"Colors", "Counting", "Descriptions", "Positional"} and shapes.entry.nunique() == 2
    images = pd.read_parquet(runs["a"] / "metrics_image.parquet")
    per_cell = images[images.metric == "shapes_correct"].groupby("cell_id").size()
    assert shapes.groupby("entry")["n"].sum().tolist() == per_cell.tolist()  # every image in exactly one category
    weighted = (shapes["value"] * shapes["n"]).groupby(shapes["entry"]).sum() / shapes.groupby("entry")["n"].sum()
    board, _ = leaderboard([runs["a"]], LeaderboardOptions(resamples=200))
    overall = board[board.metric == "shapes_accuracy"].set_index("entry")["value"]
    assert weighted.to_dict() == pytest.approx(overall.to_dict())
    report = build_report(ReportInputs(runs=(runs["a"], runs["b"])), tmp_path / "report")
    html = (report / "index.html").read_text()
    assert html.index("Leaderboard") < html.index("Automated metrics")  # the report opens with it
    for name in ("leaderboard", "leaderboard_legend", "leaderboard_by_category", "leaderboard_long"):
        assert (report / "tables" / f"{name}.csv").is_file(), name
    assert len(list((report / "images").glob("overview-*.png"))) == 3 * 4  # 3 cells x the first 4 shared prompts


def test_findings_say_each_separated_pair_once_with_its_interval(runs):
    """The report's opening sentences, from real runs: what was compared, one sentence per
    Holm-separated pair (the better entry first, its lead inside the pair's interval), the count
    of pairs not separated, and FID's small-N note once."""
    from reports.findings import findings, short_labels

    board, pairs = leaderboard([runs["a"], runs["b"]], LeaderboardOptions(resamples=300))
    labels = short_labels([runs["a"], runs["b"]], board)
    assert len(set(labels.values())) == len(labels) and all(
        ":" in v for v in labels.values()
    )  # two runs: run name in front
    lines = findings(board, pairs, labels)
    assert lines[0].startswith("Compared: 3 entries") and "on shapes" in lines[0]
    shapes = pairs[pairs.metric == "shapes_accuracy"]
    beats = [x for x in lines if x.startswith("shapes_accuracy on shapes:") and " beats " in x]
    assert len(beats) == int(shapes["separated"].sum())
    rest = int((~shapes["separated"]).sum())
    assert (f"{rest} of {len(shapes)} comparisons not separated" in " ".join(lines)) == (rest > 0)
    assert sum(x.startswith("fid: N < 2,048: not comparable") for x in lines) == 1


def test_a_difference_in_long_names_and_values_stays_one_short_line(runs):
    """A COCO FID's reference is a long path and cells have long names (the refusal was 564 characters):
    both entries, the key and both values are clipped, and the other differing keys counted."""
    from reports.leaderboard import entries, made_differently

    frame = entries([runs["a"], runs["c"]])
    frame["entry"] = frame["entry"] + "-" + "x" * 80
    frame["details"] = [
        {**d, "reference": f"folder:{'/very/long/reference/photographs' * 6}/{r}"}
        for d, r in zip(frame["details"], frame["run"])
    ]
    why = made_differently(frame)["fid"]
    assert why.startswith("fid was made differently for a/") and " and c/" in why and len(why) <= 200
    # the reference differs first (head and tail of each value), reference_n and reference_sha256 are counted
    assert re.search(r"\(reference: 'folder:\.\.\..{2}/a' vs 'folder:\.\.\..{2}/c' and 2 more keys\)$", why), why


def _fill_disk_at(monkeypatch, call: int) -> None:
    """The `call`-th parquet write finds the disk full (as open() reports it: errno and file)."""
    real, calls = pd.DataFrame.to_parquet, []

    def write(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == call:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", write)


def _hidden(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_leaderboard_on_a_full_disk_writes_nothing_and_the_rerun_works(runs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lb"
    _fill_disk_at(
        monkeypatch, 2
    )  # pairs.parquet: leaderboard.csv, leaderboard.parquet and pairs.csv are written by then
    assert cli(["leaderboard", str(runs["b"]), "--out", str(out), "--resamples", "100"]) == 2
    seen = capsys.readouterr()
    assert (
        seen.err
        == f"imagen-bench leaderboard: error: cannot write {out / 'pairs.parquet'}: No space left on device; nothing was written there\n"
    )
    assert seen.out == "" and list(tmp_path.iterdir()) == []  # no table printed, no folder, no staging left
    monkeypatch.undo()
    assert (
        cli(["leaderboard", str(runs["b"]), "--out", str(out), "--resamples", "100"]) == 0
    )  # not "exists and is not empty"
    assert (out / "leaderboard.json").is_file() and _hidden(tmp_path) == []


def test_a_bad_run_json_is_refused_before_anything_is_printed_or_written(runs, tmp_path, capsys):
    run = tmp_path / "a"
    shutil.copytree(runs["a"], run)
    (run / "run.json").write_text('{"spec_sha256": ')
    out = tmp_path / "lb"
    for argv in (["leaderboard", str(run), "--out", str(out)], ["report", str(run), "--out", str(out)]):
        assert cli(argv) == 2
        seen = capsys.readouterr()
        assert seen.out == "" and seen.err.startswith(
            f"imagen-bench {argv[0]}: error: {run / 'run.json'} is not valid JSON ("
        )
        assert len(seen.err.splitlines()) == 1 and not out.exists() and _hidden(tmp_path) == []
    shutil.copy(runs["a"] / "run.json", run / "run.json")
    assert cli(["leaderboard", str(run), "--out", str(out), "--resamples", "100"]) == 0
    assert (
        json.loads((out / "leaderboard.json").read_text())["runs"][str(run)]
        == json.loads((run / "run.json").read_text())["spec_sha256"]
    )


def test_report_on_a_full_disk_keeps_the_old_report_and_a_killed_one_is_cleaned(
    runs, tmp_path, monkeypatch, capsys, dead_pid
):
    out = tmp_path / "report"
    argv = ["report", str(runs["b"]), "--out", str(out), "--resamples", "100", "--force"]
    assert cli(argv) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fill_disk_at(monkeypatch, 3)
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imagen-bench report: error: cannot write {out / 'tables'}/") and err.endswith(
        ": No space left on device; nothing was written there\n"
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before and _hidden(tmp_path) == []
    monkeypatch.undo()
    killed = tmp_path / f".report.partial-{dead_pid}-0badc0de"  # what `report --power-studies 10**9`, killed, left
    (killed / "plots").mkdir(parents=True)
    assert cli(argv) == 0 and _hidden(tmp_path) == []


def test_report_resamples_and_seed_reach_the_run_folder_comparisons(runs, tmp_path):
    from reports.paired import paired_table

    out = tmp_path / "report"
    assert cli(["report", str(runs["a"]), "--out", str(out), "--resamples", "150", "--seed", "7"]) == 0
    made = json.loads((out / "report.json").read_text())["options"]
    assert made["run_resamples"] == 150 and made["ci"]["seed"] == 7
    shown = pd.read_csv(out / "tables" / "paired_guidance_a.csv")
    cells = pd.read_parquet(runs["a"] / "cells.parquet")
    ends = ["CI low", "CI high"]  # a row whose differences are all equal has the same ends under any seed
    assert (shown["CI high"] > shown["CI low"]).any(), "no comparison with a spread: the seed cannot show"
    for seed, same in ((7, True), (0, False)):
        direct = paired_table(runs["a"], cells, "guidance", 150, seed=seed)
        assert np.allclose(shown[ends], direct[ends]) == same
    assert "from 150 resamples of prompts, seed 7" in (out / "index.html").read_text()


def test_a_manifest_without_category_is_one_line(runs, tmp_path, capsys):
    run = tmp_path / "b"
    shutil.copytree(runs["b"], run)
    manifest = pd.read_parquet(run / "manifest.parquet")
    manifest.drop(columns=["category"]).to_parquet(run / "manifest.parquet", index=False)
    assert cli(["report", str(run), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"imagen-bench report: error: {run / 'manifest.parquet'}: missing columns ['category']; contract 1 needs "
    )
    assert len(err.splitlines()) == 1 and not (tmp_path / "report").exists()


def test_a_set_metric_pair_stays_inside_the_difference_range_at_the_fewest_blocks():
    """Precision in [0, 1] at G = 5 blocks (the fewest a spec allows): the block-by-block t interval
    of A - B reaches past 1 (mean 0.8, SE 0.2, t(4) 2.78), the leaderboard's pair keeps it in [-1, 1];
    an unbounded metric (density) keeps the t interval as it is."""
    from reports.leaderboard import _pair_blocks
    from reports.paired import block_difference

    a = [1.0, 1.0, 1.0, 1.0, 0.0]
    b = [0.0] * 5
    raw = block_difference(a, b)
    assert raw["CI high"] > 1.3
    entry = {"block_values": a, "second_order": None, "block_key": "k", "value": 0.8, "range": (0.0, 1.0)}
    base = {"block_values": b, "second_order": None, "block_key": "k", "value": 0.0, "range": (0.0, 1.0)}
    pair = _pair_blocks(entry, base, 0.95)
    assert pair["CI high"] == 1.0 and pair["CI low"] == raw["CI low"] and pair["difference"] == raw["difference"]
    unbounded = _pair_blocks({**entry, "range": (0.0, None)}, {**base, "range": (0.0, None)}, 0.95)
    assert unbounded["CI high"] == raw["CI high"]
