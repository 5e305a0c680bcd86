"""Benchmark (not a test): build a report from 100,000 simulated DrawBench side-by-side answers
with 10,000 bootstrap resamples, and print the seconds it took and the machine.

    .venv/bin/python selfcheck/perf/report_speed.py [--answers 100000] [--resamples 10000] [--power-effect 0]

Times: `build_report` in-process with imports done (what the statistics and writing cost), and the
imports a cold `imagen-bench report` additionally pays (measured on this process's first call). The
power section is a separate simulation whose cost is set by --power-studies, not by the size of the
study; it is off by default here (--power-effect 0) and timed separately when given.
`imagen-bench perf --only reports` calls measure_report().
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

QUESTIONS = ("quality", "alignment")
ANSWERS_PER_RATER = 100  # each rater rates 100 of the 200 DrawBench prompts (both questions)


@dataclass(frozen=True)
class ReportTiming:
    answers: int  # non-control answers in the simulated study
    raters: int
    resamples: int
    seconds: float  # build_report wall time, imports done
    cpu_seconds: float  # CPU seconds of this process (all threads): load-independent on a shared machine
    import_seconds: float  # what the imports cost in this call (0 when already imported)


def measure_report(
    answers: int = 100_000, resamples: int = 10_000, power_effect: float = 0.0, power_studies: int = 200
) -> ReportTiming:
    t0 = time.perf_counter()
    import matplotlib.pyplot  # noqa: F401

    import imagen.checkpoint  # noqa: F401  (torch: what the report.json writer imports)
    from drawbench import load_drawbench
    from reports.build import ReportInputs, ReportOptions, build_report
    from reports.preference import CIConfig
    from reports.simulate import RaterModel, StudyDesign, simulate_sbs_frame

    import_seconds = time.perf_counter() - t0
    prompts = load_drawbench()
    raters = max(2, answers // (ANSWERS_PER_RATER * len(QUESTIONS)))
    design = StudyDesign(
        n_prompts=len(prompts), n_raters=raters, answers_per_rater=ANSWERS_PER_RATER, controls_per_rater=10
    )
    model = RaterModel(preference=0.55, unreliable_fraction=0.05)
    frame = simulate_sbs_frame(prompts, "model-a", "model-b", {q: model for q in QUESTIONS}, design, seed=0)
    options = ReportOptions(ci=CIConfig(resamples=resamples), power_effect=power_effect, power_studies=power_studies)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu_start = time.perf_counter(), time.process_time()
        build_report(ReportInputs(answers=(("simulated", frame),)), Path(tmp) / "report", options)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return ReportTiming(int((~frame.is_control).sum()), raters, resamples, seconds, cpu_seconds, import_seconds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--answers", type=int, default=100_000, help="answers in total (both questions)")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--power-effect", type=float, default=0.0)
    p.add_argument("--power-studies", type=int, default=200)
    args = p.parse_args()
    r = measure_report(args.answers, args.resamples, args.power_effect, args.power_studies)
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"answers: {r.answers} ({r.raters} raters x {ANSWERS_PER_RATER} prompts x {len(QUESTIONS)} questions), "
        f"resamples: {r.resamples}, power section: {'off' if args.power_effect == 0 else f'{args.power_studies} studies/point'}"
    )
    print(f"build_report seconds: {r.seconds:.2f} wall, {r.cpu_seconds:.2f} CPU")
    print(f"imports a cold CLI run adds (torch, pandas, matplotlib, scipy): {r.import_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
