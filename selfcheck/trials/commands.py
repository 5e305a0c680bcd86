"""`imagen-bench trials NAME`: one subcommand per reliability trial (modules imported lazily)."""

from __future__ import annotations

import importlib

# trial name -> (module, one-line help)
TRIALS: dict[str, tuple[str, str]] = {
    "kill-sweep": (
        "selfcheck.trials.kill_sweep",
        "SIGKILL a sweep at random moments; reruns must equal an uninterrupted run",
    ),
    "concurrent-sweep": (
        "selfcheck.trials.concurrent_sweep",
        "two sweeps on one run folder, round after round: refused or waits, nothing twice",
    ),
    "kill-server": (
        "selfcheck.trials.kill_server",
        "SIGKILL the rating server mid-batch; restart; no answer lost or duplicated",
    ),
    "fuzz": (
        "selfcheck.trials.fuzz",
        "malformed sweep TOML, prompt CSVs, study files, images, checkpoints: clear errors only",
    ),
    "detect-controls": (
        "selfcheck.trials.detect_controls",
        "bot raters in Chromium try to tell controls apart from what the page receives: "
        "detectors at chance, the bots' pass rate of the control filter",
    ),
    "load-pg": (
        "selfcheck.trials.load_pg",
        "200 concurrent raters submit through the store on PostgreSQL: none lost or duplicated, submit p95 stated",
    ),
    "security": (
        "selfcheck.trials.security",
        "token entropy, constant-time compare, forged tokens, other raters' ids, path traversal",
    ),
}


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    trials = p.add_subparsers(dest="trial", metavar="TRIAL", required=True)
    for trial, (module, trial_help) in TRIALS.items():
        tp = trials.add_parser(trial, help=trial_help, description=trial_help)
        mod = importlib.import_module(module)
        mod.add_arguments(tp)
        tp.set_defaults(func=mod.run)
