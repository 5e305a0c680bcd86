"""Training of one cascade stage: AdamW, linear warm-up (and optional cool-down), EMA, gradient clipping,
bf16 autocast where it is fast (TrainConfig.precision, imagen.device), on any device and under torchrun
with DistributedDataParallel (each rank takes its share of the global batch; rank 0 writes),
10 % text dropout for classifier-free guidance, noise-conditioning augmentation for SR stages,
random crops for the last SR stage, resumable atomic checkpoints, and new runs started from
trained weights (TrainConfig.init_from)."""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from common.errors import check_choice
from common.files import atomic_path, write_text_atomic
from common.training_log import LOG_HEADER, split_log_rows, training_history

from .checkpoint import (
    CheckpointError,
    check_matches,
    config_diff,
    load_stage,
    read_stage_meta,
    save_stage,
    torch_load_state,
)
from .conditioning import augment_lowres, downsample, upsample
from .config import COMPILE_MODES, StageConfig, TextEncoderConfig, TrainConfig, to_dict
from .data import CaptionedImages, image_to_tensor
from .device import Placement, compile_record, compile_unet, resolve
from .diffusion import diffusion_loss, q_sample, training_target
from .distributed import init_from_env
from .schedule import make_logsnr
from .unet import EfficientUNet

# UNetExtras options whose new parameters are a no-op at init (zero-initialised position tables and
# output projections, identity text layers): init_from may add them to a trained U-Net without changing its output.
ADDABLE = ("pos_emb_resolution", "text_layers", "text_positions", "order_pool", "layout_resolution")


def stage_loss(
    unet,
    stage: StageConfig,
    x: torch.Tensor,
    text: torch.Tensor,
    mask: torch.Tensor,
    cfg: TrainConfig,
    gen: torch.Generator,
    placement: Placement | None = None,
    rows: slice | None = None,
    total: int | None = None,
) -> torch.Tensor:
    """x: (b, 3, R, R) images at the stage resolution in [-1, 1], on the placement's device; returns the scalar loss.

    Every random draw is made on the CPU generator `gen` for the whole batch of `total` rows (default
    b) and rows `rows` of it are used: a DDP rank holding rows [r b, (r+1) b) of a global batch draws
    exactly what one process training the whole batch draws, and the draws never depend on the device."""
    b = x.shape[0]
    n, rows = total or b, rows or slice(0, b)
    p = placement or resolve("cpu", cfg.precision)
    dev = x.device
    logsnr_fn = make_logsnr(stage.diffusion)
    drop = (torch.rand(n, generator=gen) < cfg.cond_drop_prob)[rows].to(dev)  # text dropout -> unconditional branch
    mask = mask & ~drop[:, None]
    lowres = aug_logsnr = None
    if stage.is_super_resolution:
        lowres = upsample(downsample(x, stage.lowres_resolution), stage.resolution)
        if stage.train_crop:
            x, lowres = random_crop(x, lowres, stage.train_crop, gen)
        aug = (torch.rand(n, generator=gen) * cfg.max_aug_level)[rows].to(dev)
        aug_noise = torch.randn((n, *lowres.shape[1:]), generator=gen)[rows].to(dev)
        lowres, aug_logsnr = augment_lowres(lowres, aug, logsnr_fn, aug_noise)
    t = torch.rand(n, generator=gen)
    k = round(cfg.min_t_share * n)
    t[:k] = cfg.min_t + (1.0 - cfg.min_t) * t[:k]  # the first k rows ~ U[min_t, 1], the rest U[0, 1]
    logsnr = logsnr_fn(t[rows].to(dev))
    noise = torch.randn((n, *x.shape[1:]), generator=gen)[rows].to(dev)
    z = q_sample(x, logsnr, noise)
    with p.autocast():
        pred = unet(z, logsnr, text, mask, lowres, aug_logsnr)
    return diffusion_loss(pred, training_target(x, noise, logsnr, stage.diffusion.prediction))


def random_crop(
    x: torch.Tensor, lowres: torch.Tensor, size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random size x size window of the image and its upsampled low-res version."""
    r = x.shape[-1]
    i, j = (int(v) for v in torch.randint(0, r - size + 1, (2,), generator=gen))
    return x[..., i : i + size, j : j + size], lowres[..., i : i + size, j : j + size]


class Trainer:
    def __init__(
        self,
        stage: StageConfig,
        text_encoder_cfg: TextEncoderConfig,
        cfg: TrainConfig,
        data: CaptionedImages,
        encoder,
        out_dir: Path,
        log: Callable[[str], None] = print,
        device: str = "auto",
        compile: str = "off",
    ):
        self.stage, self.te_cfg, self.cfg, self.data, self.encoder = stage, text_encoder_cfg, cfg, data, encoder
        self.compile = check_choice(
            "compile", compile, COMPILE_MODES
        )  # how the step runs, not what it computes: not in TrainConfig
        self.placement = resolve(device, cfg.precision)
        self.dist = init_from_env(self.placement.device)  # a 1-process world without torchrun
        if cfg.batch_size % self.dist.size:
            raise ValueError(
                f"batch_size {cfg.batch_size} (the global batch) must split evenly over {self.dist.size} ranks"
            )
        share = cfg.batch_size // self.dist.size
        self.rows = slice(
            self.dist.rank * share, (self.dist.rank + 1) * share
        )  # this rank's rows of each global batch
        self.out = Path(out_dir)
        self.log = log if self.dist.is_main else (lambda _: None)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        self.unet = EfficientUNet(stage.unet)  # initialised on the CPU: the same weights whatever the device
        self.ema = copy.deepcopy(self.unet).requires_grad_(False)
        self.unet.to(self.placement.device)
        self.ema.to(self.placement.device)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # CPU: every rank and device draws the same numbers
        self.rng = random.Random(cfg.seed)
        self.step = 0
        self.elapsed = 0.0
        self.init: dict | None = None  # where the starting weights came from (init_from), recorded in every save
        self._resume()
        self.model = self.unet  # what the loss runs through: the DDP wrapper under torchrun
        if self.dist.size > 1:
            cuda = torch.device(self.placement.device).type == "cuda"
            self.model = DistributedDataParallel(
                self.unet, device_ids=[torch.device(self.placement.device)] if cuda else None
            )
        # compiled around DDP (torch's supported order); parameters, EMA and checkpoints stay the module's own
        self.model = compile_unet(self.model, self.compile)
        where = f"{self.placement.device} x {self.dist.size} ranks" if self.dist.size > 1 else self.placement.device
        compiled = (
            f", compiled ({self.compile}): the first steps include the compilation" if self.compile != "off" else ""
        )
        self.log(
            f"{stage.name}: training on {where} in {self.placement.precision} ({self.placement.reason}){compiled}"
        )

    def _resume(self) -> None:
        state_path = self.out / "train_state.pt"
        if not state_path.is_file():
            if (self.out / "config.json").exists():
                raise CheckpointError(f"{self.out} holds a checkpoint without train_state.pt; cannot resume into it")
            if self.cfg.init_from:
                self._init_weights(Path(self.cfg.init_from))
            return
        meta = read_stage_meta(self.out)
        check_matches(meta, self.stage, self.te_cfg, self.out)
        before = meta.get("runtime", {}).get("precision")
        if before and before != self.placement.precision:
            self.log(
                f"{self.stage.name}: steps up to {meta.get('step')} ran in {before}, the rest run in {self.placement.precision} "
                f"({self.placement.reason}); set precision={before} to continue as before"
            )
        st = torch_load_state(state_path)
        self.unet.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.gen.set_state(st["gen"])
        self.rng.setstate(_tuple_state(st["rng"]))
        self.step, self.elapsed = int(st["step"]), float(st["elapsed"])
        self.init = st.get("init")
        self.log(f"resumed {self.stage.name} at step {self.step}")
        if self.dist.is_main:
            self._set_aside_unsaved_rows()

    def _set_aside_unsaved_rows(self) -> None:
        """A run stopped between checkpoints logged steps whose weights were never saved; they are
        run again now. Move their rows from log.csv to log_unsaved.csv (appended, kept for the
        record) so that log.csv numbers every step once and matches the weights."""
        log_file = self.out / "log.csv"
        if not log_file.is_file():
            return
        header, *rows = log_file.read_text().splitlines()
        kept, later = split_log_rows(rows, self.step)
        if not later:
            return
        aside = self.out / "log_unsaved.csv"
        lines = later if aside.is_file() else [header, *later]
        with open(aside, "a") as f:
            f.write("\n".join(lines) + "\n")
        write_text_atomic(log_file, "\n".join([header, *kept]) + "\n")  # the curve is whole or the old one
        self.log(
            f"{self.stage.name}: {len(later)} log rows after step {self.step} (never checkpointed) moved to {aside.name}"
        )

    def _init_weights(self, src: Path) -> None:
        """Load the EMA weights of stage checkpoint `src` (load_stage: checksum-verified, as float32)
        into model and EMA. The configs must match except for ADDABLE options the source lacks, whose
        parameters then keep their no-op init."""
        if (src / "cascade.json").is_file() and (src / self.stage.name / "config.json").is_file():
            src = src / self.stage.name  # a cascade folder: take this stage from it
        src_stage, src_te, source, meta = load_stage(src)
        # options whose new parameters start as a no-op may be switched on (never off): take the
        # asked-for value of each one the source lacks, then everything else must match
        added = {f: getattr(self.stage.unet.extras, f) for f in ADDABLE if not getattr(src_stage.unet.extras, f)}
        src_unet = src_stage.unet
        src_stage = dataclasses.replace(
            src_stage, unet=dataclasses.replace(src_unet, extras=dataclasses.replace(src_unet.extras, **added))
        )
        # the prediction target may change (eps -> v): same network, its output head re-learns
        # in the first few hundred steps; recorded in `init`
        src_prediction = src_stage.diffusion.prediction
        src_stage = dataclasses.replace(
            src_stage, diffusion=dataclasses.replace(src_stage.diffusion, prediction=self.stage.diffusion.prediction)
        )
        diff = config_diff(to_dict(src_stage), to_dict(self.stage)) + config_diff(
            to_dict(src_te), to_dict(self.te_cfg)
        )
        if diff:
            raise CheckpointError(f"init_from {src} was made with another config:\n  " + "\n  ".join(diff))
        new = [k for k in self.unet.state_dict() if k not in source.state_dict()]  # only the added options' parameters
        self.unet.load_state_dict(source.state_dict(), strict=False)
        self.ema.load_state_dict(self.unet.state_dict())
        self.init = {"path": str(src), "weights_sha256": meta["weights_sha256"], "step": meta.get("step")}
        if src_prediction != self.stage.diffusion.prediction:
            self.init["prediction"] = src_prediction
        if not self.dist.is_main:
            return
        self.out.mkdir(
            parents=True, exist_ok=True
        )  # the loss curve of the shipped weights must show their whole history
        write_text_atomic(
            self.out / "init_log.csv", "\n".join([LOG_HEADER, *training_history(src, upto=meta.get("step"))]) + "\n"
        )
        changed = (
            f"; prediction {src_prediction} -> {self.stage.diffusion.prediction}" if "prediction" in self.init else ""
        )
        self.log(
            f"{self.stage.name}: weights from {src} (step {meta.get('step')}); new (a no-op at init): {', '.join(new) or 'none'}{changed}"
        )

    def lr_at(self, step: int) -> float:
        """lr of optimiser step `step` (0-based): linear warm-up, constant, optional linear cool-down to 0."""
        cfg = self.cfg
        scale = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        if cfg.cooldown_steps:
            scale = min(scale, (cfg.steps - step) / cfg.cooldown_steps)
        return cfg.lr * max(scale, 0.0)

    def batch(self) -> tuple[torch.Tensor, list[str]]:
        """This rank's rows of the next global batch: (b, 3, R, R) on the device, and their captions."""
        idx = [
            self.rng.randrange(len(self.data)) for _ in range(self.cfg.batch_size)
        ]  # every rank draws the whole batch
        pairs = [self.data[i] for i in idx[self.rows]]
        x = torch.stack([image_to_tensor(im, self.stage.resolution) for im, _ in pairs])
        return x.to(self.placement.device), [c for _, c in pairs]

    def _global_mean(self, loss: torch.Tensor) -> float:
        """The loss of the whole global batch (the mean of the ranks' equal-sized shares)."""
        if self.dist.size == 1:
            return loss.item()

        total = loss.detach().float().reshape(1).clone()
        dist.all_reduce(total)
        return total.item() / self.dist.size

    def train(self) -> list[float]:
        """Runs to cfg.steps; returns the loss of each step run (the global batch's, on every rank)."""
        cfg, losses = self.cfg, []
        self.unet.train()
        log_file = self.out / "log.csv"
        main = self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        new_log = not log_file.exists()
        with open(log_file, "a", newline="") if main else contextlib.nullcontext() as f:
            writer = csv.writer(f) if main else None
            if main and new_log:
                writer.writerow(LOG_HEADER.split(","))
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                x, captions = self.batch()
                text, mask = self.encoder.encode(captions)
                text, mask = text.to(self.placement.device), mask.to(self.placement.device)
                loss = stage_loss(
                    self.model, self.stage, x, text, mask, cfg, self.gen, self.placement, self.rows, cfg.batch_size
                )
                value = self._global_mean(loss)
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at step {self.step}; lower lr or check data")
                for g in self.opt.param_groups:
                    g["lr"] = self.lr_at(self.step)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()  # under DDP: gradients averaged over ranks = the global batch's gradient
                torch.nn.utils.clip_grad_norm_(self.unet.parameters(), cfg.grad_clip)
                self.opt.step()
                self._ema_update()
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                losses.append(value)
                if not main:
                    continue
                writer.writerow([self.step, f"{value:.6f}", f"{self.lr_at(self.step - 1):.3g}", f"{self.elapsed:.1f}"])
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    f.flush()
                    recent = losses[-cfg.log_every :]
                    self.log(
                        f"{self.stage.name} step {self.step}/{cfg.steps} loss {sum(recent) / len(recent):.4f} ({self.elapsed:.0f}s)"
                    )
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    f.flush()
                    self.save()
        if self.dist.size > 1:
            dist.barrier()  # the last checkpoint is on disk before any rank goes on
        return losses

    @torch.no_grad()
    def _ema_update(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))  # warm-up of the EMA decay
        for e, p in zip(self.ema.parameters(), self.unet.parameters()):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.unet.buffers()):
            e.copy_(b)

    def save(self) -> None:
        extra = {
            "train": to_dict(self.cfg),
            "step": self.step,
            "train_seconds": round(self.elapsed, 1),
            "runtime": {
                **self.placement.record(),
                "world_size": self.dist.size,
                **compile_record(self.compile),
                "text_encoder_fingerprint": getattr(self.encoder, "fingerprint", None),
            },
        }
        if self.init is not None:
            extra["init"] = self.init
        save_stage(self.out, self.stage, self.te_cfg, self.ema.state_dict(), extra)
        state = {  # CPU tensors: a checkpoint made on a GPU resumes (and samples) on a CPU and the reverse
            "model": _to_cpu(self.unet.state_dict()),
            "ema": _to_cpu(self.ema.state_dict()),
            "opt": _to_cpu(self.opt.state_dict()),
            "gen": self.gen.get_state(),
            "rng": self.rng.getstate(),
            "step": self.step,
            "elapsed": self.elapsed,
            "init": self.init,
        }
        with atomic_path(self.out / "train_state.pt") as tmp:
            torch.save(state, tmp)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _tuple_state(s):
    """random.Random state survives torch.save as lists; setstate needs tuples."""
    return (s[0], tuple(s[1]), s[2])
