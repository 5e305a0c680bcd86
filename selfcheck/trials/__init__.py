"""Reliability trials: fault injection and input fuzzing against the real commands.

Each trial is a module with `add_arguments(parser)` and `run(args) -> int` (0 = every check
passed), registered in selfcheck.trials.commands; `imagen-bench trials NAME --help` lists its sizes.
The suite runs each at a small size (tests/test_trials_*.py); the README gives the full-size commands.
"""
