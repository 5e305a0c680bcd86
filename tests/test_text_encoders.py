"""Text encoders: the offline MiniLM default and a T5 loaded from a local Hugging Face directory
(a tiny random T5 saved with save_pretrained, plus a word-level tokenizer built offline)."""
import pytest
import torch

from imagen.config import TextEncoderConfig
from imagen.text_encoders import CachedTextEncoder, load_text_encoder


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = "a red blue green circle square triangle on the left right of above below".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    d = tmp_path_factory.mktemp("t5")
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d


def test_t5_from_local_directory(tiny_t5_dir):
    enc = load_text_encoder(TextEncoderConfig(kind="t5", path=str(tiny_t5_dir), max_length=12))
    emb, mask = enc.encode(["a red circle", "a blue square to the left of a green triangle"])
    assert emb.shape == (2, 12, 32) and mask.shape == (2, 12) and enc.dim == 32
    assert mask[0].sum() == 3 and mask[1].sum() == 10
    assert torch.all(emb[~mask] == 0)  # padding zeroed: encodings depend only on the prompt
    emb2, _ = enc.encode(["a red circle"])
    torch.testing.assert_close(emb2[0], emb[0], atol=1e-5, rtol=1e-5)  # deterministic, batch-independent


def test_t5_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        load_text_encoder(TextEncoderConfig(kind="t5", path=str(tmp_path)))
    with pytest.raises(ValueError, match="needs path"):
        TextEncoderConfig(kind="t5")
    with pytest.raises(ValueError, match="minilm, t5"):
        TextEncoderConfig(kind="clip")


def test_minilm_offline_default_and_disk_cache(minilm, tmp_path):
    emb, mask = minilm.encoder.encode(["a red circle", "three blue squares"])
    assert emb.shape == (2, 16, 384) and mask.dtype == torch.bool and minilm.dim == 384
    cached = CachedTextEncoder(minilm.encoder, cache_dir=tmp_path)
    a, _ = cached.encode(["a red circle", "a red circle", "three blue squares"])
    assert cached.encoded_count == 2  # duplicates encoded once
    again = CachedTextEncoder(minilm.encoder, cache_dir=tmp_path)  # a fresh process would see the files
    b, _ = again.encode(["three blue squares", "a red circle"])
    assert again.encoded_count == 0
    assert torch.equal(b[0], a[2]) and torch.equal(b[1], a[0])
    torch.testing.assert_close(a[0], emb[0])
