"""Sampling: images/s of our cascade's base stage vs diffusers and imagen-pytorch at the same
parameter count, resolution, steps, guidance and batch; plus our achieved FLOP/s vs the peak.

Every implementation runs in its own process (selfcheck/perf/peers/*.py): ours with this venv's
python, the peers with the benchmark venv's (.perf-venv, `make perf-env`), so the peers' pins
never touch the project. Order of work:
  1. probe: each peer times every (bf16 autocast, channels_last) variant once and the fastest is
     kept (each library at its best on this machine; ours uses the pipeline's defaults, bf16 +
     channels_last, what a user gets);
  2. `rounds` rounds, each running ours, diffusers, imagen-pytorch in turn (alternating, so all
     see similar background load); images/s = batch / median over every timed loop of all rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from common.allocator import child_env
from imagen.checkpoint import load_cascade_checkpoint
from imagen.commands import DEFAULT_CHECKPOINT
from imagen.device import resolve

from .peers._common import MARKER, StageBench
from .results import Row, Section

PEERS_DIR = Path(__file__).resolve().parent / "peers"
RUNNERS = {"ours": "ours.py", "diffusers": "diffusers_peer.py", "imagen-pytorch": "imagen_pytorch_peer.py"}
PERF_PYTHON_ENV = "IMAGEN_BENCH_PERF_PYTHON"
ALL_VARIANTS = ((True, True), (True, False), (False, True), (False, False))  # (bf16, channels_last)
TARGETS = {"imagen-pytorch": 1.5, "diffusers": 1.0}  # ours / peer images/s (issue #7)
PEAK_FRACTION_TARGET = 50.0  # % of the matmul peak of the dtype used


@dataclass(frozen=True)
class SamplingSettings:
    # batch 8, 32 DDPM steps, w = 3: the pipeline's defaults for the base stage (guidance doubles the U-Net batch to 16)
    batch: int = 8
    steps: int = 32
    guidance: float = 3.0
    repeats: int = 3  # timed loops per process run
    warmup: int = 1
    rounds: int = 2
    peer_variants: tuple[tuple[bool, bool], ...] = ALL_VARIANTS
    peers: tuple[str, ...] = ("diffusers", "imagen-pytorch")
    checkpoint: str = ""  # cascade whose base stage is ours; "" = the shipped one (imagen.commands.DEFAULT_CHECKPOINT)
    peer_python: str = ""  # "" = $IMAGEN_BENCH_PERF_PYTHON, else .perf-venv/bin/python (cwd, then the source tree)
    device: str = "cpu"
    threads: int = 1
    timeout_seconds: float = 3600.0

    def __post_init__(self) -> None:
        unknown = set(self.peers) - (set(RUNNERS) - {"ours"})
        if unknown:
            raise ValueError(f"sampling: unknown peers {sorted(unknown)}; choose from diffusers, imagen-pytorch")
        if min(self.batch, self.steps, self.repeats, self.rounds) < 1 or self.warmup < 0:
            raise ValueError("sampling: batch, steps, repeats and rounds must be >= 1, warmup >= 0")


def find_peer_python(explicit: str) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get(PERF_PYTHON_ENV):
        return Path(os.environ[PERF_PYTHON_ENV])
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        py = root / ".perf-venv" / "bin" / "python"
        if py.exists():
            return py
    return None


def run_runner(python: Path | str, name: str, bench: StageBench, timeout: float) -> dict:
    """One runner process; its `PERF-RESULT {json}` line, or {"error": ...} with the stderr tail."""
    cmd = [str(python), str(PEERS_DIR / RUNNERS[name]), "--settings", bench.to_json()]
    # threads as configured (the runner also calls torch.set_num_threads); nothing may reach a model hub
    # and the malloc rule this process runs with (common/allocator.py), for ours and the peers alike
    env = child_env(
        {**os.environ, "OMP_NUM_THREADS": str(bench.threads), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"{name}: no result within {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return {"error": f"{name} runner exited {proc.returncode}: {tail}"}


def _stage_bench(s: SamplingSettings, checkpoint: Path) -> StageBench:
    """The shared task, read from the checkpoint's base stage (resolution, text shape, parameters)."""
    cfg, unets, _ = load_cascade_checkpoint(checkpoint, num_stages=1)
    stage = cfg.stages[0]
    return StageBench(
        batch=s.batch,
        steps=s.steps,
        guidance=s.guidance,
        resolution=stage.resolution,
        channels=stage.unet.in_channels,
        text_len=cfg.text_encoder.max_length,
        text_dim=stage.unet.text_embed_dim,
        param_target=sum(p.numel() for p in unets[0].parameters()),
        repeats=s.repeats,
        warmup=s.warmup,
        threads=s.threads,
        device=s.device,
        checkpoint=str(checkpoint),
    )


def measure(s: SamplingSettings, peak: dict[str, float | None]) -> Section:
    """`peak` = {"float32": FLOP/s, "bfloat16": FLOP/s} from the peak section."""
    checkpoint = Path(s.checkpoint) if s.checkpoint else DEFAULT_CHECKPOINT
    bench = _stage_bench(s, checkpoint)
    sec = Section(
        "sampling",
        settings={
            **{k: v for k, v in bench.__dict__.items() if k not in ("variants",)},
            "rounds": s.rounds,
            "peer_variants": [list(v) for v in s.peer_variants],
        },
    )
    python = {"ours": Path(sys.executable)}
    peer_py = find_peer_python(s.peer_python)
    peers = list(s.peers)
    if not peers:
        sec.notes.append("peers not run (--no-peers): only our stage is timed")
    elif peer_py is None or not peer_py.exists():
        sec.notes.append(
            f"peers skipped: benchmark venv python {peer_py or '.perf-venv/bin/python'} not found; create it with "
            f"`make perf-env` (or pass --peer-python / set ${PERF_PYTHON_ENV})"
        )
        peers = []
    for p in peers:
        python[p] = peer_py

    # 1. probe: the fastest variant of each peer (ours: the pipeline's default, precision and memory
    # format "auto" as resolved here; where auto is float32 bf16 is emulated, so no peer probes it)

    auto = resolve(s.device)
    chosen = {"ours": ((auto.precision == "bf16", auto.memory_format == "channels_last"),)}
    peer_variants = tuple(v for v in s.peer_variants if auto.precision == "bf16" or not v[0])
    sec.notes.append(f"ours: precision {auto.precision}, {auto.memory_format} ({auto.reason})")
    probes = {}
    for p in peers:
        probes[p] = run_runner(
            python[p], p, replace(bench, variants=peer_variants, repeats=1, warmup=min(1, s.warmup)), s.timeout_seconds
        )
        if "error" in probes[p]:
            sec.notes.append(f"{p} skipped: {probes[p]['error']}")
            continue
        best = probes[p]["variants"][probes[p]["best"]]
        chosen[p] = ((best["bf16"], best["channels_last"]),)
    sec.measurements["probe"] = probes

    # 2. alternating rounds
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    for _ in range(s.rounds):
        for name in chosen:
            r = run_runner(python[name], name, replace(bench, variants=chosen[name]), s.timeout_seconds)
            if "error" in r:
                sec.notes.append(f"{name} round failed: {r['error']}")
                continue
            runs[name].append(r)
    results = {name: _summarise(rs, bench) for name, rs in runs.items() if rs}
    sec.measurements["implementations"] = results
    if "ours" not in results:
        sec.skipped = "our stage's runner failed: " + "; ".join(sec.notes)
        return sec
    _rows(sec, results, peak)
    return sec


def _summarise(rounds: list[dict], bench: StageBench) -> dict:
    secs = [t for r in rounds for v in r["variants"].values() for t in v["seconds"]]
    med = statistics.median(secs)
    first = rounds[0]
    variant = first["variants"][first["best"]]
    return {
        "library": first["library"],
        "params": first["params"],
        "param_ratio_to_ours": first["params"] / bench.param_target,
        "config": first["config"],
        "bf16": variant["bf16"],
        "channels_last": variant["channels_last"],
        "seconds_per_loop": secs,
        "median_seconds": med,
        "images_per_loop": bench.batch,
        "images_per_second": bench.batch / med,
        "flops_per_loop": first["flops_per_loop"],
        "achieved_flops_per_second": first["flops_per_loop"] / med,
        "unet_forwards_per_step": first["unet_forwards_per_step"],
        "unet_batch": first["unet_batch"],
        "profile": first.get("profile"),
        "threads": first["threads"],
        "torch": first["torch"],
    }


def _rows(sec: Section, results: dict, peak: dict[str, float | None]) -> None:
    ours = results["ours"]
    sec.rows.append(
        Row(
            "ours (base stage) images/s",
            ours["images_per_second"],
            "img/s",
            note=f"{ours['params'] / 1e6:.2f} M params, bf16={ours['bf16']}, channels_last={ours['channels_last']}",
        )
    )
    for p, threshold in TARGETS.items():
        if p not in results:
            continue
        r = results[p]
        sec.rows.append(
            Row(
                f"ours / {p} images/s",
                ours["images_per_second"] / r["images_per_second"],
                "x",
                threshold,
                note=f"{p}: {r['images_per_second']:.3g} img/s, {r['params'] / 1e6:.2f} M params "
                f"({100 * (r['param_ratio_to_ours'] - 1):+.1f} %), bf16={r['bf16']}, channels_last={r['channels_last']}",
            )
        )
    dtype = "bfloat16" if ours["bf16"] else "float32"
    if peak.get(dtype):
        frac = 100 * ours["achieved_flops_per_second"] / peak[dtype]
        row = Row(
            f"ours achieved FLOP/s / {dtype} matmul peak",
            frac,
            "%",
            PEAK_FRACTION_TARGET,
            note=f"{ours['achieved_flops_per_second'] / 1e9:.1f} GFLOP/s of {peak[dtype] / 1e9:.0f}",
        )
        sec.rows.append(row)
        if not row.met and ours.get("profile"):
            sec.notes.append(gap_cause(ours["profile"], peak[dtype]))


def gap_cause(profile: dict, peak: float) -> str:
    others = ", ".join(
        f"{o['op'].removeprefix('aten::')} {100 * o['share']:.0f} %" for o in profile["top_other_ops"][:4]
    )
    rate = profile.get("conv_matmul_flops_per_second") or 0.0
    return (
        f"FLOP/s gap, measured (torch.profiler, one guided U-Net call): convolutions + matmuls take only "
        f"{100 * profile['conv_matmul_share']:.0f} % of the time and run at {rate / 1e9:.0f} GFLOP/s themselves "
        f"({100 * rate / peak:.0f} % of peak: 16x16 / 8x8 / 4x4 maps with 64-128 channels are far too small "
        f"for the tiled kernels that reach peak on 2048^2 products); the rest is FLOP-free work: {others}"
    )
