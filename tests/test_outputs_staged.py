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
        with staged_folder(out):
            assert (out / "report.json").is_file()  # restored before any work
            raise ValueError("stop")
    assert (out / "report.json").is_file() and leftovers(tmp_path) == []
