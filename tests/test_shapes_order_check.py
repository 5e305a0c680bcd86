"""The encoder order check behind the shapes model card's "what limits it" (MiniLM, offline)."""
import pytest

from drawbench.shapes.order_check import _features, _same_word_cosine, order_check, recoloured, swapped
from imagen.config import TextEncoderConfig
from imagen.text_encoders import load_text_encoder


@pytest.fixture(scope="module")
def encoder():
    return load_text_encoder(TextEncoderConfig(kind="minilm", max_length=32))


def test_swap_and_recolour_change_only_what_they_say():
    c = "a green triangle to the left of an orange square"
    assert swapped(c) == "an orange square to the left of a green triangle"
    assert swapped(swapped(c)) == c
    r = recoloured(c)
    assert r.endswith("triangle to the left of an orange square") and "green" not in r


def test_identical_captions_give_cosine_one_and_swaps_move_the_pooled_embedding_least(encoder):
    caps = ["a red circle above a blue square", "a small yellow square below a large green circle"]
    f = _features(encoder, caps)
    assert _same_word_cosine(f, f, set(encoder.tokenizer.all_special_ids)) == pytest.approx(1.0, abs=1e-5)
    out = order_check(encoder, n=16)
    assert out["n"] == 16 and all(0.0 < v <= 1.0 for k, v in out.items() if k != "n")
    # the measured property: swapping the objects changes MiniLM's pooled embedding far less than one colour
    assert 1 - out["pooled_cosine_swapped"] < 0.5 * (1 - out["pooled_cosine_recoloured"])
