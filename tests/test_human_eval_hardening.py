"""Issue 33's human-evaluation findings, each on a real small study (synthetic sources, a COCO folder
as downloaded): COCO file names confined to the image folder and the captions JSON's shape checked
(item 5); the rating server's children end with it (item 6); a second tab's different answer gets
the documented notice, a rater pool the plan cannot use, 0.0.0.0 links, a full disk while copying,
two folders with the same name (item 7)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from human_eval_fixtures import APP, coco_study, tokens

from imagen_bench.cli import main as cli
from selfcheck.trials.fuzz_coco import COCO
from selfcheck.trials.fuzz_mutations import ERROR
from selfcheck.trials.study_sources import synthetic_coco, synthetic_sources

CAPTIONS = Path("coco") / "annotations" / "captions_val2014.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    synthetic_sources(root, n=4, size=32)
    synthetic_coco(root / "coco", n=4, size=32)
    return root


@pytest.fixture
def sources(pristine, tmp_path) -> Path:
    """A fresh copy per test: mutations edit the captions file and the image folder in place."""
    return Path(shutil.copytree(pristine, tmp_path / "src", symlinks=True))


def _coco_create(src: Path, out: Path) -> int:
    return cli(
        [
            "study",
            "create",
            "--protocol",
            "coco_realism",
            "--a",
            f"folder:{src / 'model-x'}",
            "--b",
            f"coco:{src / 'coco'}",
            "--prompts",
            f"coco:path={src / CAPTIONS}",
            "--raters",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )


def test_a_coco_study_from_a_folder_as_downloaded(sources, tmp_path, capsys):
    assert _coco_create(sources, tmp_path / "study") == 0, capsys.readouterr().err
    assert "3 prompts (+1 set aside for controls)" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(COCO))
def test_coco_file_names_stay_in_the_image_folder_and_the_json_shape_is_checked(sources, tmp_path, capsys, name):
    mutated = COCO[name](sources / CAPTIONS, random.Random(0))
    code = _coco_create(sources, tmp_path / "study")
    err = capsys.readouterr().err
    if mutated.expect != ERROR:  # harmless: ./name, a symlink inside the folder, an extra key
        assert code == 0, err
        return
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert str(sources / CAPTIONS) in err and any(m in err for m in mutated.mentions), (mutated.detail, err)
    assert not (tmp_path / "study").exists()  # nothing copied, nothing served


def test_every_coco_reader_refuses_an_escaping_file_name(sources):
    """One shared root (common.coco_json): FID's coco:DIR reference and the training set refuse it too."""
    from bench.metrics.reference import coco_image_files
    from imagen.data import CocoFolder

    COCO["dotdot_file_name"](sources / CAPTIONS, random.Random(0))
    with pytest.raises(
        ValueError, match=r"captions_val2014.json: images\[\d\] file_name '\.\./\.\./.*' leads outside"
    ):
        coco_image_files(sources / "coco")
    with pytest.raises(ValueError, match="leads outside the image folder"):
        CocoFolder(sources / "coco", captions=str(CAPTIONS.relative_to("coco")), images="val2014")


# -- item 7: a second tab's different answer ------------------------------------------------------


def _tab(monkeypatch, study, token: str):
    """One browser tab of the rater page: a Streamlit session of its own."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HUMAN_EVAL_STUDY", str(study.root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["t"] = token
    return at.run()


def _submit(at, label: str):
    at.radio[0].set_value(label)
    next(b for b in at.button if b.label == "Submit").click()
    return at.run()


def test_a_second_tabs_different_answer_gets_the_documented_notice(tmp_path, monkeypatch):
    from human_eval.export import answers_frame
    from human_eval.rater_page import KEPT_NOTICE

    study = coco_study(tmp_path, "coco_alignment")
    token = tokens(study)["raters"]["r01"]
    first, second = _tab(monkeypatch, study, token), _tab(monkeypatch, study, token)  # both show the first task
    first = _submit(first, "Yes")
    second = _submit(second, "No")  # the same task, answered differently in the other tab
    assert [i.value for i in second.info] == [KEPT_NOTICE]
    assert not first.info  # the tab whose answer stood gets no notice
    answers = answers_frame(study.root)
    assert list(answers.answer) == ["yes"]  # first answer wins; the second tab's "no" changed nothing
    assert len(second.radio) == 1 and not second.exception  # and the second tab moves on to the next task


def test_the_page_keeps_the_shown_task_until_this_session_submits_it(tmp_path):
    from human_eval.rater_page import KEPT_NOTICE, submit_notice, task_to_show

    study = coco_study(tmp_path, "coco_alignment")
    store = study.store()
    try:
        tasks = store.tasks("r01")
        shown = task_to_show(tasks, set(), None)
        assert shown == tasks[0]
        assert submit_notice(store.submit("r01", shown.task_id, {"caption": "yes"}, 900)) is None  # tab 1
        done = {shown.task_id}
        assert task_to_show(tasks, done, shown.task_id) == shown  # tab 2 still answers what it shows
        assert task_to_show(tasks, done, None) == tasks[1]  # a fresh tab gets the next task
        assert submit_notice(store.submit("r01", shown.task_id, {"caption": "no"}, 900)) == KEPT_NOTICE
        assert store.answered("r01") == {shown.task_id: {"caption": "yes"}}
    finally:
        store.close()


# -- item 6: a stopped rating server stops serving ------------------------------------------------


def test_stopping_rate_ends_its_server_and_frees_the_port(tmp_path):
    """`kill PID` (SIGTERM) of `imagen-bench rate` alone, then a restart on the same port and a
    SIGKILL of the parent alone: each time the Streamlit child ends with it and the port refuses."""
    import asyncio

    from selfcheck.trials.kill_server import Server, free_port

    study = coco_study(tmp_path, "coco_alignment")
    server = Server(study.root, free_port(), tmp_path / "logs")
    try:
        for n, how in enumerate(("SIGTERM parent", "SIGKILL parent"), start=1):
            server.start()  # the second start reuses the port: it must be free again
            asyncio.run(server.wait_healthy(timeout=60))
            assert server.kill(how) < 30  # raises unless the port refuses within 30 s
            log = (tmp_path / "logs" / f"server-{n}.log").read_text()
            assert "already in use" not in log, log
        assert (
            "imagen-bench rate: stopped by SIGTERM; the rating server has ended"
            in (tmp_path / "logs" / "server-1.log").read_text()
        )
    finally:
        server.stop()


# -- item 7: the small ones -----------------------------------------------------------------------


def test_a_rater_pool_the_categories_cannot_use_is_refused(sources, tmp_path, capsys):
    """--raters 1000 --raters-per-category 1 over one category used to give a 1-rater study silently."""
    code = cli(
        [
            "study",
            "create",
            "--protocol",
            "coco_alignment",
            "--a",
            f"folder:{sources / 'model-x'}",
            "--prompts",
            f"csv:{sources / 'captions.csv'}",
            "--design",
            "per_category",
            "--raters",
            "1000",
            "--raters-per-category",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(tmp_path / "study"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "study").exists()
    assert (
        "--raters 1000 with --raters-per-category 1: 1 category x 1 give work to only 1, so 999 raters would get no task; "
        "use --raters 1, or --raters-per-category 1000 to give all 1000 work"
    ) in err


def test_all_interfaces_links_name_this_machine(tmp_path, capsys):
    import socket

    study = coco_study(tmp_path, "coco_alignment")
    for host, where in (("0.0.0.0", socket.gethostname()), ("::", socket.gethostname()), ("::1", "[::1]")):
        assert cli(["study", "links", str(study.root), "--host", host, "--port", "8600"]) == 0
        out = capsys.readouterr().out
        assert f"http://{where}:8600/?t=" in out and f"http://{where}:8600/?admin=" in out and "0.0.0.0:" not in out
        assert ("listens on all interfaces" in out) == (host != "::1")


def test_a_full_disk_while_copying_names_the_copy_not_the_source(sources, tmp_path, capsys, monkeypatch):
    import errno

    write_bytes = Path.write_bytes

    def full_disk(
        self, data
    ):  # the image copies hit a full disk (the error may name any path; the message must name the copy)
        if self.parent.name == "images":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    out = tmp_path / "study"
    code = cli(
        [
            "study",
            "create",
            "--protocol",
            "coco_alignment",
            "--a",
            f"folder:{sources / 'model-x'}",
            "--prompts",
            f"csv:{sources / 'captions.csv'}",
            "--raters",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"No space left on device (writing the study's image copies for {out})" in err
    assert f"cannot write {out}/images/" in err  # the copy being written, where it would have been published
    assert str(sources / "model-x") not in err  # not the source image
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))  # no staging folder left


def test_two_folders_with_one_name_are_told_apart_and_one_folder_twice_is_refused(sources, tmp_path, capsys):
    import json

    for parent, folder in (("x", "model-x"), ("y", "reference")):
        shutil.copytree(sources / folder, sources / parent / "sd")
    a, b = sources / "x" / "sd", sources / "y" / "sd"
    base = [
        "study",
        "create",
        "--protocol",
        "coco_realism",
        "--prompts",
        f"csv:{sources / 'captions.csv'}",
        "--raters",
        "1",
        "--batch-size",
        "4",
    ]
    assert cli([*base, "--a", f"folder:{a}", "--b", f"folder:{b}", "--out", str(tmp_path / "ok")]) == 0, (
        capsys.readouterr().err
    )
    models = json.loads((tmp_path / "ok" / "study.json").read_text())["models"]
    assert (models["a"]["model"], models["b"]["model"]) == ("x/sd", "y/sd")
    same = f"folder:{sources / 'x' / '..' / 'x' / 'sd'}"
    assert cli([*base, "--a", f"folder:{a}", "--b", same, "--out", str(tmp_path / "same")]) == 2
    assert f"--a folder:{a} and --b {same} are the same images ({a}, model 'sd')" in capsys.readouterr().err
