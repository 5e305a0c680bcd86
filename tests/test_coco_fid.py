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
    text = (
        SPEC.read_text()
        .replace("/data/coco", str(coco))
        .replace("n = 30000", "n = 6")
        .replace("size = 256", "size = 32")
    )
    text = text.replace(
        '# checkpoint = "path/to/a/cascade"',
        f'checkpoint = "{make_tiny_checkpoint(tmp_path / "ckpt")}"\nprecision = "fp32"',
    )
    (tmp_path / "spec.toml").write_text(
        text.replace("[grid]\nguidance = [3.0]", "[grid]\nsteps = [2]\nguidance = [3.0]")
    )
    run_sweep(tmp_path / "spec.toml", tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    m = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    captions = json.loads((coco / "annotations" / "captions_val2014.json").read_text())
    ids = {str(a["image_id"]) for a in captions["annotations"]}
    assert (
        len(m) == 6 and set(m.prompt_id) <= ids and m.prompt.str.endswith("caption 0").all()
    )  # first caption per image
    fid = pd.read_parquet(tmp_path / "run" / "metrics_cell.parquet").set_index("metric").loc["fid"]
    details = json.loads(fid.details)
    assert np.isfinite(fid.value) and fid.n == 6
    assert details["reference"] == f"coco:{coco}" and details["reference_n"] == 8
    assert (
        details["reference_crop"] == "center"
        and details["reference_size"] == 32
        and details["resize"] == "pil_bicubic"
    )


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


def test_a_512_model_through_the_fid30k_spec_equals_its_images_brought_to_256_by_hand(tmp_path):
    """Issue 29: the generated side follows the protocol too. A folder model of 512 x 512 images (COCO
    ids, non-square photographs on the reference side) through bench/specs/coco_fid30k.toml gives the
    FID of the same images brought to 256 x 256 by hand with the documented recipe (PIL's own crop
    box, then PIL bicubic), fed to the metric as they are; the second run reads no reference image."""
    from PIL import Image

    from bench.metrics import build_metric
    from bench.metrics import reference as reference_module
    from bench.metrics.base import ScoredImage
    from common.runs import PromptRef

    coco = make_coco(tmp_path / "coco", n=6)
    captions = json.loads((coco / "annotations" / "captions_val2014.json").read_text())
    first = {}
    for a in captions["annotations"]:
        first.setdefault(str(a["image_id"]), a["caption"])
    big, by_hand = tmp_path / "model512", []
    big.mkdir()
    rng = np.random.default_rng(3)
    for pid in first:
        im = Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8))
        im.save(big / f"{pid}.png")
        by_hand.append((pid, np.asarray(im.crop((0, 0, 512, 512)).resize((256, 256), Image.BICUBIC))))
    write_manifest(big, "coco", first)
    text = (
        SPEC.read_text()
        .replace("/data/coco", str(coco))
        .replace("n = 30000", "n = 6")
        .replace('kind = "imagen"', f'kind = "folder"\npath = "{big}"')
        .replace("batch_size = 8\n", "")
        .replace(
            'options = { reference = "coco:/data/coco", crop = "center", size = 256 }'.replace(
                "/data/coco", str(coco)
            ),
            f'options = {{ reference = "coco:{coco}", crop = "center", size = 256, batch_size = 6 }}',
        )
    )
    (tmp_path / "spec.toml").write_text(text)
    run_sweep(tmp_path / "spec.toml", tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    row = pd.read_parquet(tmp_path / "run" / "metrics_cell.parquet").set_index("metric").loc["fid"]
    details = json.loads(row.details)
    assert (
        details["generated_size"] == 256 and details["generated_crop"] == "center" and details["reference_size"] == 256
    )

    def no_reads(*a, **k):
        raise AssertionError("a cached reference read an image file")

    metric = build_metric(
        "fid",
        {"reference": f"coco:{coco}", "crop": "center", "size": 256, "batch_size": 6},
        cache_dir=tmp_path / "cache",
    )
    with pytest.MonkeyPatch.context() as mp:  # the second run of the reference side: names, sizes and times only
        mp.setattr(reference_module, "load_rgb", no_reads)
        mp.setattr(reference_module, "sha256_file", no_reads)
        metric.update([ScoredImage("c", PromptRef("coco", pid, "coco", first[pid], 0), im) for pid, im in by_hand])
        (by_hand_fid,) = metric.compute()
    assert row.value == pytest.approx(by_hand_fid.value, rel=1e-6)


def test_verify_rehashes_the_reference_and_catches_changed_bytes(tmp_path):
    import os

    from test_metrics_fid import extractor  # the tests' tiny feature network

    from bench.metrics.reference import compute_reference

    coco = make_coco(tmp_path / "coco", n=4)
    ext = extractor()
    first = compute_reference(f"coco:{coco}", ext, cache_dir=tmp_path / "cache", crop="center", size=32)
    assert (
        compute_reference(f"coco:{coco}", ext, cache_dir=tmp_path / "cache", crop="center", size=32, verify=True).n
        == first.n
    )
    photo = sorted((coco / "val2014").iterdir())[0]
    st = photo.stat()
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF  # same size, same time, other bytes
    photo.write_bytes(bytes(data))
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (
        compute_reference(f"coco:{coco}", ext, cache_dir=tmp_path / "cache", crop="center", size=32).n == first.n
    )  # stat-keyed: cached
    with pytest.raises(ValueError, match="bytes differ from those the cached statistics"):
        compute_reference(f"coco:{coco}", ext, cache_dir=tmp_path / "cache", crop="center", size=32, verify=True)


@pytest.mark.parametrize("shape", [(48, 80), (80, 48), (81, 50), (64, 64)])
def test_the_crop_step_equals_pils_own_crop_box_then_resize(shape):
    """The recipe done independently: PIL's Image.crop with the largest centred square's box (margins
    rounded down: the documented rule; torchvision's CenterCrop rounds half to even, one pixel apart
    on odd margins), then PIL bicubic."""
    from PIL import Image

    from bench.metrics.preprocess import to_eval_resolution

    h, w = shape
    im = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    side = min(h, w)
    left, top = (w - side) // 2, (h - side) // 2
    want = np.asarray(Image.fromarray(im).crop((left, top, left + side, top + side)).resize((32, 32), Image.BICUBIC))
    assert np.array_equal(to_eval_resolution(im, "center", 32), want)
