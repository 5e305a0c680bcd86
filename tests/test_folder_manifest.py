"""A folder of images says which prompts it answers (issue 33): the real SD DrawBench folders are
refused as GenEval or Parti images, in a study and in a sweep, naming both prompts; a folder that
says nothing is refused with the command that makes it say; a changed prompt text is caught."""

from __future__ import annotations

import json
import shutil

import pytest
from human_eval_fixtures import sd_folders

from imagen_bench.cli import main


def _study(tmp_path, folder, prompts: str) -> list[str]:
    return [
        "study",
        "create",
        "--protocol",
        "drawbench_sbs",
        "--a",
        f"folder:{folder}",
        "--b",
        f"folder:{folder}",
        "--prompts",
        prompts,
        "--images-per-set",
        "1",
        "--raters",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "study"),
    ]


@pytest.mark.parametrize("prompts, theirs", [("geneval", "a photo of a bench"), ("parti", "bond")])
def test_the_sd_drawbench_folders_are_refused_as_another_sets_images(tmp_path, capsys, prompts, theirs):
    a, _ = sd_folders()
    assert main(_study(tmp_path, a, prompts)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"answers prompt set 'drawbench', not '{prompts}'" in err
    assert "'A red colored car.'" in err and repr(theirs) in err  # both prompts of id 1 named
    assert not (tmp_path / "study").exists()


def test_a_sweep_refuses_a_folder_model_of_another_prompt_set_before_any_image(tmp_path, capsys):
    a, _ = sd_folders()
    spec = tmp_path / "spec.toml"
    spec.write_text(
        f'[sweep]\nname = "x"\n[[models]]\nname = "sd14"\nkind = "folder"\npath = "{a}"\n'
        '[[prompt_sets]]\nname = "geneval"\ntags = ["single_object"]\n'
    )
    assert main(["sweep", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "answers prompt set 'drawbench', not 'geneval'" in capsys.readouterr().err
    assert not list((tmp_path / "run").rglob("*.jpg"))


def test_a_copied_subset_of_a_shipped_folder_is_known_by_its_checksums(tmp_path):
    from common.imagestore import read_folder
    from drawbench.prompts import load_drawbench

    a, _ = sd_folders()
    copy = tmp_path / "some"
    copy.mkdir()
    for name in ("001.jpg", "002.jpg"):
        shutil.copy(a / name, copy / name)
    records = read_folder(copy, load_drawbench())
    assert [(r.ref.prompt_id, r.ref.prompt) for r in records] == [
        ("1", "A red colored car."),
        ("2", "A black colored car."),
    ]
    (copy / "002.jpg").write_bytes(
        (copy / "002.jpg").read_bytes() + b"\0"
    )  # another image under a shipped name: unknown
    with pytest.raises(ValueError, match="does not say which prompts .*imagen-bench folder-manifest"):
        read_folder(copy, load_drawbench())


def test_folder_manifest_writes_what_the_folder_answers_and_a_changed_prompt_is_refused(tmp_path, capsys):
    from common.imagestore import read_folder
    from drawbench.prompts import load_drawbench

    a, _ = sd_folders()
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("001.jpg", "002.jpg", "003.jpg"):
        shutil.copy(a / name, mine / f"{int(name[:3])}_0.jpg")
    (mine / "3_0.jpg").write_bytes((mine / "3_0.jpg").read_bytes() + b"\0")  # not a shipped file: the folder must say
    assert main(["folder-manifest", str(mine), "--prompt-set", "drawbench"]) == 0
    manifest = json.loads((mine / "prompt_set.json").read_text())
    assert manifest["prompt_set"] == "drawbench" and manifest["prompts"] == {
        "1": "A red colored car.",
        "2": "A black colored car.",
        "3": "A pink colored car.",
    }
    assert main(["folder-manifest", str(mine), "--prompt-set", "drawbench"]) == 2  # never overwritten without --force
    assert "exists" in capsys.readouterr().err
    assert len(read_folder(mine, load_drawbench())) == 3
    manifest["prompts"]["2"] = "A black car."  # the images were made for an older wording of prompt 2
    (mine / "prompt_set.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match=r"1 prompt ids name other prompts, e.g. id 2: .*'A black car\.'.*'A black colored car\.'"
    ):
        read_folder(mine, load_drawbench())
    (mine / "7.jpg").write_bytes(b"")  # an image the manifest does not list
    with pytest.raises(ValueError, match=r"1 images match no prompt id its manifest .* lists \(e\.g\. 7\.jpg\)"):
        read_folder(mine, load_drawbench())
