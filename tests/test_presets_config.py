import dataclasses

import pytest
import torch

from imagen.config import CascadeConfig, StageConfig, TrainConfig, UNetConfig, from_dict, to_dict
from imagen.presets import PRESETS, get_preset
from imagen.unet import EfficientUNet
from imagen.unet_extras import TextLayer, order_pooled

PAPER_PARAMS = {"base": 2.0e9, "sr256": 600e6, "sr1024": 400e6}  # Saharia et al. 2022, sec. 4.1 / appendix


def count_on_meta(cfg: UNetConfig) -> int:
    with torch.device("meta"):  # no memory: the 2B model is never materialised
        return sum(p.numel() for p in EfficientUNet(cfg).parameters())


@pytest.mark.parametrize("stage", ["base", "sr256", "sr1024"])
def test_paper_presets_within_15_percent_of_paper(stage):
    cfg = {s.name: s for s in get_preset("paper").stages}[stage]
    n = count_on_meta(cfg.unet)
    assert abs(n - PAPER_PARAMS[stage]) / PAPER_PARAMS[stage] < 0.15, n


def test_paper_cascade_layout():
    c = get_preset("paper")
    assert [(s.resolution, s.lowres_resolution) for s in c.stages] == [(64, None), (256, 64), (1024, 256)]
    last = c.stages[-1]
    assert not any(last.unet.self_attn) and any(last.unet.cross_attn) and last.train_crop == 256
    assert c.text_encoder.kind == "t5" and c.text_encoder.max_length == 128


def test_unknown_preset_and_keys_rejected():
    with pytest.raises(
        ValueError,
        match="paper, shapes, shapes-layout-v, shapes-order, shapes-order-v, shapes-pool, shapes-pos, shapes-text, tiny",
    ):
        get_preset("large")
    with pytest.raises(ValueError, match=r"unknown keys \['stpes'\]"):
        from_dict(TrainConfig, {"stpes": 3})
    with pytest.raises(ValueError, match="one per level"):
        UNetConfig(channel_mults=(1, 2), num_res_blocks=(1, 2, 3))
    with pytest.raises(ValueError, match="eps, v"):
        from_dict(StageConfig, {"name": "x", "resolution": 16, "diffusion": {"prediction": "x0"}})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_configs_roundtrip_through_json_dicts(name):
    cfg = get_preset(name)
    again = from_dict(CascadeConfig, to_dict(cfg))
    assert again == cfg


def test_cascade_resolutions_must_chain():
    c = get_preset("tiny")
    broken = dataclasses.replace(c.stages[1], lowres_resolution=4)
    with pytest.raises(ValueError, match="expects low-res 4"):
        CascadeConfig(text_encoder=c.text_encoder, stages=(c.stages[0], broken))


def test_efficient_unet_shapes_and_skip_scale():
    from imagen import unet as U

    assert U.SKIP_SCALE == pytest.approx(2**-0.5)
    cfg = get_preset("tiny").stages[1].unet
    net = EfficientUNet(cfg)
    x = torch.randn(2, 3, 16, 16)
    out = net(
        x,
        torch.zeros(2),
        torch.randn(2, 5, 384),
        torch.ones(2, 5, dtype=torch.bool),
        torch.randn(2, 3, 16, 16),
        torch.zeros(2),
    )
    assert out.shape == x.shape
    # change 3 of the Efficient U-Net: down blocks resample first, up blocks last
    assert net.down[1].pre is not None and net.down[1].pre.stride == (2, 2)
    assert net.up[0].post is not None and net.up[-1].post is None
    with pytest.raises(ValueError, match="super-resolution U-Nets need lowres"):
        net(x, torch.zeros(2), torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool))


def _random_tiny_base():
    """The tiny preset's base stage and a U-Net for it with every parameter random (the
    zero-initialised output layers of a fresh one would hide any difference an option makes)."""
    base = get_preset("tiny").stages[0]
    torch.manual_seed(0)
    plain = EfficientUNet(base.unet).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0, 0.2)
    return base, plain


def test_position_embedding_starts_as_a_no_op_then_breaks_translation_symmetry():
    """pos_emb_resolution adds one zero-initialised (1, C, S, S) table per attention block: the
    U-Net computes exactly what it did without them until they are trained."""
    base, plain = _random_tiny_base()
    with_pos = EfficientUNet(with_extras(base.unet, pos_emb_resolution=8)).eval()
    missing = with_pos.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["down.1.pos_emb", "mid.pos_emb", "up.0.pos_emb"]  # the blocks with attention, at 4x4
    assert tuple(with_pos.mid.pos_emb.shape) == (1, 32, 4, 4) and not with_pos.mid.pos_emb.any()
    args = (torch.randn(2, 3, 8, 8), torch.zeros(2), torch.randn(2, 5, 384), torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(with_pos(*args), plain(*args), rtol=0, atol=0)
    with torch.no_grad():
        with_pos.mid.pos_emb.normal_()
    assert not torch.allclose(with_pos(*args), plain(*args))
    with pytest.raises(ValueError, match=r"position embeddings / layout queries for 8x8 inputs only, got \(16, 16\)"):
        with_pos(torch.randn(2, 3, 16, 16), *args[1:])


def test_text_layers_start_as_the_identity():
    """text_layers adds causal transformer layers over the token features whose residual branches
    end in zero-initialised projections: a trained U-Net's output is unchanged until they train."""
    base, plain = _random_tiny_base()
    with_text = EfficientUNet(with_extras(base.unet, text_layers=2)).eval()
    missing = with_text.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(("text_layers.0.", "text_layers.1.")) for k in missing)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2] = False  # the unconditional branch of guidance: every token masked
    args = (torch.randn(3, 3, 8, 8), torch.zeros(3), torch.randn(3, 5, 384), mask)
    torch.testing.assert_close(with_text(*args), plain(*args), rtol=0, atol=0)
    with torch.no_grad():
        with_text.text_layers[1].proj.weight.normal_(0, 0.2)
    out = with_text(*args)
    assert torch.isfinite(out).all() and not torch.allclose(out, plain(*args))
    with pytest.raises(ValueError, match="extras.text_layers must be >= 0"):
        with_extras(base.unet, text_layers=-1)


def test_text_positions_start_as_a_no_op_then_make_token_order_visible():
    """Without it the U-Net reads the text as a set: permuting the real tokens leaves its output
    unchanged (cross-attention and the masked mean are both order-free). text_positions adds a
    zero-initialised token-index table (a no-op at init); once trained, the order matters."""
    base, plain = _random_tiny_base()
    with_pos = EfficientUNet(with_extras(base.unet, text_positions=6)).eval()
    assert with_pos.load_state_dict(plain.state_dict(), strict=False).missing_keys == ["text_pos"]
    text, mask = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    mask[:, 4:] = False
    swapped = text[:, [2, 1, 0, 3, 4, 5]]  # two real tokens exchanged
    args = (torch.randn(2, 3, 8, 8), torch.zeros(2))
    torch.testing.assert_close(plain(*args, swapped, mask), plain(*args, text, mask), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(with_pos(*args, text, mask), plain(*args, text, mask), rtol=0, atol=0)
    with torch.no_grad():
        with_pos.text_pos.normal_()
    assert not torch.allclose(with_pos(*args, swapped, mask), with_pos(*args, text, mask), atol=1e-4)
    with pytest.raises(ValueError, match="token positions 0..5 only, got 7 tokens"):
        with_pos(*args, torch.randn(2, 7, 384), torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="extras.text_positions must be >= 0"):
        with_extras(base.unet, text_positions=-1)


def test_order_pooled_is_negated_by_reversing_the_words_and_order_pool_starts_as_a_no_op():
    text, mask = torch.randn(2, 6, 8), torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    rev = text.clone()
    rev[0] = text[0].flip(0)
    rev[1, :3] = text[1, :3].flip(0)
    torch.testing.assert_close(order_pooled(rev, mask), -order_pooled(text, mask))
    # by hand for row 1 (3 real tokens, r = -1/2, 0, +1/2): (t2 - t0) / 6; padding ignored
    torch.testing.assert_close(order_pooled(text, mask)[1], (text[1, 2] - text[1, 0]) / 6)
    one = torch.zeros(1, 6, dtype=torch.bool)
    one[0, 0] = True
    assert not order_pooled(text[:1], one).any()  # a single token has no order

    base, plain = _random_tiny_base()
    with_pool = EfficientUNet(with_extras(base.unet, order_pool=True)).eval()
    missing = with_pool.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("order_pool.") for k in missing)
    t, m = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    m[1] = False  # the unconditional branch: nothing comes from the order vector, trained or not
    swapped = t[:, [2, 1, 0, 3, 4, 5]]
    args = (torch.randn(2, 3, 8, 8), torch.zeros(2))
    torch.testing.assert_close(with_pool(*args, t, m), plain(*args, t, m), rtol=0, atol=0)
    with torch.no_grad():
        with_pool.order_pool[-1].weight.normal_(0, 0.2)
        with_pool.order_pool[-1].bias.normal_(0, 0.2)
    out, out_swapped = with_pool(*args, t, m), with_pool(*args, swapped, m)
    assert not torch.allclose(out[0], out_swapped[0], atol=1e-4)  # the order now matters
    torch.testing.assert_close(out[1], plain(*args, t, m)[1], rtol=0, atol=0)


def test_layout_queries_start_as_a_no_op_and_give_each_place_its_own_reading_of_the_text():
    """layout_resolution: S*S learned queries read the tokens (not the image) and add a (C, S, S) map
    before the middle block, zero at init. Once trained, places differ for the same caption even on a
    constant input (position from the text path alone), and the unconditional branch stays finite."""
    base, plain = _random_tiny_base()
    with_layout = EfficientUNet(with_extras(base.unet, layout_resolution=8)).eval()
    missing = with_layout.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("layout.") for k in missing) and with_layout.layout.side == 4
    t, m = torch.randn(2, 6, 384), torch.ones(2, 6, dtype=torch.bool)
    m[1] = False  # every token masked: only the learned null token is read
    args = (torch.randn(2, 3, 8, 8), torch.zeros(2))
    torch.testing.assert_close(with_layout(*args, t, m), plain(*args, t, m), rtol=0, atol=0)
    with torch.no_grad():
        with_layout.layout.out.weight.normal_(0, 0.2)
    assert torch.isfinite(with_layout(*args, t, m)).all() and not torch.allclose(
        with_layout(*args, t, m), plain(*args, t, m)
    )
    read = with_layout.layout(t, torch.ones(2, 6, dtype=torch.bool))  # (B, C, 4, 4)
    assert read.shape == (2, 32, 4, 4) and not torch.allclose(read[..., 0, 0], read[..., 3, 3], atol=1e-4)
    swapped = t[:, [2, 1, 0, 3, 4, 5]]
    torch.testing.assert_close(with_layout.layout(swapped, torch.ones(2, 6, dtype=torch.bool)), read)  # a set reader
    with pytest.raises(ValueError, match=r"layout queries for 8x8 inputs only, got \(16, 16\)"):
        with_layout(torch.randn(2, 3, 16, 16), torch.zeros(2), t, m)


def test_text_layer_is_causal_and_ignores_padding():
    """Token i's output depends on tokens 0..i only (so a word's vector carries the words before it:
    word order), never on masked tokens, and stays finite when every token is masked."""
    torch.manual_seed(0)
    layer = TextLayer(32, heads=4).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.3)
    text, mask = torch.randn(1, 6, 32), torch.tensor([[True] * 5 + [False]])
    changed = text.clone()
    changed[0, 3] += torch.randn(32)  # (not a constant: the layer norm would remove it)
    a, b = layer(text, mask), layer(changed, mask)
    torch.testing.assert_close(a[0, :3], b[0, :3], rtol=0, atol=0)  # before the changed word: same
    assert (a[0, 3:5] - b[0, 3:5]).abs().amax(-1).min() > 1e-3  # at and after it: different
    pad = text.clone()
    pad[0, 5] += 5 * torch.randn(32)  # a masked token is invisible to the real ones
    torch.testing.assert_close(layer(pad, mask)[0, :5], a[0, :5], rtol=0, atol=0)
    swapped = text[:, [1, 0, 2, 3, 4, 5]]  # same words, other order: the last word's vector changes
    assert not torch.allclose(layer(swapped, mask)[0, 4], a[0, 4])
    assert torch.isfinite(layer(text, torch.zeros(1, 6, dtype=torch.bool))).all()


def test_position_embedding_must_match_the_stage_resolution_and_not_crops():
    c = get_preset("tiny")
    with pytest.raises(ValueError, match="extras.pos_emb_resolution must be None or the stage resolution 8"):
        dataclasses.replace(c.stages[0], unet=with_extras(c.stages[0].unet, pos_emb_resolution=16))
    last = c.stages[2]  # trained on crops: must stay fully convolutional
    with pytest.raises(ValueError, match="None when training on crops"):
        dataclasses.replace(last, unet=with_extras(last.unet, pos_emb_resolution=last.resolution))


def with_extras(unet, **changes):
    """The U-Net config with some of its extras (beyond the paper) changed."""
    return dataclasses.replace(unet, extras=dataclasses.replace(unet.extras, **changes))
