"""A three-stage tiny IF cascade (test_models_diffusers_cascade.make_tiny_if) swept over guidance x
aug_level and scored with CLIP score (a tiny random CLIP): a real sweep subprocess SIGKILLed after its
first batch and resumed writes the same bytes as an uninterrupted run, and the run folder goes
through the leaderboard, the HTML report and `study create`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("diffusers", reason='diffusers is not installed (optional extra: pip install -e ".[diffusers]")')
from clip_fixtures import make_tiny_clip
from sweep_fixtures import sigkill_after_records
from test_models_diffusers_cascade import SPEC, make_tiny_if

from bench.sweep.runner import run_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# one thread, as in this process (one_torch_thread): the same kernels, so the same bits
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "IMAGEN_BENCH_THREADS": "1",
    "PYTHONPATH": str(Path(__file__).parents[1]),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
IMAGES = 4 * 7  # (guidance x aug_level) x the 7 Rare Words prompts

# the guidance x aug_level sweep of test_models_diffusers_cascade, scored
METRICS = """
[[metrics]]
name = "clip_score"
options = {{ model = "{clip}", batch_size = 8 }}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("if-runs")
    (d / "clip").mkdir()
    (d / "spec.toml").write_text(
        (SPEC + METRICS).format(paths=json.dumps(make_tiny_if(d / "if")), clip=make_tiny_clip(d / "clip"))
    )
    run_sweep(d / "spec.toml", d / "one", cache_dir=d / "cache", progress=False)
    return d


def _files(run: Path) -> dict[str, str]:
    return {
        p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((run / "images").rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_writes_the_uninterrupted_bytes(setup):
    d = setup
    cmd = [
        sys.executable,
        "-m",
        "imagen_bench.cli",
        "sweep",
        str(d / "spec.toml"),
        "--out",
        str(d / "killed"),
        "--cache-dir",
        str(d / "cache"),
        "--no-progress",
    ]
    n_before = sigkill_after_records(subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL), d / "killed", 4)
    assert 4 <= n_before < IMAGES and not (d / "killed" / "manifest.parquet").exists()  # really interrupted mid-run
    run_sweep(
        d / "spec.toml", d / "killed", cache_dir=d / "cache", progress=False
    )  # the resume, here (no second start-up)
    one, killed = _files(d / "one"), _files(d / "killed")
    assert len(one) == IMAGES and killed == one  # every image, byte for byte
    m1, m2 = (pd.read_parquet(d / r / "manifest.parquet") for r in ("one", "killed"))
    assert m2.equals(m1) and not m2.duplicated(["cell_id", "prompt_id", "sample"]).any()
    assert pd.read_parquet(d / "killed" / "metrics_cell.parquet").equals(
        pd.read_parquet(d / "one" / "metrics_cell.parquet")
    )
    assert not list((d / "killed").rglob("*.tmp"))


def test_the_run_goes_through_leaderboard_report_and_study(setup):
    from imagen_bench.cli import main as cli
    from reports.build import ReportInputs, build_report
    from reports.leaderboard import LeaderboardOptions, leaderboard

    run = setup / "one"
    board, _ = leaderboard([run], LeaderboardOptions(resamples=200))
    clip = board[board.metric == "clip_score"]
    assert len(clip) == 4 and set(clip["n"]) == {7} and clip["value"].notna().all()
    assert ((clip["CI low"] <= clip["value"]) & (clip["value"] <= clip["CI high"])).all()
    report = build_report(ReportInputs(runs=(run,)), setup / "report")
    html = (report / "index.html").read_text()
    for w in (1, 4):  # entries named by what differs between the cells, not E1..E4
        for aug in (0.05, 0.25):
            assert f"w={w}, aug={aug:g}" in html
    samples = list((report / "images").glob("*.png"))
    assert samples and html.count("<img") >= 4 and all(p.stat().st_size > 0 for p in samples)
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
                "1",
                "--a",
                f"run:{run}@guidance=4,aug_level=0.25",
                "--b",
                f"run:{run}@guidance=1,aug_level=0.25",
                "--out",
                str(setup / "study"),
            ]
        )
        == 0
    )
    assert json.loads((setup / "study" / "study.json").read_text())["protocol"] == "drawbench_sbs"


def test_drawbench_recipe_runs_to_a_study(setup, tmp_path):
    """bench/specs/if_drawbench_sbs.toml as docs/sweeps.md runs it, on the tiny stages (steps cut to
    2 / 2 / 1) and the 7 Rare Words prompts: your folder of <id>_<sample>.png images gets its
    manifest, the sweep makes 8 IF images per prompt beside it, `study create` takes each side by
    `@model=` and shows sets of 8."""
    import numpy as np
    from PIL import Image

    from drawbench.sets import load_prompt_set
    from imagen_bench.cli import main as cli

    mine = tmp_path / "my-model"
    mine.mkdir()
    rng = np.random.default_rng(0)
    for pid in load_prompt_set("drawbench", {"categories": ["Rare Words"]})["id"]:
        for k in range(8):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(mine / f"{pid}_{k}.png")
    assert cli(["folder-manifest", str(mine), "--prompt-set", "drawbench"]) == 0
    text = (Path(__file__).parents[1] / "bench" / "specs" / "if_drawbench_sbs.toml").read_text()
    paths = [str(setup / "if" / s) for s in ("I", "II", "III")]  # make_tiny_if's three stage folders
    for old, new in (
        (
            '["/models/IF-I-XL-v1.0", "/models/IF-II-L-v1.0", "/models/stable-diffusion-x4-upscaler"]',
            json.dumps(paths),
        ),
        ('variant = "fp16"', ""),
        ('device = "auto"', 'device = "cpu"'),
        ("/data/my-model-drawbench", str(mine)),
        ("/models/clip-vit-large-patch14", str(setup / "clip")),
        ('name = "drawbench"', 'name = "drawbench"\ncategories = ["Rare Words"]'),
        ("steps = [100]", "steps = [2]"),
        ("steps = 50", "steps = 2"),
        ("steps = 75", "steps = 1"),
    ):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "spec.toml").write_text(text)
    r = run_sweep(tmp_path / "spec.toml", tmp_path / "run", cache_dir=setup / "cache", progress=False)
    assert r.images_total == 2 * 7 * 8
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert m.groupby("model").size().to_dict() == {"deepfloyd-if": 56, "my-model": 56}
    run = tmp_path / "run"
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
                "--a",
                f"run:{run}@model=deepfloyd-if",
                "--b",
                f"run:{run}@model=my-model",
                "--out",
                str(tmp_path / "study"),
            ]
        )
        == 0
    )
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert study["settings"]["images_per_set"] == 8  # the paper's sets of 8, from 8 samples per prompt
    assert study["models"]["a"]["model"].startswith("deepfloyd-if_") and study["models"]["b"]["model"].startswith(
        "my-model_"
    )
