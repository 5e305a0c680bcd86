"""Process-wide BLAS rule: Intel MKL's conditional numerical reproducibility (CNR) in strict mode, so
a float32 computation gives the same bits in every process that repeats it.

torch's x86 CPU wheels do their matrix products in MKL. Left to itself, MKL may compute the same
product differently from one process to the next, and the results then differ in their last bits.
In CNR mode with branch AUTO it keeps its usual dispatch by instruction set but fixes the cache
sizes it blocks for, makes reductions deterministic and schedules statically; STRICT also makes the
result independent of the data's alignment (Intel oneMKL Developer Guide, "Specifying Code
Branches" and "Reproducibility Conditions").
Measured on a 2-core Intel Xeon with AMX, torch 2.13.0, float32, one thread: `imagen-bench train`
of the tiny base stage for 6 steps, and the same stopped at step 3 and resumed in a new process,
ended with 129 of 162 weight tensors differing by up to 6e-8 (under torchrun with 2 gloo ranks 133,
up to 1.2e-7); with MKL_CBWR=AUTO,STRICT, 0 of 162 in both. On 2-core AMD EPYCs the same runs were
identical without it (not measured there with it). Its cost was not measurable: sampling with the
shipped cascade in float32, 0.97x the time of the default (4 runs each, taking turns); with torch,
oneDNN and MKL held to AVX2, 1.00x and the same PNG bytes.

MKL reads the variable when it starts, so the rule is applied before torch is imported: first thing
in the `imagen-bench` command (imagen_bench.cli.main) and the test suite (tests/conftest.py); child
processes (torchrun's ranks, perf's runners and its peers) inherit it. A MKL_CBWR the user set is
kept; `setting()` says which held and is recorded with every sweep and perf run.
"""

from __future__ import annotations

import os

ENV = "MKL_CBWR"
STRICT = "AUTO,STRICT"  # MKL's usual dispatch for this CPU, computed the same way in every process

_applied: str | None = None


def reproducible_blas() -> str:
    """Apply the rule to this process and its children (once; later calls return the first answer)."""
    global _applied
    if _applied is None:
        if os.environ.get(ENV):
            _applied = f"{ENV}={os.environ[ENV]} (set by the user)"
        else:
            os.environ[ENV] = STRICT
            _applied = f"{ENV}={STRICT}"
    return _applied


def setting() -> str:
    """What holds in this process: the rule as applied, or the environment as found."""
    return _applied or (f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV) else f"{ENV} unset (MKL's default)")
