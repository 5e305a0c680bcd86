"""`imagen-bench trials kill-sweep`: SIGKILL a sweep at random moments; every rerun must finish
with a run folder equal to an uninterrupted run's.

    1. build a tiny random cascade checkpoint and a sweep spec in WORKDIR (`--spec small|full`);
    2. run the sweep once uninterrupted into WORKDIR/reference, timing start-up (to the first
       finished image), generation (to the last) and the tail (manifest, scoring, results);
    3. into WORKDIR/trial-R: start the same sweep (`imagen-bench sweep`, its own process group)
       and SIGKILL the group at a moment drawn uniformly over the expected remaining duration of
       that (resuming) run -- start-up, generation, writes and the tail alike -- K times;
    4. after every --verify-every kills, and after the last one, rerun to completion and compare
       with the reference: images byte-identical (sha256), manifest rows equal (no duplicate, none
       missing), metrics and results equal, no temp files left; then start a fresh trial folder.
Writes WORKDIR/summary.json; exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.options import seed_int

from .harness import Check, console_script, finish, fresh_workdir, kill_group, start, wait_group_gone
from .sweep_check import SIZES, SweepSize, compare, kill_phase, spec_text, valid_records, write_marks

POLL = 0.05


@dataclass(frozen=True)
class KillSweepSettings:
    kills: int = 20
    seed: int = 0
    workdir: Path = Path("runs/trials/kill-sweep")
    spec: str = "full"
    verify_every: int = 4
    timeout: float = 900.0  # one uninterrupted run

    def __post_init__(self):
        if self.kills < 1:
            raise ValueError(f"--kills must be >= 1, got {self.kills}")
        if self.verify_every < 1:
            raise ValueError(f"--verify-every must be >= 1, got {self.verify_every}")
        if self.spec not in SIZES:
            raise ValueError(f"unknown --spec {self.spec!r}; choose one of {', '.join(SIZES)}")


@dataclass(frozen=True)
class Timing:
    startup: float  # start -> first image recorded
    generation: float  # start -> last image recorded
    total: float

    def expected(self, remaining: int, images: int) -> float:
        """Expected duration of a (resuming) run with `remaining` of `images` still to make."""
        return self.startup + (self.generation - self.startup) * remaining / images + (self.total - self.generation)


@dataclass
class Trial:
    s: KillSweepSettings
    size: SweepSize
    spec: Path
    ref: Path
    timing: Timing | None = None
    scale: float = 1.0  # observed / reference-predicted duration of the latest uninterrupted run (warm caches)
    kills: list[dict] = field(default_factory=list)
    reruns: list[dict] = field(default_factory=list)  # uninterrupted reruns that finished a trial folder
    checks: dict[str, list[Check]] = field(default_factory=dict)

    def sweep(self, out: Path, log: Path):
        return start(
            [
                *console_script(),
                "sweep",
                str(self.spec),
                "--out",
                str(out),
                "--cache-dir",
                str(self.s.workdir / ("cache-ref" if out == self.ref else "cache")),
                "--no-progress",
            ],
            log,
        )

    def run_to_end(self, out: Path, log: Path) -> tuple[int, float, float, float]:
        """(exit status, seconds to first new record, to last new record, total); records polled."""
        t0 = time.monotonic()
        proc, n0 = self.sweep(out, log), valid_count(out)
        first = last = None
        seen = n0
        while proc.poll() is None:
            if time.monotonic() - t0 > self.s.timeout:
                kill_group(proc)
                raise RuntimeError(f"a sweep ran longer than {self.s.timeout:.0f} s; see {log}")
            n = line_count(out)
            if n > seen:
                now = time.monotonic() - t0
                first, last, seen = first if first is not None else now, now, n
            time.sleep(POLL)
        total = time.monotonic() - t0
        return proc.returncode, first if first is not None else total, last if last is not None else total, total

    def learn(self, remaining: int, seconds: float) -> None:
        """Rescale the expected durations by what an uninterrupted run from an empty folder took
        (the reference ran with cold caches; the machine's load drifts)."""
        if remaining == self.size.images:
            self.scale = seconds / self.timing.total

    def verify(self, folder: Path, label: str) -> bool:
        log = self.s.workdir / "logs" / f"{folder.name}.log"
        remaining = self.size.images - valid_count(folder)
        code, _, _, seconds = self.run_to_end(folder, log)
        if code == 0:
            self.learn(remaining, seconds)
        self.reruns.append({"folder": folder.name, "after": label, "exit": code, "seconds": round(seconds, 1)})
        checks = [Check("uninterrupted rerun exits 0", code == 0, f"exit {code}" + (f"; log {log}" if code else ""))]
        checks += compare(self.ref, folder) if code == 0 else []
        for c in checks:
            self.checks.setdefault(c.name, []).append(
                Check(c.name, c.passed, f"{folder.name} after {label}: {c.detail}")
            )
        status = "PASS" if all(c.passed for c in checks) else "FAIL"
        print(
            f"  verify {folder.name} after {label}: rerun {seconds:.1f} s, {status}"
            + "".join(f"\n    FAIL {c.name}: {c.detail}" for c in checks if not c.passed),
            flush=True,
        )
        return status == "PASS"


def line_count(run: Path) -> int:
    f = run / "shards" / "images-rank0.jsonl"
    try:
        return f.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def valid_count(run: Path) -> int:
    return valid_records(run) if run.is_dir() else 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = KillSweepSettings()
    p.add_argument("--kills", type=int, default=d.kills, help=f"SIGKILLs to deliver (default {d.kills})")
    p.add_argument("--seed", type=seed_int, default=d.seed, help="seed of the random kill moments")
    p.add_argument("--workdir", type=Path, default=d.workdir, help=f"trial work directory (default {d.workdir})")
    p.add_argument(
        "--spec",
        default=d.spec,
        choices=list(SIZES),
        help="sweep size: " + "; ".join(f"{k} = {v.images} images" for k, v in SIZES.items()) + f" (default {d.spec})",
    )
    p.add_argument(
        "--verify-every",
        type=int,
        default=d.verify_every,
        help=f"after this many kills, rerun to completion, compare, start a fresh folder (default {d.verify_every})",
    )


def run(args: argparse.Namespace) -> int:
    s = KillSweepSettings(
        kills=args.kills, seed=args.seed, workdir=Path(args.workdir), spec=args.spec, verify_every=args.verify_every
    )
    return run_trial(s)


def run_trial(s: KillSweepSettings) -> int:
    from .tiny_cascade import make_tiny_checkpoint

    t_start = time.monotonic()
    wd = fresh_workdir(s.workdir)
    for old in [*wd.glob("trial-*"), wd / "reference", wd / "logs", wd / "cache", wd / "cache-ref", wd / "ckpt"]:
        shutil.rmtree(old, ignore_errors=True)  # an earlier trial's folders: every trial starts clean
    size = SIZES[s.spec]
    make_tiny_checkpoint(wd / "ckpt")
    spec = wd / "spec.toml"
    spec.write_text(spec_text((wd / "ckpt").resolve(), size))
    t = Trial(s, size, spec, wd / "reference")
    print(
        f"kill-sweep: {size.images}-image sweep ({s.spec}), {s.kills} kills, seed {s.seed}, workdir {wd}", flush=True
    )

    code, first, last, total = t.run_to_end(t.ref, wd / "logs" / "reference.log")
    if code != 0:
        raise RuntimeError(
            f"the uninterrupted reference sweep failed (exit {code}); see {wd / 'logs' / 'reference.log'}"
        )
    t.timing = Timing(first, last, total)
    print(f"  reference: {total:.1f} s (start-up {first:.1f} s, last image at {last:.1f} s)", flush=True)

    rng = random.Random(s.seed)
    round_no, since_verify = 1, 0
    folder = wd / f"trial-{round_no}"
    while len(t.kills) < s.kills:
        if since_verify == s.verify_every:
            if t.verify(folder, f"{since_verify} kills"):
                shutil.rmtree(folder)
            round_no, since_verify = round_no + 1, 0
            folder = wd / f"trial-{round_no}"
            continue
        before = (valid_count(folder), write_marks(folder) if folder.is_dir() else frozenset())
        expected = t.timing.expected(size.images - before[0], size.images) * t.scale
        at = rng.uniform(0.0, expected)
        log = wd / "logs" / f"{folder.name}.log"
        t0 = time.monotonic()
        proc = t.sweep(folder, log)
        while proc.poll() is None and time.monotonic() - t0 < at:
            time.sleep(0.01)
        if proc.poll() is not None:  # finished (or failed) before its kill moment
            elapsed = time.monotonic() - t0
            print(
                f"  {folder.name}: run ended by itself at {elapsed:.1f} s (kill was due at {at:.1f} s), exit {proc.returncode}",
                flush=True,
            )
            if proc.returncode == 0:
                t.learn(size.images - before[0], elapsed)
            else:
                t.checks.setdefault("no run fails after a kill", []).append(
                    Check("no run fails after a kill", False, f"{folder.name}: exit {proc.returncode}; see {log}")
                )
            if t.verify(folder, f"{since_verify} kills (finished by itself)"):
                shutil.rmtree(folder)
            round_no, since_verify = round_no + 1, 0
            folder = wd / f"trial-{round_no}"
            continue
        kill_group(proc)
        wait_group_gone(proc.pid)
        elapsed = time.monotonic() - t0
        phase = kill_phase(folder, elapsed, t.timing.startup, before, size.images) if folder.is_dir() else "start-up"
        after = valid_count(folder)
        t.kills.append(
            {
                "n": len(t.kills) + 1,
                "folder": folder.name,
                "at_s": round(elapsed, 2),
                "expected_s": round(expected, 1),
                "phase": phase,
                "images_before": before[0],
                "images_after": after,
            }
        )
        since_verify += 1
        print(
            f"  kill {len(t.kills):>2} at {elapsed:5.2f} s of ~{expected:4.1f} s ({phase}); images {before[0]} -> {after}",
            flush=True,
        )
    t.verify(folder, f"{since_verify} kills (final)")
    return _report(t, time.monotonic() - t_start)


def _report(t: Trial, seconds: float) -> int:
    phases: dict[str, int] = {}
    for k in t.kills:
        phases[k["phase"]] = phases.get(k["phase"], 0) + 1
    checks = [
        Check(
            name,
            all(c.passed for c in cs),
            f"{sum(c.passed for c in cs)}/{len(cs)} verifications"
            + "".join(f"; {c.detail}" for c in cs if not c.passed),
        )
        for name, cs in t.checks.items()
    ]
    checks.append(Check("kills delivered", len(t.kills) == t.s.kills, f"{len(t.kills)} of {t.s.kills}"))
    times = [r["seconds"] for r in t.reruns]
    print(f"kills: {len(t.kills)} at s = {', '.join(str(k['at_s']) for k in t.kills)}")
    print("landed in: " + ", ".join(f"{n} {p}" for p, n in sorted(phases.items())))
    print(f"uninterrupted reruns: {len(times)}, wall s = {', '.join(map(str, times))}")
    facts = {
        "settings": {**asdict(t.s), "workdir": str(t.s.workdir)},
        "images": t.size.images,
        "reference": asdict(t.timing) if t.timing else None,
        "kills": t.kills,
        "kill_phases": phases,
        "reruns": t.reruns,
        "verifications": len(t.reruns),
        "duration_scale": round(t.scale, 2),
    }
    return finish(t.s.workdir, "kill-sweep", checks, facts, seconds)
