"""Process-wide CPU memory rule: large tensors reuse freed heap memory instead of fresh kernel pages.

glibc's malloc serves every request above its mmap threshold (which it raises by itself only up to
32 MiB) with a fresh mmap and unmaps it on free, so a tensor that large is page-faulted and zeroed
by the kernel again on every use. In eager PyTorch on a CPU each layer's activations are such
tensors: the shipped 256² SR stage at batch 8 makes 8 x 16 x 256 x 256 x 4 B = 32 MiB ones, dozens
per U-Net call. Raising glibc's mmap and trim thresholds to LIMIT keeps them in the heap for reuse.

The arithmetic is untouched (images are bit-identical, tested). Measured on 2 cores (AMD EPYC),
float32, the shipped sr256 stage for a batch of 8 at 16 steps: 15.4 s -> 10.0 s; with torch and
oneDNN held to AVX2: 17.1 s -> 10.0 s. What it costs: freed memory stays with the process for reuse
(up to LIMIT at the heap's top, plus free chunks between live ones) instead of going back at once.

Applied by the `imagen-bench` commands that run networks (imagen_bench.cli.RUN_NETWORKS) and by the
test suite; `perf`'s runner
processes (ours and the peers') get the same setting through GLIBC_TUNABLES, so its ratios stay like
for like. IMAGEN_BENCH_MALLOC=system, a GLIBC_TUNABLES that sets malloc tunables already, or a C
library other than glibc (macOS, musl) keeps the system's behaviour; `setting()` says which held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

from .errors import check_choice

ENV = "IMAGEN_BENCH_MALLOC"
CHOICES = ("reuse", "system")  # reuse (default): the thresholds below; system: glibc's own
LIMIT = 1 << 30  # 1 GiB: one activation of the paper's 1024² stage at batch 1 (128 x 1024² x 4 B = 512 MiB) fits
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
MALLOC_TUNABLES = "glibc.malloc."  # the GLIBC_TUNABLES entries that set what this rule sets

_applied: str | None = None


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def reuse_freed_memory() -> str:
    """Apply the rule to this process (once; later calls return the first answer) and say what holds."""
    global _applied
    if _applied is not None:
        return _applied
    choice = check_choice(ENV, os.environ.get(ENV, "reuse"), CHOICES)
    libc = _glibc()
    if choice == "system":
        _applied = f"system malloc ({ENV}=system)"
    elif MALLOC_TUNABLES in os.environ.get("GLIBC_TUNABLES", ""):
        _applied = "system malloc (GLIBC_TUNABLES sets malloc tunables)"
    elif libc is None:
        _applied = "system malloc (not glibc)"
    elif libc.mallopt(_M_MMAP_THRESHOLD, LIMIT) and libc.mallopt(_M_TRIM_THRESHOLD, LIMIT):
        _applied = f"glibc malloc, mmap and trim thresholds {LIMIT >> 20} MiB"
    else:
        _applied = "system malloc (glibc refused the thresholds)"
    return _applied


def setting() -> str:
    """What this process runs with, for the records (run.json, perf's machine)."""
    return _applied or "system malloc (imagen-bench did not set it in this process)"


def child_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child process that is not an `imagen-bench` command (perf's runners, peers
    included): the same thresholds through GLIBC_TUNABLES when this process holds them."""
    if not reuse_freed_memory().startswith("glibc malloc"):
        return dict(env)
    tunables = f"{MALLOC_TUNABLES}mmap_threshold={LIMIT}:{MALLOC_TUNABLES}trim_threshold={LIMIT}"
    old = env.get("GLIBC_TUNABLES", "")
    return {**env, "GLIBC_TUNABLES": f"{old}:{tunables}" if old else tunables}
