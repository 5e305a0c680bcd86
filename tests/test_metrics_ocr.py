"""OCR text score: quoted-text extraction on the real DrawBench prompts, edit similarity vs a
naive recursive Levenshtein, and RapidOCR on clean renders (the right word and a wrong one)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from bench.metrics import ScoredImage, build_metric
from bench.metrics.ocr import levenshtein, quoted_text, similarity
from common.runs import PromptRef
from drawbench import load_drawbench


def naive_levenshtein(a: str, b: str) -> int:
    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


@settings(max_examples=200, deadline=None)
@given(st.text("abc ", max_size=8), st.text("abc ", max_size=8))
def test_levenshtein_matches_naive(a, b):
    assert levenshtein(a, b) == naive_levenshtein(a, b)


def test_similarity_normalises_case_and_space():
    assert similarity("Hello World", "hello   world") == 1.0
    assert similarity("NeurIPS", "NeurlPS") == pytest.approx(1 - 1 / 7)
    assert similarity("abc", "") == 0.0


def test_quoted_text_on_drawbench():
    df = load_drawbench()
    text = df[df.category == "Text"]
    assert [quoted_text(p) for p in text.prompt[:2]] == ["Hello World", "Diffusion"]
    assert all(quoted_text(p) for p in text.prompt)  # every Text prompt asks for text
    assert quoted_text("A storefront with 'Google Research Pizza Cafe' written on it.") == "Google Research Pizza Cafe"
    assert quoted_text('A sign that says \u201cOpen\u201d and "Now"') == "Open Now"
    assert quoted_text("A bird's nest in a tree") is None  # an apostrophe is not a quote
    assert quoted_text(df.prompt[0]) is None


def render(text: str) -> np.ndarray:
    im = Image.new("RGB", (512, 256), "white")
    font = ImageFont.load_default(size=56)  # Pillow's bundled FreeType font: no system font needed
    ImageDraw.Draw(im).text((30, 90), text, font=font, fill="black")
    return np.asarray(im)


def test_rapidocr_reads_a_clean_render():
    prompt = "A sign that says 'Hello World'."
    m = build_metric("ocr")
    images = [
        ScoredImage("good", PromptRef("drawbench", "187", "Text", prompt, 0), render("Hello World")),
        ScoredImage("bad", PromptRef("drawbench", "187", "Text", prompt, 0), render("Pizza Cafe")),
        ScoredImage("bad", PromptRef("drawbench", "1", "Colors", "A red colored car.", 0), render("Hello World")),
    ]
    per_image = m.update(images)
    assert per_image[0]["ocr_score"] >= 0.95
    assert per_image[1]["ocr_score"] < 0.5
    assert per_image[2] == {}  # no quoted text: no value, not 0
    res = {r.cell_id: r for r in m.compute()}
    assert res["good"].value >= 0.95 and res["good"].n == 1
    assert res["bad"].n == 1 and res["bad"].value == per_image[1]["ocr_score"]
    assert res["good"].details["ocr_package"].startswith("rapidocr 3.10")
    assert set(res["good"].details["ocr_models"]) == {"Det", "Cls", "Rec"}
