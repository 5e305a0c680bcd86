"""Checkpoints: safetensors weights + a JSON config carrying what made them.

A stage directory:
    config.json        {"format", "stage", "text_encoder", "package_version", "train", "step", "weights_sha256"}
    model.safetensors  EMA weights (what sampling uses)
    train_state.pt     raw weights, optimizer, EMA, step, RNG (for resuming; not needed to sample)
    log.csv            training log (step, loss, lr, seconds)
    init_log.csv       only for runs started from other weights (TrainConfig.init_from): the log of
                       everything that trained those weights, in total steps (see training_history)
A cascade directory:
    cascade.json       {"format", "text_encoder", "stages": [names in order], "package_version"}
    <name>/            one stage directory per stage
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from common.files import (
    atomic_path,
    read_json_object,
    sha256_file,
    staged_folder,
    write_json_atomic,
    write_text_atomic,
)
from common.training_log import split_log_rows
from common.version import __version__

from .config import CascadeConfig, StageConfig, TextEncoderConfig, from_dict, to_dict
from .pipeline import Cascade
from .text_encoders import CachedTextEncoder, encoder_placement, load_text_encoder
from .unet import EfficientUNet

STAGE_FORMAT = "imagen-bench-stage/1"
CASCADE_FORMAT = "imagen-bench-cascade/1"


_STAGE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, or does not match the config asked for."""


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable list of keys whose values differ between two nested dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb and not (
            isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)) and list(va) == list(vb)
        ):
            out.append(f"{prefix}{k}: checkpoint has {va!r}, asked for {vb!r}")
    return out


def save_stage(
    directory: Path, stage: StageConfig, text_encoder: TextEncoderConfig, ema_state: dict, extra: dict
) -> None:
    """Write model.safetensors + config.json atomically (each via a temp file and rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "model.safetensors"
    with atomic_path(weights) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in ema_state.items()},
            str(tmp),
            metadata={"format": STAGE_FORMAT},
        )
    meta = {
        "format": STAGE_FORMAT,
        "stage": to_dict(stage),
        "text_encoder": to_dict(text_encoder),
        "package_version": __version__,
        "weights_sha256": sha256_file(weights),
        **extra,
    }
    write_json_atomic(directory / "config.json", meta)


def read_weights(path: Path) -> dict:
    """A safetensors file's tensors; a damaged file is a CheckpointError naming it."""
    try:
        return load_file(str(path))
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None


def _read_json(path: Path) -> dict:
    try:
        return read_json_object(path, "restore the checkpoint from a copy")
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def read_stage_meta(directory: Path) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a stage checkpoint: config.json is missing")
    meta = _read_json(path)
    if meta.get("format") != STAGE_FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {STAGE_FORMAT!r}")
    return meta


def stage_config_diff(meta: dict, stage: StageConfig, text_encoder: TextEncoderConfig) -> list[str]:
    """How a checkpoint's recorded configs differ from the asked-for ones. A field added to the
    package after the checkpoint was saved counts as its default (so old checkpoints still load)."""
    try:
        rec_stage, rec_te = from_dict(StageConfig, meta["stage"]), from_dict(TextEncoderConfig, meta["text_encoder"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"a checkpoint's config.json has an invalid config: {e}") from None
    return config_diff(to_dict(rec_stage), to_dict(stage)) + config_diff(to_dict(rec_te), to_dict(text_encoder))


def check_matches(meta: dict, stage: StageConfig, text_encoder: TextEncoderConfig, where: Path) -> None:
    diff = stage_config_diff(meta, stage, text_encoder)
    if diff:
        raise CheckpointError(
            f"checkpoint {where} was made with another config; refusing to mix them:\n  " + "\n  ".join(diff)
        )


def load_stage(
    directory: Path, expect: StageConfig | None = None
) -> tuple[StageConfig, TextEncoderConfig, EfficientUNet, dict]:
    """Build the stage's U-Net from config.json and load its EMA weights (strict shapes)."""
    directory = Path(directory)
    meta = read_stage_meta(directory)
    try:
        stage = from_dict(StageConfig, meta["stage"])
        te = from_dict(TextEncoderConfig, meta["text_encoder"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{directory}/config.json has an invalid config: {e}") from None
    if expect is not None:
        check_matches(meta, expect, te, directory)
    try:
        unet = EfficientUNet(stage.unet)
    except Exception as e:
        raise CheckpointError(
            f"{directory}/config.json has an invalid U-Net config ({type(e).__name__}: {e})"
        ) from None
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{directory}: model.safetensors is missing")
    state = read_weights(weights)
    own = unet.state_dict()
    problems = [f"missing {k}" for k in own if k not in state] + [f"unexpected {k}" for k in state if k not in own]
    problems += [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if problems:
        raise CheckpointError(
            f"{weights} does not fit the U-Net in config.json: "
            + "; ".join(problems[:5])
            + (" ..." if len(problems) > 5 else "")
        )
    recorded = meta.get("weights_sha256")
    if recorded is not None and sha256_file(weights) != recorded:
        raise CheckpointError(
            f"{weights} does not match the weights_sha256 recorded in config.json: "
            "the file was changed or damaged after it was saved"
        )
    unet.load_state_dict(state)
    return stage, te, unet.eval().requires_grad_(False), meta


def save_cascade_index(directory: Path, config: CascadeConfig) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        directory / "cascade.json",
        {
            "format": CASCADE_FORMAT,
            "text_encoder": to_dict(config.text_encoder),
            "stages": [s.name for s in config.stages],
            "package_version": __version__,
        },
    )


def load_cascade_checkpoint(directory: Path, num_stages: int | None = None):
    """Returns (CascadeConfig, [U-Net per stage], [stage meta]). A lone stage directory is a 1-stage cascade."""
    directory = Path(directory)
    if (directory / "cascade.json").is_file():
        index = _read_json(directory / "cascade.json")
        if index.get("format") != CASCADE_FORMAT:
            raise CheckpointError(
                f"{directory}/cascade.json: format {index.get('format')!r}, expected {CASCADE_FORMAT!r}"
            )
        stages = index.get("stages")
        if not (
            isinstance(stages, list)
            and stages
            and all(isinstance(n, str) and _STAGE_NAME.fullmatch(n) for n in stages)
            and len(set(stages)) == len(stages)
        ):
            raise CheckpointError(
                f"{directory}/cascade.json: 'stages' must list the stage folder names in cascade order "
                f"(distinct names of letters, digits, _ and -), got {stages!r}"
            )
        if num_stages is not None and not 1 <= num_stages <= len(stages):
            raise CheckpointError(
                f"{directory} has {len(stages)} stages ({', '.join(stages)}); num_stages must be in "
                f"[1, {len(stages)}], got {num_stages}"
            )
        names = stages[:num_stages] if num_stages else stages
        dirs = [directory / n for n in names]
    elif (directory / "config.json").is_file():
        if num_stages not in (None, 1):
            raise CheckpointError(f"{directory} is one stage; num_stages must be 1, got {num_stages}")
        dirs = [directory]
    else:
        raise CheckpointError(f"{directory} holds no checkpoint (neither cascade.json nor config.json)")
    loaded = [load_stage(d) for d in dirs]
    tes = {json.dumps(to_dict(te), sort_keys=True) for _, te, _, _ in loaded}
    if len(tes) != 1:
        raise CheckpointError(f"stages in {directory} were trained with different text encoders: {sorted(tes)}")
    config = CascadeConfig(text_encoder=loaded[0][1], stages=tuple(s for s, _, _, _ in loaded))
    return config, [u for _, _, u, _ in loaded], [m for _, _, _, m in loaded]


def load_cascade(directory: Path, num_stages: int | None = None, text_encoder=None, device: str = "cpu"):
    """A ready-to-sample Cascade (text encoder loaded from the checkpoint's config unless given, placed
    for a pipeline on resolved `device`: text_encoders.encoder_placement)."""
    config, unets, _ = load_cascade_checkpoint(directory, num_stages)
    te = text_encoder or CachedTextEncoder(load_text_encoder(config.text_encoder, *encoder_placement(device)))
    return Cascade(config=config, text_encoder=te, unets=unets)


def torch_load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def pack_cascade(src: Path, dst: Path, dtype: torch.dtype = torch.float16) -> list[str]:
    """Copy a trained cascade's sampling weights (EMA) into a shippable folder: weights cast to
    `dtype` (half the bytes; the loader casts back to float32), config.json with the new checksum
    and the source step, no optimizer state. Refuses a non-empty folder; built beside it and published
    whole (common.files.staged_folder)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty; pack into a new folder")
    config, _, metas = load_cascade_checkpoint(src)
    with staged_folder(dst) as out:  # published whole: a failure or a kill leaves no half-packed folder
        for stage, meta in zip(config.stages, metas):
            state = load_file(str(src / stage.name / "model.safetensors"))
            extra = {
                k: v
                for k, v in meta.items()
                if k not in {"format", "stage", "text_encoder", "package_version", "weights_sha256"}
            }
            extra["packed_from"] = {
                "weights_sha256": meta["weights_sha256"],
                "dtype": str(dtype).removeprefix("torch."),
            }
            save_stage(out / stage.name, stage, config.text_encoder, {k: v.to(dtype) for k, v in state.items()}, extra)
            log = src / stage.name / "log.csv"
            if log.is_file():  # keep the rows up to the packed step (training may have run past its last checkpoint)
                header, *rows = log.read_text().splitlines()
                kept, _ = split_log_rows(rows, meta["step"])
                write_text_atomic(out / stage.name / "log.csv", "\n".join([header, *kept]) + "\n")
            if (src / stage.name / "init_log.csv").is_file():
                (out / stage.name / "init_log.csv").write_bytes((src / stage.name / "init_log.csv").read_bytes())
        save_cascade_index(out, config)
    return [s.name for s in config.stages]
