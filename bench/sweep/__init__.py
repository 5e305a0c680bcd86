"""Benchmark sweeps: spec (spec.py) -> cells (cells.py) -> images + metrics (runner.py, scoring.py)
-> run folder (store.py). CLI: `imagen-bench sweep` (commands.py)."""
