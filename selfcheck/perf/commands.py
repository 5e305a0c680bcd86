"""`imagen-bench perf [--only SECTIONS] [--quick] [--out DIR] [sizes...]`: measure every section
side by side on this machine, print the table of ratios and write DIR/perf.json + DIR/perf.md
(a new timestamped pair when those exist: results are never overwritten)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from .machine import configure_threads, machine_info
from .memory import MemorySettings
from .report import render_markdown, render_table

SECTIONS = ("peak", "sampling", "paper", "memory", "scoring", "setmetrics", "sweeps", "app")
FORMAT = "imagen-bench-perf/1"


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + ". Sections: peak (matmul FLOP/s), sampling "
        "(our base stage vs diffusers / imagen-pytorch from the benchmark venv: `make perf-env`), paper (the paper-size "
        "U-Nets' share of the peak, eager and compiled, with the compile cost: for a GPU), memory (our malloc rule vs "
        "the system's on the 256² stage), scoring (FID features vs torchmetrics), sweeps (guidance sweep cost, rerun, "
        "caching), app (report, submit latency).",
    )
    p.add_argument("--out", type=Path, default=Path("perf"), help="folder for perf.json and perf.md (default: perf/)")
    p.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections (default: all): {','.join(SECTIONS)}"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of every section in a few minutes)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: $IMAGEN_BENCH_THREADS, else torch's default)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (every section runs there)")
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--peer-python",
        default="",
        help="python of the benchmark venv (default: $IMAGEN_BENCH_PERF_PYTHON or .perf-venv/bin/python)",
    )
    g.add_argument("--no-peers", action="store_true", help="time only our stage (no benchmark venv needed)")
    g.add_argument("--batch", type=int, help="images per sampling loop (default 8)")
    g.add_argument("--steps", type=int, help="sampling steps (default 32)")
    g.add_argument("--guidance", type=float, help="guidance weight (default 3)")
    g.add_argument(
        "--rounds",
        type=int,
        help="alternating rounds of all implementations (default 2; also the memory section's processes per rule)",
    )
    g.add_argument("--repeats", type=int, help="timed repeats per measurement, every section (defaults per section)")
    g.add_argument("--checkpoint", default="", help="cascade whose base stage is timed (default: the shipped one)")
    g = p.add_argument_group("paper")
    g.add_argument(
        "--compile-modes",
        default=None,
        help="comma-separated torch.compile modes timed beside eager (default: default)",
    )
    g.add_argument("--paper-batch", default=None, help="images per call for base,sr256,sr1024 (default 64,16,4)")
    g = p.add_argument_group("other sizes")
    g.add_argument("--matmul-n", type=int, help="peak: square matmul size (default 2048; 8192 on CUDA)")
    g.add_argument("--fid-images", type=int, help="scoring: images (default 64)")
    g.add_argument("--set-features", type=int, help="setmetrics: features per side (default 30000, COCO FID-30K)")
    g.add_argument("--sweep-prompts", type=int, help="sweeps: shapes prompts per category, x4 categories (default 4)")
    g.add_argument("--answers", type=int, help="app: simulated report answers (default 100000)")
    g.add_argument("--raters", type=int, help="app: concurrent raters (default 50)")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace, threads: int) -> dict:
    """Each section's frozen settings: defaults (or --quick's small sizes), then the explicit sizes."""
    from .app import AppSettings
    from .paper import PaperSettings
    from .peak import PeakSettings
    from .sampling import SamplingSettings
    from .scoring import ScoringSettings
    from .setmetrics import SetMetricSettings
    from .sweeps import SweepSettings

    dev = args.device
    # a GPU reaches its matmul peak only on large products (a 2048^2 bf16 one takes ~20 us on an H100)
    peak = PeakSettings(device=dev, n=8192) if dev.startswith("cuda") else PeakSettings(device=dev)
    s = {
        "peak": peak,
        "sampling": SamplingSettings(device=dev, threads=threads),
        "paper": PaperSettings(device=dev),
        "memory": MemorySettings(device=dev, threads=threads),
        "scoring": ScoringSettings(device=dev),
        "setmetrics": SetMetricSettings(device=dev),
        "sweeps": SweepSettings(device=dev),
        "app": AppSettings(),
    }
    if args.quick:  # every code path, minutes not tens of minutes; numbers are a smoke check only
        s["peak"] = replace(s["peak"], n=512, repeats=3)  # a bf16 1024^2 product takes ~4 s without native bf16
        s["sampling"] = replace(
            s["sampling"], batch=2, steps=4, repeats=1, rounds=1, peer_variants=((True, True), (False, False))
        )
        s["paper"] = replace(
            s["paper"], batch=(1, 1, 1), scale=16, resolution_scale=4, compile=("off",), repeats=1, warmup=1
        )
        s["memory"] = replace(s["memory"], steps=2, rounds=1)
        s["scoring"] = replace(s["scoring"], images=8, batch=4, repeats=1)
        s["setmetrics"] = replace(
            s["setmetrics"], n=400, dim=64, clip_dim=32, jobs=("fid", "kid", "prdc", "prdc_blocks", "cmmd")
        )
        s["sweeps"] = replace(s["sweeps"], per_category=1, steps=4, batch=4, reference_n=8, repeats=1, cli_rerun=False)
        s["app"] = replace(s["app"], answers=10_000, resamples=1_000, answers_per_rater=20)
    opt = lambda **kw: {k: v for k, v in kw.items() if v is not None}  # noqa: E731  (only what was given)
    s["peak"] = replace(s["peak"], **opt(n=args.matmul_n, repeats=args.repeats))
    s["sampling"] = replace(
        s["sampling"],
        **opt(batch=args.batch, steps=args.steps, guidance=args.guidance, rounds=args.rounds, repeats=args.repeats),
        checkpoint=args.checkpoint,
        peer_python=args.peer_python,
        peers=() if args.no_peers else s["sampling"].peers,
    )
    s["paper"] = replace(
        s["paper"],
        **opt(
            repeats=args.repeats,
            compile=tuple(dict.fromkeys(("off", *_items(args.compile_modes)))) if args.compile_modes else None,
            batch=_batches(args.paper_batch) if args.paper_batch else None,
        ),
    )
    s["memory"] = replace(s["memory"], **opt(rounds=args.rounds), checkpoint=args.checkpoint)
    s["scoring"] = replace(s["scoring"], **opt(images=args.fid_images, repeats=args.repeats))
    s["setmetrics"] = replace(s["setmetrics"], **opt(n=args.set_features))
    s["sweeps"] = replace(
        s["sweeps"],
        **opt(per_category=args.sweep_prompts, steps=args.steps, repeats=args.repeats),
        checkpoint=args.checkpoint,
    )
    s["app"] = replace(s["app"], **opt(answers=args.answers, raters=args.raters))
    return s


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _batches(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in _items(text))
    except ValueError:
        raise ValueError(f"--paper-batch {text!r}: give whole numbers, one per stage, e.g. 64,16,4") from None


def parse_only(text: str) -> list[str]:
    chosen = _items(text)
    unknown = [x for x in chosen if x not in SECTIONS]
    if unknown or not chosen:
        raise ValueError(f"--only {text!r}: unknown sections {unknown}; choose from {','.join(SECTIONS)}")
    if {"sampling", "paper"} & set(chosen) and "peak" not in chosen:
        chosen.insert(0, "peak")  # the FLOP/s fraction needs this machine's measured peak
    return [x for x in SECTIONS if x in chosen]


def output_paths(out: Path) -> tuple[Path, Path]:
    """out/perf.{json,md}, or a timestamped pair when either exists (never overwrite a result)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "perf"
    if (out / "perf.json").exists() or (out / "perf.md").exists():
        stem = "perf-" + datetime.now().strftime("%Y%m%d-%H%M%S")
        n = 1
        while (out / f"{stem}.json").exists():
            stem, n = f"perf-{datetime.now():%Y%m%d-%H%M%S}-{n}", n + 1
    return out / f"{stem}.json", out / f"{stem}.md"


def run(args: argparse.Namespace) -> int:
    sections = parse_only(args.only)
    threads = configure_threads(args.threads)
    settings = settings_from_args(args, threads)
    json_path, md_path = output_paths(args.out)
    results = {}
    t0 = time.perf_counter()
    for name in sections:
        print(f"perf: {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        results[name] = _measure(name, settings[name], results)
        results[name].measurements["section_seconds"] = time.perf_counter() - t
    doc = {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(args),
        "quick": args.quick,
        "machine": machine_info(),
        "seconds": time.perf_counter() - t0,
        "sections": {k: v.as_dict() for k, v in results.items()},
    }
    rows = [{"section": k, **r.as_dict()} for k, v in results.items() for r in v.rows]
    doc["targets"] = [r for r in rows if r["met"] is not None]
    doc["summary"] = {
        "met": sum(r["met"] for r in doc["targets"]),
        "not_met": sum(not r["met"] for r in doc["targets"]),
    }
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(doc))
    print(render_table(doc))
    print(f"\nwrote {json_path} and {md_path}")
    return 1 if args.check and doc["summary"]["not_met"] else 0


def command_line(args: argparse.Namespace) -> str:
    """The options that were given (argparse keeps no argv when main() is called with a list)."""
    parts = ["imagen-bench perf"]
    for key, value in vars(args).items():
        if (
            key in ("func", "command", "out")
            or value in (None, False, "")
            or (key == "only" and value == ",".join(SECTIONS))
            or (key == "device" and value == "cpu")
        ):
            continue
        flag = "--" + key.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts + [f"--out {args.out}"])


def _measure(name: str, s, done: dict):
    if name == "peak":
        from .peak import measure

        return measure(s)
    if name == "sampling":
        from .peak import peak_flops
        from .sampling import measure

        return measure(s, {dt: peak_flops(done.get("peak"), dt) for dt in ("float32", "bfloat16")})
    if name == "paper":
        from .paper import measure
        from .peak import peak_flops

        return measure(s, {dt: peak_flops(done.get("peak"), dt) for dt in ("float32", "bfloat16")})
    if name == "memory":
        from .memory import measure

        return measure(s)
    if name == "scoring":
        from .scoring import measure

        return measure(s)
    if name == "setmetrics":
        from .setmetrics import measure

        return measure(s)
    if name == "sweeps":
        from .sweeps import measure

        return measure(s)
    from .app import measure

    return measure(s)
