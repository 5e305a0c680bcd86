"""Studies for the human_eval tests: side-by-side studies from the real SD v1.4 / v1.5 DrawBench
images (../shared/data), and small COCO-style studies from synthetic images with a captions CSV."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from human_eval.plan import PlanSettings
from human_eval.study import StudySettings, create_study
from selfcheck.trials.study_sources import synthetic_sources

REPO = Path(__file__).resolve().parents[1]
SD = REPO.parent / "shared" / "data" / "drawbench-sd"
APP = REPO / "human_eval" / "app.py"


def sd_folders() -> tuple[Path, Path]:
    a, b = (SD / "sd-v1-4").resolve(), (SD / "sd-v1-5").resolve()  # as a study records its sources: symlinks resolved
    if not (a.is_dir() and b.is_dir()):
        pytest.skip(f"real SD DrawBench images not found at {SD} (expected sd-v1-4/ and sd-v1-5/)")
    return a, b


def sbs_study(
    out: Path,
    prompts: str = "drawbench:Colors",
    raters: int = 2,
    batch_size: int = 6,
    control_share: float = 0.2,
    seed: int = 0,
):
    a, b = sd_folders()
    return create_study(
        out,
        StudySettings(
            protocol="drawbench_sbs",
            a=f"folder:{a}",
            b=f"folder:{b}",
            prompts=prompts,
            images_per_set=1,  # one SD image per prompt
            plan=PlanSettings(raters=raters, batch_size=batch_size, control_share=control_share, seed=seed),
        ),
    )


def coco_study(root: Path, protocol: str, raters: int = 1, batch_size: int = 4, control_share: float = 0.25):
    captions, model, reference = synthetic_sources(root)
    return create_study(
        root / "study",
        StudySettings(
            protocol=protocol,
            a=f"folder:{model}",
            b=f"folder:{reference}" if protocol == "coco_realism" else None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=raters, batch_size=batch_size, control_share=control_share),
        ),
    )


def tokens(study) -> dict:
    return json.loads((study.root / "secrets.json").read_text())


@contextlib.contextmanager
def rating_server(study):
    """`imagen-bench rate STUDY` on a free 127.0.0.1 port, as a user starts it; yields the port."""
    from selfcheck.trials.kill_server import serving

    with serving(study.root, study.root.parent / "server-logs") as url:
        yield int(url.rsplit(":", 1)[1])
