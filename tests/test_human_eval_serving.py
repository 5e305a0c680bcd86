"""What a client receives carries no sign of a control (issue 30): every study image written by one
encoder (same JPEG tables, no metadata), served as a data: URL with fresh padding to one length
(no content-addressed /media/ URL, no two renders alike). The browser-level proof is the detector
trial (selfcheck/trials/detect_controls.py, tests/test_trials_detect_controls.py)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from human_eval_fixtures import coco_study, sbs_study
from PIL import Image

from human_eval.serving import Encoding, pad, padded_length, served_url


def _decode(url: str) -> bytes:
    head, body = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return base64.b64decode(body)


def test_every_image_one_encoder_and_every_serve_one_length(tmp_path):
    study = sbs_study(tmp_path / "s", prompts="drawbench:Colors", raters=2, batch_size=10, control_share=0.3)
    meta = json.loads((study.root / "study.json").read_text())
    assert meta["serving"]["encoding"] == {"quality": 90, "subsampling": "4:2:0"}
    tables, degraded = set(), 0
    for info in meta["images"].values():
        with Image.open(study.root / "images" / info["file"]) as im:
            assert (
                im.format == "JPEG"
                and "exif" not in im.info
                and "icc_profile" not in im.info
                and "progressive" not in im.info
            )
            tables.add(json.dumps({k: list(v) for k, v in im.quantization.items()}))
        degraded += info["degraded"]
    assert degraded and len(tables) == 1  # originals and degraded copies share one quantization table
    urls = []
    for _iid, info in meta["images"].items():
        raw = (study.root / "images" / info["file"]).read_bytes()
        for _ in range(2):
            urls.append(served_url(raw, study.served_bytes))
            body = _decode(urls[-1])
            assert len(body) == study.served_bytes
            with Image.open(io.BytesIO(body)) as a, Image.open(io.BytesIO(raw)) as b:
                assert np.array_equal(np.asarray(a), np.asarray(b))  # the padding changes bytes, never pixels
    assert len(set(urls)) == len(urls) and len({len(u) for u in urls}) == 1


def test_png_sources_are_served_as_jpeg(tmp_path):
    study = coco_study(tmp_path, "coco_realism")
    assert all(f.endswith(".jpg") for f in study.images.values()) and study.served_bytes


@pytest.mark.parametrize("size", [100, 65_000, 65_537, 70_001, 200_000])
def test_padding_reaches_the_exact_length_at_segment_limits(size):
    jpeg = b"\xff\xd8" + bytes(size - 4) + b"\xff\xd9"
    for length in (padded_length(size), padded_length(size) + 65_533 + 1, padded_length(size) + 3):
        out = pad(jpeg, length)
        assert len(out) == length and out.endswith(jpeg[2:])


def test_bad_serving_input_is_refused():
    with pytest.raises(ValueError, match="not a JPEG"):
        pad(b"\x89PNG....", 1000)
    with pytest.raises(ValueError, match="does not fit"):
        pad(b"\xff\xd8" + bytes(990) + b"\xff\xd9", 1000)
    with pytest.raises(ValueError, match=r"quality must be in \[50, 95\]"):
        Encoding(quality=100)
