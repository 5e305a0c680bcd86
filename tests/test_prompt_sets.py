"""Prompt-set registry and COCO captions: checksum, no-people filter, seeded sampling, JSON input."""
from __future__ import annotations

import json

import pytest

from drawbench.coco import PEOPLE_WORDS, load_coco_captions, mentions_people
from drawbench.sets import PROMPT_SETS, load_prompt_set


def test_registry_rejects_unknown_names_and_options():
    assert set(PROMPT_SETS) == {"drawbench", "coco", "shapes"}
    with pytest.raises(ValueError, match="unknown prompt set 'parti'; choose one of drawbench, coco, shapes"):
        load_prompt_set("parti")
    with pytest.raises(ValueError, match=r"unknown options \['categorie'\]; allowed: categories, path"):
        load_prompt_set("drawbench", {"categorie": ["Text"]})


def test_drawbench_set_has_string_ids():
    df = load_prompt_set("drawbench", {"categories": ["Text", "Rare Words"]})
    assert list(df.columns) == ["id", "category", "prompt"]
    assert len(df) == 21 + 7 and df["id"].map(type).eq(str).all() and set(df.category) == {"Text", "Rare Words"}


def test_coco_shipped_captions_filter_and_sampling():
    full = load_coco_captions()
    assert len(full) == 30000 and full["id"].is_unique
    no_people = load_coco_captions(no_people=True)
    assert 10000 < len(no_people) < 25000  # a sizeable share of COCO captions mention people
    assert not no_people.prompt.map(mentions_people).any()
    assert set(no_people.category) == {"coco-no-people"}
    a = load_prompt_set("coco", {"n": 50, "seed": 3, "no_people": True})
    b = load_prompt_set("coco", {"n": 50, "seed": 3, "no_people": True})
    c = load_prompt_set("coco", {"n": 50, "seed": 4, "no_people": True})
    assert a.equals(b) and not a.equals(c) and len(a) == 50
    assert set(a.id) <= set(no_people.id)
    with pytest.raises(ValueError, match="n=20000 but 1763. captions are available after the no-people filter"):
        load_coco_captions(n=20000, no_people=True)


def test_people_word_list_is_whole_word():
    assert mentions_people("A man riding a horse.") and mentions_people("Two SKIERS on a slope")
    assert not mentions_people("A mango on a manhole cover.")  # 'man' inside other words is not a person
    assert {"person", "people", "woman", "child"} <= PEOPLE_WORDS


def test_coco_official_json_first_caption_per_image(tmp_path):
    f = tmp_path / "captions_val2014.json"
    f.write_text(json.dumps({"annotations": [
        {"image_id": 42, "id": 7, "caption": "A dog on a couch. "},
        {"image_id": 42, "id": 3, "caption": "A brown dog sleeping."},
        {"image_id": 9, "id": 5, "caption": "A woman with an umbrella."},
    ]}))
    df = load_coco_captions(path=f)
    assert df.to_dict("records") == [{"id": "9", "category": "coco", "prompt": "A woman with an umbrella."},
                                     {"id": "42", "category": "coco", "prompt": "A brown dog sleeping."}]
    assert list(load_coco_captions(path=f, no_people=True).id) == ["42"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a COCO captions JSON"):
        load_coco_captions(path=bad)


def test_shapes_set_comes_from_the_shapes_world():
    df = load_prompt_set("shapes", {"n_per_category": 2})
    assert list(df.columns) == ["id", "category", "prompt"] and len(df) >= 2 and df["id"].is_unique
