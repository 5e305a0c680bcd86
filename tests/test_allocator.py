"""common/allocator.py: big CPU tensors reuse freed memory; the images stay bit-identical.

Each check runs in fresh processes: the malloc rule is process-wide and this test process holds it
already (tests/conftest.py applies it, as every `imagen-bench` command does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import allocator

REPO = Path(__file__).resolve().parents[1]
glibc = pytest.mark.skipif(
    allocator._glibc() is None, reason="the rule changes glibc's malloc only; this C library is not glibc"
)

FAULTS = """
import resource, sys, torch
from common.allocator import reuse_freed_memory
print(reuse_freed_memory(), file=sys.stderr)
faults = []
for _ in range(30):  # an activation-sized tensor (32 MiB), made, written and freed, as each U-Net layer does
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(32 << 18).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[-10:]))
"""


def _python(code: str, malloc: str) -> subprocess.CompletedProcess:
    env = {**os.environ, allocator.ENV: malloc}
    env.pop("GLIBC_TUNABLES", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)


@glibc
def test_a_freed_big_tensor_is_reused_not_faulted_in_again():
    faults = {m: int(_python(FAULTS, m).stdout) for m in allocator.CHOICES}
    # system: each tensor is a fresh mmap, 8,192 page faults (fewer with transparent huge pages); reuse:
    # once the heap holds a free chunk that fits (measured: after 8 tensors here), none
    assert faults["reuse"] * 4 < faults["system"], faults
    assert "mmap and trim thresholds 1024 MiB" in _python(FAULTS, "reuse").stderr


@glibc
@pytest.mark.slow  # two CLI samples of the shipped cascade at batch 8: ~20 s on 2 cores
def test_images_are_bit_identical_under_either_rule(tmp_path):
    """The shipped cascade at a batch whose 256² activations are 32 MiB (mmapped under glibc's own
    rule, reused under ours): the same PNG bytes, so no kernel reads memory it did not write."""
    out = {}
    for m in allocator.CHOICES:
        env = {**os.environ, allocator.ENV: m}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "imagen_bench.cli",
                "sample",
                "--prompt",
                "a red circle above a blue square",
                "--num",
                "8",
                "--steps",
                "2",
                "--precision",
                "fp32",
                "--out",
                str(tmp_path / m),
            ],
            check=True,
            capture_output=True,
            env=env,
            cwd=REPO,
        )
        out[m] = {p.name: p.read_bytes() for p in sorted((tmp_path / m).glob("*.png"))}
    assert len(out["reuse"]) == 8 and out["reuse"] == out["system"]


def test_an_unknown_rule_is_one_line_naming_the_choices(tmp_path):
    env = {**os.environ, allocator.ENV: "jemalloc"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagen_bench.cli",
            "sweep",
            str(tmp_path / "spec.toml"),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 2 and not (tmp_path / "run").exists()
    assert (
        proc.stderr.strip()
        == "imagen-bench sweep: error: unknown IMAGEN_BENCH_MALLOC 'jemalloc'; choose from reuse, system"
    )
    # the commands that run no network never read it
    proc = subprocess.run(
        [sys.executable, "-m", "imagen_bench.cli", "leaderboard", str(tmp_path / "no-run")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "MALLOC" not in proc.stderr


@glibc
def test_perf_runners_get_the_same_rule_through_glibc_tunables(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert allocator.reuse_freed_memory().startswith("glibc malloc")
    env = allocator.child_env({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert (
        env["GLIBC_TUNABLES"]
        == f"glibc.pthread.rseq=0:glibc.malloc.mmap_threshold={1 << 30}:glibc.malloc.trim_threshold={1 << 30}"
    )
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv(allocator.ENV, "system")
    assert allocator.reuse_freed_memory() == "system malloc (IMAGEN_BENCH_MALLOC=system)"
    assert "GLIBC_TUNABLES" not in allocator.child_env({"PATH": "/bin"})
