"""`imagen-bench train`, `imagen-bench sample` and `imagen-bench pack`."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

from common.errors import check_choice
from common.files import read_json_object, write_json_atomic
from common.options import seed_int

from . import __version__
from .config import COMPILE_MODES, TrainConfig, from_dict, to_dict
from .presets import PRESETS, get_preset, with_t5

DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "shapes"


def add_parser(sub, name: str, help_text: str) -> None:
    if name == "train":
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--preset", default="shapes", help="cascade preset: " + ", ".join(sorted(PRESETS)))
        p.add_argument("--stage", default="all", help="stage name to train, or 'all' (in cascade order)")
        p.add_argument(
            "--data",
            default="shapes:train",
            help="toy | coco:DIR | shapes:SPLIT[:CATEGORY,...] (category mix, e.g. shapes:train:Positional)",
        )
        p.add_argument("--out", required=True, type=Path, help="cascade directory (a stage goes to OUT/<stage>)")
        p.add_argument("--steps", type=int, help="total optimisation steps (resumes up to this)")
        p.add_argument("--train-config", type=Path, help="JSON file of TrainConfig fields")
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override one TrainConfig field"
        )
        p.add_argument(
            "--t5", help="local Hugging Face T5 directory: the preset's text encoder (the paper's is T5-XXL)"
        )
        p.add_argument(
            "--device",
            default="auto",
            help="auto (cuda if present) | cpu | cuda | cuda:N; under torchrun each rank "
            "takes cuda:LOCAL_RANK (DDP over --set batch_size, the global batch)",
        )
        p.add_argument(
            "--compile",
            default="off",
            help="off | default | reduce-overhead | max-autotune: torch.compile the U-Net's "
            "training step (the first steps pay the compilation; docs/devices.md)",
        )
        p.set_defaults(func=run_train, dataset_kinds={})  # the shell adds "shapes" (imagen_bench.cli.WIRING)
    elif name == "pack":
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("src", type=Path, help="trained cascade directory (cascade.json + stage folders)")
        p.add_argument("--out", type=Path, required=True, help="new folder for the packed cascade")
        p.add_argument("--dtype", default="float16", help="weight dtype: float16 | bfloat16 | float32")
        p.set_defaults(func=run_pack)
    else:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--checkpoint",
            type=Path,
            default=None,
            help="cascade or stage directory (default: the shipped shapes cascade)",
        )
        p.add_argument("--prompt", action="append", required=True, help="text prompt (repeatable)")
        p.add_argument("--num", type=int, default=1, help="images per prompt")
        p.add_argument("--seed", type=seed_int, default=0, help="seed of the first image; image k uses seed+k")
        p.add_argument("--out", type=Path, default=Path("samples"), help="output folder for PNGs + sample.json")
        p.add_argument("--stages", type=int, default=None, help="run only the first N stages")
        from .pipeline import add_arguments

        add_arguments(p, "sampling")  # --steps --sampler --guidance --aug-level --thresholding --percentile
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="STAGE.KEY=VALUE",
            help="per-stage override, e.g. sr64.steps=16",
        )
        add_arguments(p, "runtime")  # --device --precision --memory-format --batch-size --deterministic --compile
        p.set_defaults(func=run_sample)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def train_config_from_args(args) -> TrainConfig:
    data = read_json_object(args.train_config, "fix the --train-config file") if args.train_config else {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        data[key] = _parse_value(value)
    if args.steps is not None:
        data["steps"] = args.steps
    return from_dict(TrainConfig, data)


def run_train(args) -> int:
    from .checkpoint import save_cascade_index
    from .data import resolve_dataset
    from .text_encoders import CachedTextEncoder, encoder_placement, load_text_encoder
    from .train import Trainer

    check_choice("compile", args.compile, COMPILE_MODES)  # before anything loads
    cascade = with_t5(get_preset(args.preset), args.t5) if args.t5 else get_preset(args.preset)
    names = [s.name for s in cascade.stages]
    if args.stage != "all" and args.stage not in names:
        raise ValueError(
            f"stage {args.stage!r} is not in preset {args.preset!r}; choose one of {', '.join(names)}, all"
        )
    cfg = train_config_from_args(args)
    from .device import resolve
    from .distributed import init_from_env

    placement = resolve(args.device, cfg.precision)  # a wrong device fails before the encoder loads
    main = init_from_env(placement.device).is_main
    # In-memory cache only: the shapes grammar has ~14 k distinct captions (< 1 GB of encodings);
    # a disk cache would write one file per caption into the checkpoint.
    encoder = CachedTextEncoder(load_text_encoder(cascade.text_encoder, *encoder_placement(placement.device)))
    for stage in cascade.stages:
        if args.stage not in ("all", stage.name):
            continue
        data = resolve_dataset(args.data, stage.resolution, args.dataset_kinds)
        if main:
            print(
                f"training {stage.name} ({stage.resolution}x{stage.resolution}) on {args.data} ({len(data)} items) for {cfg.steps} steps"
            )
        Trainer(
            stage,
            cascade.text_encoder,
            cfg,
            data,
            encoder,
            args.out / stage.name,
            device=placement.device,
            compile=args.compile,
        ).train()
    if not main:
        return 0
    trained = [s for s in cascade.stages if (args.out / s.name / "model.safetensors").is_file()]
    prefix = []
    for s in cascade.stages:  # the index lists the trained prefix of the cascade
        if s not in trained:
            break
        prefix.append(s)
    if prefix:
        save_cascade_index(args.out, dataclasses.replace(cascade, stages=tuple(prefix)))
    print(f"checkpoint: {args.out} (stages: {', '.join(s.name for s in prefix) or 'none complete'})")
    return 0


def run_pack(args) -> int:
    import torch

    from .checkpoint import pack_cascade

    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if args.dtype not in dtypes:
        raise ValueError(f"--dtype {args.dtype!r}; choose one of {', '.join(dtypes)}")
    names = pack_cascade(args.src, args.out, dtypes[args.dtype])
    size = sum(f.stat().st_size for f in args.out.rglob("*.safetensors")) / 1e6
    print(f"packed stages {', '.join(names)} into {args.out} ({size:.1f} MB of {args.dtype} weights)")
    return 0


def stage_settings(args, stage_names: list[str]):
    """The `sample` command's per-stage settings: its flags for every stage, then each
    --set STAGE.KEY=VALUE (parsed here, once) as typed overrides (pipeline.stage_samplings)."""
    from .pipeline import STAGE_KEYS, stage_samplings

    base = {key: getattr(args, key) for key in STAGE_KEYS}  # the flags add_arguments(p, "sampling") made
    overrides: dict[str, dict] = {}
    for item in args.set:
        m = re.fullmatch(r"(\w+)\.(\w+)=(.+)", item)
        if not m or m.group(1) not in stage_names:
            raise ValueError(f"--set {item!r}: expected STAGE.KEY=VALUE with STAGE in {', '.join(stage_names)}")
        stage, key, value = m.groups()
        if key not in STAGE_KEYS:
            raise ValueError(f"--set {item!r}: unknown key {key!r}; allowed: {', '.join(STAGE_KEYS)}")
        overrides.setdefault(stage, {})[key] = _parse_value(value)
    return stage_samplings(stage_names, base, overrides)


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n] or "prompt"


def run_sample(args) -> int:
    from PIL import Image

    from .checkpoint import load_cascade, load_cascade_checkpoint
    from .pipeline import CascadePipeline, runtime_from

    rt = runtime_from(args)
    device = rt.placement().device  # a wrong or absent device fails before anything loads
    ckpt = args.checkpoint or DEFAULT_CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(
            f"checkpoint {ckpt} not found"
            + (
                ""
                if args.checkpoint
                else "; the default shapes cascade is not installed, "
                "train one with `imagen-bench train --out DIR` and pass --checkpoint DIR"
            )
        )
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    if args.stages is not None and args.stages < 1:
        raise ValueError(f"--stages must be >= 1 (the first N stages), got {args.stages}")
    cascade = load_cascade(ckpt, args.stages, device=device)
    _, _, metas = load_cascade_checkpoint(ckpt, args.stages)
    names = [s.name for s in cascade.stages]
    settings = stage_settings(args, names)
    prompts = [p for p in args.prompt for _ in range(args.num)]
    seeds = [args.seed + k for k in range(len(prompts))]
    files = [f"{i:03d}_{_slug(p)}_seed{s}.png" for i, (p, s) in enumerate(zip(prompts, seeds))]
    args.out.mkdir(parents=True, exist_ok=True)
    clash = [f for f in files + ["sample.json"] if (args.out / f).exists()]
    if clash:
        raise ValueError(
            f"{args.out} already has {clash[0]} (and {len(clash) - 1} more); choose another --out, nothing was overwritten"
        )
    pipeline = CascadePipeline(cascade, rt)
    print(
        f"sampling on {pipeline.placement.device} in {pipeline.placement.precision} ({pipeline.placement.reason})"
        + (
            f", U-Nets compiled ({rt.compile}): each stage's first batch includes the compilation"
            if rt.compile != "off"
            else ""
        )
    )
    t0 = time.perf_counter()
    images = pipeline(prompts, seeds, settings)
    seconds = time.perf_counter() - t0
    for f, im in zip(files, images):
        Image.fromarray(im.numpy()).save(args.out / f)
    record = {
        "package_version": __version__,
        "checkpoint": str(ckpt),
        "weights_sha256": {n: m["weights_sha256"] for n, m in zip(names, metas)},
        "runtime": {**to_dict(pipeline.rt), **pipeline.placement.record()},
        "text_encoder_fingerprint": cascade.text_encoder.fingerprint,
        "settings": {n: to_dict(s) for n, s in zip(names, settings)},
        "images": [{"file": f, "prompt": p, "seed": s} for f, p, s in zip(files, prompts, seeds)],
        "seconds": round(seconds, 2),
        **({"compile_first_batch_seconds": pipeline.first_batch_seconds} if pipeline.first_batch_seconds else {}),
    }
    write_json_atomic(args.out / "sample.json", record)
    print(f"wrote {len(files)} images ({images.shape[1]}x{images.shape[2]}) to {args.out} in {seconds:.1f}s")
    return 0
