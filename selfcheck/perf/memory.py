"""Memory: the process's malloc rule (common/allocator.py) against the system's, side by side.

One job, in fresh processes under each rule, taking turns (system, reuse, system, reuse, ...): the
shipped cascade's last stage (256²) samples one batch for `steps` steps from a seeded low-res image
and seeded text embeddings. Each process reports the seconds of its sampling loop (loading not
counted), its peak resident memory (ru_maxrss) and a hash of the result. The hashes must agree:
the rule changes where memory comes from, never the arithmetic.

    python -m selfcheck.perf.memory '{"batch": 8, ...}'   is one such process (what measure() starts)
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass

from common.allocator import CHOICES, ENV, MALLOC_TUNABLES, reuse_freed_memory
from imagen.commands import DEFAULT_CHECKPOINT

from .results import Row, Section, run_marked

MARKER = "MEMORY-RESULT "


@dataclass(frozen=True)
class MemorySettings:
    batch: int = (
        8  # 8 x 16 x 256² float32 activations = 32 MiB each: above glibc's own mmap threshold (32 MiB at most)
    )
    steps: int = 16  # the demo's sr256 steps
    rounds: int = 2  # processes per rule, alternating
    precision: str = "fp32"  # what a CPU without native bf16 runs (auto picks it there)
    threads: int = 0  # torch threads in each process; 0 = torch's default
    device: str = "cpu"
    checkpoint: str = ""  # "" = the shipped cascade

    def __post_init__(self) -> None:
        if self.batch < 1 or self.steps < 1 or self.rounds < 1:
            raise ValueError(
                f"memory: batch, steps and rounds must be >= 1, got {self.batch}, {self.steps}, {self.rounds}"
            )


def one_process(s: MemorySettings) -> dict:
    """The job, in this process (under whatever rule it holds)."""
    import torch

    from imagen.checkpoint import load_cascade_checkpoint
    from imagen.pipeline import Runtime, StageSampling, sample_stage

    if s.threads:
        torch.set_num_threads(s.threads)
    cfg, unets, _ = load_cascade_checkpoint(s.checkpoint or DEFAULT_CHECKPOINT)
    index = len(cfg.stages) - 1
    stage, prev_res = cfg.stages[index], cfg.stages[index - 1].resolution
    rt = Runtime(device="cpu", precision=s.precision).resolved()
    unet = unets[index].eval().to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    text = torch.randn(s.batch, cfg.text_encoder.max_length, stage.unet.text_embed_dim, generator=g)
    mask = torch.ones(s.batch, cfg.text_encoder.max_length, dtype=torch.bool)
    prev = torch.rand(s.batch, 3, prev_res, prev_res, generator=g) * 2 - 1
    t0 = time.perf_counter()
    x = sample_stage(
        unet, stage, text, mask, list(range(s.batch)), index, StageSampling(steps=s.steps, guidance=1.0), rt, prev=prev
    )
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sha256": hashlib.sha256(x.numpy().tobytes()).hexdigest(),
        "stage": stage.name,
        "resolution": stage.resolution,
    }


def run_process(s: MemorySettings, rule: str) -> dict:
    env = {**os.environ, ENV: rule}
    kept = [
        t for t in env.pop("GLIBC_TUNABLES", "").split(":") if t and not t.startswith(MALLOC_TUNABLES)
    ]  # the rule decides
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    if s.threads:
        env["OMP_NUM_THREADS"] = str(s.threads)
    return run_marked("selfcheck.perf.memory", asdict(s), MARKER, f"memory: the {rule} process", env)


def measure(s: MemorySettings) -> Section:
    sec = Section("memory", settings=asdict(s))
    if s.device != "cpu":
        sec.skipped = "the malloc rule concerns CPU tensors; run this section with --device cpu"
        return sec
    runs: dict[str, list[dict]] = {rule: [] for rule in CHOICES}
    for _ in range(s.rounds):
        for rule in reversed(CHOICES):  # the system's rule first, then ours, in turns
            runs[rule].append(run_process(s, rule))
    sec.measurements = {
        rule: {
            "rule": rs[0]["rule"],
            "seconds": [r["seconds"] for r in rs],
            "peak_rss_mib": [r["peak_rss_mib"] for r in rs],
            "sha256": sorted({r["sha256"] for r in rs}),
        }
        for rule, rs in runs.items()
    }
    med = {rule: statistics.median(r["seconds"] for r in rs) for rule, rs in runs.items()}
    rss = {rule: max(r["peak_rss_mib"] for r in rs) for rule, rs in runs.items()}
    stage = runs["reuse"][0]["stage"]
    sec.rows.append(
        Row(
            f"memory: {stage} stage, system malloc / reuse (speed-up)",
            med["system"] / med["reuse"],
            "x",
            note=f"{med['system']:.2f} s vs {med['reuse']:.2f} s, median of {s.rounds} processes each",
        )
    )
    sec.rows.append(
        Row(
            f"memory: {stage} stage, peak resident memory reuse / system",
            rss["reuse"] / rss["system"],
            "x",
            note=f"{rss['reuse']:.0f} MiB vs {rss['system']:.0f} MiB",
        )
    )
    identical = len({r["sha256"] for rs in runs.values() for r in rs}) == 1
    sec.rows.append(Row("memory: same result under both rules (1 = bit-identical)", float(identical), "", 1.0, ">="))
    sec.notes.append(
        f"{stage} stage of {s.checkpoint or 'the shipped cascade'}: one batch of {s.batch} for {s.steps} steps, "
        f"{s.precision}, in fresh processes, {ENV}=system and =reuse taking turns (common/allocator.py)"
    )
    return sec


if __name__ == "__main__":
    rule = reuse_freed_memory()
    print(MARKER + json.dumps({**one_process(MemorySettings(**json.loads(sys.argv[1]))), "rule": rule}), flush=True)
