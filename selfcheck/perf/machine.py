"""What the numbers were measured on: CPU model, cores, torch and package versions, threads, load."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from common.allocator import setting as malloc_setting
from common.blas import setting as blas_setting
from common.version import __version__

THREADS_ENV = "IMAGEN_BENCH_THREADS"  # also read by the rest of the package's CLI runs


def cpu_model() -> str:
    """The 'model name' line of /proc/cpuinfo (Linux), else platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (explicit value, else $IMAGEN_BENCH_THREADS, else torch's default)."""
    import torch

    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine_info() -> dict:
    import torch

    from imagen.device import cpu_capability, cpu_native_bf16, resolve

    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "package_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16()[1],  # what precision "auto" follows (imagen.device)
        "auto_precision": resolve("cpu").precision,
        "malloc": malloc_setting(),  # common/allocator.py; perf's runner processes get the same
        "blas": blas_setting(),  # common/blas.py; inherited by the runner processes
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
