"""Krippendorff's alpha on real rater data: GenEval's Mechanical Turk judgements of SD v2.1, IF-XL
and a CLIP-guided model (../shared/data/geneval, 5 workers per image), against the independent
`krippendorff` package, for the three levels of measurement the report uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.agreement import krippendorff_alpha

GENEVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "geneval"
QUESTIONS = [
    ("Answer.task-quality", "ordinal"),
    ("Answer.task-count-0", "interval"),
    ("Answer.task-color-0", "nominal"),
]


@pytest.mark.parametrize("model", ["sdv2", "if-xl", "clip"])
def test_alpha_equals_the_krippendorff_package_on_geneval_annotations(model):
    krippendorff = pytest.importorskip("krippendorff", reason="the reference implementation: pip install krippendorff")
    path = GENEVAL / f"annotations_{model}.csv"
    if not path.is_file():
        pytest.skip(f"GenEval annotations not found at {path}")
    frame = pd.read_csv(path)
    assert frame["Input.index"].nunique() >= 400  # images, each judged by (up to) 5 workers
    for column, level in QUESTIONS:
        d = frame[["Input.index", column]].dropna()
        values = pd.factorize(d[column])[0].astype(float) if level == "nominal" else d[column].to_numpy(float)
        ours = krippendorff_alpha(d["Input.index"].to_numpy(), values, level)
        # the package wants a raters x units matrix; workers are anonymous here, so a unit's k-th answer is "rater k"
        # (alpha depends only on the values within each unit, not on which rater gave them)
        matrix = (
            d.assign(v=values, r=d.groupby("Input.index").cumcount())
            .pivot(index="r", columns="Input.index", values="v")
            .to_numpy()
        )
        assert ours == pytest.approx(
            krippendorff.alpha(reliability_data=matrix, level_of_measurement=level), abs=1e-10
        ), column
        assert np.isfinite(ours) and -1 < ours < 1
