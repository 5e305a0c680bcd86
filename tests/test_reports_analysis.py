"""Krippendorff's alpha, control exclusion, Bradley-Terry and the power calculator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from human_eval.contract import apply_controls, check_answers
from imagen_bench.cli import main
from reports.agreement import krippendorff_alpha
from reports.power import PowerQuery, power_curve
from reports.preference import CIConfig, RatingsAnalysis
from reports.ranking import bradley_terry_table, fit_bradley_terry
from reports.simulate import RaterModel, StudyDesign, simulate, simulate_sbs_frame

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers x 12
# units, values 1-5, missing = nan. Published: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_C = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


@pytest.mark.parametrize("metric, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_textbook_example(metric, published):
    observer, unit = np.nonzero(~np.isnan(KRIPPENDORFF_C))
    alpha = krippendorff_alpha(unit, KRIPPENDORFF_C[observer, unit], metric)
    assert round(alpha, 3) == published


def test_krippendorff_alpha_perfect_and_unknown_metric():
    assert krippendorff_alpha([1, 1, 2, 2], [0, 0, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="nominal, ordinal, interval"):
        krippendorff_alpha([1, 1], [0, 1], "ratio")


def _simulated(unreliable: float = 0.25, seed: int = 0) -> pd.DataFrame:
    prompts = pd.DataFrame({"id": range(1, 41), "category": ["Colors", "Text"] * 20})
    design = StudyDesign(n_prompts=40, n_raters=20, answers_per_rater=20, controls_per_rater=10)
    model = RaterModel(preference=0.6, unreliable_fraction=unreliable)
    return simulate_sbs_frame(prompts, "m1", "m2", {"quality": model, "alignment": model}, design, seed)


def test_controls_exclude_raters_below_threshold_and_count_them():
    df = check_answers(_simulated())
    clean, exclusion = apply_controls(df, 0.8)
    acc = df[df.is_control].groupby("rater").control_correct.mean()
    expected = sorted(acc.index[acc < 0.8])
    assert [r for _, r in exclusion.raters_excluded] == expected and expected  # some simulated raters fail
    assert exclusion.answers_dropped == int((~df.is_control & df.rater.isin(expected)).sum())
    assert not clean.is_control.any() and not clean.rater.isin(expected).any()
    assert len(clean) == int((~df.is_control).sum()) - exclusion.answers_dropped
    assert f"{len(expected)} of 20 raters excluded" in exclusion.describe()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apply_controls(df, 80)


def test_bad_answers_name_allowed_values():
    df = _simulated()
    df.loc[0, "answer"] = "left"
    with pytest.raises(ValueError, match="allowed: A, tie, B"):
        check_answers(df)
    with pytest.raises(ValueError, match="lacks columns"):
        check_answers(df.drop(columns=["rater"]))


def test_bradley_terry_two_models_closed_form_and_recovery():
    # two models: pi_a / pi_b = W_a / W_b, so log strengths are +-log(3)/2 for 30 vs 10 wins
    assert fit_bradley_terry(np.array([[0, 30.0], [10, 0]])) == pytest.approx(
        [np.log(3) / 2, -np.log(3) / 2], abs=1e-8
    )
    rng = np.random.default_rng(0)
    true = np.array([0.6, 0.1, -0.2, -0.5])
    models = ["w", "x", "y", "z"]
    rows = []
    for k in range(4000):
        i, j = rng.choice(4, 2, replace=False)
        p_i = 1 / (1 + np.exp(-(true[i] - true[j])))
        u = rng.random()
        answer = "A" if u < 0.9 * p_i else ("tie" if u < 0.9 * p_i + 0.1 else "B")
        rows.append(
            {
                "study": "s",
                "protocol": "drawbench_sbs",
                "task_id": str(k),
                "rater": f"r{rng.integers(40)}",
                "question": "quality",
                "answer": answer,
                "model_a": models[i],
                "model_b": models[j],
                "prompt_id": str(rng.integers(100)),
                "category": "c",
                "is_control": False,
                "control_correct": None,
                "response_ms": 1,
                "answered_at": None,
            }
        )
    table = bradley_terry_table(RatingsAnalysis(pd.DataFrame(rows), CIConfig(resamples=200)), "quality")
    assert table.model.tolist() == models  # ranked in the true order
    est = table.set_index("model").log_strength[models].to_numpy()
    assert np.abs(est - (true - true.mean())).max() < 0.15
    assert ((table.log_strength_low < table.log_strength) & (table.log_strength < table.log_strength_high)).all()


def test_power_grows_with_raters():
    query = PowerQuery(
        effect=0.08, grid=(4, 40), n_prompts=50, answers_per_rater=25, studies=40, resamples=100, seed=1
    )
    curve = power_curve(query)
    assert curve.power.iloc[0] < curve.power.iloc[1]
    assert curve.power.iloc[1] >= 0.8


def test_power_null_effect_has_false_positive_rate_near_level():
    # the power machinery at effect ~0 is the false-positive rate: near 5 % (binomial sd 2.2 % at 100 studies)
    query = PowerQuery(
        effect=0.001, grid=(30,), n_prompts=60, answers_per_rater=30, studies=100, resamples=200, seed=2
    )
    assert power_curve(query).power.iloc[0] <= 0.12


def test_power_cli(capsys):
    assert (
        main(
            [
                "power",
                "--effect",
                "0.1",
                "--grid",
                "5,30",
                "--prompts",
                "40",
                "--answers-per-rater",
                "20",
                "--studies",
                "20",
                "--resamples",
                "100",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "power" in out and "Simulated power: true preference 0.6" in out
    assert main(["power", "--effect", "0.7"]) == 2
    assert "effect must be" in capsys.readouterr().err


def test_simulated_truth_is_what_the_simulator_produces():
    # a huge study: the answer mean converges to the stated population preference
    model = RaterModel(preference=0.62, prompt_sd=1.2, rater_sd=0.4, tie_rate=0.25)
    sim = simulate(model, StudyDesign(n_prompts=4000, n_raters=2000, answers_per_rater=100), np.random.default_rng(5))
    assert sim.score.mean() == pytest.approx(0.62, abs=0.006)
    decisive = sim.answer != 1
    assert (sim.answer[decisive] == 0).mean() == pytest.approx(model.no_tie_preference, abs=0.008)


def _coco_rows(protocol: str, question: str, model: str, answers: list[str], model_b: str = "") -> list[dict]:
    return [
        {
            "study": "c",
            "protocol": protocol,
            "task_id": f"{model}-{i}",
            "rater": f"r{i % 3}",
            "question": question,
            "answer": a,
            "model_a": model,
            "model_b": model_b,
            "prompt_id": str(i),
            "category": "coco",
            "is_control": False,
            "control_correct": None,
            "response_ms": 1,
            "answered_at": None,
        }
        for i, a in enumerate(answers)
    ]


def test_coco_tables_match_hand_results():
    from reports.preference import coco_alignment_table, coco_realism_table

    rows = (
        _coco_rows("coco_realism", "realism", "imagen", ["A", "B", "B", "A", "B", "B", "B", "A"], "reference")
        + _coco_rows("coco_alignment", "caption", "imagen", ["yes", "yes", "somewhat", "no", "yes", "yes"])
        + _coco_rows("coco_alignment", "caption", "reference", ["yes", "somewhat", "somewhat", "no", "yes", "no"])
    )
    analysis = RatingsAnalysis(check_answers(pd.DataFrame(rows)), CIConfig(resamples=200))
    realism = coco_realism_table(analysis).set_index("model")
    assert realism.loc["imagen", "realism_pref"] == pytest.approx(3 / 8) and realism.loc["imagen", "n_answers"] == 8
    alignment = coco_alignment_table(analysis).set_index("model")
    # imagen: (4 * 100 + 50 + 0) / 6 = 75; reference: (2 * 100 + 2 * 50 + 0) / 6 = 50
    assert alignment.loc["imagen", "alignment_score"] == pytest.approx(75.0)
    assert alignment.loc["reference", "alignment_score"] == pytest.approx(50.0)
    assert alignment.loc["reference", "share_somewhat"] == pytest.approx(2 / 6)
    assert (
        0
        <= alignment.loc["imagen", "alignment_score_low"]
        <= 75
        <= alignment.loc["imagen", "alignment_score_high"]
        <= 100
    )


def test_ratings_csv_truth_values_are_read_as_written(tmp_path):
    """From CSV: "False" is False (not a non-empty string), "yes" is refused naming the allowed values,
    an empty prompt id is refused."""
    df = check_answers(_simulated())
    csv = tmp_path / "r.csv"
    df.assign(is_control=df.is_control.map({True: "True", False: "False"})).to_csv(csv, index=False)
    from reports.answers import load_answers

    back, _ = load_answers(csv)
    assert back.is_control.tolist() == df.is_control.tolist()
    with pytest.raises(ValueError, match=r"control_correct value 'yes' is not a truth value; allowed: True, False"):
        check_answers(df.assign(control_correct=np.where(df.is_control, "yes", "")))
    with pytest.raises(ValueError, match="rows have no prompt_id"):
        check_answers(df.assign(prompt_id=[""] + df.prompt_id.tolist()[1:]))
