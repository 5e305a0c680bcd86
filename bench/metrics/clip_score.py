"""CLIP score (Hessel et al. 2021 as used by Imagen/torchmetrics): max(100 * cos(E_img, E_txt), 0).

Weights come only from the user: a local Hugging Face CLIP directory (config + weights +
tokenizer + preprocessor_config.json) or an open_clip checkpoint file (optional extra `clip`,
needs a working torchvision). Without them the metric reports value None + how to supply them.
Computed directly: torchmetrics' CLIPScore does not work with transformers 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from common.errors import check_choice
from common.fields import bounded, path_field
from common.files import sha256_file
from common.version import __version__
from imagen.config import PRECISIONS
from imagen.device import Placement, resolve

from .base import MetricMeta, MetricResult, ScoredImage, check_image, parse_options
from .feature_spaces import check_weights_folder
from .state import KeyedStates, SumCount

UNAVAILABLE = "CLIP score needs weights: set clip_score model=<local HF CLIP dir or open_clip checkpoint>"


def _check_model(value: str) -> None:
    path = Path(value).expanduser()
    if path.is_dir():
        check_weights_folder(value)
    elif not path.is_file():
        raise FileNotFoundError(f"{path} is neither a Hugging Face CLIP folder nor an open_clip checkpoint file")


@dataclass(frozen=True)
class CLIPOptions:
    model: str = path_field("", _check_model)  # local HF CLIP directory or open_clip checkpoint file; "" = unavailable
    open_clip_arch: str = "ViT-B-32"  # architecture of an open_clip checkpoint file
    batch_size: int = bounded(16, 1, 4096)
    device: str = "auto"  # auto (the GPU if there is one; this rank's under torchrun) | cpu | cuda | cuda:N
    # fp32 on every machine unless asked, as FID features: a CLIP score is compared with other runs'
    # and papers', and one image tower per image is little beside generating it. "auto": bf16 where
    # it is native (imagen.device's rule), "bf16" always
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)


def clip_placement(options: CLIPOptions) -> Placement:
    return resolve(options.device, options.precision)


def _features(out: Any) -> torch.Tensor:
    """transformers 5 returns an output object (projected features in pooler_output); 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class _HFClip:
    def __init__(self, directory: Path, placement: Placement):
        from transformers import AutoTokenizer, CLIPModel
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        device, self.placement = placement.device, placement
        self.model = CLIPModel.from_pretrained(directory).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.processor = CLIPImageProcessorPil.from_pretrained(directory)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)  # 77 for released CLIPs
        self.device = device
        weights = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
        self.weights_sha256 = sha256_file(weights[0]) if weights else None

    def token_lengths(self, prompts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(prompts, truncation=False)["input_ids"]]

    @torch.inference_mode()
    def embed(self, images: list[np.ndarray], prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> image features (B, E), text features (B, E), unnormalised."""
        pixels = self.processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
        text = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        with self.placement.autocast():
            img = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            txt = _features(
                self.model.get_text_features(
                    input_ids=text["input_ids"].to(self.device), attention_mask=text["attention_mask"].to(self.device)
                )
            )
        return img.float().cpu(), txt.float().cpu()


class _OpenClip:
    def __init__(self, path: Path, arch: str, placement: Placement):
        import open_clip

        device, self.placement = placement.device, placement
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=str(path), device=device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.max_tokens = int(self.tokenizer.context_length)
        self.device = device
        self.weights_sha256 = sha256_file(path)

    def token_lengths(self, prompts: list[str]) -> list[int]:
        # open_clip's tokenizer always pads/truncates; count with its BPE + start/end tokens
        return [len(self.tokenizer.encode(p)) + 2 for p in prompts]

    @torch.inference_mode()
    def embed(self, images: list[np.ndarray], prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = torch.stack([self.preprocess(Image.fromarray(im)) for im in images]).to(self.device)
        with self.placement.autocast():
            return self.model.encode_image(pixels).float().cpu(), self.model.encode_text(
                self.tokenizer(prompts).to(self.device)
            ).float().cpu()


def clip_score(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(B, E), (B, E) -> (B,): max(100 * cos, 0)."""
    cos = torch.nn.functional.cosine_similarity(image_features.double(), text_features.double(), dim=-1)
    return (100 * cos).clamp(min=0)


class CLIPScore:
    name = "clip_score"
    option_classes = (CLIPOptions,)
    # continuous and far from its bounds (typically 20-35): the t interval on the prompt means, kept in range
    meta = {
        "clip_score": MetricMeta(
            "higher", 0.0, 100.0, "t", "mean over images of max(100 cos(image, text), 0)", role="alignment"
        )
    }

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None):
        self.options = parse_options(CLIPOptions, options, self.name)  # the model path checked there
        self.unavailable: str | None = None
        self.backend: _HFClip | _OpenClip | None = None
        self.placement = clip_placement(self.options)
        path = Path(self.options.model).expanduser() if self.options.model else None
        if path is None:
            self.unavailable = UNAVAILABLE
        elif path.is_dir():
            self.backend = _HFClip(path, self.placement)
        else:  # a file (the options' check refused anything else)
            try:
                self.backend = _OpenClip(path, self.options.open_clip_arch, self.placement)
            except ImportError as e:
                self.unavailable = (
                    f"open_clip checkpoint {path} needs open_clip ({e}): install the optional extra "
                    "`pip install -c constraints.txt 'imagen-bench[clip]'` (needs a working torchvision), "
                    "or set clip_score model=<local HF CLIP dir>"
                )
        self.scores: KeyedStates[SumCount] = KeyedStates(SumCount)
        self.truncated: KeyedStates[SumCount] = KeyedStates(SumCount)  # total = prompts cut at the token window

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        for im in images:
            check_image(im.image, f"clip_score cell {im.cell_id} prompt {im.ref.prompt_id}")
        if self.backend is None:
            for im in images:  # keep counts so n is right even when the value is unavailable
                self.scores[im.cell_id].update([])
                self.truncated[im.cell_id].update([0.0])
            return [{} for _ in images]
        out: list[dict[str, float]] = []
        bs = self.options.batch_size
        for i in range(0, len(images), bs):
            chunk = images[i : i + bs]
            prompts = [im.ref.prompt for im in chunk]
            cut = [float(n > self.backend.max_tokens) for n in self.backend.token_lengths(prompts)]
            scores = clip_score(*self.backend.embed([im.image for im in chunk], prompts))  # (B,)
            for im, s, c in zip(chunk, scores, cut):
                self.scores[im.cell_id].update(s.reshape(1))
                self.truncated[im.cell_id].update([c])
                out.append({"clip_score": float(s)})
        return out

    def compute(self) -> list[MetricResult]:
        truncated = dict(self.truncated.synced_items())
        out = []
        for cell, state in self.scores.synced_items():
            total, n = state.compute()
            cut, n_images = truncated[cell].compute()
            details = {
                "model": self.options.model or None,
                "package_version": __version__,
                "n": n_images,
                "prompts_truncated": int(cut),
                "max_tokens": getattr(self.backend, "max_tokens", None),
                "weights_sha256": getattr(self.backend, "weights_sha256", None),
                **self.placement.summary(),
            }
            if self.unavailable:
                out.append(
                    MetricResult(
                        "clip_score", None, n_images, {**details, "unavailable": self.unavailable}, cell_id=cell
                    )
                )
            else:
                out.append(MetricResult("clip_score", total / n, n, details, cell_id=cell))
        return out

    def reset(self) -> None:
        self.scores.reset()
        self.truncated.reset()
