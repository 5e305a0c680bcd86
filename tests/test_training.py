"""A tiny cascade learns the toy set on CPU; checkpoints round-trip; resume continues exactly."""

import dataclasses
import json

import pytest
import torch
from PIL import Image

from common.training_log import training_history
from imagen.checkpoint import CheckpointError, load_cascade, load_stage, save_cascade_index
from imagen.config import TrainConfig
from imagen.data import ToySet
from imagen.pipeline import CascadePipeline, Runtime, StageSampling
from imagen.presets import tiny
from imagen.schedule import make_logsnr
from imagen.train import Trainer, stage_loss
from imagen_bench.cli import main as cli
from reports.training import load_logs, plot_losses

FAST = TrainConfig(
    steps=300,
    batch_size=16,
    lr=1e-3,
    warmup_steps=20,
    ema_decay=0.99,
    log_every=100,
    ckpt_every=1000,
    precision="auto",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, minilm):
    """All three tiny stages trained on the toy set; the base for 300 steps, the SR stages briefly."""
    out = tmp_path_factory.mktemp("cascade")
    cfg = tiny()
    losses = {}
    for stage, steps in zip(cfg.stages, (300, 60, 60)):
        tc = dataclasses.replace(FAST, steps=steps)
        losses[stage.name] = Trainer(
            stage, cfg.text_encoder, tc, ToySet(32), minilm, out / stage.name, log=lambda s: None
        ).train()
    save_cascade_index(out, cfg)
    return out, losses


def test_loss_falls_clearly(trained):
    _, losses = trained
    base = losses["base"]
    first, last = sum(base[:30]) / 30, sum(base[-30:]) / 30
    assert last < 0.5 * first, (first, last)


def test_checkpoint_roundtrip_gives_identical_samples(trained, minilm):
    out, _ = trained
    settings = [StageSampling(steps=3, guidance=2.0)] * 3
    a = CascadePipeline(load_cascade(out, text_encoder=minilm), Runtime(precision="fp32"))(
        ["a red square on the left"], [3], settings
    )
    b = CascadePipeline(load_cascade(out, text_encoder=minilm), Runtime(precision="fp32"))(
        ["a red square on the left"], [3], settings
    )
    assert a.shape == (1, 32, 32, 3) and torch.equal(a, b)
    meta = json.loads((out / "base" / "config.json").read_text())
    assert meta["package_version"] and len(meta["weights_sha256"]) == 64 and meta["step"] == 300


def test_learned_base_follows_the_prompt(trained, minilm):
    """The toy set's squares are red/green/blue/yellow on grey: guided base samples for a red
    prompt are redder than for a blue prompt, and vice versa (a random-init U-Net fails this)."""
    out, _ = trained
    pipe = CascadePipeline(load_cascade(out, 1, text_encoder=minilm), Runtime(precision="fp32"))
    img = pipe(
        ["a red square on the left"] * 4 + ["a blue square on the right"] * 4,
        list(range(8)),
        [StageSampling(steps=16, guidance=3.0)],
        num_stages=1,
    ).float()
    redness = (img[..., 0] - img[..., 2]).mean(dim=(1, 2))  # (8,) red minus blue per image
    assert redness[:4].min() > redness[4:].max(), redness


def test_resume_continues_exactly(tmp_path, minilm):
    stage = tiny().stages[0]
    te = tiny().text_encoder
    cfg = dataclasses.replace(FAST, steps=20, ckpt_every=10, precision="fp32")
    straight = Trainer(stage, te, cfg, ToySet(), minilm, tmp_path / "a", log=lambda s: None).train()
    Trainer(
        stage, te, dataclasses.replace(cfg, steps=10), ToySet(), minilm, tmp_path / "b", log=lambda s: None
    ).train()
    resumed = Trainer(stage, te, cfg, ToySet(), minilm, tmp_path / "b", log=lambda s: None)
    assert resumed.step == 10
    tail = resumed.train()
    assert tail == pytest.approx(straight[10:], rel=1e-5)
    _, _, ua, _ = load_stage(tmp_path / "a")
    _, _, ub, _ = load_stage(tmp_path / "b")
    for (k, va), vb in zip(ua.state_dict().items(), ub.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)


def test_resume_after_a_kill_sets_aside_rows_of_unsaved_steps(tmp_path, minilm):
    """A run killed between checkpoints logged steps whose weights were lost: on resume they move
    to log_unsaved.csv, and log.csv numbers each step once (1..20), as a straight run's does."""
    stage, te = tiny().stages[0], tiny().text_encoder
    cfg = dataclasses.replace(FAST, steps=20, ckpt_every=10, precision="fp32")
    Trainer(stage, te, dataclasses.replace(cfg, steps=10), ToySet(), minilm, tmp_path, log=lambda s: None).train()
    log = tmp_path / "log.csv"
    lost = ["11,0.5,0.001,9.0", "12,0.4,0.001,9.5"]  # what a kill at step 12 leaves behind
    log.write_text(log.read_text() + "\n".join(lost) + "\n")
    messages = []
    Trainer(stage, te, cfg, ToySet(), minilm, tmp_path, log=messages.append).train()
    assert [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]] == list(range(1, 21))
    assert (tmp_path / "log_unsaved.csv").read_text().splitlines() == ["step,loss,lr,seconds", *lost]
    assert any("2 log rows after step 10" in m for m in messages)


def test_lr_schedule_warms_up_holds_and_cools_down(tmp_path, minilm):
    """lr of each optimiser step, as written to log.csv: warm-up 4, constant, linear cool-down to 0 over the last 5."""
    cfg = dataclasses.replace(FAST, steps=12, warmup_steps=4, cooldown_steps=5, lr=1e-3, precision="fp32")
    Trainer(tiny().stages[0], tiny().text_encoder, cfg, ToySet(), minilm, tmp_path, log=lambda s: None).train()
    rows = (tmp_path / "log.csv").read_text().splitlines()[1:]
    lrs = [float(r.split(",")[2]) for r in rows]
    expect = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 8e-4, 6e-4, 4e-4, 2e-4]
    assert lrs == pytest.approx(expect)


@pytest.mark.parametrize(
    "field,value", [("steps", 0), ("cooldown_steps", -1), ("warmup_steps", -5), ("batch_size", 0)]
)
def test_train_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be >= "):
        TrainConfig(**{field: value})


def test_min_t_trains_only_on_high_noise_levels():
    """min_t = 0.5 draws t ~ U[0.5, 1]: every training log-SNR is at most the schedule's value at
    t = 0.5; with min_t_share only that share of the batch does."""
    stage = tiny().stages[0]
    seen = []

    def unet(z, logsnr, *rest):
        seen.append(logsnr)
        return torch.zeros_like(z)

    x, text, mask = torch.zeros(64, 3, 8, 8), torch.zeros(64, 4, 384), torch.ones(64, 4, dtype=torch.bool)
    stage_loss(unet, stage, x, text, mask, dataclasses.replace(FAST, min_t=0.5), torch.Generator().manual_seed(0))
    at_half = make_logsnr(stage.diffusion)(torch.tensor(0.5))
    assert seen[0].max() <= at_half + 1e-6 and seen[0].min() < -5
    # min_t_share = 0.25: the first 16 rows from U[0.5, 1], the other 48 from U[0, 1]
    stage_loss(
        unet,
        stage,
        x,
        text,
        mask,
        dataclasses.replace(FAST, min_t=0.5, min_t_share=0.25),
        torch.Generator().manual_seed(0),
    )
    assert seen[1][:16].max() <= at_half + 1e-6 and (seen[1][16:] > at_half).sum() > 10
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"min_t must be in \[0, 1\)"):
            TrainConfig(min_t=bad)
    with pytest.raises(ValueError, match=r"min_t_share must be in \[0, 1\]"):
        TrainConfig(min_t_share=1.5)


def test_mismatched_config_is_refused(tmp_path, minilm):
    stage = tiny().stages[0]
    te = tiny().text_encoder
    Trainer(stage, te, dataclasses.replace(FAST, steps=2), ToySet(), minilm, tmp_path, log=lambda s: None).train()
    wider = dataclasses.replace(stage, unet=dataclasses.replace(stage.unet, dim=32))
    with pytest.raises(CheckpointError, match=r"unet\.dim: checkpoint has 16, asked for 32"):
        Trainer(wider, te, FAST, ToySet(), minilm, tmp_path, log=lambda s: None)
    with pytest.raises(CheckpointError, match=r"unet\.dim"):
        load_stage(tmp_path, expect=wider)


def test_init_from_starts_a_new_run_from_trained_weights(trained, tmp_path, minilm):
    """init_from: the EMA weights of a trained stage become model and EMA at step 0 (fresh optimiser,
    warm-up again); an added position embedding starts at zero; the source is recorded in every save."""
    src, _ = trained
    stage, te = tiny().stages[0], tiny().text_encoder
    extras = dataclasses.replace(stage.unet.extras, pos_emb_resolution=stage.resolution)
    with_pos = dataclasses.replace(stage, unet=dataclasses.replace(stage.unet, extras=extras))
    cfg = dataclasses.replace(FAST, steps=3, init_from=str(src))  # a cascade folder: its base stage is used
    t = Trainer(with_pos, te, cfg, ToySet(), minilm, tmp_path / "base", log=lambda s: None)
    _, _, source, _ = load_stage(src / "base")
    own = t.unet.state_dict()
    for k, v in source.state_dict().items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0, msg=k)
    assert [k for k in own if k not in source.state_dict()] == ["down.1.pos_emb", "mid.pos_emb", "up.0.pos_emb"]
    assert not t.unet.mid.pos_emb.any() and t.step == 0 and t.lr_at(0) == pytest.approx(cfg.lr / cfg.warmup_steps)
    t.train()
    meta = json.loads((tmp_path / "base" / "config.json").read_text())
    src_meta = json.loads((src / "base" / "config.json").read_text())
    assert meta["init"] == {"path": str(src / "base"), "weights_sha256": src_meta["weights_sha256"], "step": 300}
    assert (
        meta["train"]["init_from"] == str(src)
        and meta["stage"]["unet"]["extras"]["pos_emb_resolution"] == stage.resolution
    )
    assert (
        Trainer(
            with_pos, te, dataclasses.replace(cfg, steps=4), ToySet(), minilm, tmp_path / "base", log=lambda s: None
        ).init
        == meta["init"]
    )
    # the loss history of the new weights: the source's 300 steps, then these 3 numbered 301-303
    history = [r.split(",") for r in training_history(tmp_path / "base")]
    source_log = (src / "base" / "log.csv").read_text().splitlines()[1:]
    assert [int(r[0]) for r in history] == list(range(1, 304)) and [",".join(r) for r in history[:300]] == source_log
    assert float(history[300][3]) >= float(history[299][3])
    save_cascade_index(tmp_path, dataclasses.replace(tiny(), stages=(with_pos,)))
    logs = load_logs(tmp_path)  # what the loss-curve plot draws, with a marker where this phase began
    assert logs["base"].step.tolist() == list(range(1, 304)) and logs["base"].attrs["phase_start"] == 300
    assert plot_losses(logs, tmp_path / "curves.png").stat().st_size > 0


def test_init_from_refuses_any_other_config_change(trained, tmp_path, minilm):
    src, _ = trained
    stage, te = tiny().stages[0], tiny().text_encoder
    wider = dataclasses.replace(stage, unet=dataclasses.replace(stage.unet, dim=32))
    with pytest.raises(
        CheckpointError, match=r"init_from .* another config:\n  unet\.dim: checkpoint has 16, asked for 32"
    ):
        Trainer(
            wider,
            te,
            dataclasses.replace(FAST, init_from=str(src / "base")),
            ToySet(),
            minilm,
            tmp_path,
            log=lambda s: None,
        )


def test_init_from_may_change_the_prediction_target(trained, tmp_path, minilm):
    """eps -> v: the weights are copied exactly, the change is logged and recorded in `init`, and the
    run's own config says v (what samplers read)."""
    src, _ = trained
    stage, te = tiny().stages[0], tiny().text_encoder
    as_v = dataclasses.replace(stage, diffusion=dataclasses.replace(stage.diffusion, prediction="v"))
    logs = []
    t = Trainer(
        as_v,
        te,
        dataclasses.replace(FAST, steps=2, init_from=str(src / "base")),
        ToySet(),
        minilm,
        tmp_path / "v",
        log=logs.append,
    )
    _, _, source, _ = load_stage(src / "base")
    torch.testing.assert_close(t.unet.state_dict(), source.state_dict(), rtol=0, atol=0)
    assert "prediction eps -> v" in logs[0]
    t.train()
    meta = json.loads((tmp_path / "v" / "config.json").read_text())
    assert meta["init"]["prediction"] == "eps" and meta["stage"]["diffusion"]["prediction"] == "v"
    assert load_stage(tmp_path / "v")[0].diffusion.prediction == "v"


@pytest.mark.parametrize(
    ("option", "value", "off", "prefix"),
    [
        ("text_layers", 1, 0, "text_layers"),
        ("text_positions", 16, 0, "text_pos"),
        ("order_pool", True, False, "order_pool"),
        ("layout_resolution", 8, None, "layout"),
    ],
)
def test_init_from_adds_text_options_but_never_drops_them(trained, tmp_path, minilm, option, value, off, prefix):
    """text_layers, text_positions and order_pool are ADDABLE like the position embedding: the copy is
    exact and the new parameters are a no-op, so the started run computes what the source did; going
    back is refused."""
    src, _ = trained
    stage, te = tiny().stages[0], tiny().text_encoder
    added = dataclasses.replace(
        stage, unet=dataclasses.replace(stage.unet, extras=dataclasses.replace(stage.unet.extras, **{option: value}))
    )
    cfg = dataclasses.replace(FAST, steps=2, init_from=str(src / "base"))
    t = Trainer(added, te, cfg, ToySet(), minilm, tmp_path / "text", log=lambda s: None)
    _, _, source, _ = load_stage(src / "base")
    assert {k.split(".")[0] for k in t.unet.state_dict() if k not in source.state_dict()} == {prefix}
    text, mask = minilm.encode(["a red circle", "two blue squares"])
    args = (torch.randn(2, 3, 8, 8), torch.zeros(2), text, mask)
    torch.testing.assert_close(t.ema(*args), source(*args), rtol=0, atol=0)
    t.train()
    with pytest.raises(CheckpointError, match=rf"unet\.extras\.{option}: checkpoint has {value}, asked for {off}"):
        Trainer(
            stage,
            te,
            dataclasses.replace(FAST, init_from=str(tmp_path / "text")),
            ToySet(),
            minilm,
            tmp_path / "back",
            log=lambda s: None,
        )


def test_checkpoint_saved_before_a_config_field_existed_still_loads(trained, tmp_path):
    """config.json files written before an option existed (e.g. text_layers in weights packed before it existed)
    lack its key: it counts as the default, for loading and for resuming alike."""
    src, _ = trained
    stage = tiny().stages[0]
    meta = json.loads((src / "base" / "config.json").read_text())
    del meta["stage"]["unet"]["extras"]["text_layers"]
    old = tmp_path / "base"
    old.mkdir()
    (old / "config.json").write_text(json.dumps(meta))
    (old / "model.safetensors").write_bytes((src / "base" / "model.safetensors").read_bytes())
    assert load_stage(old, expect=stage)[0] == stage
    # the layout before UNetExtras existed: its options flat in the U-Net's table (the shipped weights' config.json)
    flat = json.loads((src / "base" / "config.json").read_text())
    flat["stage"]["unet"].update(flat["stage"]["unet"].pop("extras"))
    (old / "config.json").write_text(json.dumps(flat))
    assert load_stage(old, expect=stage)[0] == stage


def test_weights_with_wrong_shapes_are_refused(tmp_path, minilm):
    stage = tiny().stages[0]
    Trainer(
        stage, tiny().text_encoder, dataclasses.replace(FAST, steps=1), ToySet(), minilm, tmp_path, log=lambda s: None
    ).train()
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["stage"]["unet"]["dim"] = 32
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the U-Net"):
        load_stage(tmp_path)


def test_cli_train_then_sample_writes_pngs(tmp_path, capsys):
    ck = tmp_path / "ck"
    assert (
        cli(
            ["train", "--preset", "tiny", "--data", "toy", "--out", str(ck), "--steps", "3", "--set", "precision=fp32"]
        )
        == 0
    )
    out = tmp_path / "png"
    assert (
        cli(
            [
                "sample",
                "--checkpoint",
                str(ck),
                "--prompt",
                "a red square on the left",
                "--num",
                "2",
                "--steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and Image.open(pngs[0]).size == (32, 32)
    record = json.loads((out / "sample.json").read_text())
    assert [i["seed"] for i in record["images"]] == [0, 1] and set(record["weights_sha256"]) == {
        "base",
        "sr16",
        "sr32",
    }
    # nothing is overwritten; bad input is one clear line
    assert (
        cli(
            [
                "sample",
                "--checkpoint",
                str(ck),
                "--prompt",
                "a red square on the left",
                "--num",
                "2",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "nothing was overwritten" in capsys.readouterr().err
    assert (
        cli(
            [
                "sample",
                "--checkpoint",
                str(ck),
                "--prompt",
                "x",
                "--thresholding",
                "clip",
                "--out",
                str(tmp_path / "z"),
            ]
        )
        == 2
    )
    assert "none, static, dynamic" in capsys.readouterr().err
    assert cli(["train", "--preset", "huge", "--out", str(tmp_path / "h")]) == 2
    assert (
        "paper, shapes, shapes-layout-v, shapes-order, shapes-order-v, shapes-pool, shapes-pos, shapes-text, tiny"
        in capsys.readouterr().err
    )
    assert cli(["train", "--preset", "tiny", "--data", "toy", "--out", str(ck), "--set", "lr_typo=1"]) == 2
    assert "unknown keys ['lr_typo']" in capsys.readouterr().err


def test_pack_halves_the_weights_and_samples_alike(trained, tmp_path, minilm, capsys):
    out, _ = trained
    packed = tmp_path / "packed"
    assert cli(["pack", str(out), "--out", str(packed)]) == 0
    assert "float16" in capsys.readouterr().out
    src_bytes = sum(f.stat().st_size for f in out.rglob("model.safetensors"))
    dst_bytes = sum(f.stat().st_size for f in packed.rglob("model.safetensors"))
    assert dst_bytes < 0.55 * src_bytes and not list(packed.rglob("train_state.pt"))
    settings = [StageSampling(steps=3, guidance=2.0)] * 3
    a = CascadePipeline(load_cascade(out, text_encoder=minilm), Runtime(precision="fp32"))(
        ["a red square on the left"], [3], settings
    )
    b = CascadePipeline(load_cascade(packed, text_encoder=minilm), Runtime(precision="fp32"))(
        ["a red square on the left"], [3], settings
    )
    assert (a.float() - b.float()).abs().max() <= 3  # fp16 rounding of weights moves pixels by at most a few levels
    assert cli(["pack", str(out), "--out", str(packed)]) == 2  # never overwrites
