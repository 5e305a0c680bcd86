"""The process-wide BLAS rule (common/blas.py): every `imagen-bench` process runs MKL in strict
conditional-reproducibility mode unless the user chose a mode. What it buys, the same bits when a
float32 job is repeated in another process, is checked where it showed: a training run stopped and
resumed under torchrun equals the uninterrupted one bit for bit (test_training_ddp.py; on an Intel
Xeon with AMX it failed without the rule)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_rule_sets_strict_mode_once_and_keeps_a_users_choice():
    code = (
        "import os; from common import blas; print(blas.setting()); print(blas.reproducible_blas()); "
        "print(os.environ.get('MKL_CBWR')); print(blas.reproducible_blas() == blas.setting())"
    )
    assert _run(code) == ["MKL_CBWR unset (MKL's default)", "MKL_CBWR=AUTO,STRICT", "AUTO,STRICT", "True"]
    assert _run(code, MKL_CBWR="COMPATIBLE") == [
        "MKL_CBWR=COMPATIBLE",
        "MKL_CBWR=COMPATIBLE (set by the user)",
        "COMPATIBLE",
        "True",
    ]


def test_the_command_applies_it_before_any_subcommand_imports_torch():
    code = (
        "import os, sys; from imagen_bench.cli import main; main(['--help']); "
        "print('torch' in sys.modules, os.environ.get('MKL_CBWR'))"
    )
    assert _run(code)[-1] == "False AUTO,STRICT"
