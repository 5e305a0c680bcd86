"""OCR text score for prompts that ask for text (DrawBench "Text": A sign that says 'Hello World').

score = max over read-outs r of  1 - Levenshtein(e, r) / max(|e|, |r|), after lower-casing and
collapsing whitespace; e is the quoted text of the prompt, the read-outs are every text line
RapidOCR finds plus all lines joined in reading order. Prompts without quoted text get no value.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.fields import bounded
from common.version import __version__
from imagen.device import resolve_device

from .base import MetricMeta, MetricResult, ScoredImage, check_image, parse_options
from .state import KeyedStates, SumCount

# quote pairs seen in prompt sets: DrawBench uses '...'; "..." and typographic quotes also count.
# A single quote must not be an apostrophe inside a word (it's, Google's): require non-letters around it.
_QUOTES = (r'"([^"]+)"', r"“([^”]+)”", r"‘([^’]+)’", r"(?<![A-Za-z])'([^']+)'(?![A-Za-z])")


def quoted_text(prompt: str) -> str | None:
    """The text a prompt asks to be written (several quoted spans joined by a space), or None."""
    spans = sorted((m.start(), m.group(1).strip()) for q in _QUOTES for m in re.finditer(q, prompt))
    spans = [s for _, s in spans if s]
    return " ".join(spans) if spans else None


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert / delete / substitute, each cost 1), two-row dynamic programme."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def similarity(expected: str, read: str) -> float:
    """1 - Levenshtein / max length on normalised text; 1 = identical, 0 = nothing in common."""
    e, r = normalise(expected), normalise(read)
    if not e and not r:
        return 1.0
    return 1.0 - levenshtein(e, r) / max(len(e), len(r))


def best_similarity(expected: str, lines: Sequence[str]) -> tuple[float, str]:
    """(best score, the read-out that gave it) over every line and all lines joined."""
    candidates = [*lines, " ".join(lines)] if lines else [""]
    scores = [(similarity(expected, c), c) for c in candidates]
    return max(scores, key=lambda s: s[0])


@dataclass(frozen=True)
class OCROptions:
    text_score: float = bounded(0.5, 0.0, 1.0)  # RapidOCR's own default confidence threshold for a line to count
    # auto: the GPU (this rank's under torchrun) when there is one AND onnxruntime has its CUDA
    # provider (the onnxruntime-gpu build), else the CPU, with the reason recorded | cpu | cuda | cuda:N
    device: str = "auto"


CUDA_PROVIDER = "CUDAExecutionProvider"


def ocr_device(options: OCROptions) -> tuple[str, str]:
    """(device, why). RapidOCR runs its ONNX models through onnxruntime, not torch: the GPU is usable
    only through onnxruntime's CUDA provider; the models run in float32 either way."""
    device = resolve_device(options.device)
    if device == "cpu":
        return device, "asked for" if options.device == "cpu" else "auto: no CUDA GPU here"
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if CUDA_PROVIDER in providers:
        return device, f"onnxruntime {onnxruntime.__version__} {CUDA_PROVIDER}"
    why = f"onnxruntime {onnxruntime.__version__} here has no {CUDA_PROVIDER} (providers: {', '.join(providers)})"
    if options.device != "auto":
        raise ValueError(f'ocr device {options.device!r}: {why}; use device = "cpu" or install onnxruntime-gpu')
    return "cpu", f"auto: {why}; onnxruntime-gpu would run it on the GPU"


class OCRScore:
    name = "ocr"
    option_classes = (OCROptions,)
    meta = {
        "ocr_score": MetricMeta(
            "higher",
            0.0,
            1.0,
            "wilson-eff",
            "mean over images of the normalised similarity of the read text to the quoted text, in [0, 1]",
        )
    }

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None):
        self.options = parse_options(OCROptions, options, self.name)
        self.device, self.device_reason = ocr_device(self.options)
        self._engine = None
        self.scores: KeyedStates[SumCount] = KeyedStates(SumCount)

    @property
    def engine(self):
        if self._engine is None:  # the ONNX models ship inside the rapidocr wheel; loaded on first use
            from rapidocr import RapidOCR

            on_gpu = self.device != "cpu"
            gpu = (
                {
                    "EngineConfig.onnxruntime.use_cuda": True,
                    "EngineConfig.onnxruntime.cuda_ep_cfg.device_id": int(self.device.partition(":")[2] or 0),
                }
                if on_gpu
                else {}
            )
            self._engine = RapidOCR(
                params={"Global.log_level": "critical", "Global.text_score": self.options.text_score, **gpu}
            )
        return self._engine

    def model_details(self) -> dict:
        cfg = self.engine.cfg
        models = {
            part: f"{cfg[part].ocr_version.value}/{cfg[part].model_type.value}/{cfg[part].lang_type.value}"
            for part in ("Det", "Cls", "Rec")
        }
        return {
            "ocr_package": f"rapidocr {importlib.metadata.version('rapidocr')}",
            "onnxruntime": importlib.metadata.version("onnxruntime"),
            "ocr_models": models,
            "text_score": self.options.text_score,
            "device": self.device.partition(":")[0],
            "precision": "fp32",
            "device_reason": self.device_reason,
            "onnxruntime_provider": self.provider(),
        }

    def provider(self) -> str | None:
        """The execution provider onnxruntime gave the text detector (RapidOCR 3.10 creates its
        sessions on first use; None before any image was read)."""
        det = self.engine.text_det
        return None if det is None else det.session.session.get_providers()[0]

    def read(self, image: np.ndarray) -> list[str]:
        out = self.engine(image)
        if self.device != "cpu" and self.provider() != CUDA_PROVIDER:  # RapidOCR itself only warns and runs on the CPU
            raise RuntimeError(
                f"ocr on {self.device}: onnxruntime ran the text detector with {self.provider()}, not {CUDA_PROVIDER}"
            )
        return list(out.txts or ())

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for im in images:
            check_image(im.image, f"ocr cell {im.cell_id} prompt {im.ref.prompt_id}")
            expected = quoted_text(im.ref.prompt)
            state = self.scores[im.cell_id]  # created even if no prompt has text: the cell is reported
            if expected is None:
                out.append({})  # no text asked for: no value (not 0)
                continue
            score, _ = best_similarity(expected, self.read(im.image))
            state.update([score])
            out.append({"ocr_score": score})
        return out

    def compute(self) -> list[MetricResult]:
        out = []
        for cell, state in self.scores.synced_items():
            total, n = state.compute()
            if n == 0:
                continue  # no prompt of this cell asks for text: no value at all (not 0, not None)
            details = {
                **self.model_details(),
                "n": n,
                "package_version": __version__,
                "similarity": "1 - Levenshtein / max len, lower-cased, whitespace collapsed; best line or all lines joined",
            }
            out.append(MetricResult("ocr_score", total / n, n, details, cell_id=cell))
        return out

    def reset(self) -> None:
        self.scores.reset()
