"""Output folders are staged beside their target and published whole (common.files.staged_folder):
a failure leaves the target as it was and no staging folder; a full disk names the target; the
staging folders of killed writers are removed by the next run into the same place. The commands'
own cases (leaderboard, report on real runs) are in tests/test_leaderboard.py."""

from __future__ import annotations

import errno
import os

import pytest

from common.files import NotWritable, staged_folder


def leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_completed_folder_is_published_whole(tmp_path):
    out = tmp_path / "board"
    with staged_folder(out) as stage:
        (stage / "a.csv").write_text("x\n")
        assert not out.exists() and stage.parent == tmp_path  # nothing at the target until the end
    assert (out / "a.csv").read_text() == "x\n" and leftovers(tmp_path) == []


def test_an_error_leaves_neither_target_nor_staging(tmp_path):
    out = tmp_path / "board"
    with pytest.raises(ValueError, match="late input error"):
        with staged_folder(out) as stage:
            (stage / "a.csv").write_text("x\n")
            raise ValueError("late input error")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_target_and_its_file(tmp_path):
    out = tmp_path / "board"
    with pytest.raises(NotWritable) as e:
        with staged_folder(out) as stage:
            (stage / "a.csv").write_text("x\n")
            raise OSError(errno.ENOSPC, "No space left on device", str(stage / "b.parquet"))
    assert str(e.value) == f"cannot write {out / 'b.parquet'}: No space left on device; nothing was written there"
    assert list(tmp_path.iterdir()) == []


def test_other_os_errors_pass_unchanged(tmp_path):
    """A read error (a damaged input image is an OSError too) is not blamed on the disk."""
    with pytest.raises(FileNotFoundError):
        with staged_folder(tmp_path / "board"):
            open(tmp_path / "missing-input.png", "rb")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_kept_unless_replacing(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.html").write_text("old")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        with staged_folder(out) as stage:
            (stage / "new.html").write_text("new")
    assert [p.name for p in out.iterdir()] == ["old.html"] and leftovers(tmp_path) == []
    with staged_folder(out, replace=True) as stage:
        (stage / "new.html").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.html"] and leftovers(tmp_path) == []


def test_stale_staging_of_a_killed_writer_is_removed(tmp_path, dead_pid):
    out = tmp_path / "report"
    stale = tmp_path / f".report.partial-{dead_pid}-0badc0de"
    (stale / "plots").mkdir(parents=True)
    alive = tmp_path / f".report.partial-{os.getpid()}-feedf00d"  # this process: a live writer
    alive.mkdir()
    other = tmp_path / f".reports.partial-{dead_pid}-0badc0de"  # another target's: not ours to judge
    other.mkdir()
    with staged_folder(out) as stage:
        (stage / "index.html").write_text("ok")
    assert not stale.exists() and alive.is_dir() and other.is_dir() and (out / "index.html").is_file()


def test_a_swap_interrupted_by_a_kill_puts_the_old_folder_back(tmp_path, dead_pid):
    """Killed between moving the old report aside and moving the new one in: the next run restores
    the old one (then replaces it as asked)."""
    out = tmp_path / "report"
    aside = tmp_path / f".report.replaced-{dead_pid}-0badc0de"
    aside.mkdir()
    (aside / "report.json").write_text("{}")
    with pytest.raises(ValueError, match="stop"):
        with staged_folder(out, replace=True):
            assert (out / "report.json").is_file()  # restored before any work
            raise ValueError("stop")
    assert (out / "report.json").is_file() and leftovers(tmp_path) == []


# -- the publisher's contract (issue 31: one way to publish a folder) --------------------------------


def test_publishing_is_one_rename_of_a_complete_folder(tmp_path, monkeypatch):
    """Nothing is at the target while the block runs; the target appears by one rename of the
    staging folder beside it (the same file system: atomic), with every file and subfolder."""
    import common.files as files

    out = tmp_path / "export"
    renames = []
    real = os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (renames.append((a, b)), real(a, b))[1])
    with staged_folder(out) as stage:
        (stage / "images").mkdir()
        (stage / "images" / "0.png").write_bytes(b"png")
        (stage / "captions.json").write_text("{}")
        assert stage.name.startswith(".export.partial-") and not out.exists()
    assert renames == [(stage, out)]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["captions.json", "images", "images/0.png"]
    assert leftovers(tmp_path) == []


def test_an_empty_target_folder_is_filled(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    with staged_folder(out) as stage:
        (stage / "study.json").write_text("{}")
    assert [p.name for p in out.iterdir()] == ["study.json"] and leftovers(tmp_path) == []


def test_a_users_folder_or_file_is_refused_before_the_block_runs(tmp_path):
    """Nothing a user made is lost: a non-empty folder or a file at the target is refused up front
    (no work is done, no staging folder made) and stays exactly as it was."""
    folder, file = tmp_path / "mine", tmp_path / "notes.txt"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    file.write_text("mine too")
    for target in (folder, file):
        ran = []
        with pytest.raises(FileExistsError, match=f"{target} exists and is not empty; choose a new --out"):
            with staged_folder(target):
                ran.append(True)
        assert ran == [] and leftovers(tmp_path) == []
    assert (folder / "keep.txt").read_text() == "mine" and file.read_text() == "mine too"


def test_a_folder_that_appears_meanwhile_is_not_clobbered(tmp_path):
    out = tmp_path / "board"
    with pytest.raises(FileExistsError, match="appeared while this command ran"):
        with staged_folder(out) as stage:
            (stage / "new.csv").write_text("new")
            out.mkdir()
            (out / "theirs.csv").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["theirs.csv"] and leftovers(tmp_path) == []


def test_an_interrupt_leaves_the_old_folder_intact_and_no_partial_one(tmp_path):
    """A Ctrl-C (or any error) mid-write, replacing or not: the old folder is byte for byte as it
    was, and no staging folder is left beside it."""
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text('{"old": true}')
    for target, replace in ((tmp_path / "fresh", False), (out, True)):
        with pytest.raises(KeyboardInterrupt):
            with staged_folder(target, replace=replace) as stage:
                (stage / "report.json").write_text('{"new": true}')
                raise KeyboardInterrupt
        assert [p.name for p in out.iterdir()] == ["report.json"] and (
            out / "report.json"
        ).read_text() == '{"old": true}'
        assert not (tmp_path / "fresh").exists() and leftovers(tmp_path) == []


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    import common.files as files

    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("old")
    real = os.replace

    def failing(a, b):
        if ".partial-" in str(a):  # the new folder's move into place
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(a, b)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OSError, match="cross-device"):
        with staged_folder(out, replace=True) as stage:
            (stage / "report.json").write_text("new")
    assert (out / "report.json").read_text() == "old" and leftovers(tmp_path) == []


def test_replacing_a_file_at_the_target_leaves_nothing_aside(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the folder goes")
    with staged_folder(out, replace=True) as stage:
        (stage / "a.csv").write_text("x\n")
    assert out.is_dir() and [p.name for p in out.iterdir()] == ["a.csv"] and leftovers(tmp_path) == []


def test_leftovers_of_the_former_study_create_are_removed_alike(tmp_path, dead_pid):
    """`study create` staged in `.NAME.creating-PID-RANDOM` before the one publisher; a killed one's
    leftover is removed by the next run into the same place (a live writer's is kept)."""
    dead = tmp_path / f".study.creating-{dead_pid}-abcd"
    (dead / "images").mkdir(parents=True)
    alive = tmp_path / f".study.creating-{os.getpid()}-abcd"
    alive.mkdir()
    with staged_folder(tmp_path / "study") as stage:
        (stage / "study.json").write_text("{}")
    assert not dead.exists() and alive.is_dir()


# -- read_json: one line naming the file, the problem and the remedy ------------------------------


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"{not json", "is not valid JSON (Expecting property name"),
        (b"\xff\xfe{}", "is not valid JSON ('utf-8' codec can't decode"),
        (b"", "is not valid JSON (Expecting value"),
    ],
)
def test_a_damaged_json_file_is_one_line_naming_it_and_the_remedy(tmp_path, content, problem):
    from common.files import read_json, read_json_object

    path = tmp_path / "run.json"
    path.write_bytes(content)
    for read in (read_json, read_json_object):
        with pytest.raises(ValueError) as e:
            read(path, "restore it or use a new --out")
        message = str(e.value)
        assert message.startswith(f"{path} {problem}") and message.endswith("; restore it or use a new --out")
        assert "\n" not in message and e.value.__cause__ is None and e.value.__suppress_context__


def test_read_json_returns_any_value_and_read_json_object_requires_an_object(tmp_path):
    from common.files import read_json, read_json_object

    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    assert read_json(path, "fix it") == [1, 2]
    with pytest.raises(ValueError, match=r"list\.json must hold a JSON object, got list; fix it$"):
        read_json_object(path, "fix it")
    path.write_text('{"a": 1}')
    assert read_json_object(path, "fix it") == {"a": 1}
