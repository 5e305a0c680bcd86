"""`imagen-bench trials concurrent-sweep`: two sweeps started on one run folder, round after round.

    1. build a tiny random cascade checkpoint and a sweep spec in WORKDIR, run it once into
       WORKDIR/reference;
    2. each round: start sweep A on a fresh folder, then sweep B on the same folder after a random
       delay (so B arrives during A's start-up, generation or tail, or after A), B with --wait in
       every other round;
    3. check per round: A exits 0; B is refused with one line naming A's pid (exit 2), or with
       --wait (or arriving after A) exits 0 having generated nothing; the folder equals the
       reference (images, manifest, metrics, no temp files); every image was generated once
       (shard lines = images).
Writes WORKDIR/summary.json; exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common.options import seed_int

from .harness import Check, console_script, finish, fresh_workdir, start
from .sweep_check import SIZES, compare, spec_text


@dataclass(frozen=True)
class ConcurrentSweepSettings:
    rounds: int = 20
    seed: int = 0
    workdir: Path = Path("runs/trials/concurrent-sweep")
    spec: str = "small"
    timeout: float = 600.0

    def __post_init__(self):
        if self.rounds < 1:
            raise ValueError(f"--rounds must be >= 1, got {self.rounds}")
        if self.spec not in SIZES:
            raise ValueError(f"unknown --spec {self.spec!r}; choose one of {', '.join(SIZES)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ConcurrentSweepSettings()
    p.add_argument(
        "--rounds", type=int, default=d.rounds, help=f"rounds of two sweeps on one folder (default {d.rounds})"
    )
    p.add_argument("--seed", type=seed_int, default=d.seed, help="seed of the second sweep's start delays")
    p.add_argument("--workdir", type=Path, default=d.workdir, help=f"trial work directory (default {d.workdir})")
    p.add_argument("--spec", default=d.spec, choices=list(SIZES), help="sweep size (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    return run_trial(ConcurrentSweepSettings(rounds=args.rounds, seed=args.seed, workdir=args.workdir, spec=args.spec))


def _sweep(spec: Path, out: Path, cache: Path, log: Path, wait: bool):
    return start(
        [
            *console_script(),
            "sweep",
            str(spec),
            "--out",
            str(out),
            "--cache-dir",
            str(cache),
            "--no-progress",
            *(["--wait"] if wait else []),
        ],
        log,
    )


def _finish(proc, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except Exception:
        proc.kill()
        return -9


def run_trial(s: ConcurrentSweepSettings) -> int:
    from .tiny_cascade import make_tiny_checkpoint

    t0 = time.monotonic()
    wd = fresh_workdir(s.workdir)
    for old in [*wd.glob("round-*"), wd / "reference", wd / "logs", wd / "cache", wd / "ckpt"]:
        shutil.rmtree(old, ignore_errors=True)
    size = SIZES[s.spec]
    make_tiny_checkpoint(wd / "ckpt")
    spec = wd / "spec.toml"
    spec.write_text(spec_text((wd / "ckpt").resolve(), size))
    ref = wd / "reference"
    r0 = time.monotonic()
    if _finish(_sweep(spec, ref, wd / "cache", wd / "logs" / "reference.log", False), s.timeout) != 0:
        raise RuntimeError(f"the reference sweep failed; see {wd / 'logs' / 'reference.log'}")
    duration = time.monotonic() - r0
    print(f"concurrent-sweep: {size.images}-image sweep, {s.rounds} rounds, reference {duration:.1f} s", flush=True)
    rng = random.Random(s.seed)
    rounds, checks = [], []
    for r in range(1, s.rounds + 1):
        folder, wait = wd / f"round-{r}", r % 2 == 0
        delay = rng.uniform(0.0, 1.2 * duration)
        a = _sweep(spec, folder, wd / "cache", wd / "logs" / f"round-{r}-a.log", False)
        time.sleep(delay)
        b_log = wd / "logs" / f"round-{r}-b.log"
        b = _sweep(spec, folder, wd / "cache", b_log, wait)
        code_a, code_b = _finish(a, s.timeout), _finish(b, s.timeout)
        said = b_log.read_text(errors="replace")
        lines = (
            (folder / "shards" / "images-rank0.jsonl").read_text().count("\n") if (folder / "shards").is_dir() else 0
        )
        refused = code_b == 2 and f"in use by another sweep (pid {a.pid}" in said and "Traceback" not in said
        waited_or_late = code_b == 0 and "(0 generated now)" in said
        round_checks = [
            Check("first sweep finishes", code_a == 0, f"round {r}: exit {code_a}"),
            Check(
                "second sweep refused or waits",
                refused or waited_or_late,
                f"round {r}: exit {code_b}, --wait {wait}, started after {delay:.2f} s",
            ),
            Check(
                "nothing generated twice",
                lines == size.images,
                f"round {r}: {lines} shard lines for {size.images} images",
            ),
            *compare(ref, folder),
        ]
        checks += round_checks
        rounds.append(
            {
                "round": r,
                "delay_s": round(delay, 2),
                "wait": wait,
                "exit_a": code_a,
                "exit_b": code_b,
                "b": "refused" if refused else ("waited / after A" if waited_or_late else "other"),
                "shard_lines": lines,
            }
        )
        status = "PASS" if all(c.passed for c in round_checks) else "FAIL"
        print(
            f"  round {r:>2}: B after {delay:4.2f} s{' --wait' if wait else ''}: {rounds[-1]['b']}, {status}",
            flush=True,
        )
        if status == "PASS":
            shutil.rmtree(folder)
    merged: dict[str, list[Check]] = {}
    for c in checks:
        merged.setdefault(c.name, []).append(c)
    summary = [
        Check(
            name,
            all(c.passed for c in cs),
            f"{sum(c.passed for c in cs)}/{len(cs)} rounds" + "".join(f"; {c.detail}" for c in cs if not c.passed),
        )
        for name, cs in merged.items()
    ]
    facts = {
        "settings": {**asdict(s), "workdir": str(s.workdir)},
        "images": size.images,
        "reference_s": round(duration, 1),
        "rounds": rounds,
    }
    return finish(wd, "concurrent-sweep", summary, facts, time.monotonic() - t0)
