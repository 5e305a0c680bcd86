"""COCO human evaluation end to end, as the Imagen paper's Table 2: captions sampled with a seed from
a COCO folder as downloaded (official names, made here), the model's images from a real sweep, the
reference photographs by their official names, the realism and alignment protocols, answered through
the store, and the report's rows for all captions and for those without people."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sweep_fixtures import make_coco, make_tiny_checkpoint, tiny_spec

from bench.sweep.runner import run_sweep
from drawbench.coco import NO_PEOPLE, mentions_people
from human_eval.study import load_study
from imagen_bench.cli import main as cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("coco")
    coco = make_coco(d / "coco", n=8, people_every=2)  # half the captions mention a man
    captions = coco / "annotations" / "captions_val2014.json"
    spec = tiny_spec(
        make_tiny_checkpoint(d / "ckpt"), guidance=(3.0,), thresholding=("static",), samples=1, metrics=False
    )
    spec = spec.replace(
        'name = "drawbench"\ncategories = ["Rare Words"]', f'name = "coco"\npath = "{captions}"\nn = 6\nseed = 0'
    )
    (d / "spec.toml").write_text(spec)
    run_sweep(d / "spec.toml", d / "run", cache_dir=d / "cache", progress=False)
    return d, coco, captions


def _create(protocol: str, d, coco, captions, out, capsys) -> None:
    code = cli(
        [
            "study",
            "create",
            "--protocol",
            protocol,
            "--a",
            f"run:{d / 'run'}",
            "--b",
            f"coco:{coco}",
            "--prompts",
            f"coco:path={captions},n=6,seed=0",
            "--raters",
            "3",
            "--batch-size",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err


def _answer_all(study, rng) -> None:
    """Controls answered right, ordinary tasks at random: a store filled as the app fills it."""
    store = study.store()
    try:
        for rater in ("r01", "r02", "r03"):
            for task in store.tasks(rater):
                right = dict(task.expected)
                if study.protocol == "coco_realism":
                    want = right.get("realism") if task.is_control else str(rng.choice(["A", "B"]))
                    shown = {"realism": "left" if (want == "A") == task.a_on_left else "right"}
                else:
                    shown = {
                        "caption": right["caption"] if task.is_control else str(rng.choice(["yes", "somewhat", "no"]))
                    }
                store.submit(rater, task.task_id, shown, 2000)
    finally:
        store.close()


def test_table_2_end_to_end_from_coco_as_downloaded(coco_run, tmp_path, capsys):
    d, coco, captions = coco_run
    _create("coco_realism", d, coco, captions, tmp_path / "realism", capsys)
    _create("coco_alignment", d, coco, captions, tmp_path / "align", capsys)
    cell = pd.read_parquet(d / "run" / "cells.parquet").cell_id.item()

    meta = json.loads((tmp_path / "realism" / "study.json").read_text())
    assert (
        meta["models"]["b"]["model"] == "coco-val2014"
        and meta["prompts"]["n"] == 5
        and len(meta["prompts"]["control"]) == 1
    )
    manifest = pd.read_parquet(
        d / "run" / "manifest.parquet"
    )  # the sweep's captions: same path, n, seed; one set aside for controls
    assert sorted(meta["prompts"]["rated"] + meta["prompts"]["control"], key=int) == sorted(
        manifest.prompt_id, key=int
    )
    references = {
        im["source"] for im in meta["images"].values() if im["model"] == "coco-val2014" and not im["degraded"]
    }
    assert references and all(
        src.startswith(str(coco / "val2014" / "COCO_val2014_")) for src in references
    )  # official names

    align = load_study(tmp_path / "align")
    store = align.store()
    try:
        ordinary = [t for t in store.tasks("r01") if not t.is_control]
    finally:
        store.close()
    # both sources, one image per task; two of the 12 (prompt, source) images are the alignment controls' pool
    assert len(ordinary) == 10 and set(t.model_a for t in ordinary) == {cell, "coco-val2014"}
    no_people = {t.prompt_id for t in ordinary if t.category == NO_PEOPLE}
    assert no_people == {t.prompt_id for t in ordinary if not mentions_people(t.caption)} and 0 < len(no_people) < 6

    rng = np.random.default_rng(0)
    _answer_all(load_study(tmp_path / "realism"), rng)
    _answer_all(align, rng)
    out = tmp_path / "report"
    assert (
        cli(
            [
                "report",
                str(tmp_path / "realism"),
                str(tmp_path / "align"),
                "--out",
                str(out),
                "--resamples",
                "200",
                "--power-studies",
                "10",
            ]
        )
        == 0
    ), capsys.readouterr().err
    realism = pd.read_csv(out / "tables" / "coco_realism.csv")
    assert list(zip(realism.model, realism.captions)) == [(cell, "All"), (cell, "No people")]
    realism_rated = set(meta["prompts"]["rated"])
    assert list(realism.n_prompts) == [5, len(no_people & realism_rated)] and (realism.n_raters == 3).all()
    assert realism.realism_pref.between(0, 1).all() and (realism.realism_pref_low <= realism.realism_pref).all()
    alignment = pd.read_csv(out / "tables" / "coco_alignment.csv")
    assert set(zip(alignment.model, alignment.captions)) == {
        (m, c) for m in (cell, "coco-val2014") for c in ("All", "No people")
    }
    assert alignment.alignment_score.between(0, 100).all() and alignment.alignment_score_high.notna().all()
    html = (out / "index.html").read_text()
    assert "COCO (Imagen Table 2)" in html and "No people" in html


def test_a_caption_without_its_photograph_is_refused(coco_run, tmp_path, capsys):
    d, coco, captions = coco_run
    copy = tmp_path / "coco"
    __import__("shutil").copytree(coco, copy)
    rated = pd.read_parquet(d / "run" / "manifest.parquet").prompt_id.iloc[0]
    (copy / "val2014" / f"COCO_val2014_{int(rated):012d}.jpg").unlink()
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "coco_realism",
                "--a",
                f"run:{d / 'run'}",
                "--b",
                f"coco:{copy}",
                "--prompts",
                f"coco:path={captions},n=6",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "1 of 6 prompts have no image there" in err and f"COCO_val2014_{int(rated):012d}.jpg" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "prompts, message",
    [
        ("coco:n=many", "prompt set 'coco': n must be an integer, got 'many'"),
        ("coco:no_people=yes", "prompt set 'coco': no_people must be true or false, got 'yes'"),
        ("coco:size=3", "prompt set 'coco': 'size=3' must be KEY=VALUE with KEY one of n, seed, no_people, path"),
        ("coco:n=0", "prompt set 'coco': n must be an integer in [1, 100,000], got 0"),
    ],
)
def test_coco_prompt_options_are_checked(coco_run, tmp_path, capsys, prompts, message):
    d, coco, _ = coco_run
    assert (
        cli(
            [
                "study",
                "create",
                "--protocol",
                "coco_alignment",
                "--a",
                f"run:{d / 'run'}",
                "--prompts",
                prompts,
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err
