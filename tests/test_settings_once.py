"""Each sampling setting is declared once (issue 31): imagen.pipeline.StageSampling is the one
declaration of the sampling axes, common.runs.SAMPLING_AXES names them for the run folder, and the
rest (flags, per-stage keys, the sweep grid, bench.models.Sampling, cells, cells.parquet columns,
the model bridge) is made from them.

The measure: docs/ARCHITECTURE.md shows the whole diff of adding one axis. This test counts its
places (<= 3), applies it to a copy of the tree and checks that every consumer picks the new axis up,
and that a cell at the new axis's default keeps the id it had before the axis existed."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

from bench.models import Sampling
from bench.sweep.cells import expand_cells
from bench.sweep.runner import CELL_DTYPES
from bench.sweep.spec import Grid, parse_spec
from common.runs import CELL_AXES, SAMPLING_AXES
from imagen import commands
from imagen.pipeline import SAMPLING_FIELDS, STAGE_KEYS, StageSampling

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ARCHITECTURE.md"
PRODUCT = ("common", "imagen", "drawbench", "bench", "human_eval", "reports", "imagen_bench", "selfcheck")

SPEC = b"""
[sweep]
name = "axis"

[[prompt_sets]]
name = "shapes"

[[models]]
name = "cascade"
kind = "imagen"

[grid]
guidance = [1, 3]
"""


def example_diff() -> str:
    """The ```diff block of docs/ARCHITECTURE.md's "Adding a sampling axis" section."""
    section = DOC.read_text().split("### Adding a sampling axis", 1)[1]
    return re.search(r"```diff\n(.*?)```", section, re.S).group(1)


def test_the_axes_of_the_run_folder_are_the_declared_ones():
    assert set(SAMPLING_AXES) == set(SAMPLING_FIELDS) == set(STAGE_KEYS)
    assert CELL_AXES == ("model", "prompt_set", *SAMPLING_AXES, "seed")
    assert tuple(f.name for f in dataclasses.fields(Sampling)) == SAMPLING_AXES
    assert tuple(f.name for f in dataclasses.fields(Grid)) == (*SAMPLING_AXES, "seeds")


def test_defaults_are_the_declarations_everywhere():
    """The default guidance weight and the percentile come from StageSampling alone: the grid, the
    `sample` flags and a model's grid point all read them from there."""
    declared = StageSampling()
    grid = Grid()
    assert grid.guidance == (declared.guidance,) and grid.percentile == (declared.thresholding.percentile,)
    parser = argparse.ArgumentParser()
    commands.add_parser(parser.add_subparsers(), "sample", "")
    args = parser.parse_args(["sample", "--prompt", "p"])
    assert args.guidance == declared.guidance and args.percentile == declared.thresholding.percentile
    assert commands.stage_settings(args, ["base"]) == [declared]


def test_99_5_is_written_once_in_the_product():
    """The paper's dynamic-thresholding percentile, as a number token of the product code."""
    found = []
    for package in PRODUCT:
        for path in (REPO / package).rglob("*.py"):
            for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
                if tok.type == tokenize.NUMBER and tok.string == "99.5":
                    found.append(f"{path.relative_to(REPO)}:{tok.start[0]}")
    assert len(found) == 1, found


def test_adding_an_axis_touches_three_places(tmp_path):
    diff = example_diff()
    hunks = re.findall(r"^@@ ", diff, re.M)
    files = re.findall(r"^\+\+\+ b/(\S+)", diff, re.M)
    assert len(hunks) <= 3, f"adding a sampling axis takes {len(hunks)} places (the measure: <= 3)"
    assert files == ["common/runs.py", "imagen/pipeline.py"]

    # the diff applies to today's tree (a copy); then every consumer sees the new axis
    for package in ("common", "imagen", "drawbench", "bench"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    (tmp_path / "axis.diff").write_text(diff)
    applied = subprocess.run(["git", "apply", "axis.diff"], cwd=tmp_path, capture_output=True, text=True)
    assert applied.returncode == 0, (
        f"the example in {DOC.name} no longer applies to the tree; regenerate it: {applied.stderr}"
    )
    before = {c.name: c.cell_id for c in expand_cells(parse_spec(SPEC), {"cascade": (*SAMPLING_AXES, "seed")})}
    check = subprocess.run(
        [sys.executable, "-c", AFTER, SPEC.decode(), json.dumps(before)], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith("ok"), check.stdout


# run in the patched copy: the new axis (noise_scale, default 1.0, bounds [0.5, 2]) reaches each consumer
AFTER = textwrap.dedent(
    """
    import argparse, dataclasses, json, sys
    from pathlib import Path
    from types import SimpleNamespace

    import imagen.pipeline as pipeline
    assert Path(pipeline.__file__).resolve().is_relative_to(Path.cwd().resolve()), pipeline.__file__

    from bench.models import Sampling
    from bench.models.imagen_model import ImagenModel
    from bench.sweep.cells import expand_cells
    from bench.sweep.runner import CELL_DTYPES
    from bench.sweep.spec import parse_spec
    from common.runs import CELL_AXES
    from imagen import commands

    # the declaration: flat key, default, bounds
    assert pipeline.SAMPLING_FIELDS["noise_scale"].default == 1.0 and "noise_scale" in pipeline.STAGE_KEYS
    for bad in (0.1, float("nan")):
        try:
            pipeline.StageSampling(noise_scale=bad)
            raise SystemExit(f"noise_scale={bad} was accepted")
        except ValueError:
            pass

    # the `sample` command: a flag, its per-stage override and its bounds
    parser = argparse.ArgumentParser()
    commands.add_parser(parser.add_subparsers(), "sample", "")
    args = parser.parse_args(["sample", "--prompt", "p", "--noise-scale", "0.8", "--set", "sr.noise_scale=1.5"])
    assert [s.noise_scale for s in commands.stage_settings(args, ["base", "sr"])] == [0.8, 1.5]
    try:
        commands.stage_settings(parser.parse_args(["sample", "--prompt", "p", "--noise-scale", "9"]), ["base"])
        raise SystemExit("--noise-scale 9 was accepted")
    except ValueError as e:
        assert "noise_scale must be in [0.5, 2]" in str(e), e

    # the sweep grid: key, type, default and bounds
    spec = sys.argv[1].encode()
    grid = parse_spec(spec).grid
    assert grid.noise_scale == (1.0,), grid
    grid = parse_spec(spec + b"noise_scale = [0.8, 1]").grid
    assert grid.noise_scale == (0.8, 1.0), grid
    for bad, message in ((b"[0.1]", "grid.noise_scale = 0.1: noise_scale must be in [0.5, 2]"),
                         (b'["x"]', "grid.noise_scale must hold float values")):
        try:
            parse_spec(spec + b"noise_scale = " + bad)
            raise SystemExit(f"grid noise_scale {bad} was accepted")
        except ValueError as e:
            assert message in str(e), e

    # cells: names and ids; a cell at the default keeps the id it had before the axis existed
    axes = tuple(f.name for f in dataclasses.fields(Sampling)) + ("seed",)
    assert "noise_scale" in axes
    cells = expand_cells(parse_spec(spec + b"noise_scale = [0.8, 1]"), {"cascade": axes})
    before = json.loads(sys.argv[2])
    at_default = [c for c in cells if c.sampling.noise_scale == 1.0]
    assert {c.name: c.cell_id for c in at_default} == before, (at_default, before)
    scaled = [c for c in cells if c.sampling.noise_scale == 0.8]
    assert len(scaled) == len(before) and all(c.name.endswith("noise_scale0.8_seed0") for c in scaled), scaled

    # the run folder: a cells.parquet column (nullable float) and a report axis
    assert CELL_DTYPES["noise_scale"] == "Float64" and "noise_scale" in CELL_AXES

    # the model bridge: a grid point, then a stage's fixed override, to per-stage settings
    model = SimpleNamespace(name="m", stage_names=["base", "sr"], config=SimpleNamespace(stages={"sr": {"noise_scale": 1.5}}))
    point = Sampling(**{**{k: f.default for k, f in pipeline.SAMPLING_FIELDS.items()}, "noise_scale": 0.8})
    assert [s.noise_scale for s in ImagenModel.stage_sampling(model, point)] == [0.8, 1.5]
    print("ok")
    """
)


def test_cell_ids_of_the_first_axes_are_what_they_were():
    """The first six axes are always hashed (bench.sweep.cells.FIRST_AXES): pinned ids of today's grid."""
    cells = expand_cells(parse_spec(SPEC), {"cascade": (*SAMPLING_AXES, "seed")})
    assert CELL_DTYPES == {
        "steps": "Int64",
        "guidance": "Float64",
        "percentile": "Float64",
        "aug_level": "Float64",
        "seed": "Int64",
    }
    assert [c.cell_id for c in cells] == [  # as the code before Sampling and Grid were generated made them
        "cascade_shapes_ddpm32_g1_dynamic99.5_aug0_seed0-070df1ba43",
        "cascade_shapes_ddpm32_g3_dynamic99.5_aug0_seed0-23273ab2b6",
    ]


def test_a_models_stage_overrides_are_checked_once_by_the_pipeline_and_named_by_model():
    """The spec's per-stage overrides ([models.NAME.stages.STAGE]) are checked by
    imagen.pipeline.stage_samplings alone (stage names, keys, bounds); the model only names itself."""
    import pytest

    from bench.models.imagen_model import ImagenModel

    point = Sampling(**{k: f.default for k, f in SAMPLING_FIELDS.items()})
    for stages, message in (
        ({"sr": {"stepz": 4}}, "sampling keys ['stepz'] unknown or missing; the keys are " + ", ".join(STAGE_KEYS)),
        ({"sr512": {"steps": 4}}, "sampling settings for unknown stages ['sr512']; stages: base, sr"),
        ({"sr": {"steps": 0}}, "steps"),
    ):
        model = type(
            "M", (), {"name": "m", "stage_names": ["base", "sr"], "config": type("C", (), {"stages": stages})}
        )
        with pytest.raises(ValueError, match=r"^model 'm': ") as e:
            ImagenModel.stage_sampling(model, point)
        assert message in str(e.value) and "\n" not in str(e.value)
