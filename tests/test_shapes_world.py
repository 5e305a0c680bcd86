"""Shapes world: determinism, caption <-> scene consistency, held-out pairs, COCO export, speed."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from drawbench.shapes import HELD_OUT, Scene, ShapesDataset, reference_images, render_scene
from drawbench.shapes import test_prompts as make_test_prompts  # alias: pytest would collect test_*
from drawbench.shapes.coco import export_coco
from drawbench.shapes.dataset import DATASET_KINDS, split_item
from drawbench.shapes.grammar import format_caption, pair_group, parse_caption
from drawbench.shapes.scene import GAP, SIZES
from drawbench.shapes.verify import relation_holds, scene_claims
from imagen.data import CocoFolder, resolve_dataset


def resolve_dataset_shapes(spec: str, size: int):
    """`--data shapes:...` as the train command resolves it (the shell hands imagen the shapes kind)."""
    return resolve_dataset(spec, size, DATASET_KINDS)


def _digest(image) -> str:
    return hashlib.sha256(np.asarray(image).tobytes()).hexdigest()


def test_same_item_same_bytes_across_instances_and_order():
    a, b = ShapesDataset("train", 64), ShapesDataset("train", 64)
    forward = [(_digest(a[i][0]), a[i][1]) for i in range(12)]
    backward = [(_digest(b[i][0]), b[i][1]) for i in reversed(range(12))][::-1]
    assert forward == backward
    assert len({d for d, _ in forward}) == 12  # items differ from each other
    assert _digest(ShapesDataset("validation", 64)[0][0]) != forward[0][0]  # splits are seeded apart


def test_render_sizes_and_pixel_colours():
    scene = Scene.from_json(
        json.dumps(
            {
                "background": "white",
                "objects": [{"shape": "square", "color": "blue", "size": "large", "x": 0.3, "y": 0.5}],
            }
        )
    )
    for size in (16, 64, 256):
        arr = np.asarray(render_scene(scene, size))
        assert arr.shape == (size, size, 3) and arr.dtype == np.uint8
        assert tuple(arr[size // 2, int(0.3 * size)]) == (40, 90, 230)  # inside the square
        assert tuple(arr[2, 2]) == (255, 255, 255)
        blue = (arr == (40, 90, 230)).all(axis=2).sum()
        # interior of a 0.31-side square: between (side - 2px)^2 and side^2 fully covered pixels
        assert (0.31 * size - 2) ** 2 <= blue <= (0.31 * size) ** 2
    with pytest.raises(ValueError, match="integer >= 8"):
        render_scene(scene, 4)


@pytest.mark.parametrize("split", ["train", "test"])
def test_caption_is_true_of_its_scene_and_round_trips(split):
    for i in range(400):
        scene, caption = split_item(split, i)
        text = format_caption(caption)
        assert parse_caption(text) == caption
        claims = scene_claims(scene, text)
        assert claims and all(ok for _, ok in claims), (text, claims)
        # geometry the verifier relies on: inside the canvas, boxes separated by >= GAP
        for k, o in enumerate(scene.objects):
            x0, y0, x1, y1 = o.box()
            assert 0 < x0 and x1 < 1 and 0 < y0 and y1 < 1
            for p in scene.objects[k + 1 :]:
                need = (SIZES[o.size] + SIZES[p.size]) / 2 + GAP - 1e-9
                assert abs(o.x - p.x) >= need or abs(o.y - p.y) >= need
        if caption.relation is not None:  # the relation holds with a 2x dominant axis
            a, b = scene.objects
            assert relation_holds(a, b, caption.relation)


def test_held_out_pairs_absent_from_train_present_in_test():
    def pairs(split, n):
        return [{(o.color, o.shape) for o in split_item(split, i)[0].objects} for i in range(n)]

    train_pairs = set().union(*pairs("train", 3000), *pairs("validation", 1000))
    assert not train_pairs & HELD_OUT
    assert len(train_pairs) == 18 - len(HELD_OUT)  # every other pair is trained on
    df = make_test_prompts(50)
    assert len(df) == 200 and list(df.columns) == ["id", "category", "prompt", "scene"]
    assert df.id.iloc[0] == "shapes-0001" and df.id.is_unique
    assert df.category.value_counts().to_dict() == {
        c: 50 for c in ("Colors", "Counting", "Positional", "Descriptions")
    }
    with_held = [any((o.color, o.shape) in HELD_OUT for o in Scene.from_json(s).objects) for s in df.scene]
    assert 0.3 <= np.mean(with_held) <= 0.8
    # pair_group reads the same split from the caption alone (the sweep metric's held-out / seen)
    assert [pair_group(parse_caption(p)) == "held-out" for p in df.prompt] == with_held
    for pair in HELD_OUT:  # each held-out pair is named in some test prompt
        assert any(f"{pair[0]} {pair[1]}" in p for p in df.prompt)
    for prompt, scene in zip(df.prompt, df.scene):
        assert all(ok for _, ok in scene_claims(Scene.from_json(scene), prompt))
    pd_again = make_test_prompts(50)
    assert pd_again.equals(df)


def test_start_gives_prompts_disjoint_from_the_first_ones():
    """start=k continues each category where n_per_category=k stopped (a confirmation set)."""
    first, later, both = make_test_prompts(3), make_test_prompts(2, start=3), make_test_prompts(5)
    for cat in ("Colors", "Counting", "Positional", "Descriptions"):
        expected = first[first.category == cat].prompt.tolist() + later[later.category == cat].prompt.tolist()
        assert both[both.category == cat].prompt.tolist() == expected
    assert not set(first.id) & set(later.id) and later.id.iloc[0] == "shapes-0013"
    with pytest.raises(ValueError, match="start >= 0"):
        make_test_prompts(2, start=-1)


def test_reference_images_are_the_test_prompt_scenes():
    df = make_test_prompts(2)
    refs = list(reference_images("test", 32, n=8))
    assert len(refs) == 8 and refs[0].shape == (32, 32, 3) and refs[0].dtype == np.uint8
    expected = {_digest(render_scene(Scene.from_json(s), 32)) for s in df.scene}
    assert {_digest(r) for r in refs} == expected


def test_unknown_names_are_rejected_with_allowed_values():
    with pytest.raises(ValueError, match="train, validation, test"):
        ShapesDataset("dev")
    with pytest.raises(ValueError, match="choose from red"):
        parse_caption("a pink circle and a red square")
    with pytest.raises(ValueError, match="shapes grammar"):
        parse_caption("a red circle near a blue square")
    with pytest.raises(IndexError):
        ShapesDataset("test", 32, length=5)[5]


def test_coco_export_round_trips_and_refuses_overwrite(tmp_path):
    out = export_coco("test", 6, tmp_path / "coco", size=32)
    coco = CocoFolder(out)
    ds = ShapesDataset("test", 32)
    assert len(coco) == 6
    for i in range(6):
        image, caption = coco[i]
        assert caption == ds[i][1] and _digest(image) == _digest(ds[i][0])
    info = json.loads((out / "captions.json").read_text())["info"]
    assert info["split"] == "test" and info["size"] == 32 and info["package_version"]
    with pytest.raises(ValueError, match="refusing to overwrite"):
        export_coco("test", 2, out, size=32)
    assert len(CocoFolder(out)) == 6  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["coco"]  # no temp folder left behind


def test_coco_export_that_fails_midway_leaves_no_folder(tmp_path, monkeypatch):
    """The export is published whole (common.files.staged_folder): an error after some images were
    written leaves neither OUT nor a staging folder, so the rerun is not refused."""
    import drawbench.shapes.coco as coco_module

    real, calls = coco_module.render_scene, []

    def render_then_fail(scene, size):
        calls.append(scene)
        if len(calls) == 3:
            raise RuntimeError("renderer crashed")
        return real(scene, size)

    monkeypatch.setattr(coco_module, "render_scene", render_then_fail)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        export_coco("test", 4, tmp_path / "coco", size=32)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert len(CocoFolder(export_coco("test", 4, tmp_path / "coco", size=32))) == 4


def test_resolve_dataset_passes_size_and_speed():
    ds = resolve_dataset_shapes("shapes:train", 64)
    assert ds[0][0].size == (64, 64) and len(ds) == 1_000_000
    big = ShapesDataset("train", 256)
    t = time.process_time()
    for i in range(200):
        big[i]
    per_item = (time.process_time() - t) / 200
    assert per_item < 0.01, f"{per_item * 1e3:.1f} ms CPU per 256x256 item"  # measured ~1 ms


def test_category_mix_weights_and_keeps_items_distinct():
    default = resolve_dataset_shapes("shapes:train", 16)
    assert [default.scene(i) for i in range(12)] == [split_item("train", i) for i in range(12)]  # old runs unchanged
    pos = resolve_dataset_shapes("shapes:train:Positional", 16)
    assert {pos.scene(i)[1].category for i in range(8)} == {"Positional"}
    mix = resolve_dataset_shapes("shapes:train:Colors,Positional,Positional", 16)
    cats = [mix.scene(i)[1].category for i in range(300)]
    assert cats.count("Positional") == 200 and cats.count("Colors") == 100
    positional = [mix.scene(i) for i in range(300) if cats[i] == "Positional"]
    assert len({format_caption(c) + s.to_json() for s, c in positional}) == 200  # the repeat draws new items
    with pytest.raises(ValueError, match="choose from Colors, Counting, Positional, Descriptions"):
        resolve_dataset_shapes("shapes:train:Colours", 16)
    with pytest.raises(ValueError, match="at least one category"):
        ShapesDataset("train", 16, categories=())
