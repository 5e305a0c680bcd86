"""`imagen-bench sweep SPEC [--out RUN]` (also under torchrun: one process per rank) and
`imagen-bench gpu-hours SPEC`: a spec's expected GPU time on IF's real-size networks (bench.sweep.cost)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from common.files import check_writable

from .cost import DEFAULT_NETWORKS, GPU_KINDS, MEASURED_PEAK, SHARES, estimate
from .cost import gpu_hours as hours
from .spec import DEFAULT_MAX_IMAGES, load_spec


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_parser(sub, name: str, help_text: str) -> None:
    if name == "gpu-hours":
        return _add_gpu_hours(sub.add_parser(name, help=help_text, description=help_text + ". " + COST_NOTE))
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Format of SPEC: docs/sweeps.md. "
        "Rerunning with the same --out resumes; under `torchrun --nproc_per_node N` the images are sharded across ranks.",
    )
    p.add_argument("spec", type=Path, help="sweep spec (TOML), e.g. bench/specs/demo.toml")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<sweep name>)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="text-encoding / FID-reference cache (default: $IMAGEN_BENCH_CACHE or ~/.cache/imagen-bench)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--wait", action="store_true", help="if another sweep is using --out, wait for it to finish (default: refuse)"
    )
    p.add_argument(
        "--max-images",
        type=_positive,
        default=DEFAULT_MAX_IMAGES,
        metavar="N",
        help="refuse a spec that makes more images than this (default %(default)s; pass the planned count to confirm a larger sweep)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .runner import run_sweep

    out = check_writable(args.out or Path("runs") / load_spec(args.spec)[0].name)
    r = run_sweep(
        args.spec,
        out,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        wait=args.wait,
        max_images=args.max_images,
    )
    if os.environ.get("RANK", "0") == "0":
        print(
            f"{r.run}: {r.images_total} images ({r.images_generated} generated now), "
            f"{r.metric_pairs_computed} cell x metric results computed, {r.seconds:.1f}s"
        )
    return 0


COST_NOTE = (
    "An estimate from FLOPs (each network built from its published config on the meta device and counted with "
    "torch.utils.flop_counter) and the utilisation measured on an H200 for the paper-size U-Nets; not a run."
)


def _add_gpu_hours(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spec", type=Path, help="sweep spec with a diffusers_cascade model, e.g. bench/specs/if_coco_fid30k.toml"
    )
    p.add_argument(
        "--networks",
        default=",".join(DEFAULT_NETWORKS),
        help="the real-size network of each stage, in order (default %(default)s)",
    )
    p.set_defaults(func=gpu_hours)


def gpu_hours(args: argparse.Namespace) -> int:
    networks = tuple(n.strip() for n in args.networks.split(",") if n.strip())
    costs = estimate(args.spec, networks)
    print(f"{args.spec}: expected GPU time. {COST_NOTE}")
    base, (sr_low, sr_high) = SHARES["base"][0], SHARES["sr"]
    print(
        f"basis: bf16 peak {MEASURED_PEAK / 1e12:.0f} TFLOP/s; shares: base {base:.0%}, SR {sr_low:.0%}-{sr_high:.0%}"
    )
    for c in costs:
        flops = " + ".join(f"{f / 1e12:,.0f}" for f in c.stage_flops)
        print(
            f"  {c.model} [{c.cell}]: {c.images:,} images x ({flops}) TFLOP = {c.seconds[0]:.2f}-{c.seconds[1]:.2f} s per image"
        )
    for kind in GPU_KINDS:
        span = "-".join(
            dict.fromkeys(f"{h:,.1f}" for h in hours(costs, kind))
        )  # one number when both ends round alike
        print(f"  {kind.name}: {span} GPU-hours ({kind.basis})")
    return 0
