"""Report sections for human ratings: rater quality, DrawBench side by side, ranking, COCO, power."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image as PILImage

from common.imagestore import ImageRecord
from common.tables import to_csv

from . import plots
from .agreement import agreement_table
from .answers import Exclusion
from .html import Gallery, Image, Paragraph, Section, Table, file_slug
from .power import PowerQuery, needed, power_curve
from .preference import ALL, CIConfig, RatingsAnalysis, coco_alignment_table, coco_realism_table, sbs_table
from .ranking import bradley_terry_table
from .simulate import RaterModel

THUMBNAIL = 160  # px, long side of gallery images
POWER_RATER_FACTORS = (0.25, 0.5, 1, 2, 4)  # power grid: the study's rater count times these


def figure_block(stage: Path, name: str, make, caption: str):
    """Image block for a figure saved as plots/<name>.png with the points it plots in
    tables/<name>.csv (and .parquet), or a one-line note why it was skipped."""
    try:
        fig, points = make()
    except plots.SkipPlot as e:
        return Paragraph(f"Figure '{name}' skipped: {e}.", kind="note")
    plots.save(fig, stage / "plots" / f"{name}.png")
    to_csv(points, stage / "tables" / f"{name}.csv")
    points.to_parquet(stage / "tables" / f"{name}.parquet", index=False)
    return Image(f"plots/{name}.png", caption + f" The plotted points: tables/{name}.csv.")


def quality_section(answers: pd.DataFrame, exclusion: Exclusion) -> Section:
    acc = exclusion.accuracy.sort_values("accuracy")
    return Section("Raters: controls and agreement", [
        Paragraph(exclusion.describe()),
        Table("rater_control_accuracy", acc, "Per rater = (study, rater): control answers, correct ones, accuracy = "
              "correct / controls, the study's threshold; flagged (excluded) when accuracy < threshold."),
        Table("agreement", agreement_table(answers),
              "Krippendorff's alpha (nominal, ordinal, interval metrics) over units = (model pair, prompt) items rated by 2+ raters, after "
              "exclusions; side-by-side answers on the scale B < tie < A, captions no < somewhat < yes."),
    ])


def sbs_sections(analysis: RatingsAnalysis, filtered: RatingsAnalysis, stage: Path, after: str) -> list[Section]:
    """The paper's DrawBench numbers: every rater's answers (the paper did no post-filtering for
    DrawBench), with the control-filtered numbers beside them."""
    table = sbs_table(analysis)
    if table.empty:
        return [Section("DrawBench side by side", [Paragraph("No drawbench_sbs answers in the inputs.", kind="note")])]
    ci = analysis.config.describe()
    how = (f"All raters' answers, as the paper reports DrawBench (no post-filtering; control rows not counted). share_A / "
           f"share_tie / share_B = shares of A / indifferent / B answers, each with {ci}; pref_A = (#A + #tie/2) / N with the "
           f"same interval; pref_A_no_ties = #A / (#A + #B) over the N = n_decisive non-tie answers; *_wilson_*: Wilson score "
           f"interval over the same answers (treats answers as independent, for comparison). Category '{ALL}' pools every "
           "answer of the pair and question.")
    blocks = [Table("drawbench_sbs", table, how),
              Table("drawbench_sbs_control_filtered", sbs_table(filtered),
                    f"The same after control exclusions (beside the headline, not instead of it). {after}")]
    for (model_a, model_b), _ in table.groupby(["model_a", "model_b"], sort=True):
        name = f"drawbench_{file_slug(model_a)}_vs_{file_slug(model_b)}"
        blocks.append(figure_block(stage, name, lambda a=model_a, b=model_b: plots.preference_bars(table, a, b, ci),
                                   f"Preference for {model_a} over {model_b} per category (Imagen Fig. 3 / A.15); bars: {ci}."))
    sections = [Section("DrawBench side by side", blocks)]
    rank_blocks = []
    for question in sorted(table.question.unique()):
        try:
            ranking = bradley_terry_table(analysis, question)
        except ValueError as e:  # models in separate comparison groups have no common scale
            rank_blocks.append(Paragraph(f"Ranking ({question}) skipped: {e}.", kind="note"))
            continue
        if ranking.empty:
            rank_blocks.append(Paragraph(f"Ranking ({question}) skipped: fewer than three models compared.", kind="note"))
            continue
        rank_blocks.append(Table(f"bradley_terry_{question}", ranking,
                                 "Bradley-Terry log strengths (MM algorithm, ties as half wins, mean 0); interval: percentile of "
                                 f"{ranking.resamples.iloc[0]} two-way (prompts x raters) bootstrap refits, seed {ranking.seed.iloc[0]}."))
        rank_blocks.append(figure_block(stage, f"bradley_terry_{question}", lambda r=ranking: plots.ranking_plot(r),
                                        f"Bradley-Terry ranking, {question}."))
    sections.append(Section("Ranking of more than two models", rank_blocks))
    return sections


def coco_section(analysis: RatingsAnalysis, after: str) -> Section:
    ci = analysis.config.describe()
    realism, alignment = coco_realism_table(analysis), coco_alignment_table(analysis)
    blocks = []
    if realism.empty:
        blocks.append(Paragraph("No coco_realism answers in the inputs.", kind="note"))
    else:
        blocks.append(Table("coco_realism", realism, f"Photorealism preference = #model preferred / N (forced choice vs the "
                                                     f"reference image) with {ci}; Wilson interval alongside. Rows: all captions "
                                                     f"and those without people (Table 2's subset). {after}"))
    if alignment.empty:
        blocks.append(Paragraph("No coco_alignment answers in the inputs.", kind="note"))
    else:
        blocks.append(Table("coco_alignment", alignment, f"Caption alignment = mean of yes/somewhat/no = 100/50/0 with {ci} "
                                                         f"(scaled to 0-100); Wilson interval alongside. Rows: all captions and those "
                                                         f"without people (Table 2's subset). {after}"))
    return Section("COCO (Imagen Table 2)", blocks)


def power_section(analysis: RatingsAnalysis, effect: float, studies: int, stage: Path) -> Section:
    """Power for the next study of this size, with the rater model's defaults and the observed tie rate."""
    sbs = analysis.answers[analysis.answers.protocol == "drawbench_sbs"]
    if sbs.empty or effect == 0:
        why = "no side-by-side answers" if sbs.empty else "--power-effect 0"
        return Section("Power", [Paragraph(f"Power analysis skipped: {why}.", kind="note")])
    per_rater = sbs.groupby(["study", "rater", "question"]).size()
    prompts = sbs.prompt_id.nunique()
    raters = len(sbs[["study", "rater"]].drop_duplicates())
    tie_rate = float(min((sbs.answer == "tie").mean(), 0.9))  # observed; capped so 0.5 + effect stays reachable
    grid = tuple(sorted({max(2, int(round(raters * f))) for f in POWER_RATER_FACTORS}))
    model = RaterModel(preference=0.5 + effect, tie_rate=tie_rate)
    query = PowerQuery(effect=effect, grid=grid, n_prompts=prompts, answers_per_rater=int(min(per_rater.median(), prompts)),
                       rater_model=model, studies=studies, method=analysis.config.method, seed=analysis.config.seed)
    curve = power_curve(query)
    return Section("Power", [
        Paragraph(query.describe() + " Prompt and rater spreads are the simulator's defaults, the tie rate is the observed one."),
        Paragraph(needed(curve, query), kind="plain"),
        Table("power", curve, "power = share of simulated studies whose interval excludes 0.5; mc_se = sqrt(p(1-p)/studies)."),
        figure_block(stage, "power", lambda: plots.power_plot(curve, "raters", effect, query.target),
                     f"Power vs raters; error bars: 95% Monte Carlo intervals; dashed: {query.target:.0%} target."),
    ])


def gallery_section(images: dict[str, list[ImageRecord]], answers: pd.DataFrame, stage: Path) -> Section | None:
    """One example pair per category for the first rated pair of models that has images."""
    pairs = answers[answers.protocol == "drawbench_sbs"][["model_a", "model_b"]].drop_duplicates()
    for model_a, model_b in pairs.itertuples(index=False):
        if model_a in images and model_b in images:
            break
    else:
        return None
    by_b = {r.ref.prompt_id: r for r in images[model_b]}
    first_per_category: dict[str, ImageRecord] = {}
    for record in sorted(images[model_a], key=lambda r: (r.ref.category, _numeric(r.ref.prompt_id))):
        if record.ref.prompt_id in by_b and record.ref.category not in first_per_category:
            first_per_category[record.ref.category] = record
    (stage / "images").mkdir(exist_ok=True)
    shown = []
    for category, record in first_per_category.items():
        for model, rec in ((model_a, record), (model_b, by_b[record.ref.prompt_id])):
            name = f"images/{file_slug(model)}-{file_slug(rec.ref.prompt_id)}.png"
            with PILImage.open(rec.path) as im:
                im.convert("RGB").resize((THUMBNAIL, THUMBNAIL)).save(stage / name)
            shown.append(Image(name, f"{category} #{rec.ref.prompt_id} {model}: {rec.ref.prompt[:60]}"))
    return Section(f"Examples: {model_a} (left) vs {model_b} (right)", [Gallery(tuple(shown))])


def _numeric(prompt_id: str) -> tuple:
    return (0, int(prompt_id), "") if prompt_id.isdigit() else (1, 0, prompt_id)


def human_sections(answers: pd.DataFrame, exclusion: Exclusion, config: CIConfig, images: dict[str, list[ImageRecord]],
                   power_effect: float, power_studies: int, stage: Path, unfiltered: pd.DataFrame | None = None) -> list[Section]:
    """`answers`: after control exclusions (the COCO protocols' headline, as in the paper);
    `unfiltered`: every rater's non-control answers (DrawBench's headline; default `answers`)."""
    analysis = RatingsAnalysis(answers, config)
    everyone = analysis if unfiltered is None else RatingsAnalysis(unfiltered.reset_index(drop=True), config)
    after = (f"Answers after control exclusions ({len(exclusion.raters_excluded)} of {exclusion.raters_total} raters below "
             f"{exclusion.threshold_text()}, {exclusion.answers_dropped} answers dropped; control rows not counted).")
    sections = [quality_section(answers, exclusion)]
    gallery = gallery_section(images, answers, stage) if images else None
    sections += sbs_sections(everyone, analysis, stage, after) + ([gallery] if gallery else [])
    sections += [coco_section(analysis, after), power_section(analysis, power_effect, power_studies, stage)]
    return sections

