"""COCO FID end to end on a COCO folder as downloaded (official names and layout), made in the test:
captions sampled from the captions JSON, images generated, FID against the reference images
centre-cropped and resized to the evaluated resolution before the Inception, all recorded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweep_fixtures import make_coco, make_tiny_checkpoint

from bench.sweep.runner import run_sweep
from bench.sweep.spec import load_spec
from common.folder_manifest import write_manifest
from common.imagestore import read_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = Path(__file__).parents[1] / "bench" / "specs" / "coco_fid30k.toml"


def test_shipped_fid30k_spec_states_the_protocol():
    spec, _ = load_spec(SPEC)
    (fid,) = spec.metrics
    assert fid.options == {"reference": "coco:/data/coco", "crop": "center", "size": 256}
    assert spec.prompt_sets[0].options["n"] == 30000 and spec.prompt_sets[0].options["seed"] == 0


def test_coco_fid_end_to_end_on_official_names(tmp_path):
    coco = make_coco(tmp_path / "coco")
    text = SPEC.read_text().replace("/data/coco", str(coco)).replace("n = 30000", "n = 6").replace("size = 256", "size = 32")
    text = text.replace('# checkpoint = "path/to/a/cascade"', f'checkpoint = "{make_tiny_checkpoint(tmp_path / "ckpt")}"\nprecision = "fp32"')
    (tmp_path / "spec.toml").write_text(text.replace('[grid]\nguidance = [3.0]', '[grid]\nsteps = [2]\nguidance = [3.0]'))
    run_sweep(tmp_path / "spec.toml", tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    captions = json.loads((coco / "annotations" / "captions_val2014.json").read_text())
    ids = {str(a["image_id"]) for a in captions["annotations"]}
    assert len(m) == 6 and set(m.prompt_id) <= ids and m.prompt.str.endswith("caption 0").all()  # first caption per image
    fid = pd.read_parquet(tmp_path / "run" / "metrics_cell.parquet").set_index("metric").loc["fid"]
    details = json.loads(fid.details)
    assert np.isfinite(fid.value) and fid.n == 6
    assert details["reference"] == f"coco:{coco}" and details["reference_n"] == 8
    assert details["reference_crop"] == "center" and details["reference_size"] == 32 and details["resize"] == "pil_bicubic"


def test_reference_crop_is_the_centred_square_then_the_size():
    from bench.metrics.preprocess import to_eval_resolution

    im = np.zeros((40, 100, 3), np.uint8)
    im[:, 30:70] = 255  # the centred 40 x 40 square is all white
    out = to_eval_resolution(im, "center", 20)
    assert out.shape == (20, 20, 3) and out.min() == 255
    assert to_eval_resolution(im, "none", None).shape == (40, 100, 3)


def test_image_folders_with_official_coco_names(tmp_path):
    coco = make_coco(tmp_path / "coco", n=3)
    prompts = pd.DataFrame({"id": ["100", "137", "174"], "prompt": ["a", "b", "c"], "category": ["coco"] * 3})
    write_manifest(coco / "val2014", "coco", dict(zip(prompts["id"], prompts["prompt"])))
    records = read_folder(coco / "val2014", prompts, prompt_set="coco")
    assert sorted(r.ref.prompt_id for r in records) == ["100", "137", "174"] and {r.ref.sample for r in records} == {0}
