"""`imagen-bench trials fuzz`: malformed user inputs through the real commands.

Each case copies the valid inputs (selfcheck.trials.fuzz_targets) to WORK/live, applies one seeded
mutation (selfcheck.trials.fuzz_mutations / fuzz_media) to one input, and runs one user-facing command
that reads it: in this process through imagen_bench.cli.main (what the console script calls; an exception
escaping main() is a traceback reaching the user), and every --subprocess-every'th case through the
real `imagen-bench` console script in a subprocess. A case passes when
  - the exit code is 0 (a harmless or converted input; not allowed for mutations that must fail)
    or 2 with exactly one `imagen-bench CMD: error: ...` line that names the problem (the file, the
    key / column / tensor, or a value the mutation touched),
  - no "Traceback" appears in stdout or stderr, and it finished within --timeout,
  - every file that existed before (inputs, the ratings DB, a finished run passed as --out) is
    byte-identical afterwards (a refused command may not add files either).
Failures are reported with the mutation, the command and the stderr tail; WORK/fuzz-summary.json
holds everything.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.sweep.store import LOCK_FILE
from common.options import seed_int

from .fuzz_run import Outcome, run_inprocess, run_subprocess
from .fuzz_targets import COMMANDS, DOMAINS, PLAN, build_pristine, reset_live
from .harness import write_summary

MARKER = ".imagen-bench-trial-fuzz"
ERROR_LINE = re.compile(r"^imagen-bench [\w-]+: error: ", re.M)
# Files no user made: SQLite side files a reader may leave behind, and a run folder's lock (its
# content is the holder's pid, rewritten by every sweep that takes it, a refused one included)
TRANSIENT = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class FuzzSettings:
    cases: int = 12
    seed: int = 0
    workdir: Path = Path("trials/fuzz")
    timeout: float = 120.0
    subprocess_every: int = 6  # case k runs as a real subprocess when k % this == 0 (0: never)
    only: tuple[str, ...] = ()  # restrict to these domains


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = FuzzSettings()
    p.add_argument("--cases", type=int, default=d.cases, help="number of mutated inputs (CI: 12, full: 200)")
    p.add_argument("--seed", type=seed_int, default=d.seed)
    p.add_argument(
        "--workdir",
        type=Path,
        required=True,
        help="scratch folder (new or from an earlier fuzz run); summary JSON goes here",
    )
    p.add_argument("--timeout", type=float, default=d.timeout, help="seconds per case")
    p.add_argument(
        "--subprocess-every",
        type=int,
        default=d.subprocess_every,
        help="run every Kth case through the real console script in a subprocess (0: never)",
    )
    p.add_argument("--only", nargs="*", default=[], choices=sorted(DOMAINS), help="fuzz only these inputs")


def tree_hashes(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(TRANSIENT) and p.name != LOCK_FILE:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def judge(o: Outcome, expect: str, names: tuple[str, ...], before: dict, after: dict) -> list[str]:
    problems = []
    text = o.stdout + o.stderr
    if "Traceback" in text:
        problems.append("a traceback reached the user")
    if o.code not in (0, 2):
        problems.append(f"exit status {o.code!r} (expected 0 or 2)")
    if o.code == 0 and expect == "error":
        problems.append("a broken input was accepted (exit 0)")
    if o.code == 2:
        lines = ERROR_LINE.findall(o.stderr)
        message = _error(o.stderr)
        if len(lines) != 1:
            problems.append(f"{len(lines)} 'imagen-bench CMD: error:' lines (expected exactly one)")
        elif not any(n and n in message for n in names):
            problems.append(f"vague error: names none of {list(names)}")
    changed = sorted(k for k in before if after.get(k) != before[k])
    added = sorted(set(after) - set(before))
    if changed:
        problems.append(f"existing files changed or removed: {changed[:5]}")
    if added and o.code != 0:
        problems.append(f"a refused command wrote files: {added[:5]}")
    return problems


def _error(stderr: str) -> str:
    m = ERROR_LINE.search(stderr)
    return stderr[m.start() :][:300].strip() if m else ""


def _prepare(s: FuzzSettings) -> tuple[Path, Path, Path]:
    work = s.workdir.resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        raise ValueError(f"--workdir {work} is not empty and was not made by the fuzz trial; choose a new folder")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    for sub in ("pristine", "live", "out", "failures"):
        shutil.rmtree(work / sub, ignore_errors=True)
    pristine, live = work / "pristine", work / "live"
    build_pristine(pristine, live)
    return work, pristine, live


def run_case(k: int, s: FuzzSettings, work: Path, pristine: Path, live: Path, plan: list[tuple[str, str]]) -> dict:
    command, domain = plan[k % len(plan)]
    rng = random.Random(f"{s.seed}:{k}")
    table = DOMAINS[domain].mutations()
    name = rng.choice(sorted(table))
    reset_live(pristine, live)
    target = live / DOMAINS[domain].path
    mutated = table[name](target, rng)
    out = work / "out" / f"{k:04d}"
    argv = COMMANDS[command](live, out, work / "cache")
    before = tree_hashes(live)
    via = "subprocess" if s.subprocess_every and k % s.subprocess_every == 0 else "main()"
    o = (run_subprocess if via == "subprocess" else run_inprocess)(argv, s.timeout)
    names = (target.name, *mutated.mentions)
    problems = judge(o, mutated.expect, names, before, tree_hashes(live))
    record = {
        "case": k,
        "command": command,
        "domain": domain,
        "mutation": name,
        "detail": mutated.detail,
        "expect": mutated.expect,
        "via": via,
        "exit": o.code,
        "seconds": round(o.seconds, 2),
        "argv": ["imagen-bench", *argv],
        "problems": problems,
        "error": _error(o.stderr),
    }
    if problems:
        record["stderr_tail"] = "\n".join(o.stderr.strip().splitlines()[-15:])
        keep = work / "failures" / f"{k:04d}"
        keep.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if target.is_dir() else shutil.copy2)(
            target, keep if target.is_dir() else keep.with_suffix(target.suffix or ".bin")
        )
    shutil.rmtree(out, ignore_errors=True)
    return record


def run(args: argparse.Namespace) -> int:
    s = FuzzSettings(
        cases=args.cases,
        seed=args.seed,
        workdir=args.workdir,
        timeout=args.timeout,
        subprocess_every=args.subprocess_every,
        only=tuple(args.only or ()),
    )
    if s.cases < 1:
        raise ValueError(f"--cases must be >= 1, got {s.cases}")
    threads = os.environ.get("IMAGEN_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    plan = [p for p in PLAN if not s.only or p[1] in s.only]
    if not plan:
        raise ValueError(f"--only {list(s.only)} leaves no cases")
    work, pristine, live = _prepare(s)
    setup = time.perf_counter() - t0
    records = []
    for k in range(s.cases):
        r = run_case(k, s, work, pristine, live, plan)
        records.append(r)
        mark = "ok  " if not r["problems"] else "FAIL"
        print(
            f"[{k + 1:>3}/{s.cases}] {mark} exit {r['exit']!s:>3} {r['seconds']:5.1f}s {r['command']:<13} "
            f"{r['domain']}/{r['mutation']}: {r['detail'][:70]}",
            flush=True,
        )
        for p in r["problems"]:
            print(f"           - {p}", flush=True)
    failures = [r for r in records if r["problems"]]
    summary = {
        "trial": "fuzz",
        "settings": {**asdict(s), "workdir": str(work)},
        "cases": len(records),
        "failures": len(failures),
        "passed": len(records) - len(failures),
        "exit_0": sum(r["exit"] == 0 for r in records),
        "exit_2": sum(r["exit"] == 2 for r in records),
        "subprocess_cases": sum(r["via"] == "subprocess" for r in records),
        "by_domain": {d: sum(r["domain"] == d for r in records) for d in sorted({r["domain"] for r in records})},
        "setup_seconds": round(setup, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "failed_cases": failures,
        "all_cases": records,
    }
    write_summary(work / "fuzz-summary.json", summary)
    print(
        f"fuzz: {len(records)} cases ({summary['exit_0']} accepted, {summary['exit_2']} refused clearly), "
        f"{len(failures)} failures, {summary['seconds']:.0f} s -> {work / 'fuzz-summary.json'}"
    )
    for r in failures:
        print(
            f"  FAIL case {r['case']} {r['command']} {r['domain']}/{r['mutation']} ({r['detail']}): {'; '.join(r['problems'])}"
        )
        print("    $ " + " ".join(r["argv"]))
        print("    " + r.get("stderr_tail", "").replace("\n", "\n    "))
    return 0 if not failures else 1
