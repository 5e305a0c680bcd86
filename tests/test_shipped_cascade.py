"""The offline default: the shapes cascade shipped inside the package loads and samples."""
import json

from PIL import Image

from bench.cli import main as cli
from imagen.checkpoint import load_cascade_checkpoint, sha256_file
from imagen.commands import DEFAULT_CHECKPOINT


def test_shipped_weights_are_small_and_checksummed():
    config, _, metas = load_cascade_checkpoint(DEFAULT_CHECKPOINT)
    assert [(s.resolution, s.lowres_resolution) for s in config.stages] == [(16, None), (64, 16), (256, 64)]
    assert not any(config.stages[-1].unet.self_attn) and config.stages[-1].train_crop  # the paper's last stage
    total = sum(f.stat().st_size for f in DEFAULT_CHECKPOINT.rglob("*.safetensors"))
    assert total <= 40e6
    for stage, meta in zip(config.stages, metas):
        assert sha256_file(DEFAULT_CHECKPOINT / stage.name / "model.safetensors") == meta["weights_sha256"]
        assert meta["step"] > 0 and meta["train"]["cond_drop_prob"] == 0.1
    assert (DEFAULT_CHECKPOINT / "MODEL_CARD.md").is_file()


def test_sample_without_checkpoint_uses_the_shipped_cascade(tmp_path):
    out = tmp_path / "png"
    assert cli(["sample", "--prompt", "a red circle to the left of a blue square", "--steps", "4", "--out", str(out)]) == 0
    (png,) = out.glob("*.png")
    assert Image.open(png).size == (256, 256)
    record = json.loads((out / "sample.json").read_text())
    assert record["checkpoint"] == str(DEFAULT_CHECKPOINT) and set(record["weights_sha256"]) == {"base", "sr64", "sr256"}
