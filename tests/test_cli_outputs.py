"""Unwritable outputs are one line naming OUT and the reason (exit 2), found before any work,
with nothing left behind: a read-only place (/sys, read-only even for root) and a file where a
folder is needed, for every command that writes a run, a study, an export, a report or statistics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imagen_bench.cli import main as cli

READ_ONLY = Path("/sys/kernel/imagen-bench-test")


@pytest.fixture()
def a_file(tmp_path) -> Path:
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    return f


def _commands(tmp_path: Path, out: Path, out_file: Path) -> dict[str, list[str]]:
    spec = Path(__file__).parents[1] / "bench" / "specs" / "demo.toml"
    return {
        "sweep": ["sweep", str(spec), "--out", str(out)],
        "study create": [
            "study",
            "create",
            "--protocol",
            "coco_alignment",
            "--a",
            f"folder:{tmp_path}",
            "--prompts",
            f"csv:{tmp_path / 'c.csv'}",
            "--out",
            str(out),
        ],
        "report": ["report", str(tmp_path), "--out", str(out)],
        "fid-stats": ["fid-stats", "shapes:test", "--out", str(out_file)],
        "fid": ["fid", str(tmp_path), "--reference", "shapes:test", "--out", str(out_file)],
    }


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux's read-only /sys")
def test_read_only_outputs_are_one_line_before_any_work(tmp_path, capsys):
    for name, argv in _commands(tmp_path, READ_ONLY / "out", READ_ONLY / "out.npz").items():
        t0 = time.time()
        assert cli(argv) == 2, name
        err = capsys.readouterr().err
        assert "cannot write /sys/kernel/imagen-bench-test/out" in err and "Traceback" not in err, (name, err)
        assert len(err.strip().splitlines()) == 1 and time.time() - t0 < 20, name


def test_a_file_where_a_folder_goes_is_one_line(tmp_path, a_file, capsys):
    for name in ("sweep", "study create", "report"):
        assert cli(_commands(tmp_path, a_file, tmp_path / "x.npz")[name]) == 2, name
        err = capsys.readouterr().err
        assert (
            f"cannot write {a_file}: it is a file, not a folder" in err
            or "not a report folder" in err
            or "already exists" in err
        ), err
        assert a_file.read_text() == "mine"


def test_study_export_to_an_unwritable_place_leaves_nothing(tmp_path, capsys):
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study
    from selfcheck.trials.study_sources import synthetic_sources

    captions, model, _ = synthetic_sources(tmp_path / "src")
    study = create_study(
        tmp_path / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=1, batch_size=4),
        ),
    )
    if Path("/sys/kernel").is_dir():
        assert cli(["study", "export", str(study.root), "--out", str(READ_ONLY / "a.parquet")]) == 2
        assert "cannot write /sys/kernel/imagen-bench-test/a.parquet" in capsys.readouterr().err
    assert cli(["study", "export", str(study.root), "--out", str(tmp_path / "a.parquet")]) == 0
    (tmp_path / "b.parquet.meta.json").write_text("{}")  # an existing sidecar is never replaced
    assert cli(["study", "export", str(study.root), "--out", str(tmp_path / "b.parquet")]) == 2
    assert "b.parquet.meta.json already exists" in capsys.readouterr().err
    assert (
        not list(tmp_path.glob("*.tmp"))
        and not list(tmp_path.glob(".*.tmp"))
        and not (tmp_path / "b.parquet").exists()
    )


def test_rate_refuses_a_port_out_of_range(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["rate", str(tmp_path), "--port", "99999"])
    assert e.value.code == 2 and "port must be an integer in 1-65535, got '99999'" in capsys.readouterr().err


def test_a_report_is_published_readable_like_any_new_folder(tmp_path):
    import os
    import stat

    import pandas as pd

    from reports.build import ReportInputs, build_report
    from reports.simulate import RaterModel, StudyDesign, simulate_sbs_frame

    prompts = pd.DataFrame({"id": range(1, 11), "category": ["Colors"] * 10})
    frame = simulate_sbs_frame(
        prompts,
        "a",
        "b",
        {"quality": RaterModel(), "alignment": RaterModel()},
        StudyDesign(n_prompts=10, n_raters=3, answers_per_rater=10, controls_per_rater=2),
        seed=0,
    )
    out = build_report(ReportInputs(answers=(("sim", frame),)), tmp_path / "report")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
