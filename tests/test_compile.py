"""torch.compile of the U-Nets (issue 18): asked for, never on by itself; compiled images stay within
a level or two of eager ones; the mode is recorded and is part of a sweep cell's identity, while eager
cells keep the ids they always had; the perf section reports the compile cost and its break-even."""

from __future__ import annotations

import pytest

PROMPTS = ["a red square on the left", "a blue circle", "a green triangle on the right"]


def _settings():
    from imagen.guidance import Thresholding
    from imagen.pipeline import StageSampling

    return [
        StageSampling(steps=3, guidance=3.0, thresholding=Thresholding("dynamic")),
        StageSampling(steps=2, guidance=1.0, aug_level=0.1),
        StageSampling(steps=2, sampler="ddim", aug_level=0.05),
    ]


def test_compile_is_off_by_default_and_unknown_modes_are_refused():
    from imagen.pipeline import Runtime

    assert Runtime().compile == "off"
    with pytest.raises(ValueError, match="compile.*off, default, reduce-overhead, max-autotune"):
        Runtime(compile="fast")


def test_compiled_cell_has_its_own_identity_and_eager_ids_are_unchanged():
    from bench.models.imagen_model import ImagenModel, ImagenModelConfig

    eager = ImagenModel("m", ImagenModelConfig(precision="fp32", device="cpu"))
    compiled = ImagenModel("m", ImagenModelConfig(precision="fp32", device="cpu", compile="default"))
    # the identity eager cells had before compilation existed: resumed run folders keep their cell ids
    assert eager.identity() == {
        "device": "cpu",
        "precision": "fp32",
        "memory_format": "channels_last",
        "deterministic": False,
    }
    assert compiled.identity() == {**eager.identity(), "compile": "default"}


@pytest.mark.slow  # compilation: about a minute on 2 cores
def test_compiled_cascade_matches_eager_within_two_levels(tiny_cascade):
    from imagen.pipeline import CascadePipeline, Runtime

    # batch 7, as the compiled sweep test below: same graph and shapes, so one of them compiles and the
    # other finds the kernels in the session's cache
    eager = CascadePipeline(tiny_cascade, Runtime(device="cpu", precision="fp32", batch_size=7))
    compiled = CascadePipeline(tiny_cascade, Runtime(device="cpu", precision="fp32", batch_size=7, compile="default"))
    # the base stage only: each stage compiles for about a minute on 2 cores, and the path is the same
    prompts = (PROMPTS * 3)[:7]
    a = eager(prompts, list(range(7)), _settings(), num_stages=1)
    b = compiled(prompts, list(range(7)), _settings(), num_stages=1)
    assert a.shape == b.shape == (7, 8, 8, 3)
    assert (a.int() - b.int()).abs().max() <= 2  # other kernels, same model: the last bits only
    assert set(compiled.first_batch_seconds) == {"base"} and eager.first_batch_seconds == {}
    assert all(s > 0 for s in compiled.first_batch_seconds.values())
    assert tiny_cascade.unets[0].__class__.__name__ == "EfficientUNet"  # the cascade's own modules are not replaced


def test_payback_is_where_n_compiled_calls_cost_n_eager_ones():
    from selfcheck.perf.paper import payback

    p = payback(eager_seconds=0.405, compiled_seconds=0.233, first_call_seconds=81.0)  # the H200 base step, by hand
    n = p["break_even_calls"]
    assert n == pytest.approx(469.6, abs=0.1) and p["speedup"] == pytest.approx(1.738, abs=1e-3)
    assert 81.0 + (n - 1) * 0.233 == pytest.approx(n * 0.405)  # the definition, checked directly
    assert payback(0.1, 0.12, 30.0)["break_even_calls"] is None  # slower when compiled: never


def test_paper_stages_scale_down_for_a_smoke_run_and_keep_full_size_otherwise():
    from imagen.presets import paper
    from selfcheck.perf.paper import PaperSettings, stage_config

    full = {s.name: s for s in paper().stages}
    assert stage_config("base") == full["base"]
    small = stage_config("sr1024", scale=16, resolution_scale=4)
    assert (small.resolution, small.lowres_resolution, small.unet.dim) == (256, 64, 8)
    with pytest.raises(ValueError, match="unknown stages or compile modes"):
        PaperSettings(stages=("base", "sr2048"), batch=(1, 1))
    with pytest.raises(ValueError, match="one batch >= 1 per stage"):
        PaperSettings(batch=(64,))


@pytest.mark.slow  # one compilation of the base stage: about 40 s on 2 cores
def test_a_compiled_sweep_is_recorded_has_its_own_cells_and_stays_near_the_eager_sweep(tmp_path):
    """A real sweep of the tiny checkpoint, eager and with compile = "default": the run folder records
    the mode, the cells differ, and the images agree within 2 levels."""
    import json

    import numpy as np
    import pandas as pd
    from PIL import Image
    from sweep_fixtures import make_tiny_checkpoint, tiny_spec

    from bench.sweep.runner import run_sweep

    spec = (
        tiny_spec(
            make_tiny_checkpoint(tmp_path / "ckpt"),
            guidance=(3.0,),
            thresholding=("static",),
            samples=1,
            metrics=False,
        )
        .replace("batch_size = 3", "batch_size = 7\nnum_stages = 1")
        .replace("[models.stages.sr32]\nsteps = 2\n", "")
    )
    runs = {}
    for mode in ("off", "default"):
        (tmp_path / f"{mode}.toml").write_text(
            spec.replace('precision = "fp32"', f'precision = "fp32"\ncompile = "{mode}"')
        )
        run_sweep(tmp_path / f"{mode}.toml", tmp_path / mode, cache_dir=tmp_path / "cache", progress=False)
        runs[mode] = (
            pd.read_parquet(tmp_path / mode / "manifest.parquet").sort_values("prompt_id").reset_index(drop=True)
        )
    assert (
        json.loads((tmp_path / "default" / "run.json").read_text())["models"]["tiny"]["runtime"]["compile"]
        == "default"
    )
    assert "compile" not in json.loads((tmp_path / "off" / "run.json").read_text())["models"]["tiny"]["runtime"]
    assert (
        set(runs["off"].cell_id).isdisjoint(runs["default"].cell_id) and len(runs["off"]) == len(runs["default"]) == 7
    )
    for a, b in zip(runs["off"].path, runs["default"].path):
        pa = np.asarray(Image.open(tmp_path / "off" / a), dtype=int)
        pb = np.asarray(Image.open(tmp_path / "default" / b), dtype=int)
        assert pa.shape == pb.shape == (8, 8, 3) and np.abs(pa - pb).max() <= 2


# Last in the file: run before the compiled sweep test, it made that test miss the cascade test's
# kernels in the inductor cache and compile again (33 s instead of 7 s on 2 cores).
@pytest.mark.slow  # compilation of the forward and backward: about a minute on 2 cores
def test_compiled_training_matches_eager_and_saves_the_same_checkpoint(tmp_path, minilm):
    import dataclasses
    import json

    import torch
    from safetensors.torch import load_file

    from imagen.config import TrainConfig
    from imagen.data import ToySet
    from imagen.presets import tiny
    from imagen.train import Trainer

    # the tiny base stage cut to one level (convolutions, group norms, time and text conditioning,
    # cross-attention; self-attention compiles in the cascade test above), forward and backward:
    # 30 % less to compile than both levels (111 s -> 80 s on 2 cores)
    stage, te = tiny().stages[0], tiny().text_encoder
    one_level = dataclasses.replace(
        stage.unet, channel_mults=(1,), num_res_blocks=(1,), self_attn=(False,), cross_attn=(True,)
    )
    stage = dataclasses.replace(stage, unet=one_level)
    # the session's thread count left alone (setting it would leak into every later test of the worker)
    tc = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=1, ckpt_every=3, precision="fp32")
    runs = {
        mode: Trainer(
            stage, te, tc, ToySet(8), minilm, tmp_path / mode, log=lambda s: None, device="cpu", compile=mode
        )
        for mode in ("off", "default")
    }
    losses = {mode: t.train() for mode, t in runs.items()}
    assert losses["default"] == pytest.approx(losses["off"], rel=1e-4)  # same data, noise and weights; other kernels
    eager, compiled = (
        load_file(str(tmp_path / "off" / "model.safetensors")),
        load_file(str(tmp_path / "default" / "model.safetensors")),
    )
    assert eager.keys() == compiled.keys()  # the module's own names, no compile wrapper prefix
    for k in eager:
        # atol 1e-4: a tenth of one Adam step (lr 1e-3); where a gradient is near 0, Adam's update
        # g / sqrt(v) turns last-bit kernel differences into up to 2.4e-5 (measured); a wrong gradient
        # or other data would move most weights by ~lr per step
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-3, atol=1e-4, msg=k)
    assert json.loads((tmp_path / "default" / "config.json").read_text())["runtime"]["compile"] == "default"
    assert "compile" not in json.loads((tmp_path / "off" / "config.json").read_text())["runtime"]
    with pytest.raises(ValueError, match="compile.*off, default"):
        Trainer(stage, te, tc, ToySet(8), minilm, tmp_path / "x", log=lambda s: None, device="cpu", compile="on")
