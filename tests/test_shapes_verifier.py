"""The shapes verifier against ground truth: renders at 64 and 256, degraded renders, wrong captions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.diagnostics.order_check import swapped
from drawbench.shapes.dataset import ShapesDataset
from drawbench.shapes.detect import detect
from drawbench.shapes.measure import measure_size
from drawbench.shapes.render import render_scene
from drawbench.shapes.scene import Scene
from drawbench.shapes.verify import accuracy, relation_direction, verify
from imagen_bench.cli import main


@pytest.mark.parametrize(
    "size,n",
    [
        (64, 200),
        (256, 40),  # 256^2 detection is ~10x the work of 64^2
        pytest.param(256, 200, marks=pytest.mark.slow),
    ],
)
def test_verifier_agrees_and_rejects_wrong_captions(size, n):
    r = measure_size(n, size, seed=1)
    for condition, floor in (("clean", 0.99), ("degraded", 0.95)):
        overall = r[condition]["agreement"]["overall"]
        assert overall["n_prompts"] == n and overall["prompt_accuracy"] >= floor, (condition, r[condition])
        fa = r[condition]["false_accept"]
        assert fa["overall"]["n"] >= 3 * n  # >= 3 applicable perturbations per caption
        assert fa["overall"]["false_accept_rate"] <= 0.02, fa
        assert {"other_scene", "colour", "shape", "count", "relation", "size"} <= set(fa)


def test_detections_match_scene_geometry():
    scene = Scene.from_json(
        json.dumps(
            {
                "background": "gray",
                "objects": [
                    {"shape": "triangle", "color": "orange", "size": "small", "x": 0.2, "y": 0.3},
                    {"shape": "circle", "color": "purple", "size": "large", "x": 0.7, "y": 0.7},
                ],
            }
        )
    )
    background, objects = detect(render_scene(scene, 128))
    assert background == "gray"
    tri, circ = objects  # sorted by y
    assert (tri.color, tri.shape, tri.size) == ("orange", "triangle", "small")
    assert (circ.color, circ.shape, circ.size) == ("purple", "circle", "large")
    assert abs(circ.x - 0.7) < 0.01 and abs(circ.y - 0.7) < 0.01  # circle centroid = centre
    assert abs(tri.x - 0.2) < 0.01 and abs(tri.y - (0.3 + 0.19 / 6)) < 0.01  # triangle centroid 2/3 down
    assert abs(circ.fill - np.pi / 4) < 0.02 and abs(circ.extent - 0.31) < 0.01


def test_relation_direction_separates_swapped_from_missing():
    """Positional renders are drawn the right way; the same image read against the caption with its
    two objects swapped is "reversed"; a caption naming an absent object is "missing"."""
    ds = ShapesDataset("test", 64)
    items = [ds[i] for i in range(2, 42, 4)]  # item i is CATEGORIES[i % 4]: 2 = Positional
    for image, caption in items:
        assert relation_direction(verify(image, caption)) == "right-way", caption
        assert relation_direction(verify(image, swapped(caption))) == "reversed", caption
    image, caption = ds[2]
    other = next(c for c in ("red", "orange", "yellow") if c not in caption)
    absent = caption.replace(caption.split()[1], other, 1)  # the first object in a colour not in the image
    assert relation_direction(verify(image, absent)) == "missing"
    assert relation_direction(verify(*ds[0])) is None  # Colors: no relation


def test_verification_claims_and_accuracy_table():
    ds = ShapesDataset("test", 64)
    image, caption = ds[1]  # Counting
    v = verify(np.asarray(image), caption)
    assert v.correct and v.category == "Counting" and v.claims[-1] == ("nothing else in the image", True)
    wrong = verify(
        image,
        caption.replace(caption.split()[0], "four" if caption.split()[0] != "four" else "two", 1)
        .replace("triangle ", "triangles ")
        .replace("circle ", "circles ")
        .replace("square ", "squares "),
    )
    assert not wrong.correct
    table = accuracy([v, wrong])
    assert table["Counting"]["n_prompts"] == 2 and table["Counting"]["prompt_accuracy"] == 0.5
    assert table["Colors"]["prompt_accuracy"] is None
    with pytest.raises(ValueError, match="at least 32x32"):
        verify(np.zeros((16, 16, 3), np.uint8), caption)
    with pytest.raises(ValueError, match="shapes grammar"):
        verify(image, "a photo of a cat")


def test_cli_verifier_accuracy_writes_provenance(tmp_path, capsys):
    out = tmp_path / "va.json"
    assert main(["shapes", "verifier-accuracy", "--n", "12", "--sizes", "48", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["made_by"]["config"]["n"] == 12 and data["made_by"]["package_version"]
    assert data["results"]["48"]["clean"]["agreement"]["overall"]["n_prompts"] == 12
    assert main(["shapes", "verifier-accuracy", "--n", "12", "--sizes", "48", "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_repeated_phrase_means_two_objects():
    scene = Scene.from_json(
        json.dumps(
            {
                "background": "white",
                "objects": [
                    {"shape": "circle", "color": "red", "size": "small", "x": 0.2, "y": 0.5},
                    {"shape": "square", "color": "blue", "size": "large", "x": 0.7, "y": 0.5},
                ],
            }
        )
    )
    image = render_scene(scene, 64)
    assert verify(image, "a red circle and a blue square").correct
    duplicated = verify(image, "a blue square and a blue square")
    assert not duplicated.correct and duplicated.claims[-1] == ("nothing else in the image", False)
