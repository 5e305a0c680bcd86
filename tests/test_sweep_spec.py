"""Sweep spec parsing, bad-input errors, and cell expansion (no model is run)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.sweep.cells import expand_cells, grid_points, image_seed, requests_for
from bench.sweep.spec import PAPER_GUIDANCE, Grid, parse_spec

BASE = b"""
[sweep]
name = "t"
samples_per_prompt = 8

[[models]]
name = "sd14"
kind = "folder"
path = "/nonexistent"

[[models]]
name = "cascade"
kind = "imagen"
checkpoint = "/somewhere"

[[prompt_sets]]
name = "drawbench"
categories = ["Text"]

[[prompt_sets]]
name = "coco"
label = "coco-np"
n = 10
no_people = true

[grid]
guidance = [1, 1.25, 1.5, 1.75, 2, 3, 4, 5, 6, 7, 8, 9, 10]
thresholding = ["none", "static", "dynamic"]
percentile = [95, 99.5]
seeds = [0, 1]

[[metrics]]
name = "ocr"
prompt_sets = ["drawbench"]
categories = ["Text"]
"""


def test_spec_parses_into_frozen_dataclasses():
    spec = parse_spec(BASE)
    assert spec.samples_per_prompt == 8 and spec.grid.guidance == PAPER_GUIDANCE
    assert [m.kind for m in spec.models] == ["folder", "imagen"]
    assert spec.models[1].config.checkpoint == "/somewhere" and spec.models[1].config.batch_size == 8
    assert [p.label for p in spec.prompt_sets] == ["drawbench", "coco-np"]
    assert spec.prompt_sets[1].options == {"n": 10, "no_people": True}
    assert spec.metrics[0].categories == ("Text",) and spec.metrics[0].label == "ocr"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # frozen
    assert len(spec.sha256) == 64


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ("[grid]", "[grid]\nguidanse = [1]"),
            r"unknown keys \['guidanse'\] in \[grid\]; allowed: sampler, steps, guidance",
        ),
        (
            ('kind = "folder"', 'kind = "closed"'),
            "unknown model kind 'closed'; choose one of imagen, folder, diffusers",
        ),
        (
            ('path = "/nonexistent"', 'path = "/x"\nbatchsize = 2'),
            r"FolderModelConfig: unknown keys \['batchsize'\]; allowed",
        ),
        (
            ("n = 10", "n = 10\nsize = 3"),
            r"unknown keys \['size'\] in \[\[prompt_sets\]\] 'coco'; allowed: n, seed, no_people, path",
        ),
        (('name = "coco"', 'name = "laion"'), "unknown prompt set 'laion'; choose one of drawbench, coco, shapes"),
        (
            ('"none", "static"', '"none", "clip"'),
            r"grid.thresholding = 'clip': thresholding mode 'clip'; choose one of none, static, dynamic",
        ),
        (
            ("seeds = [0, 1]", 'seeds = [0, 1]\nsampler = ["euler"]'),
            r"grid.sampler = 'euler': sampler 'euler'; choose one of ddpm, ddim",
        ),
        (
            ("samples_per_prompt = 8", "samples_per_prompt = 0"),
            "samples_per_prompt must be an integer in \\[1, 1000\\]",
        ),
        (
            ('prompt_sets = ["drawbench"]', 'prompt_sets = ["parti"]'),
            r"names prompt sets \['parti'\] that the spec does not define",
        ),
        (
            ("percentile = [95, 99.5]", "percentile = [101]"),
            r"grid.percentile = 101.0: thresholding percentile must be in \(0, 100\]",
        ),
        (
            ("percentile = [95, 99.5]", "percentile = [0]"),
            r"grid.percentile = 0.0: .*must be in \(0, 100\]",
        ),  # refused by the sampler: refused here
        (('label = "coco-np"', 'label = "drawbench"'), r"duplicate prompt set labels \['drawbench'\]"),
        (
            ("[[metrics]]", "[extra]\nx = 1\n[[metrics]]"),
            r"unknown keys \['extra'\] in the spec; allowed: sweep, models",
        ),
        (("guidance = [1,", 'guidance = ["high",'), "grid.guidance must hold float values, got 'high'"),
    ],
)
def test_bad_specs_name_what_is_allowed(edit, message):
    old, new = edit
    assert old.encode() in BASE
    with pytest.raises(ValueError, match=message):
        parse_spec(BASE.replace(old.encode(), new.encode(), 1))


def test_not_toml_and_missing_tables():
    with pytest.raises(ValueError, match="not valid TOML"):
        parse_spec(b"[sweep\nname=1")
    with pytest.raises(ValueError, match="needs models, prompt_sets"):
        parse_spec(b'[sweep]\nname = "x"\n')


def test_cell_expansion_counts_ids_and_axes():
    spec = parse_spec(BASE)
    cells = expand_cells(
        spec,
        {"sd14": (), "cascade": ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level", "seed")},
    )
    folder = [c for c in cells if c.model == "sd14"]
    imagen = [c for c in cells if c.model == "cascade"]
    assert len(folder) == 2  # one per prompt set: sampling does not apply to precomputed images
    assert folder[0].sampling.guidance is None and folder[0].seed is None
    # 13 guidance x (none, static, dynamic@95, dynamic@99.5) x 2 seeds x 2 prompt sets
    assert len(imagen) == 13 * 4 * 2 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    again = expand_cells(parse_spec(BASE + b"\n# a comment\n"), {"sd14": (), "cascade": grid_axes()})
    assert [c.cell_id for c in again] == [c.cell_id for c in cells]  # stable ids
    c = imagen[0]
    assert c.cell_id.startswith("cascade_drawbench_ddpm32_g1_none_aug0_seed0-")
    changed = expand_cells(
        parse_spec(BASE.replace(b'checkpoint = "/somewhere"', b'checkpoint = "/elsewhere"')),
        {"sd14": (), "cascade": grid_axes()},
    )
    assert changed[2].name == imagen[0].name and changed[2].cell_id != imagen[0].cell_id  # settings hash


def grid_axes():
    return ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level", "seed")


def test_grid_points_percentile_only_for_dynamic():
    pts = grid_points(
        Grid(guidance=(1.0, 2.0), thresholding=("none", "dynamic"), percentile=(90.0, 99.0)), grid_axes()
    )
    assert [(s.guidance, s.thresholding, s.percentile) for _, s in pts] == [
        (1.0, "none", None),
        (1.0, "dynamic", 90.0),
        (1.0, "dynamic", 99.0),
        (2.0, "none", None),
        (2.0, "dynamic", 90.0),
        (2.0, "dynamic", 99.0),
    ]


def test_image_seeds_are_deterministic_distinct_and_shared_across_cells():
    import pandas as pd

    spec = parse_spec(BASE)
    cells = [c for c in expand_cells(spec, {"sd14": (), "cascade": grid_axes()}) if c.model == "cascade"]
    prompts = pd.DataFrame({"id": ["1", "2"], "category": ["a", "a"], "prompt": ["x", "y"]})
    r0, r1 = requests_for(cells[0], prompts, 3), requests_for(cells[1], prompts, 3)
    assert [r.seed for r in r0] == [r.seed for r in r1]  # guidance points compare the same noise
    assert len({r.seed for r in r0}) == 6 and all(0 <= r.seed < 2**31 for r in r0)
    assert (
        image_seed(0, "drawbench", "1", 0) == image_seed(0, "drawbench", "1", 0) != image_seed(1, "drawbench", "1", 0)
    )


@pytest.mark.parametrize(
    "name",
    [
        "demo",
        "shapes_eval",
        "shapes_confirm",
        "shapes_eval_w10",
        "pareto_3x3",
        "coco_fid30k",
        "sd_drawbench",
        "if_coco_fid30k",
    ],
)
def test_shipped_specs_parse(name):
    """The specs the README and the shapes model card tell users to run are valid as shipped."""
    from pathlib import Path

    from bench.sweep.spec import load_spec

    spec, _ = load_spec(Path(__file__).parents[1] / "bench" / "specs" / f"{name}.toml")
    assert spec.name == name and spec.models and spec.prompt_sets and spec.metrics


def test_w10_spec_is_the_eval_spec_at_another_guidance():
    """shapes_eval_w10.toml copies shapes_eval.toml (no spec inheritance): the copy may differ only
    in its name and guidance grid, so its numbers stay comparable with the evaluation's."""
    import dataclasses
    from pathlib import Path

    from bench.sweep.spec import load_spec

    specs = Path(__file__).parents[1] / "bench" / "specs"
    (base, _), (w10, _) = load_spec(specs / "shapes_eval.toml"), load_spec(specs / "shapes_eval_w10.toml")
    assert w10.grid.guidance == (10.0,)
    same = dataclasses.replace(
        w10, name=base.name, sha256=base.sha256, grid=dataclasses.replace(w10.grid, guidance=base.grid.guidance)
    )
    assert same == base


@pytest.mark.parametrize(
    "where, toml",
    [
        ("sweep.name", '[sweep]\nname = "../../escape"\n'),
        (
            "prompt_sets",
            '[sweep]\nname = "x"\n[[prompt_sets]]\nname = "drawbench"\nlabel = "../../../../escape/pwned"\n',
        ),
        ("metrics", '[sweep]\nname = "x"\n[[metrics]]\nname = "ocr"\nlabel = "../out"\n'),
        ("models", '[sweep]\nname = "x"\n[[models]]\nname = {a = 1}\nkind = "folder"\npath = "p"\n'),
    ],
)
def test_names_that_become_paths_are_refused(where, toml):
    """A shared spec cannot write outside its run folder: labels and names are restricted."""
    base = '[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n' if where != "models" else ""
    sets = '[[prompt_sets]]\nname = "drawbench"\n' if where != "prompt_sets" else ""
    with pytest.raises(ValueError, match=r"must be 1-100 characters: a letter or digit.*no '/', no '\.\.'"):
        parse_spec((toml + base + sets).encode())


@pytest.mark.parametrize(
    "grid, message",
    [
        ("guidance = [nan]", "finite numbers"),
        ("guidance = [inf]", "finite numbers"),
        ("steps = [1000000000000]", r"steps must be in \[1, 10000\]"),
    ],
)
def test_grid_values_that_cannot_make_images_are_refused(grid, message):
    text = (
        '[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n[[prompt_sets]]\nname = "drawbench"\n[grid]\n'
        + grid
    )
    with pytest.raises(ValueError, match=message):
        parse_spec(text.encode())


def test_samples_per_prompt_true_is_not_one():
    with pytest.raises(ValueError, match="samples_per_prompt must be an integer"):
        parse_spec(
            b'[sweep]\nname = "x"\nsamples_per_prompt = true\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n'
            b'[[prompt_sets]]\nname = "drawbench"\n'
        )


@pytest.mark.parametrize(
    "prompt_set, message",
    [
        ('name = "coco"\nn = "ten"', r"n must be an integer in \[1, 100,000\], got 'ten'"),
        ('name = "shapes"\nn_per_category = "x"', r"n_per_category must be an integer in \[1, 100,000\], got 'x'"),
        ('name = "shapes"\nn_per_category = 1000000000', r"n_per_category must be an integer in \[1, 100,000\]"),
        ('name = "drawbench"\ncategories = []', "categories must be a non-empty list of names"),
    ],
)
def test_prompt_set_options_are_typed_and_bounded_at_parse_time(prompt_set, message):
    text = f'[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n[[prompt_sets]]\n{prompt_set}\n'
    with pytest.raises(ValueError, match=message):
        parse_spec(text.encode())


def test_metric_options_must_be_a_table():
    text = (
        '[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n[[prompt_sets]]\nname = "drawbench"\n'
        '[[metrics]]\nname = "fid"\noptions = 5\n'
    )
    with pytest.raises(ValueError, match="options must be a table"):
        parse_spec(text.encode())
