"""The ratings frame (contract 2, human_eval/contract.py, which validates it and owns the exclusion
rule): load it from a ratings file, a study folder or a database.

A rater is (study, rater). Their control accuracy is (correct control answers) / (control answers);
raters below their study's threshold (the one recorded when the study was created, unless the
report is given one for all) are excluded with all their answers; raters who answered no control
are kept and counted separately (there is nothing to judge them by). Control rows never enter the
analysis.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.files import read_json_object
from human_eval.contract import check_answers

RATINGS_FILE_SUFFIXES = (".parquet", ".csv")


def load_answers(source: str | Path) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(ratings, study -> its recorded settings: control threshold, fast-answer time) from a ratings
    table file (.parquet / .csv with the contract-2 columns; settings from its `<file>.meta.json` when
    `study export` wrote one) or from anything `human_eval.export.answers_frame` accepts (a study
    folder or a database URL)."""
    path = Path(source)
    if path.suffix in RATINGS_FILE_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"ratings file {path} does not exist")
        df = (
            pd.read_parquet(path)
            if path.suffix == ".parquet"
            else pd.read_csv(path, dtype={"prompt_id": str, "rater": str})
        )
        meta = Path(f"{path}.meta.json")
        settings = (
            read_json_object(meta, "export the ratings again (imagen-bench study export)").get("study_settings", {})
            if meta.is_file()
            else {}
        )
    else:
        from human_eval.export import answers_frame, study_settings

        df, settings = answers_frame(str(source)), study_settings(str(source))
    return check_answers(df, str(source)), {str(k): dict(v) for k, v in settings.items()}
