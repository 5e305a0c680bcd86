"""The one console script, `imagen-bench SUBCOMMAND ...`.

Each subcommand lives with its feature; this router only knows where. A module listed here
provides `add_parser(subparsers)` which registers the subcommand and sets `func(args) -> int`.
Modules are imported only when their subcommand runs, so `imagen-bench --help` stays fast.
WIRING gives a command what its own package may not import (docs/ARCHITECTURE.md's arrows).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from common.allocator import reuse_freed_memory
from common.blas import reproducible_blas
from common.errors import UserError

# subcommand -> (module, one-line help), in the groups `--help` shows
GROUPS: dict[str, tuple[str, ...]] = {
    "model": ("train", "sample", "pack"),
    "evaluate": ("sweep", "fid-stats", "fid", "shapes", "folder-manifest", "parity"),
    "people": ("study", "rate"),
    "analyse": ("report", "leaderboard", "power"),
    "end to end": ("demo",),
    "this suite": ("perf", "gpu-hours", "trials", "coverage", "sequential"),
}
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("imagen.commands", "train one stage (or all stages) of a cascade"),
    "sample": ("imagen.commands", "generate images from prompts with a cascade checkpoint"),
    "pack": ("imagen.commands", "pack a trained cascade's EMA weights (half precision) for shipping"),
    "demo": ("imagen_bench.demo", "the main job on the offline default: demo sweep + report"),
    "shapes": ("drawbench.shapes.commands", "shapes world: export a split as COCO, measure the verifier"),
    "report": ("reports.commands", "HTML report with CIs, tables and plots from run folders and rating studies"),
    "leaderboard": (
        "reports.commands",
        "models x metrics across run folders: intervals, paired ranks, refusal to mix numbers",
    ),
    "power": ("reports.commands", "raters / prompts a side-by-side study needs (simulation-based power)"),
    "fid-stats": ("bench.metrics.commands", "Inception reference statistics (mu, sigma, features) for FID/KID"),
    "fid": (
        "bench.metrics.commands",
        "FID and KID of an image folder against a reference (folder, COCO, stats file, shapes)",
    ),
    "folder-manifest": (
        "bench.models.commands",
        "say which prompt set a folder of images was made for (FOLDER/prompt_set.json)",
    ),
    "parity": (
        "bench.metrics.parity",
        "our metric numbers beside the reference implementation's, with your own weights",
    ),
    "sweep": (
        "bench.sweep.commands",
        "run a benchmark sweep (models x prompt sets x sampling grid) into a run folder",
    ),
    "study": ("human_eval.commands", "human evaluation studies: create, links, reissue, status, export"),
    "rate": ("human_eval.commands", "serve a study's rating app and print the invite links"),
    "perf": ("selfcheck.perf.commands", "speed vs peers and the hardware, side by side in one run (table + JSON)"),
    "gpu-hours": (
        "bench.sweep.commands",
        "a diffusers-cascade spec's expected GPU time on DeepFloyd IF's real-size networks (an estimate)",
    ),
    "trials": (
        "selfcheck.trials.commands",
        "reliability trials: kill a sweep / the rating server, fuzz inputs, security checks",
    ),
    "coverage": (
        "selfcheck.coverage.commands",
        "do the intervals cover their truth 95 % of the time? simulation with known truths",
    ),
    "sequential": (
        "selfcheck.sequential.commands",
        "sequential A-vs-B studies vs the paper's fixed design: ratings, errors, coverage (simulation)",
    ),
}

# the subcommands that run networks on CPU tensors: they get common/allocator.py's malloc rule (the
# rating server, studies and reports keep the system's, which returns freed memory at once)
RUN_NETWORKS = frozenset(
    {"train", "sample", "demo", "shapes", "fid-stats", "fid", "parity", "sweep", "perf", "trials"}
)


# subcommand -> {argparse default: "module:attribute"}, set after the command's parser is built:
#   train gets the shapes world as a dataset kind (imagen imports no prompt world).
WIRING: dict[str, dict[str, str]] = {
    "train": {"dataset_kinds": "drawbench.shapes.dataset:DATASET_KINDS"},
}


def _resolve(target: str):
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _help(parser: argparse.ArgumentParser) -> str:
    lines = [parser.format_usage(), parser.description or "", "", "subcommands, by workflow:"]
    for group, names in GROUPS.items():
        lines.append(f"  {group}:")
        lines += [f"    {name:<10} {COMMANDS[name][1]}" for name in names]
    lines.append("\n`imagen-bench SUBCOMMAND --help` gives each one's options.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    reproducible_blas()  # before any subcommand imports torch: MKL reads it once (common/blas.py: same bits in every process)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="imagen-bench", description="Evaluate text-to-image diffusion models the Imagen way."
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_parser(sub, name, help_text)
            sub.choices[name].set_defaults(**{key: _resolve(target) for key, target in WIRING.get(name, {}).items()})
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    if argv in ([], ["-h"], ["--help"]):
        print(_help(parser), end="")
        return 0
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        print(_help(parser), end="")
        return 2
    try:
        if args.command in RUN_NETWORKS:
            reuse_freed_memory()  # big CPU tensors reuse freed heap memory (common/allocator.py: same bits, faster)
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, FileExistsError, ValueError) as e:  # NotWritable is a ValueError
        print(f"imagen-bench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a disk that filled up or went read-only mid-run: the file and the reason, one line
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"imagen-bench {args.command}: error: cannot write or read {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"imagen-bench {args.command}: interrupted; finished work is kept on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
