"""A question-answering alignment judge: VQAScore (Lin et al. 2024, "Evaluating text-to-visual
generation with image-to-text generation"): the probability a vision-language model gives to the
answer "Yes" when asked whether the image shows the prompt,

    score(image, prompt) = P("Yes" | image, 'Does this figure show "{prompt}"? Please answer yes or no.')

the answer scored as it follows the question, teacher-forced in one forward pass (no sampling);
for an answer of several tokens the exp of the mean log-probability, as t2v_metrics computes it
(_Judge has the details and the reference's files).

Model: a local Hugging Face folder (save_pretrained) loaded with AutoProcessor +
AutoModelForImageTextToText. Families it accepts: those whose processor takes (images, text) and
returns input_ids / pixel_values for one forward pass: BLIP-2 (OPT or Flan-T5 language models:
Salesforce/blip2-opt-2.7b, Salesforce/blip2-flan-t5-xl; the original VQAScore used CLIP-FlanT5),
InstructBLIP, LLaVA-1.5 / LLaVA-NeXT (their processors' chat template is used when they have one).
Encoder-decoder language models are read at the decoder's first step, decoder-only ones at the
last prompt position (left padding). Without a model folder the result is "unavailable: ..."; it
is never replaced by another metric. Per-image scores feed the leaderboard's intervals and ranks.
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
from imagen.device import DTYPES, Placement, resolve

from .base import MetricMeta, MetricResult, ScoredImage, check_image, parse_options
from .feature_spaces import check_weights_folder
from .state import KeyedStates, SumCount

QUESTION = 'Does this figure show "{prompt}"? Please answer yes or no.'  # VQAScore's question
UNAVAILABLE = (
    "unavailable: VQAScore needs a local vision-language model: set options model = DIR, a Hugging Face folder for "
    "AutoModelForImageTextToText + AutoProcessor (e.g. Salesforce/blip2-flan-t5-xl or llava-hf/llava-1.5-7b-hf saved with "
    "save_pretrained)"
)


@dataclass(frozen=True)
class VQAOptions:
    model: str = path_field("", check_weights_folder)  # local HF folder; "" = unavailable
    question: str = QUESTION  # must contain {prompt}
    answer: str = "Yes"  # the answer whose (teacher-forced, per-token geometric mean) probability is the score
    batch_size: int = bounded(4, 1, 1024)
    device: str = "auto"  # auto (the GPU if there is one; this rank's under torchrun) | cpu | cuda | cuda:N
    # auto: bf16 where it is native (imagen.device's rule, as for the cascade): the judges are
    # billion-parameter language models, whose weights are loaded in that precision (half the memory)
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        if "{prompt}" not in self.question:
            raise ValueError(f"vqascore question must contain {{prompt}}, got {self.question!r}")


class _Judge:
    """score(image, question) = exp(mean over the answer's tokens of log P(token | image, question,
    the answer's earlier tokens)), teacher-forced: t2v_metrics' VQAScore (linzhiqiu/t2v_metrics,
    t2v_metrics/models/vqascore_models/llava_model.py @1bec390 and clip_t5_model.py @8b7a7b2: the
    exp of minus the mean cross-entropy over the answer's labels).

    The answer's tokens are those the model reads when the answer follows the prompt as text
    ('... Answer:' + ' Yes'): a byte-level BPE tokenizer (OPT, GPT-2, LLaMA-3) gives ' Yes' as its own
    token, not the 'Yes' of the answer tokenized alone. Decoder-only models: the continuation of the
    tokenized prompt (no end-of-sequence token, as in the reference). Encoder-decoder models: the
    decoder's labels are tokenizer(answer) with its special tokens (Flan-T5: 'Yes' + '</s>')."""

    def __init__(self, folder: Path, options: VQAOptions):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.placement = judge_placement(options)
        self.options, self.device, self.dtype = options, self.placement.device, DTYPES[self.placement.precision]
        self.processor = AutoProcessor.from_pretrained(folder)
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=self.dtype).to(self.device).eval()
        self.tokenizer = self.processor.tokenizer
        self.encoder_decoder = bool(
            getattr(self.model.config, "is_encoder_decoder", False)
            or getattr(getattr(self.model.config, "text_config", None), "is_encoder_decoder", False)
        )
        if not self.encoder_decoder:
            self.tokenizer.padding_side = "left"  # every row's answer ends at the last position
        elif not self.tokenizer(options.answer)["input_ids"]:
            raise ValueError(f"vqascore: the tokenizer of {folder} maps answer {options.answer!r} to no token")
        weights = sorted(folder.glob("*.safetensors"))
        self.weights_sha256 = sha256_file(weights[0]) if weights else None
        self.model_class = type(self.model).__name__

    def text(self, question: str) -> str:
        if getattr(self.processor, "chat_template", None):
            chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
            return self.processor.apply_chat_template(chat, add_generation_prompt=True)
        return f"Question: {question} Answer:"

    def with_answer(self, prompt: str) -> tuple[str, list[int]]:
        """(prompt + answer as text, the answer's token ids as the tokenizer splits that text)."""
        full = prompt + ("" if prompt[-1:].isspace() else " ") + self.options.answer
        ids, head = self.tokenizer(full)["input_ids"], self.tokenizer(prompt)["input_ids"]
        if ids[: len(head)] != head or len(ids) == len(head):
            raise ValueError(
                f"vqascore: the tokenizer does not split {full[-40:]!r} as {prompt[-30:]!r} then the answer "
                f"{self.options.answer!r}; choose another question or answer"
            )
        return full, ids[len(head) :]

    @torch.inference_mode()
    def p_answer(self, images: list[np.ndarray], questions: list[str]) -> torch.Tensor:
        """(B,) the answer's score for each (image, question)."""
        pil = [Image.fromarray(im) for im in images]
        prompts = [self.text(q) for q in questions]
        if self.encoder_decoder:
            inputs = self.processor(images=pil, text=prompts, return_tensors="pt", padding=True).to(
                device=self.device, dtype=self.dtype
            )
            labels = torch.tensor(
                [self.tokenizer(self.options.answer)["input_ids"]] * len(images), device=self.device
            )  # (B, K)
            start = torch.full_like(labels[:, :1], self.model.config.text_config.decoder_start_token_id)
            logits = self.model(**inputs, decoder_input_ids=torch.cat([start, labels[:, :-1]], 1)).logits  # (B, K, V)
            return _mean_log_p(logits, labels).exp().cpu()
        texts, answers = zip(*(self.with_answer(p) for p in prompts))
        inputs = self.processor(images=pil, text=list(texts), return_tensors="pt", padding=True).to(
            device=self.device, dtype=self.dtype
        )
        ids, logits = (
            inputs["input_ids"],
            self.model(**inputs).logits,
        )  # (B, L), (B, L', V): L' >= L when image tokens are prepended
        k = len(answers[0])
        if any(len(a) != k for a in answers) or ids[:, -k:].tolist() != [list(a) for a in answers]:
            raise ValueError("vqascore: the processor's input ids do not end with the answer's tokens")
        return _mean_log_p(logits[:, -k - 1 : -1], ids[:, -k:]).exp().cpu()  # position t predicts token t + 1


def _mean_log_p(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) mean over K of log softmax(logits)[label]: logits (B, K, V), labels (B, K)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, labels[..., None])[..., 0].mean(1)


def judge_placement(options: VQAOptions) -> Placement:
    return resolve(options.device, options.precision)


def load_judge(metric: str, options: VQAOptions) -> _Judge | None:
    """The judge of options.model (None when no model is given: the metric reports "unavailable")."""
    if not options.model:
        return None
    return _Judge(Path(options.model).expanduser(), options)  # a Hugging Face folder: checked with the options


class VQAScore:
    name = "vqascore"
    option_classes = (VQAOptions,)
    meta = {
        "vqascore": MetricMeta(
            "higher", 0.0, 1.0, "wilson-eff", "mean over images of P(answer | image, question)", role="alignment"
        )
    }

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None):
        self.options = parse_options(VQAOptions, options, self.name)
        self.judge = load_judge(self.name, self.options)
        self.scores: KeyedStates[SumCount] = KeyedStates(SumCount)

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        for im in images:
            check_image(im.image, f"vqascore cell {im.cell_id} prompt {im.ref.prompt_id}")
        if self.judge is None:
            for im in images:
                self.scores[im.cell_id].update([0.0])  # counts the images; no value is reported
            return [{} for _ in images]
        out = []
        bs = self.options.batch_size
        for i in range(0, len(images), bs):
            chunk = images[i : i + bs]
            questions = [self.options.question.format(prompt=im.ref.prompt) for im in chunk]
            for im, s in zip(chunk, self.judge.p_answer([im.image for im in chunk], questions)):
                self.scores[im.cell_id].update(s.double().reshape(1))
                out.append({"vqascore": float(s)})
        return out

    def compute(self) -> list[MetricResult]:
        out = []
        for cell, state in self.scores.synced_items():
            total, n = state.compute()
            details = {
                "model": self.options.model or None,
                "question": self.options.question,
                "answer": self.options.answer,
                "model_class": getattr(self.judge, "model_class", None),
                "weights_sha256": getattr(self.judge, "weights_sha256", None),
                **(self.judge.placement.summary() if self.judge is not None else {}),
                "package_version": __version__,
            }
            if self.judge is None:
                out.append(MetricResult("vqascore", None, n, {**details, "unavailable": UNAVAILABLE}, cell_id=cell))
            else:
                out.append(MetricResult("vqascore", total / n, n, details, cell_id=cell))
        return out

    def reset(self) -> None:
        self.scores.reset()


@dataclass(frozen=True)
class QuestionOptions:
    model: str = path_field("", check_weights_folder)  # local HF folder, as for vqascore; "" = unavailable
    questions: str = (
        "geneval"  # where each prompt's questions come from: GenEval's include metadata (drawbench.suites)
    )
    answer: str = "Yes"
    batch_size: int = bounded(4, 1, 1024)
    device: str = "auto"  # as for vqascore
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        if self.questions != "geneval":
            raise ValueError(
                f"vqa_questions: questions must be 'geneval' (the prompt set with structured metadata), got {self.questions!r}"
            )


class VQAQuestions:
    """TIFA / DSG-style scoring (Hu et al. 2023; Cho et al. 2024): each prompt's yes/no questions
    (GenEval's objects, counts, colours and positions: drawbench.suites.geneval_questions) asked of
    the same vision-language judge as vqascore. Per image: vqa_question_score = mean P("Yes") over
    its questions, vqa_all_questions = 1 when every question gets P("Yes") > 0.5 (a GenEval-like
    pass / fail). Use it on the `geneval` prompt set (metric prompt_sets = [...])."""

    name = "vqa_questions"
    option_classes = (QuestionOptions,)
    meta = {
        "vqa_question_score": MetricMeta(
            "higher",
            0.0,
            1.0,
            "wilson-eff",
            "mean over images of the share of questions answered yes",
            role="alignment",
        ),
        "vqa_all_questions": MetricMeta(
            "higher", 0.0, 1.0, "wilson-eff", "share of images with every question answered yes"
        ),
    }

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None):
        from drawbench.suites import geneval_metadata, geneval_questions

        self.options = parse_options(QuestionOptions, options, self.name)
        self.judge = load_judge(
            self.name,
            VQAOptions(
                model=self.options.model,
                answer=self.options.answer,
                batch_size=self.options.batch_size,
                device=self.options.device,
                precision=self.options.precision,
            ),
        )
        meta = geneval_metadata()
        self.questions = {str(i): geneval_questions(inc) for i, inc in zip(meta["id"], meta["include"])}
        self.scores: KeyedStates[SumCount] = KeyedStates(SumCount)
        self.passed: KeyedStates[SumCount] = KeyedStates(SumCount)

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        for im in images:
            check_image(im.image, f"vqa_questions cell {im.cell_id} prompt {im.ref.prompt_id}")
            if im.ref.prompt_id not in self.questions:
                raise ValueError(
                    f"vqa_questions: prompt {im.ref.prompt_id} of prompt set {im.ref.prompt_set!r} has no GenEval metadata; "
                    "score the geneval prompt set only (the metric's prompt_sets)"
                )
        if self.judge is None:
            for im in images:
                self.scores[im.cell_id].update([0.0])
            return [{} for _ in images]
        pairs = [
            (k, q) for k, im in enumerate(images) for q in self.questions[im.ref.prompt_id]
        ]  # (image index, question)
        p_yes = torch.cat(
            [
                self.judge.p_answer(
                    [images[k].image for k, _ in pairs[i : i + self.options.batch_size]],
                    [q for _, q in pairs[i : i + self.options.batch_size]],
                )
                for i in range(0, len(pairs), self.options.batch_size)
            ]
        )
        out = []
        for k, im in enumerate(images):
            mine = p_yes[[j for j, (kk, _) in enumerate(pairs) if kk == k]].double()
            score, passed = float(mine.mean()), float(bool((mine > 0.5).all()))
            self.scores[im.cell_id].update([score])
            self.passed[im.cell_id].update([passed])
            out.append({"vqa_question_score": score, "vqa_all_questions": passed})
        return out

    def compute(self) -> list[MetricResult]:
        passed = dict(self.passed.synced_items())
        out = []
        for cell, state in self.scores.synced_items():
            total, n = state.compute()
            details = {
                "model": self.options.model or None,
                "questions": "drawbench.suites.geneval_questions",
                "answer": self.options.answer,
                "model_class": getattr(self.judge, "model_class", None),
                "weights_sha256": getattr(self.judge, "weights_sha256", None),
                **(self.judge.placement.summary() if self.judge is not None else {}),
                "package_version": __version__,
            }
            if self.judge is None:
                out += [
                    MetricResult(
                        name,
                        None,
                        n,
                        {**details, "unavailable": UNAVAILABLE.replace("VQAScore", "vqa_questions")},
                        cell_id=cell,
                    )
                    for name in ("vqa_question_score", "vqa_all_questions")
                ]
                continue
            ok, _ = passed[cell].compute()
            out += [
                MetricResult("vqa_question_score", total / n, n, details, cell_id=cell),
                MetricResult("vqa_all_questions", ok / n, n, details, cell_id=cell),
            ]
        return out

    def reset(self) -> None:
        self.scores.reset()
        self.passed.reset()
