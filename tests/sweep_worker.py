"""Subprocess entry for the kill and torchrun tests: `python sweep_worker.py SPEC OUT CACHE` (or
under torchrun) runs the sweep with the test metric (bench.metrics needs no weights here)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sweep_fixtures import build_test_metric

from bench.sweep.runner import run_sweep

if __name__ == "__main__":
    spec, out, cache = sys.argv[1:4]
    run_sweep(spec, out, cache_dir=Path(cache), metric_factory=build_test_metric, progress=False)
