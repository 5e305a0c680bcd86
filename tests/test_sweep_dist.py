"""Subprocess sweeps: SIGKILL mid-run then rerun == uninterrupted run; torchrun with 2 CPU
processes (gloo) == 1 process (same manifest checksums, same metrics)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_fixtures import make_tiny_checkpoint, sigkill_after_records, tiny_spec

HERE = Path(__file__).parent
WORKER = HERE / "sweep_worker.py"
VENV_BIN = Path(sys.executable).parent
# 1 thread per process: the machine is shared; also the same math in every process
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(HERE.parent),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    (d / "spec.toml").write_text(tiny_spec(make_tiny_checkpoint(d / "ckpt"), samples=1))
    subprocess.run(
        [sys.executable, str(WORKER), d / "spec.toml", d / "one", d / "cache"], env=ENV, check=True, timeout=600
    )
    return d


def frames(run: Path):
    return (
        pd.read_parquet(run / "manifest.parquet"),
        pd.read_parquet(run / "metrics_cell.parquet"),
        pd.read_parquet(run / "metrics_image.parquet"),
    )


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_manifest(setup):
    d = setup
    proc = subprocess.Popen([sys.executable, str(WORKER), d / "spec.toml", d / "killed", d / "cache"], env=ENV)
    n_before = sigkill_after_records(proc, d / "killed", 8)
    assert 8 <= n_before < 28 and not (d / "killed" / "manifest.parquet").exists()  # really interrupted
    subprocess.run(
        [sys.executable, str(WORKER), d / "spec.toml", d / "killed", d / "cache"], env=ENV, check=True, timeout=600
    )
    (m1, c1, i1), (m2, c2, i2) = frames(d / "one"), frames(d / "killed")
    assert m2.equals(m1) and not m2.duplicated(["cell_id", "prompt_id", "sample"]).any()
    assert c2.equals(c1) and i2.equals(i1)
    images = list((d / "killed" / "images").rglob("*.png"))
    assert len(images) == 28 and not list((d / "killed").rglob("*.tmp"))


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(setup):
    d = setup
    cache = d / "cache-two"  # its own metric cache: the builds below are logged there
    cache.mkdir()
    cmd = [
        str(VENV_BIN / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(WORKER),
        d / "spec.toml",
        d / "two",
        cache,
    ]
    subprocess.run([str(c) for c in cmd], env=ENV, check=True, timeout=900)
    # rank 0 builds the metric (and so computes any reference statistics) before rank 1 starts
    assert (cache / "metric-builds.log").read_text().split("\n")[:4] == ["start 0", "end 0", "start 1", "end 1"]
    assert sorted(p.name for p in (d / "two" / "shards").iterdir()) == ["images-rank0.jsonl", "images-rank1.jsonl"]
    sizes = [len(p.read_text().splitlines()) for p in (d / "two" / "shards").iterdir()]
    assert all(s > 0 for s in sizes) and sum(sizes) == 28  # both ranks worked, nothing twice
    (m1, c1, i1), (m2, c2, i2) = frames(d / "one"), frames(d / "two")
    assert m2.equals(m1)  # same rows, order and checksums
    assert c2.drop(columns="value").equals(c1.drop(columns="value"))
    assert c2.value.to_numpy() == pytest.approx(c1.value.to_numpy(), abs=1e-9)  # synced sums: order of float adds
    assert i2.equals(i1)


class FakeWorld:
    """One rank's view of a 2-process world whose rank 0 broadcasts `sent`."""

    def __init__(self, rank: int, sent=None):
        self.rank, self.size, self.sent = rank, 2, sent

    def broadcast(self, obj):
        return obj if self.rank == 0 else self.sent


def test_a_metric_build_error_on_rank_0_stops_every_rank():
    from bench.sweep.scoring import _build_rank0_first
    from bench.sweep.spec import MetricSpec

    spec = MetricSpec(name="fid", options={}, label="fid")
    calls = []

    def failing(name, options, cache_dir=None):
        calls.append(name)
        raise ValueError("reference folder /nowhere has no images")

    with pytest.raises(ValueError, match="has no images"):  # rank 0: the original error
        _build_rank0_first(failing, spec, None, FakeWorld(0))
    with pytest.raises(
        RuntimeError, match=r"metric 'fid' failed to build on rank 0: ValueError: reference folder /nowhere"
    ):
        _build_rank0_first(
            failing, spec, None, FakeWorld(1, sent="ValueError: reference folder /nowhere has no images")
        )
    assert calls == ["fid"]  # rank 1 did not try to build after rank 0 failed


HOLD = (
    "import sys, time; from pathlib import Path; from bench.sweep.store import RunStore; "
    "s = RunStore(Path(sys.argv[1])); s.lock(); print('locked', flush=True); time.sleep(float(sys.argv[2]))"
)


def _holder(run: Path, seconds: float) -> subprocess.Popen:
    """Another process holding RUN's lock for `seconds` (what a running sweep holds)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run), str(seconds)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_sweep_on_a_folder_in_use_is_refused_naming_the_holder(setup, capsys):
    from imagen_bench.cli import main

    d = setup
    holder = _holder(d / "one", 60)
    try:
        assert (
            main(
                [
                    "sweep",
                    str(d / "spec.toml"),
                    "--out",
                    str(d / "one"),
                    "--no-progress",
                    "--cache-dir",
                    str(d / "cache"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert f"is in use by another sweep (pid {holder.pid} on" in err and "--wait" in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()


def test_wait_waits_for_the_holder_then_resumes(setup):
    from bench.sweep.runner import run_sweep

    d = setup
    holder = _holder(d / "one", 2)
    t0 = time.time()
    r = run_sweep(d / "spec.toml", d / "one", cache_dir=d / "cache", progress=False, wait=True)
    holder.wait()
    assert time.time() - t0 >= 1.5 and r.images_generated == 0  # waited, then found everything done


def test_resume_keeps_the_temp_files_of_live_writers(tmp_path):
    from bench.sweep.store import RunStore

    store = RunStore(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "images").mkdir()
        mine = tmp_path / "images" / f".a.png.{live.pid}.tmp"
        dead = tmp_path / "images" / ".b.png.4000000.tmp"  # beyond any pid_max: its writer is gone
        plain = tmp_path / "run.json.tmp"
        for f in (mine, dead, plain):
            f.write_bytes(b"x")
        assert store.remove_temp_files() == sorted([dead, plain]) and mine.exists()
    finally:
        live.kill()
        live.wait()
