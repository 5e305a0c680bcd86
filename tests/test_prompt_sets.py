"""Prompt-set registry, COCO captions (checksum, no-people filter, seeded sampling, JSON input) and the
shipped PartiPrompts and GenEval suites (counts, checksum, selection, ids, use from a sweep spec)."""

from __future__ import annotations

import json
import shutil

import pytest

from drawbench import suites
from drawbench.coco import PEOPLE_WORDS, load_coco_captions, mentions_people
from drawbench.prompts import ChecksumError
from drawbench.sets import PROMPT_SETS, load_prompt_set, options_from_text


def test_registry_rejects_unknown_names_and_options():
    assert set(PROMPT_SETS) == {"drawbench", "coco", "shapes", "parti", "geneval"}
    with pytest.raises(
        ValueError, match="unknown prompt set 'laion'; choose one of drawbench, coco, shapes, parti, geneval"
    ):
        load_prompt_set("laion")
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
    f.write_text(
        json.dumps(
            {
                "annotations": [
                    {"image_id": 42, "id": 7, "caption": "A dog on a couch. "},
                    {"image_id": 42, "id": 3, "caption": "A brown dog sleeping."},
                    {"image_id": 9, "id": 5, "caption": "A woman with an umbrella."},
                ]
            }
        )
    )
    df = load_coco_captions(path=f)
    assert df.to_dict("records") == [
        {"id": "9", "category": "coco", "prompt": "A woman with an umbrella."},
        {"id": "42", "category": "coco", "prompt": "A brown dog sleeping."},
    ]
    assert list(load_coco_captions(path=f, no_people=True).id) == ["42"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a COCO captions JSON"):
        load_coco_captions(path=bad)


def test_shapes_set_comes_from_the_shapes_world():
    df = load_prompt_set("shapes", {"n_per_category": 2})
    assert list(df.columns) == ["id", "category", "prompt"] and len(df) >= 2 and df["id"].is_unique


PARTI_CATEGORIES = {
    "Animals": 314,
    "Artifacts": 287,
    "World Knowledge": 214,
    "People": 177,
    "Outdoor Scenes": 131,
    "Illustrations": 124,
    "Vehicles": 104,
    "Food & Beverage": 74,
    "Arts": 66,
    "Abstract": 51,
    "Produce & Plants": 50,
    "Indoor Scenes": 40,
}
PARTI_CHALLENGES = {
    "Fine-grained Detail": 312,
    "Basic": 272,
    "Simple Detail": 232,
    "Style & Format": 206,
    "Imagination": 150,
    "Complex": 113,
    "Writing & Symbols": 91,
    "Quantity": 90,
    "Perspective": 70,
    "Linguistic Structures": 61,
    "Properties & Positioning": 35,
}
GENEVAL_TAGS = {
    "single_object": 80,
    "two_object": 99,
    "counting": 80,
    "colors": 94,
    "position": 100,
    "color_attr": 100,
}


def test_parti_counts_ids_and_metadata():
    df = load_prompt_set("parti")
    assert list(df.columns) == ["id", "category", "prompt"] and len(df) == 1632
    assert list(df.id) == [str(i) for i in range(1, 1633)]  # 1-based TSV row: stable ids
    assert df.category.value_counts().to_dict() == PARTI_CATEGORIES
    assert set(suites.PARTI_CATEGORIES) == set(PARTI_CATEGORIES) and set(suites.PARTI_CHALLENGES) == set(
        PARTI_CHALLENGES
    )
    meta = suites.parti_metadata()
    assert meta.challenge.value_counts().to_dict() == PARTI_CHALLENGES and meta[["id", "category", "prompt"]].equals(
        df
    )
    assert meta.loc[0].to_dict() == {
        "id": "1",
        "category": "Abstract",
        "prompt": "bond",
        "challenge": "Basic",
        "note": "Biology-inspired concepts with multiple meanings",
    }
    assert meta.prompt.str.startswith('"G I G G L E" painted').sum() == 1  # plain TSV: quotes are part of the prompt
    assert (df.prompt == df.prompt.str.strip()).all() and (df.prompt != "").all()


def test_parti_selection_by_category_and_challenge():
    quantity = load_prompt_set("parti", {"challenges": ["Quantity"]})
    assert len(quantity) == 90 and set(quantity.id) <= set(load_prompt_set("parti").id)
    two = load_prompt_set("parti", options_from_text("parti", "categories=Animals|Vehicles"))
    assert len(two) == 314 + 104 and set(two.category) == {"Animals", "Vehicles"}
    both = suites.load_parti(categories=["Animals"], challenges=["Quantity", "Basic"])
    meta = suites.parti_metadata().set_index("id")
    assert len(both) == 11 + 42 and set(meta.loc[both.id, "challenge"]) == {"Quantity", "Basic"}
    with pytest.raises(ValueError, match="no PartiPrompts are in categories"):
        suites.load_parti(categories=["Abstract"], challenges=["Complex"])


def test_geneval_counts_ids_tags_and_metadata():
    df = load_prompt_set("geneval")
    assert len(df) == 553 and list(df.id) == [str(i) for i in range(1, 554)]
    assert df.category.value_counts().to_dict() == GENEVAL_TAGS and set(suites.GENEVAL_TAGS) == set(GENEVAL_TAGS)
    counting = load_prompt_set("geneval", {"tags": ["counting"]})
    assert len(counting) == 80 and set(counting.category) == {"counting"}
    assert len(load_prompt_set("geneval", options_from_text("geneval", "tags=colors|position"))) == 194
    meta = suites.geneval_metadata()
    assert (
        list(meta.columns) == ["id", "category", "prompt", "tag", "include", "exclude"]
        and (meta.category == meta.tag).all()
    )
    row = meta.set_index("id").loc[counting.id.iloc[0]]
    assert (
        json.loads(row.include)[0]["count"] >= 2
        and json.loads(row.exclude)[0]["count"] == json.loads(row.include)[0]["count"] + 1
    )
    assert (meta.exclude != "[]").sum() == 80 and json.loads(meta.include.iloc[0]) == [{"class": "bench", "count": 1}]


@pytest.mark.parametrize(
    "name, options, message",
    [
        (
            "parti",
            {"categories": ["Animal"]},
            r"unknown Parti categories \['Animal'\]; choose from Abstract, Animals, Artifacts, .*World Knowledge",
        ),
        (
            "parti",
            {"challenges": ["Counting"]},
            r"unknown Parti challenges \['Counting'\]; choose from Basic, Complex, .*Writing & Symbols",
        ),
        (
            "geneval",
            {"tags": ["count"]},
            r"unknown GenEval tags \['count'\]; choose from single_object, two_object, counting, colors, position, color_attr",
        ),
        ("geneval", {"tag": ["counting"]}, r"unknown options \['tag'\]; allowed: tags"),
    ],
)
def test_suites_refuse_unknown_names_naming_the_allowed(name, options, message):
    with pytest.raises(ValueError, match=message):
        load_prompt_set(name, options)


@pytest.mark.parametrize("file", [suites.PARTI_FILE, suites.GENEVAL_FILE])
def test_suites_refuse_a_changed_file(tmp_path, monkeypatch, file):
    shutil.copy(suites.prompts.DATA / file, tmp_path / file)
    with open(tmp_path / file, "a", encoding="utf-8") as f:
        f.write(" ")
    monkeypatch.setattr(suites.prompts, "DATA", tmp_path)
    with pytest.raises(ChecksumError, match="does not match the recorded .*; the file was changed"):
        load_prompt_set("parti" if file == suites.PARTI_FILE else "geneval")


def test_suites_are_usable_from_a_sweep_spec_and_a_study():
    from bench.sweep.spec import parse_spec
    from human_eval.sources import load_prompts

    spec = parse_spec(
        b'[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n'
        b'[[prompt_sets]]\nname = "geneval"\ntags = ["counting"]\n'
        b'[[prompt_sets]]\nname = "parti"\ncategories = ["Animals"]\nchallenges = ["Quantity"]\n'
    )
    assert [(p.name, p.options) for p in spec.prompt_sets] == [
        ("geneval", {"tags": ["counting"]}),
        ("parti", {"categories": ["Animals"], "challenges": ["Quantity"]}),
    ]
    assert len(load_prompt_set(spec.prompt_sets[1].name, spec.prompt_sets[1].options)) == 11
    with pytest.raises(ValueError, match="tags must be a non-empty list of names"):
        parse_spec(
            b'[sweep]\nname = "x"\n[[models]]\nname = "m"\nkind = "folder"\npath = "p"\n[[prompt_sets]]\nname = "geneval"\ntags = []\n'
        )
    prompts, name = load_prompts("parti:categories=Animals|Vehicles,challenges=Quantity")
    assert name == "parti" and len(prompts) == 11 + 3


def test_a_study_reads_a_folder_of_all_parti_images_for_some_prompts(tmp_path):
    from human_eval.sources import load_prompts, parse_source, read_source
    from imagen_bench.cli import main

    for n in ("0001.png", "2.png", "500.png"):  # 500 is World Knowledge: not chosen, yet no error
        (tmp_path / n).write_bytes(b"")
    assert (
        main(["folder-manifest", str(tmp_path), "--prompt-set", "parti"]) == 0
    )  # the folder says it answers PartiPrompts
    prompts, name = load_prompts("parti:categories=Abstract")
    records = read_source(parse_source(f"folder:{tmp_path}"), prompts, name)
    assert [(r.ref.prompt_id, r.ref.category, r.ref.prompt) for r in records] == [
        ("1", "Abstract", "bond"),
        ("2", "Abstract", "element"),
    ]
