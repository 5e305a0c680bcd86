"""Studies built from a real sweep's run folder: one side is one cell, never a mix of cells."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sweep_fixtures import make_tiny_checkpoint, tiny_spec

from bench.sweep.runner import run_sweep
from imagen_bench.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two guidance cells of a tiny cascade, 2 samples per DrawBench "Rare Words" prompt."""
    d = tmp_path_factory.mktemp("run")
    (d / "spec.toml").write_text(
        tiny_spec(
            make_tiny_checkpoint(d / "ckpt"), guidance=(1.0, 5.0), thresholding=("static",), samples=2, metrics=False
        )
    )
    run_sweep(d / "spec.toml", d / "run", cache_dir=d / "cache", progress=False)
    return d / "run"


def test_a_run_with_several_cells_needs_a_cell(run, tmp_path, capsys):
    cells = sorted(pd.read_parquet(run / "cells.parquet").cell_id)
    args = [
        "study",
        "create",
        "--protocol",
        "drawbench_sbs",
        "--prompts",
        "drawbench:Rare Words",
        "--raters",
        "2",
        "--batch-size",
        "4",
        "--images-per-set",
        "2",
    ]
    assert cli([*args, "--a", f"run:{run}", "--b", f"run:{run}@{cells[0]}", "--out", str(tmp_path / "mixed")]) == 2
    err = capsys.readouterr().err
    assert "the run has 2 cells" in err and "@CELL" in err and all(c in err for c in cells)
    assert not (tmp_path / "mixed").exists()


def test_each_side_of_a_study_is_exactly_its_cell(run, tmp_path):
    cells = sorted(pd.read_parquet(run / "cells.parquet").cell_id)
    manifest = pd.read_parquet(run / "manifest.parquet")
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "drawbench_sbs",
                "--prompts",
                "drawbench:Rare Words",
                "--raters",
                "2",
                "--batch-size",
                "4",
                "--images-per-set",
                "2",
                "--a",
                f"run:{run}@{cells[0]}",
                "--b",
                f"run:{run}@{cells[1]}",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    study = json.loads((tmp_path / "s" / "study.json").read_text())
    assert study["models"]["a"]["model"] == cells[0] and study["models"]["b"]["model"] == cells[1]
    by_source = {str((run / p).resolve()): c for p, c in zip(manifest.path, manifest.cell_id)}
    originals = [
        im for im in study["images"].values() if not im["degraded"] and not im["model"].startswith("control:")
    ]
    assert originals and all(
        by_source[im["source"]] == im["model"] for im in originals
    )  # every image from its own cell
    assert {im["model"] for im in originals} == set(cells)
    assert all(
        im["source"] in by_source for im in study["images"].values()
    )  # controls too: made from the run's images
    assert study["settings"]["images_per_set"] == 2


def test_sets_have_the_protocols_size_or_the_study_is_refused(run, tmp_path, capsys):
    """DrawBench's protocol shows sets of 8 images: a run with 2 samples per prompt cannot make them."""
    cells = sorted(pd.read_parquet(run / "cells.parquet").cell_id)
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "drawbench_sbs",
                "--prompts",
                "drawbench:Rare Words",
                "--raters",
                "2",
                "--batch-size",
                "4",
                "--a",
                f"run:{run}@{cells[0]}",
                "--b",
                f"run:{run}@{cells[1]}",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "7 of 7 prompts have fewer than 8 images per set" in err and "(2)" in err and "--images-per-set" in err
    assert not (tmp_path / "s").exists()


def test_a_cell_chosen_by_its_settings(run, tmp_path, capsys):
    cells = pd.read_parquet(run / "cells.parquet").set_index("guidance").cell_id
    args = [
        "study",
        "create",
        "--protocol",
        "drawbench_sbs",
        "--prompts",
        "drawbench:Rare Words",
        "--raters",
        "2",
        "--batch-size",
        "4",
        "--images-per-set",
        "2",
    ]
    assert (
        cli(
            [
                *args,
                "--a",
                f"run:{run}@guidance=1",
                "--b",
                f"run:{run}@guidance=5,thresholding=static",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    models = json.loads((tmp_path / "s" / "study.json").read_text())["models"]
    assert models["a"]["model"] == cells[1.0] and models["b"]["model"] == cells[5.0]
    assert (
        cli(
            [
                *args,
                "--a",
                f"run:{run}@thresholding=static",
                "--b",
                f"run:{run}@guidance=5",
                "--out",
                str(tmp_path / "t"),
            ]
        )
        == 2
    )
    assert "2 cells match 'thresholding=static' (need exactly one)" in capsys.readouterr().err
    assert (
        cli([*args, "--a", f"run:{run}@colour=red", "--b", f"run:{run}@guidance=5", "--out", str(tmp_path / "u")]) == 2
    )
    assert "selector 'colour=red' must be KEY=VALUE with KEY one of" in capsys.readouterr().err
