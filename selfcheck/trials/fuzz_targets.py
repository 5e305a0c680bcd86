"""What the fuzz trial mutates and which user-facing command reads it.

Valid inputs are built once in WORK/pristine (a sweep spec for a tiny random cascade plus an image
folder model, a captions CSV, two image folders, a COCO folder as downloaded, a rating study with
answers, a finished run folder) and copied to WORK/live before every case, so every path in them stays the same.

    DOMAINS   name -> (path inside live/, mutation table)
    COMMANDS  name -> argv builder (live dir, fresh output dir, cache dir) for imagen_bench.cli.main
    PLAN      (command, domain) pairs the cases cycle through (every pair reads that domain)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .fuzz_coco import coco_mutations
from .fuzz_media import IMAGE, checkpoint_mutations
from .fuzz_mutations import BYTES, CSV, SPEC_HOSTILE, Mutation, structure
from .study_sources import synthetic_coco, synthetic_sources

SPEC = """[sweep]
name = "fuzz"
samples_per_prompt = 1

[[models]]
name = "tiny"
kind = "imagen"
checkpoint = "{live}/ckpt"
batch_size = 4
precision = "fp32"
[models.stages.sr16]
steps = 1
[models.stages.sr32]
steps = 1

[[models]]
name = "pics"
kind = "folder"
path = "{live}/model-x"

[[prompt_sets]]
name = "drawbench"
label = "mine"
path = "{live}/captions.csv"

[grid]
sampler = ["ddim"]
steps = [1]
guidance = [1.0]
thresholding = ["static"]
seeds = [0]
"""

# a run with metrics (the shapes verifier on 4 shapes prompts, two guidance cells) beside run-done,
# which has none: `leaderboard` needs a metric to rank and the report's paired comparisons a pair
SCORED_SPEC = (
    SPEC.split('[[models]]\nname = "pics"')[0].replace('name = "fuzz"', 'name = "scored"')
    + """
[[prompt_sets]]
name = "shapes"
n_per_category = 1

[grid]
sampler = ["ddim"]
steps = [1]
guidance = [1.0, 3.0]
thresholding = ["static"]
seeds = [0]

[[metrics]]
name = "shapes_verifier"
"""
)


@dataclass(frozen=True)
class Domain:
    path: str  # file or folder inside live/
    mutations: Callable[[], dict[str, Mutation]]


def _domains() -> dict[str, Domain]:
    db_bytes = {k: BYTES[k] for k in ("empty", "garbage", "truncated", "flip_byte")}
    return {
        "spec": Domain("spec.toml", lambda: {**BYTES, **structure("toml"), **SPEC_HOSTILE}),
        "prompts": Domain("captions.csv", lambda: {**BYTES, **CSV}),
        "images": Domain("model-x", lambda: IMAGE),
        "checkpoint": Domain("ckpt", checkpoint_mutations),
        "study_json": Domain("study/study.json", lambda: {**BYTES, **structure("json")}),
        "secrets": Domain("study/secrets.json", lambda: {**BYTES, **structure("json")}),
        "ratings_db": Domain("study/ratings.sqlite", lambda: db_bytes),
        "run_json": Domain(
            "run-done/run.json", lambda: {**BYTES, **structure("json")}
        ),  # read by leaderboard and report
        "coco": Domain("coco/annotations/captions_val2014.json", coco_mutations),  # selfcheck.trials.fuzz_coco
    }


DOMAINS = _domains()


def _sweep(live: Path, out: Path, cache: Path, run: Path | None = None) -> list[str]:
    return [
        "sweep",
        str(live / "spec.toml"),
        "--out",
        str(run or out / "run"),
        "--cache-dir",
        str(cache),
        "--no-progress",
    ]


COMMANDS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "sweep": _sweep,
    "sweep-resume": lambda live, out, cache: _sweep(
        live, out, cache, run=live / "run-done"
    ),  # a finished run as --out
    "study-create": lambda live, out, cache: [
        "study",
        "create",
        "--protocol",
        "coco_alignment",
        "--a",
        f"folder:{live / 'model-x'}",
        "--prompts",
        f"csv:{live / 'captions.csv'}",
        "--raters",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(out / "study"),
    ],
    "study-create-coco": lambda live, out, cache: [  # reference photographs from a COCO folder as downloaded
        "study",
        "create",
        "--protocol",
        "coco_realism",
        "--a",
        f"folder:{live / 'model-x'}",
        "--b",
        f"coco:{live / 'coco'}",
        "--prompts",
        f"coco:path={live / 'coco' / 'annotations' / 'captions_val2014.json'}",
        "--raters",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(out / "study"),
    ],
    "study-status": lambda live, out, cache: ["study", "status", str(live / "study")],
    "study-links": lambda live, out, cache: ["study", "links", str(live / "study")],
    "study-export": lambda live, out, cache: [
        "study",
        "export",
        str(live / "study"),
        "--out",
        str(out / "answers.csv"),
    ],
    "fid": lambda live, out, cache: [
        "fid",
        str(live / "model-x"),
        "--reference",
        f"folder:{live / 'reference'}",
        "--cache-dir",
        str(cache),
        "--kid-subset-size",
        "2",
        "--batch-size",
        "8",
    ],
    "sample": lambda live, out, cache: [
        "sample",
        "--checkpoint",
        str(live / "ckpt"),
        "--prompt",
        "a red circle",
        "--steps",
        "1",
        "--sampler",
        "ddim",
        "--precision",
        "fp32",
        "--out",
        str(out / "samples"),
    ],
    # outputs go to a fresh folder: a refusal must leave none there, half-made or staged (common.files.staged_folder)
    "leaderboard": lambda live, out, cache: [
        "leaderboard",
        str(live / "run-done"),
        str(live / "run-scored"),
        "--out",
        str(out / "leaderboard"),
        "--resamples",
        "200",
    ],
    "report-run": lambda live, out, cache: [
        "report",
        str(live / "run-done"),
        str(live / "run-scored"),
        "--out",
        str(out / "report"),
        "--resamples",
        "200",
    ],
}

# The first 12 (the CI size) fuzz every domain once; the FID cases (Inception on CPU: ~30-90 s each
# on 2 busy cores) start at case 13, so only the full size runs them (load_rgb has unit tests).
PLAN: tuple[tuple[str, str], ...] = (
    ("sweep", "spec"),
    ("study-create", "prompts"),
    ("study-status", "study_json"),
    ("sample", "checkpoint"),
    ("study-links", "secrets"),
    ("sweep-resume", "spec"),
    ("study-export", "ratings_db"),
    ("study-create", "images"),
    ("leaderboard", "run_json"),
    ("sweep", "images"),
    ("sweep", "prompts"),
    ("study-create-coco", "coco"),
    ("fid", "images"),
    ("sweep-resume", "checkpoint"),
    ("study-export", "study_json"),
    ("study-links", "study_json"),
    ("sweep-resume", "images"),
    ("sweep-resume", "prompts"),
    ("study-status", "ratings_db"),
    ("study-create-coco", "coco"),
    ("sweep", "checkpoint"),
    ("report-run", "run_json"),
)


def build_pristine(root: Path, live: Path) -> None:
    """Valid inputs in `live` (paths inside them point into `live`), then copied to `root`."""
    from bench.sweep.runner import run_sweep
    from human_eval.plan import PlanSettings
    from human_eval.study import StudySettings, create_study

    from .tiny_cascade import make_tiny_checkpoint

    live.mkdir(parents=True)
    make_tiny_checkpoint(live / "ckpt")
    captions, model, _ = synthetic_sources(live, n=4, size=32)
    synthetic_coco(live / "coco", n=4, size=32)  # the same ids 1..4 as the captions and model-x/
    (live / "spec.toml").write_text(SPEC.format(live=live))
    study = create_study(
        live / "study",
        StudySettings(
            protocol="coco_alignment",
            a=f"folder:{model}",
            b=None,
            prompts=f"csv:{captions}",
            plan=PlanSettings(raters=2, batch_size=4, control_share=0.25),
        ),
    )
    store = study.store()
    for t in store.tasks("r01")[:2]:  # a ratings DB with answers: what fuzzing must never damage
        store.submit("r01", t.task_id, {"caption": "yes"}, 900)
    store.close()
    run_sweep(live / "spec.toml", live / "run-done", cache_dir=root.parent / "cache", progress=False)
    (live / "scored.toml").write_text(SCORED_SPEC.format(live=live))
    run_sweep(live / "scored.toml", live / "run-scored", cache_dir=root.parent / "cache", progress=False)
    shutil.copytree(live, root, symlinks=True)


def reset_live(pristine: Path, live: Path) -> None:
    if live.exists():
        shutil.rmtree(live)
    shutil.copytree(pristine, live, symlinks=True)
