"""End-to-end sweeps on a tiny random cascade: run folder contents, a finished sweep's rerun does
no work, resume refuses another spec, a torn run finishes identically, the folder model on real
Stable Diffusion images."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest
from sweep_fixtures import Brightness, build_test_metric, make_tiny_checkpoint, tiny_spec

from bench.sweep.runner import run_sweep
from bench.sweep.store import MANIFEST_COLUMNS
from common import allocator, blas
from common.imagestore import read_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: exact float order, no oversubscription


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def finished(checkpoint, tmp_path_factory):
    """A finished 2 x 2 guidance x thresholding sweep: 4 cells x 7 prompts x 1 sample."""
    d = tmp_path_factory.mktemp("sweep")
    (d / "spec.toml").write_text(tiny_spec(checkpoint, samples=1))
    first = run_sweep(
        d / "spec.toml", d / "run", cache_dir=d / "cache", metric_factory=build_test_metric, progress=False
    )
    return d, first


def test_run_folder_follows_contract_1(finished):
    d, first = finished
    run = d / "run"
    assert first.images_total == first.images_generated == 4 * 7 * 1 and first.metric_pairs_computed == 4
    assert (run / "spec.toml").read_bytes() == (d / "spec.toml").read_bytes()
    info = json.loads((run / "run.json").read_text())
    assert {"package_version", "created", "spec_sha256", "machine", "torch_version", "models"} <= set(info)
    assert (
        info["machine"]["malloc"] == allocator.setting()
    )  # the malloc rule this process ran with (conftest applies it)
    assert info["machine"]["blas"] == blas.setting() and "MKL_CBWR=" in info["machine"]["blas"]  # and the BLAS rule
    assert len(info["models"]["tiny"]["stages"]) == 3 and all(
        len(s["weights_sha256"]) == 64 for s in info["models"]["tiny"]["stages"]
    )
    m = pd.read_parquet(run / "manifest.parquet")
    assert list(m.columns) == MANIFEST_COLUMNS and len(m) == 28 and m.sha256.is_unique
    assert not m.duplicated(["cell_id", "prompt_id", "sample"]).any()
    assert set(m.width) == {32} and m.path.str.match(r"images/[^/]+/drawbench-\d+-0\.png").all()
    # same image seeds in every cell (paired guidance comparison), different pixels
    by_cell = m.groupby("cell_id").seed.apply(tuple)
    assert by_cell.nunique() == 1 and m.groupby("cell_id").sha256.apply(tuple).nunique() == 4
    cells = pd.read_parquet(run / "cells.parquet")
    assert sorted(zip(cells.guidance, cells.thresholding)) == [
        (1.0, "dynamic"),
        (1.0, "static"),
        (3.0, "dynamic"),
        (3.0, "static"),
    ]
    assert cells.percentile.isna().tolist() == [t == "static" for t in cells.thresholding]
    mc = pd.read_parquet(run / "metrics_cell.parquet")
    mi = pd.read_parquet(run / "metrics_image.parquet")
    assert len(mc) == 4 and (mc.n == 7).all() and len(mi) == 28
    per_cell = mi.groupby("cell_id").value.mean()
    assert per_cell.loc[mc.cell_id].to_numpy() == pytest.approx(
        mc.value.to_numpy(), abs=1e-6
    )  # cell value = mean of its images
    summary = json.loads((run / "summary.json").read_text())
    assert summary["spec_sha256"] == info["spec_sha256"] and len(summary["cells"]) == 4
    assert all("brightness" in c["metrics"] for c in summary["cells"])
    records = read_run(run)  # the image store reads it back
    assert len(records) == 28 and all(r.path.is_file() for r in records)
    text_cache = list((d / "cache" / "text").rglob("*.safetensors"))
    assert len(text_cache) == 7  # each prompt encoded once for all 4 cells


def test_finished_sweep_rerun_does_no_work(finished):
    d, first = finished
    run = d / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.suffix == ".parquet"}
    built = Brightness.built
    again = run_sweep(d / "spec.toml", run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)
    assert again.images_generated == 0 and again.metric_pairs_computed == 0 and Brightness.built == built
    # no work: far under the first run (~2 s here for 28 images); the 1 s floor keeps a loaded machine from failing it
    assert again.seconds < max(0.1 * first.seconds, 1.0), (again.seconds, first.seconds)
    assert pd.read_parquet(run / "manifest.parquet").equals(pd.read_parquet(d / "run" / "manifest.parquet"))
    after = {p: p.read_bytes() for p in before}
    assert after[run / "manifest.parquet"] == before[run / "manifest.parquet"]
    assert pd.read_parquet(run / "metrics_cell.parquet").equals(pd.read_parquet(run / "metrics_cell.parquet"))


def test_resume_refuses_another_spec(finished, checkpoint):
    d, _ = finished
    other = d / "other.toml"
    other.write_text(tiny_spec(checkpoint, guidance=(1.0, 5.0), samples=1))
    with pytest.raises(
        ValueError, match=r"different spec.*grid\.guidance: run has \[1, 3\], new spec has \[1, 5\].*new --out"
    ):
        run_sweep(other, d / "run", cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)


@pytest.mark.parametrize(
    "option, named",
    [
        (
            'name = "kid"\noptions = { reference = "shapes:test", subset_size = 0 }',
            "subset_size must be an integer in \\[2, ",
        ),
        (
            'name = "kid"\noptions = { reference = "shapes:test", subsets = 1000000000 }',
            "subsets must be an integer in \\[1, 10,000\\]",
        ),
        ('name = "fid"\noptions = { reference = "shapes:test", blocks = 150.5 }', "blocks must be an integer"),
        (
            'name = "fid"\noptions = { reference = "shapes:test", bootstrap = 200 }',
            "'bootstrap' was removed.*blocks = 20",
        ),
        ('name = "fid"\noptions = { reference = "shapes:test", n = 0 }', "n must be an integer in \\[2, "),
        (
            'name = "fid"\noptions = { reference = "folder:/no/such/refs" }',
            "reference: folder /no/such/refs does not exist",
        ),
        (
            'name = "cmmd"\noptions = { reference = "shapes:test", weights = "/no/such/clip" }',
            "weights: folder /no/such/clip does not exist",
        ),
    ],
)
def test_a_metric_option_typo_is_refused_before_the_first_image(checkpoint, tmp_path, option, named):
    """Metrics used to be built after generation: one wrong character cost every image (issue 33)."""
    (tmp_path / "spec.toml").write_text(tiny_spec(checkpoint, samples=1) + f"\n[[metrics]]\n{option}\n")
    with pytest.raises(ValueError, match=named):
        run_sweep(
            tmp_path / "spec.toml",
            tmp_path / "run",
            cache_dir=tmp_path / "cache",
            metric_factory=build_test_metric,
            progress=False,
        )
    assert not (tmp_path / "run").exists()  # nothing written: no folder tied to the bad spec


def test_a_metric_only_change_rescores_without_regenerating(finished, tmp_path):
    """A finished run's spec with another metric: every image kept, only the new metric computed, the
    old spec kept in spec_history/; a change of the images' settings is still refused."""
    d, _ = finished
    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    images = {p: p.read_bytes() for p in (run / "images").rglob("*.png")}
    spec = tmp_path / "spec.toml"
    spec.write_text((d / "spec.toml").read_text() + '\n[[metrics]]\nname = "brightness"\nlabel = "brightness_again"\n')
    built = Brightness.built
    again = run_sweep(spec, run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)
    assert again.images_generated == 0 and again.metric_pairs_computed == 4 and Brightness.built == built + 1
    assert {p: p.read_bytes() for p in images} == images
    assert (run / "spec.toml").read_bytes() == spec.read_bytes()
    (kept,) = (run / "spec_history").iterdir()
    assert kept.read_bytes() == (d / "spec.toml").read_bytes()
    info = json.loads((run / "run.json").read_text())
    assert info["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest() and len(info["spec_history"]) == 1
    assert sorted({p.name for p in (run / "metric_cache").rglob("*.json")}) == [
        "brightness.json",
        "brightness_again.json",
    ]
    spec.write_text(spec.read_text().replace("steps = [3]", "steps = [4]"))
    with pytest.raises(ValueError, match=r"different spec.*grid\.steps"):
        run_sweep(spec, run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)


def test_torn_run_finishes_identically(finished, tmp_path):
    """What a kill leaves: images without records, a torn last record line, a missing file."""
    d, _ = finished
    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    for f in ["manifest.parquet", "metrics_cell.parquet", "summary.json"]:
        (run / f).unlink()
    shutil.rmtree(run / "metric_cache")
    shard = run / "shards" / "images-rank0.jsonl"
    lines = shard.read_text().splitlines()
    shard.write_text("\n".join(lines[:15]) + "\n" + lines[15][:25])  # records 16.. lost, one torn
    (run / json.loads(lines[5])["path"]).unlink()  # a recorded image whose file vanished
    again = run_sweep(d / "spec.toml", run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)
    assert again.images_generated == 28 - 15 + 1
    a, b = pd.read_parquet(run / "manifest.parquet"), pd.read_parquet(d / "run" / "manifest.parquet")
    assert a.equals(b)  # same rows, same order, same checksums
    assert pd.read_parquet(run / "metrics_cell.parquet").equals(pd.read_parquet(d / "run" / "metrics_cell.parquet"))


FOLDER_SPEC = """
[sweep]
name = "sd"
samples_per_prompt = {samples}

[[models]]
name = "sd-v1-4"
kind = "folder"
path = "{path}"
seed = 0

[[prompt_sets]]
name = "drawbench"
categories = ["Rare Words"]
"""


def test_folder_model_on_real_sd_images(shared_data, tmp_path):
    src = shared_data / "drawbench-sd" / "sd-v1-4"
    spec = tmp_path / "sd.toml"
    spec.write_text(FOLDER_SPEC.format(samples=1, path=src))
    r = run_sweep(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert r.images_total == 7 and len(m) == 7 and set(m.cell_id) == {m.cell_id[0]}
    assert set(m.prompt_id) == {str(i) for i in range(135, 142)} and set(m.width) == {512} and set(m.seed) == {0}
    from common.files import sha256_file

    for row in m.itertuples():  # byte copies of the source files
        assert row.sha256 == sha256_file(src / f"{int(row.prompt_id):03d}.jpg")
    spec.write_text(FOLDER_SPEC.format(samples=2, path=src))
    with pytest.raises(ValueError, match=r"7 of 14 requested images are missing from .*sd-v1-4 .*135_1, 136_1"):
        run_sweep(spec, tmp_path / "run2", cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "run2").exists()  # refused before creating anything


def test_cli_reports_bad_spec_without_traceback(tmp_path, capsys):
    from imagen_bench.cli import main

    spec = tmp_path / "bad.toml"
    spec.write_text('[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "gan"\n[[prompt_sets]]\nname = "drawbench"\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "unknown model kind 'gan'; choose one of imagen, folder, diffusers" in err and "Traceback" not in err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_resolved_precision_is_recorded_and_part_of_the_cell_identity(checkpoint, tmp_path, fake_cpu):
    """precision = "auto" resolves by the CPU: the result is in run.json and cells.parquet, it is in
    the cell ids, and a run folder made in one precision refuses to be continued in another."""
    from bench.sweep.cells import expand_cells
    from bench.sweep.spec import load_spec

    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        tiny_spec(checkpoint, guidance=(1.0,), thresholding=("static",), samples=1, metrics=False).replace(
            'precision = "fp32"', 'precision = "auto"'
        )
    )
    fake_cpu(avx512_bf16=False, amx=False)
    run_sweep(spec_file, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["models"]["tiny"]["runtime"]["precision"] == "fp32"
    assert "without AVX512-BF16/AMX" in info["machine"]["cpu_native_bf16"] and info["machine"]["cpu_capability"]
    cells = pd.read_parquet(tmp_path / "run" / "cells.parquet")
    assert json.loads(cells.model_description[0])["runtime"]["precision"] == "fp32"
    spec, _ = load_spec(spec_file)
    ids = {
        p: [
            c.cell_id
            for c in expand_cells(
                spec,
                {"tiny": ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level", "seed")},
                {"tiny": {"device": "cpu", "precision": p, "memory_format": "channels_last", "deterministic": False}},
            )
        ]
        for p in ("fp32", "bf16")
    }
    assert ids["fp32"] == cells.cell_id.tolist() and not set(ids["fp32"]) & set(ids["bf16"])
    fake_cpu(avx512_bf16=True, amx=False)  # the same folder on a CPU where auto means bf16
    with pytest.raises(
        ValueError, match=r"(?s)other model weights/settings.*runtime\.precision: run has 'fp32', now 'bf16'"
    ):
        run_sweep(spec_file, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)


def test_hand_edited_run_files_are_one_line(finished, tmp_path):
    """Shard lines [] / {} are not finished images (made again, no traceback); a run.json that is not
    a run record is refused naming the file."""
    d, _ = finished
    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    shard = run / "shards" / "images-rank0.jsonl"
    shard.write_text("[]\n{}\n" + shard.read_text() + '{"cell_id": 1}\n')
    from bench.sweep.store import RunStore

    assert len(RunStore(run).records()) == 28
    (run / "run.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"run\.json is not a run record"):
        run_sweep(d / "spec.toml", run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)
    (run / "run.json").write_text("garbage")
    with pytest.raises(ValueError, match=r"run\.json is not valid JSON"):
        run_sweep(d / "spec.toml", run, cache_dir=d / "cache", metric_factory=build_test_metric, progress=False)


def test_image_folders_refuse_two_files_for_one_image_and_fifos(tmp_path):
    import os

    from common.imagestore import read_folder

    prompts = pd.DataFrame({"id": ["3", "4"], "prompt": ["a", "b"], "category": ["c", "c"]})
    folder = tmp_path / "f"
    folder.mkdir()
    from PIL import Image

    from common.folder_manifest import write_manifest

    write_manifest(folder, "t", {"3": "a", "4": "b"})
    Image.new("RGB", (8, 8)).save(folder / "3.png")
    Image.new("RGB", (8, 8)).save(folder / "003.png")
    with pytest.raises(ValueError, match=r"003\.png and 3\.png are both prompt 3 sample 0"):
        read_folder(folder, prompts)
    (folder / "003.png").unlink()
    os.mkfifo(folder / "4.png")
    from common.imagestore import open_image

    with pytest.raises(ValueError, match="not a regular file"):
        open_image(folder / "4.png")


def test_a_sweep_larger_than_the_limit_is_refused_until_confirmed(finished, tmp_path, capsys):
    """The planned count is exact (the finished run's manifest) and a larger sweep is refused before
    anything is written; --max-images with the planned count confirms it."""
    from imagen_bench.cli import main

    d, first = finished
    made = len(pd.read_parquet(d / "run" / "manifest.parquet"))
    assert (
        main(
            [
                "sweep",
                str(d / "spec.toml"),
                "--out",
                str(tmp_path / "run"),
                "--max-images",
                str(made - 1),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"makes {made} images (4 cells x their prompts x 1 samples), over the limit of {made - 1}" in err
    assert f"confirm with --max-images {made}" in err and not (tmp_path / "run").exists()
    assert (
        main(
            [
                "sweep",
                str(d / "spec.toml"),
                "--out",
                str(d / "run"),
                "--max-images",
                str(made),
                "--no-progress",
                "--cache-dir",
                str(d / "cache"),
            ]
        )
        == 0
    )
    assert f"{made} images (0 generated now)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sweep", str(d / "spec.toml"), "--max-images", "0"])
    assert "--max-images: must be a positive integer, got '0'" in capsys.readouterr().err


def test_grid_points_are_counted_without_making_them():
    from bench.sweep.cells import count_grid_points, grid_points
    from bench.sweep.spec import Grid

    g = Grid(
        guidance=(1.0, 3.0, 5.0), thresholding=("none", "static", "dynamic"), percentile=(95.0, 99.5), seeds=(0, 1)
    )
    for axes in [("guidance", "thresholding", "seed"), ("steps", "guidance"), (), ("thresholding",)]:
        assert count_grid_points(g, axes) == len(grid_points(g, axes))
    big = Grid(
        guidance=tuple(float(i) for i in range(100)),
        aug_level=tuple(i / 100 for i in range(100)),
        seeds=tuple(range(100)),
    )
    assert count_grid_points(big, ("guidance", "aug_level", "seed")) == 10**6
