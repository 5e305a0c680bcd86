"""Shapes-verifier metric vs drawbench.shapes.accuracy on the same images: ground-truth renders
(correct captions) plus renders scored against another item's caption (mostly wrong)."""

from __future__ import annotations

import pytest

from bench.metrics import ScoredImage, build_metric
from common.runs import PromptRef

shapes = pytest.importorskip("drawbench.shapes", reason="drawbench.shapes (the shapes world) is not importable")
if not hasattr(shapes, "verify") or not hasattr(shapes, "accuracy"):
    pytest.skip("drawbench.shapes does not expose verify() and accuracy() yet", allow_module_level=True)

from drawbench.shapes.dataset import split_item  # noqa: E402
from drawbench.shapes.grammar import PAIR_GROUPS, format_caption, pair_group, parse_caption  # noqa: E402
from drawbench.shapes.render import render_scene  # noqa: E402

N = 8  # two items per category (split_item cycles through the 4 categories)


@pytest.fixture(scope="module")
def items():
    out = []
    for i in range(N):
        scene, caption = split_item("test", i)
        out.append((__import__("numpy").asarray(render_scene(scene, 256)), format_caption(caption)))
    return out


def test_matches_drawbench_accuracy(items):
    # cell "true": each render with its own caption; cell "swapped": with the next item's caption
    true = [ScoredImage("true", PromptRef("shapes", str(i), "x", cap, 0), im) for i, (im, cap) in enumerate(items)]
    swapped = [
        ScoredImage("swapped", PromptRef("shapes", str(i), "x", items[(i + 1) % N][1], 0), im)
        for i, (im, _) in enumerate(items)
    ]
    m = build_metric("shapes_verifier")
    per_image = m.update(true + swapped)
    got = {(r.cell_id, r.metric): r for r in m.compute()}
    for cell, imgs in (("true", true), ("swapped", swapped)):
        ref = shapes.accuracy([shapes.verify(s.image, s.ref.prompt) for s in imgs])
        assert got[(cell, "shapes_accuracy")].value == pytest.approx(ref["overall"]["prompt_accuracy"])
        assert got[(cell, "shapes_claim_accuracy")].value == pytest.approx(ref["overall"]["claim_accuracy"])
        assert got[(cell, "shapes_accuracy")].n == N
        for cat in shapes.CATEGORIES:
            assert got[(cell, f"shapes_accuracy/{cat}")].value == pytest.approx(ref[cat]["prompt_accuracy"]), (
                cell,
                cat,
            )
            assert got[(cell, f"shapes_accuracy/{cat}")].n == ref[cat]["n_prompts"]
        groups = {g: [s for s in imgs if pair_group(parse_caption(s.ref.prompt)) == g] for g in PAIR_GROUPS}
        assert len(groups["held-out"]) and len(groups["seen"])  # both present among the 8 test prompts
        for g, sub in groups.items():
            ref = shapes.accuracy([shapes.verify(s.image, s.ref.prompt) for s in sub])["overall"]
            assert got[(cell, f"shapes_accuracy/{g}")].value == pytest.approx(ref["prompt_accuracy"]), (cell, g)
            assert got[(cell, f"shapes_claim_accuracy/{g}")].n == len(sub)
    assert got[("true", "shapes_accuracy")].value >= 0.75  # the verifier accepts most ground-truth renders
    assert got[("swapped", "shapes_accuracy")].value < got[("true", "shapes_accuracy")].value
    assert set(per_image[0]) == {"shapes_correct", "shapes_claim_accuracy"}


def test_non_shapes_prompt_gets_no_value(items):
    m = build_metric("shapes_verifier", {"per_category": False})
    im = items[0][0]
    assert m.update([ScoredImage("c", PromptRef("drawbench", "1", "Colors", "A red colored car.", 0), im)]) == [{}]
    assert m.compute() == []
    with pytest.raises(ValueError, match="allowed: per_category"):
        build_metric("shapes_verifier", {"per_categry": False})
