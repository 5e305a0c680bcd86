"""Simulated DrawBench side-by-side ratings of two real image folders (`imagen-bench report
--simulate-ratings A B`): the report's human-evaluation sections without people: the DrawBench
prompts (drawbench) joined with the report's rater model (reports.simulate)."""

from __future__ import annotations

from pathlib import Path

from common.imagestore import read_folder
from drawbench import load_drawbench

from .simulate import RaterModel, StudyDesign, simulate_sbs_frame

# 40 raters x 50 prompts ~ a real crowd study of 2,000 tasks
DEMO_RATERS = 40
DEMO_ANSWERS_PER_RATER = 50
DEMO_CONTROLS_PER_RATER = 10
DEMO_UNRELIABLE = 0.1  # share of simulated raters clicking at random (they fail the controls)


def simulated_ratings(folders, preference: float, seed: int):
    """(contract-2 frame of simulated DrawBench ratings for two image folders, model -> image records)."""
    prompts = load_drawbench()
    records = {Path(f).name: read_folder(f, prompts, model=Path(f).name) for f in folders}
    if len(records) != 2:
        raise ValueError("--simulate-ratings needs two folders with different names")
    shared = set.intersection(*({r.ref.prompt_id for r in recs} for recs in records.values()))
    rated = prompts[prompts["id"].astype(str).isin(shared)].reset_index(drop=True)
    if rated.empty:
        raise ValueError(f"{folders[0]} and {folders[1]} share no DrawBench prompt ids")
    models = {
        "quality": RaterModel(preference=preference, unreliable_fraction=DEMO_UNRELIABLE),
        "alignment": RaterModel(preference=preference, unreliable_fraction=DEMO_UNRELIABLE),
    }
    design = StudyDesign(
        n_prompts=len(rated),
        n_raters=DEMO_RATERS,
        answers_per_rater=min(DEMO_ANSWERS_PER_RATER, len(rated)),
        controls_per_rater=DEMO_CONTROLS_PER_RATER,
    )
    names = list(records)
    return simulate_sbs_frame(rated, names[0], names[1], models, design, seed), records
