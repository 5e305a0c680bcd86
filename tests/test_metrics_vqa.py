"""VQAScore with tiny randomly initialised BLIP-2 judges (OPT and T5 language models) saved in the
real Hugging Face format (model + processor + tokenizer folder): the score is the answer's
probability as the model reads it after the question (t2v_metrics' definition), checked against
transformers' own loss on byte-level BPE, SentencePiece-style and WordPiece tokenizers; batching and
padding do not change it; without a model folder the metric says how to supply one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.metrics import build_metric
from bench.metrics.base import ScoredImage
from common.runs import PromptRef

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = [
    "<pad>",
    "<unk>",
    "</s>",
    "<s>",
    "<image>",
    "Question:",
    "Does",
    "this",
    "figure",
    "show",
    '"a',
    'circle"?',
    '"two',
    'squares"?',
    '"a',
    "long",
    "red",
    'circle"?',
    "Please",
    "answer",
    "yes",
    "or",
    "no.",
    "Answer:",
    "Yes",
    "No",
]


@pytest.fixture(scope="module")
def blip2(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import OPTConfig, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys(WORDS))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="</s>", bos_token="<s>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    text = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        word_embed_proj_dim=16,
        max_position_embeddings=64,
    )
    return _save_blip2(tmp_path_factory.mktemp("blip2"), tokenizer, text)


def _save_blip2(folder, tokenizer, text_config):
    """A tiny random BLIP-2 judge around `text_config` (OPT or T5), saved with its processor in the
    real Hugging Face format."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    torch.manual_seed(0)
    config = Blip2Config(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
        },
        qformer_config={
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "encoder_hidden_size": 16,
            "vocab_size": 50,
        },
        text_config=text_config.to_dict(),
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    Blip2ForConditionalGeneration(config).save_pretrained(folder)
    Blip2Processor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        num_query_tokens=4,
    ).save_pretrained(folder)
    return folder


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def _direct(folder, image: np.ndarray, prompt: str) -> float:
    """P('Yes') as transformers computes it for one image, no project code."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor, model = (
        AutoProcessor.from_pretrained(folder),
        AutoModelForImageTextToText.from_pretrained(folder).eval(),
    )
    text = f'Question: Does this figure show "{prompt}"? Please answer yes or no. Answer:'
    inputs = processor(images=[Image.fromarray(image)], text=[text], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    return float(
        torch.softmax(logits.float(), -1)[processor.tokenizer("Yes", add_special_tokens=False)["input_ids"][0]]
    )


def test_vqascore_is_p_yes_of_the_next_token(blip2):
    images, prompts = (
        _images(3),
        ["a circle", "two squares", "a long red circle"],
    )  # different lengths: padding in a batch
    metric = build_metric("vqascore", {"model": str(blip2), "batch_size": 3, "precision": "fp32"})  # as _direct
    per_image = metric.update(
        [ScoredImage("c", PromptRef("p", str(i), "x", p, 0), im) for i, (im, p) in enumerate(zip(images, prompts))]
    )
    expected = [_direct(blip2, im, p) for im, p in zip(images, prompts)]
    assert [r["vqascore"] for r in per_image] == pytest.approx(expected, abs=1e-5)
    (result,) = metric.compute()
    assert result.metric == "vqascore" and result.value == pytest.approx(np.mean(expected), abs=1e-5) and result.n == 3
    assert (
        result.details["model_class"] == "Blip2ForConditionalGeneration"
        and len(result.details["weights_sha256"]) == 64
    )
    if not torch.cuda.is_available():
        assert (result.details["device"], result.details["precision"]) == ("cpu", "fp32")


def test_a_bf16_judge_loads_its_weights_in_bf16_and_scores_near_fp32(blip2):
    """precision bf16 (what auto picks on a GPU or CPU with native bf16): the weights are loaded in
    bf16 (half the memory of a multi-billion-parameter judge), the pixels cast to them, and the
    record says so."""
    images, prompts = _images(2), ["a circle", "two squares"]
    scored = [
        ScoredImage("c", PromptRef("p", str(i), "x", p, 0), im) for i, (im, p) in enumerate(zip(images, prompts))
    ]
    fp32, bf16 = (
        build_metric("vqascore", {"model": str(blip2), "device": "cpu", "precision": p}) for p in ("fp32", "bf16")
    )
    assert next(bf16.judge.model.parameters()).dtype == torch.bfloat16
    got = [[d["vqascore"] for d in m.update(scored)] for m in (fp32, bf16)]
    assert got[1] == pytest.approx(got[0], abs=0.02)
    (result,) = bf16.compute()
    assert (result.details["device"], result.details["precision"]) == ("cpu", "bf16")


def test_vqascore_without_a_model_says_how_to_supply_one(tmp_path):
    metric = build_metric("vqascore", {})
    metric.update([ScoredImage("c", PromptRef("p", "1", "x", "a circle", 0), _images(1)[0])])
    (result,) = metric.compute()
    assert (
        result.value is None
        and result.n == 1
        and result.details["unavailable"].startswith("unavailable: VQAScore needs a local")
    )
    with pytest.raises(ValueError, match="metric .vqascore.: model: .* holds no config.json"):
        build_metric("vqascore", {"model": str(tmp_path)})
    with pytest.raises(ValueError, match=r"question must contain \{prompt\}"):
        build_metric("vqascore", {"question": "Is it good?"})


def test_geneval_questions_from_the_metadata():
    from drawbench.suites import geneval_metadata, geneval_questions

    meta = geneval_metadata().set_index("id")
    assert geneval_questions(meta.loc["354", "include"]) == [
        "Is there a teddy bear in the image?",
        "Is there a dog in the image?",
        "Is the dog right of the teddy bear?",
    ]
    assert geneval_questions(meta.loc["180", "include"]) == ["Are there two clocks in the image?"]
    assert geneval_questions(meta.loc["454", "include"])[1:] == [
        "Is there an apple in the image?",
        "Is the wine glass purple?",
        "Is the apple black?",
    ]
    assert sum(len(geneval_questions(i)) for i in meta["include"]) == 1246  # every prompt has at least one question


def test_vqa_questions_average_p_yes_over_each_prompts_questions(blip2):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from drawbench.suites import geneval_metadata, geneval_questions

    meta = geneval_metadata().set_index("id")
    ids, images = ["1", "354", "454"], _images(3)
    metric = build_metric("vqa_questions", {"model": str(blip2), "batch_size": 4, "precision": "fp32"})
    per_image = metric.update(
        [ScoredImage("c", PromptRef("geneval", i, "x", meta.loc[i, "prompt"], 0), im) for i, im in zip(ids, images)]
    )
    processor, model = AutoProcessor.from_pretrained(blip2), AutoModelForImageTextToText.from_pretrained(blip2).eval()
    yes = processor.tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    for i, im, got in zip(ids, images, per_image):
        p = []
        for q in geneval_questions(meta.loc[i, "include"]):
            inputs = processor(images=[Image.fromarray(im)], text=[f"Question: {q} Answer:"], return_tensors="pt")
            with torch.no_grad():
                p.append(float(torch.softmax(model(**inputs).logits[0, -1].float(), -1)[yes]))
        assert got["vqa_question_score"] == pytest.approx(np.mean(p), abs=1e-5)
        assert got["vqa_all_questions"] == float(all(x > 0.5 for x in p))
    names = [r.metric for r in metric.compute()]
    assert names == ["vqa_question_score", "vqa_all_questions"]
    with pytest.raises(ValueError, match="has no GenEval metadata"):
        metric.update([ScoredImage("c", PromptRef("drawbench", "99999", "x", "a cat", 0), images[0])])


# -- the answer's tokens as the model reads them, on the three tokenizer families (issue 29) ----------

CORPUS = [
    f'Question: Does this figure show "{p}"? Please answer yes or no. Answer: {a}'
    for p in ("a circle", "two squares", "a long red circle")
    for a in ("Yes", "No")
] * 20 + ["Yes", "No", "yes", "no"] * 10


def _tokenizer(kind: str):
    """A tiny trained tokenizer of a real family: byte-level BPE (OPT / GPT-2 / LLaMA-3), SentencePiece-style
    Unigram with Metaspace (LLaMA / T5; `kind` "unigram_eos" adds T5's trailing </s>), WordPiece (BERT)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>", "<image>"]
    if kind == "bpe":
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer, tk.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    elif kind.startswith("unigram"):
        tk = Tokenizer(models.Unigram())
        tk.pre_tokenizer, tk.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=special, unk_token="<unk>")
    else:
        tk = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tk.pre_tokenizer, tk.decoder = pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=150, special_tokens=special)
    tk.train_from_iterator(CORPUS, trainer)
    if kind == "unigram_eos":
        tk.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", tk.token_to_id("</s>"))]
        )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tok


def _judge_folder(root, kind: str, encoder_decoder: bool):
    from transformers import OPTConfig, T5Config

    tok = _tokenizer(kind)
    small = {"vocab_size": len(tok)}
    text = (
        T5Config(
            **small,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=tok.pad_token_id,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        if encoder_decoder
        else OPTConfig(
            **small,
            hidden_size=16,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            word_embed_proj_dim=16,
            max_position_embeddings=128,
            pad_token_id=tok.pad_token_id,
        )
    )
    return _save_blip2(root / f"{kind}-{'t5' if encoder_decoder else 'opt'}", tok, text)


def _reference_score(folder, image, prompt: str, encoder_decoder: bool) -> tuple[float, list[str]]:
    """t2v_metrics' score, computed by transformers' own loss: exp(-mean cross-entropy over the answer's
    labels). Decoder-only: the text is question + ' Yes', labels are all trailing tokens that decode to
    ' Yes' (found by decoding, not by our prefix rule; on BPE and SentencePiece the tokens t2v_metrics'
    rule takes: the question's minus a trailing space's); encoder-decoder: labels = tokenizer('Yes')."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor, model = (
        AutoProcessor.from_pretrained(folder),
        AutoModelForImageTextToText.from_pretrained(folder).eval(),
    )
    question = f'Question: Does this figure show "{prompt}"? Please answer yes or no. Answer:'
    tok = processor.tokenizer
    if encoder_decoder:
        inputs = processor(images=[Image.fromarray(image)], text=[question], return_tensors="pt")
        labels = torch.tensor([tok("Yes")["input_ids"]])
    else:
        inputs = processor(images=[Image.fromarray(image)], text=[question + " Yes"], return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        k = max(
            k for k in range(1, 5) if tok.decode(ids[-k:]).strip() == "Yes"
        )  # every token of " Yes", its space included
        labels = torch.tensor([[-100] * (len(ids) - k) + ids[-k:]])
    with torch.no_grad():
        loss = model(**inputs, labels=labels).loss
    return float(torch.exp(-loss)), tok.convert_ids_to_tokens(labels[0][labels[0] >= 0].tolist())


@pytest.mark.parametrize(
    "kind, encoder_decoder", [("bpe", False), ("unigram", False), ("wordpiece", False), ("unigram_eos", True)]
)
def test_vqascore_scores_the_answer_as_it_follows_the_question(tmp_path, kind, encoder_decoder):
    folder = _judge_folder(tmp_path, kind, encoder_decoder)
    images, prompts = (
        _images(3),
        ["a circle", "two squares", "a long red circle"],
    )  # different lengths: padding in a batch
    metric = build_metric("vqascore", {"model": str(folder), "batch_size": 3, "precision": "fp32"})
    per_image = metric.update(
        [ScoredImage("c", PromptRef("p", str(i), "x", p, 0), im) for i, (im, p) in enumerate(zip(images, prompts))]
    )
    expected = [_reference_score(folder, im, p, encoder_decoder) for im, p in zip(images, prompts)]
    assert [r["vqascore"] for r in per_image] == pytest.approx([e[0] for e in expected], rel=1e-4)
    tokens = expected[0][1]
    if (
        kind == "bpe"
    ):  # the answer after "Answer:" is the token " Yes" (byte-level "ĠYes"), not the "Yes" of the word alone
        tok = _tokenizer(kind)
        assert tokens == ["ĠYes"] and tok("Yes", add_special_tokens=False)["input_ids"] != tok.convert_tokens_to_ids(
            tokens
        )
    if encoder_decoder:
        assert tokens[-1] == "</s>"  # T5's labels end with </s>, as tokenizer(answer) gives them in the reference
