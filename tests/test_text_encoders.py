"""Text encoders: the offline MiniLM default and a T5 loaded from a local Hugging Face directory
(a tiny random T5 saved with save_pretrained, plus a word-level tokenizer built offline)."""

import pytest
import torch

from imagen.config import TextEncoderConfig
from imagen.text_encoders import CachedTextEncoder, load_text_encoder


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


def test_train_any_preset_on_a_local_t5(tiny_t5_dir, tmp_path, capsys):
    """`train --t5 DIR` gives any preset that T5 as its text encoder, U-Nets as wide as its d_model."""
    import json

    from imagen.presets import get_preset, with_t5
    from imagen_bench.cli import main

    cfg = with_t5(get_preset("tiny"), str(tiny_t5_dir))
    assert cfg.text_encoder.kind == "t5" and cfg.text_encoder.max_length == get_preset("tiny").text_encoder.max_length
    assert {s.unet.text_embed_dim for s in cfg.stages} == {32}
    assert (
        main(
            [
                "train",
                "--preset",
                "tiny",
                "--stage",
                "base",
                "--data",
                "toy",
                "--t5",
                str(tiny_t5_dir),
                "--device",
                "cpu",
                "--steps",
                "2",
                "--set",
                "batch_size=4",
                "--out",
                str(tmp_path / "ckpt"),
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "ckpt" / "base" / "config.json").read_text())
    assert saved["text_encoder"]["kind"] == "t5" and saved["stage"]["unet"]["text_embed_dim"] == 32
    assert (
        main(["train", "--preset", "tiny", "--t5", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    )  # no config.json there
    assert "not a Hugging Face T5 directory" in capsys.readouterr().err
