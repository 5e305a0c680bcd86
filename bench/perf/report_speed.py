"""Benchmark (not a test): build a report from 100,000 simulated DrawBench side-by-side answers
with 10,000 bootstrap resamples, and print the seconds it took and the machine.

    .venv/bin/python bench/perf/report_speed.py [--answers 100000] [--resamples 10000] [--power-effect 0]

Times: `build_report` in-process with imports done (what the statistics and writing cost), and the
imports a cold `imagen-bench report` additionally pays. The power section is a separate
simulation whose cost is set by --power-studies, not by the size of the study; it is off by
default here (--power-effect 0) and timed separately when given.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

IMPORT_START = time.perf_counter()
import imagen.checkpoint  # noqa: E402,F401  (torch: what the report.json writer imports)
import matplotlib.pyplot  # noqa: E402,F401
from drawbench import load_drawbench  # noqa: E402
from reports.build import ReportInputs, ReportOptions, build_report  # noqa: E402
from reports.preference import CIConfig  # noqa: E402
from reports.simulate import RaterModel, StudyDesign, simulate_sbs_frame  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORT_START
QUESTIONS = ("quality", "alignment")
ANSWERS_PER_RATER = 100  # each rater rates 100 of the 200 DrawBench prompts (both questions)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=100_000, help="answers in total (both questions)")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--power-effect", type=float, default=0.0)
    p.add_argument("--power-studies", type=int, default=200)
    args = p.parse_args()
    prompts = load_drawbench()
    raters = max(2, args.answers // (ANSWERS_PER_RATER * len(QUESTIONS)))
    design = StudyDesign(n_prompts=len(prompts), n_raters=raters, answers_per_rater=ANSWERS_PER_RATER, controls_per_rater=10)
    model = RaterModel(preference=0.55, unreliable_fraction=0.05)
    frame = simulate_sbs_frame(prompts, "model-a", "model-b", {q: model for q in QUESTIONS}, design, seed=0)
    n_answers = int((~frame.is_control).sum())
    options = ReportOptions(ci=CIConfig(resamples=args.resamples), power_effect=args.power_effect,
                            power_studies=args.power_studies)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        build_report(ReportInputs(answers=(("simulated", frame),)), Path(tmp) / "report", options)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}")
    print(f"answers: {n_answers} ({raters} raters x {ANSWERS_PER_RATER} prompts x {len(QUESTIONS)} questions), "
          f"resamples: {args.resamples}, power section: {'off' if args.power_effect == 0 else f'{args.power_studies} studies/point'}")
    # CPU seconds of this process (all its threads): a load-independent measure on a shared machine
    print(f"build_report seconds: {seconds:.2f} wall, {cpu_seconds:.2f} CPU")
    print(f"imports a cold CLI run adds (torch, pandas, matplotlib, scipy): {IMPORT_SECONDS:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
