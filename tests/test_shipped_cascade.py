"""The offline default: the shapes cascade shipped inside the package loads and samples."""

import json

import pytest
from PIL import Image

from common.files import sha256_file
from imagen.checkpoint import load_cascade_checkpoint
from imagen.commands import DEFAULT_CHECKPOINT
from imagen_bench.cli import main as cli


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


def test_shipped_cascade_is_the_layout_preset():
    """The model card's continue-training commands use --preset shapes-layout-v: its configs must be
    the shipped ones (v-prediction base with the text-to-layout path, the shapes SR stages)."""
    from imagen.config import to_dict
    from imagen.presets import get_preset

    config, _, _ = load_cascade_checkpoint(DEFAULT_CHECKPOINT)
    preset = get_preset("shapes-layout-v")
    assert [to_dict(s) for s in config.stages] == [to_dict(s) for s in preset.stages]
    assert to_dict(config.text_encoder) == to_dict(preset.text_encoder)
    assert config.stages[0].diffusion.prediction == "v" and config.stages[0].unet.extras.layout_resolution


def test_sample_without_checkpoint_uses_the_shipped_cascade(tmp_path):
    out = tmp_path / "png"
    assert (
        cli(["sample", "--prompt", "a red circle to the left of a blue square", "--steps", "4", "--out", str(out)])
        == 0
    )
    (png,) = out.glob("*.png")
    assert Image.open(png).size == (256, 256)
    record = json.loads((out / "sample.json").read_text())
    assert record["checkpoint"] == str(DEFAULT_CHECKPOINT) and set(record["weights_sha256"]) == {
        "base",
        "sr64",
        "sr256",
    }


def test_stage_check_runs_on_the_shipped_cascade():
    """The per-stage diagnosis of the model card: ground-truth 64^2 renders verify perfectly through
    the same accuracy function, and every row reports overall + the four categories in [0, 1]."""
    import torch

    from bench.diagnostics.stage_check import accuracy, stage_check
    from drawbench.shapes.dataset import split_item
    from drawbench.shapes.grammar import format_caption
    from drawbench.shapes.render import render_scene
    from imagen.data import image_to_tensor
    from imagen.pipeline import Runtime

    items = [split_item("test", i) for i in range(8)]
    gt = torch.stack([image_to_tensor(render_scene(s, 64), 64) for s, _ in items])
    gt_acc = accuracy(gt, [format_caption(c) for _, c in items])
    assert (
        gt_acc["overall"] == 1.0 and gt_acc["reversed"] == 0 and gt_acc["right-way"] >= 2
    )  # items 2 and 6 are Positional
    rows = stage_check(DEFAULT_CHECKPOINT, 1, 3.0, Runtime(batch_size=4))
    assert list(rows) == ["gt-16-nearest", "base(w=3)-nearest", "sr64(gt16)", "base(w=3)->sr64", "sr256(gt64)"]
    for acc in rows.values():
        assert set(acc) == {
            "overall",
            "Colors",
            "Counting",
            "Positional",
            "Descriptions",
            "held-out",
            "seen",
            "right-way",
            "reversed",
        }
        assert all(0.0 <= acc[k] <= 1.0 for k in ("overall", "Colors", "Counting", "Positional", "Descriptions"))
        assert acc["right-way"] + acc["reversed"] <= 4  # relation captions among the 4 prompts
    # --stage NAME=DIR swaps in a stage checkpoint (here the cascade's own: the same row comes out);
    # --rows computes only what is asked
    only = stage_check(
        DEFAULT_CHECKPOINT,
        1,
        3.0,
        Runtime(batch_size=4),
        swaps={"base": DEFAULT_CHECKPOINT / "base"},
        rows=("base-nearest",),
    )
    assert only == {"base(w=3)-nearest": rows["base(w=3)-nearest"]}
    sr = stage_check(
        DEFAULT_CHECKPOINT,
        1,
        3.0,
        Runtime(batch_size=4),
        swaps={"sr64": DEFAULT_CHECKPOINT / "sr64"},
        rows=("sr64(gt16)",),
    )
    assert sr == {"sr64(gt16)": rows["sr64(gt16)"]}
    with pytest.raises(ValueError, match="does not fit this cascade's stage 'base'"):
        stage_check(
            DEFAULT_CHECKPOINT, 1, 3.0, Runtime(), swaps={"base": DEFAULT_CHECKPOINT / "sr64"}, rows=("base-nearest",)
        )
    with pytest.raises(ValueError, match="does not fit this cascade's stage 'sr256'"):
        stage_check(
            DEFAULT_CHECKPOINT, 1, 3.0, Runtime(), swaps={"sr256": DEFAULT_CHECKPOINT / "sr64"}, rows=("base-nearest",)
        )
    with pytest.raises(ValueError, match="unknown stage 'sr16'; choose from base, sr64, sr256"):
        stage_check(
            DEFAULT_CHECKPOINT, 1, 3.0, Runtime(), swaps={"sr16": DEFAULT_CHECKPOINT / "sr64"}, rows=("base-nearest",)
        )
    with pytest.raises(ValueError, match="unknown row 'base'; choose from gt-16-nearest, base-nearest"):
        stage_check(DEFAULT_CHECKPOINT, 1, 3.0, Runtime(), rows=("base",))


def test_stage_check_cli_rejects_a_malformed_stage_swap(capsys):
    from bench.diagnostics.stage_check import main

    with pytest.raises(SystemExit) as e:
        main([str(DEFAULT_CHECKPOINT), "--stage", "ckpt/sr64"])
    assert (
        e.value.code == 2
        and "--stage takes NAME=DIR (e.g. sr64=ckpt/sr64), got 'ckpt/sr64'" in capsys.readouterr().err
    )


def test_swap_check_counts_a_kept_layout_as_right_way_once(capsys):
    """The swap probe's logic on ground truth: a render of "A rel B" verifies right-way for its
    caption and reversed for the swapped one (a base that keeps the layout under the swap scores n
    in total, not 2n); the CLI runs the shipped base on caption pairs and accounts for every image."""
    from bench.diagnostics.order_check import swapped
    from bench.diagnostics.swap_check import main, relation_captions
    from drawbench.shapes.dataset import split_item
    from drawbench.shapes.render import render_scene
    from drawbench.shapes.verify import relation_direction, verify

    caps = relation_captions(6)
    for k, cap in enumerate(caps):
        im = render_scene(split_item("validation", 4 * k + 2)[0], 64)
        assert (relation_direction(verify(im, cap)), relation_direction(verify(im, swapped(cap)))) == (
            "right-way",
            "reversed",
        )
    assert main([str(DEFAULT_CHECKPOINT), "--n", "3", "--stage", f"base={DEFAULT_CHECKPOINT / 'base'}"]) == 0
    out = capsys.readouterr().out.splitlines()
    res = json.loads(out[-1])
    assert out[0].startswith("right-way: caption ") and "(order ignored ~3, followed ~6)" in out[0]
    assert all(sum(res[name].values()) == 3 for name in ("caption", "swap"))
    with pytest.raises(SystemExit) as e:
        main([str(DEFAULT_CHECKPOINT), "--n", "0"])
    assert e.value.code == 2


def test_relation_scenes_are_true_of_their_caption_and_direction_is_worth_something():
    """relation_scene draws scenes the caption describes (the verifier accepts every render); knowing
    which way round is worth a clearly positive x0 error at pure noise (measured 0.0034 at 16^2)."""
    import numpy as np

    from bench.diagnostics.swap_check import ideal_direction_gain, relation_captions
    from drawbench.shapes.generate import relation_scene
    from drawbench.shapes.grammar import parse_caption
    from drawbench.shapes.render import render_scene
    from drawbench.shapes.verify import verify

    rng = np.random.default_rng(1)
    caps = relation_captions(4) + ["a small red circle below a large blue square on a black background"]
    for cap in caps:
        for _ in range(5):
            assert verify(render_scene(relation_scene(rng, parse_caption(cap)), 64), cap).correct, cap
    with pytest.raises(ValueError, match="REL"):
        relation_scene(rng, parse_caption("a red circle and a blue square"))
    assert 0.001 < ideal_direction_gain(16, n_captions=2, n_scenes=200) < 0.02


def test_swap_check_loss_probe_reports_each_time(capsys):
    """--loss-times: one JSON row per time with the three errors (no text worst: the shipped base uses
    the caption) and the ideal saving; bad times are a usage error naming the range."""
    from bench.diagnostics.swap_check import main

    assert main([str(DEFAULT_CHECKPOINT), "--n", "8", "--loss-times", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = json.loads(lines[2])
    assert row["t"] == 0.5 and row["no text"] > row["caption"] > 0 and 0 <= row["caption_beats_swap"] <= 1
    assert lines[3].startswith("a perfect model's saving from the direction at pure noise: ")
    for bad in ("1.5", "x"):
        with pytest.raises(SystemExit) as e:
            main([str(DEFAULT_CHECKPOINT), "--loss-times", bad])
        assert e.value.code == 2 and "(0, 1)" in capsys.readouterr().err
