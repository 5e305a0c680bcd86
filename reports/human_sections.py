"""Report sections for human ratings: rater quality, DrawBench side by side, ranking, COCO, power."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image as PILImage

from common.imagestore import ImageRecord
from common.tables import to_csv
from human_eval.contract import Exclusion

from . import plots
from .agreement import agreement_table
from .html import Bullets, Figures, Grid, Image, Paragraph, Section, Table, file_slug, natural_key
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
    return Section(
        "Raters: controls and agreement",
        [
            Paragraph(exclusion.describe()),
            Table(
                "rater_control_accuracy",
                acc,
                "Per rater = (study, rater): control answers, correct ones, accuracy = "
                "correct / controls, the study's threshold; flagged (excluded) when accuracy < threshold.",
            ),
            Table(
                "agreement",
                agreement_table(answers),
                "Krippendorff's alpha (nominal, ordinal, interval metrics) over units = (model pair, prompt) items rated by 2+ raters, after "
                "exclusions; side-by-side answers on the scale B < tie < A, captions no < somewhat < yes.",
            ),
        ],
    )


def sbs_sections(
    analysis: RatingsAnalysis, filtered: RatingsAnalysis, stage: Path, after: str
) -> tuple[list[Section], list]:
    """The paper's DrawBench numbers: every rater's answers (the paper did no post-filtering for
    DrawBench), with the control-filtered numbers beside them; and the preference figures (for the
    report's opening)."""
    table = sbs_table(analysis)
    if table.empty:
        return [
            Section("DrawBench side by side", [Paragraph("No drawbench_sbs answers in the inputs.", kind="note")])
        ], []
    ci = analysis.config.describe()
    how = (
        f"All raters' answers, as the paper reports DrawBench (no post-filtering; control rows not counted). share_A / "
        f"share_tie / share_B = shares of A / indifferent / B answers, each with {ci}; pref_A = (#A + #tie/2) / N with the "
        f"same interval; pref_A_no_ties = #A / (#A + #B) over the N = n_decisive non-tie answers; *_wilson_*: Wilson score "
        f"interval over the same answers (treats answers as independent, for comparison). Category '{ALL}' pools every "
        "answer of the pair and question."
    )
    blocks = [
        Table("drawbench_sbs", table, how),
        Table(
            "drawbench_sbs_control_filtered",
            sbs_table(filtered),
            f"The same after control exclusions (beside the headline, not instead of it). {after}",
        ),
    ]
    figures = []
    for (model_a, model_b), _ in table.groupby(["model_a", "model_b"], sort=True):
        name = f"drawbench_{file_slug(model_a)}_vs_{file_slug(model_b)}"
        figures.append(
            figure_block(
                stage,
                name,
                lambda a=model_a, b=model_b: plots.preference_bars(table, a, b, ci),
                f"Preference for {model_a} over {model_b} per category and overall (Imagen Fig. 3 / A.15), "
                f"alignment and fidelity side by side; bars: {ci}; dashed: no preference.",
            )
        )
    sections = [Section("DrawBench side by side", blocks)]
    rank_blocks = []
    for question in sorted(table.question.unique()):
        try:
            ranking = bradley_terry_table(analysis, question)
        except ValueError as e:  # models in separate comparison groups have no common scale
            rank_blocks.append(Paragraph(f"Ranking ({question}) skipped: {e}.", kind="note"))
            continue
        if ranking.empty:
            rank_blocks.append(
                Paragraph(f"Ranking ({question}) skipped: fewer than three models compared.", kind="note")
            )
            continue
        rank_blocks.append(
            figure_block(
                stage,
                f"bradley_terry_{question}",
                lambda r=ranking: plots.ranking_plot(r),
                f"Bradley-Terry ranking, {question}.",
            )
        )
        rank_blocks.append(
            Table(
                f"bradley_terry_{question}",
                ranking,
                "Bradley-Terry log strengths (MM algorithm, ties as half wins, mean 0); interval: percentile of "
                f"{ranking.resamples.iloc[0]} two-way (prompts x raters) bootstrap refits, seed {ranking.seed.iloc[0]}.",
            )
        )
    sections.append(Section("Ranking of more than two models", rank_blocks))
    return sections, figures


def human_findings(analysis: RatingsAnalysis, filtered: RatingsAnalysis, exclusion: Exclusion) -> list[str]:
    """The human study in sentences, from the same tables the report shows: what was compared, each
    pair's overall preference per question with its interval and whether the interval excludes no
    preference (0.5), how many categories do, the COCO rates, and how many raters were excluded.
    `analysis`: every rater (DrawBench's headline); `filtered`: after control exclusions (COCO's)."""
    out = []
    table = sbs_table(analysis)  # empty, without columns, for a study with no side-by-side answers (COCO only)
    level = f"{analysis.config.level:.0%}"
    for (a, b), pair in table.groupby(["model_a", "model_b"], sort=True) if not table.empty else ():
        overall = pair[pair["category"] == ALL]
        if overall.empty:
            continue
        first = overall.iloc[0]
        out.append(
            f"Compared side by side: {a} vs {b} on {int(first['n_prompts'])} DrawBench prompts, "
            f"{int(first['n_answers'])} answers per question from {int(first['n_raters'])} "
            f"rater{'s' if int(first['n_raters']) != 1 else ''}."
        )
        for r in overall.itertuples():
            separated = r.pref_A_low > 0.5 or r.pref_A_high < 0.5
            lead, p, lo, hi = (
                (a, r.pref_A, r.pref_A_low, r.pref_A_high)
                if r.pref_A >= 0.5
                else (b, 1 - r.pref_A, 1 - r.pref_A_high, 1 - r.pref_A_low)
            )
            cats = pair[(pair["question"] == r.question) & (pair["category"] != ALL)]
            sep = int(((cats["pref_A_low"] > 0.5) | (cats["pref_A_high"] < 0.5)).sum())
            out.append(
                f"{r.question}: {lead} preferred in {p:.0%} [{lo:.0%}, {hi:.0%}] of answers (ties half; {level} interval) - "
                + (
                    "separated from no preference (the interval excludes 50 %)"
                    if separated
                    else "not separated from no preference (the interval contains 50 %)"
                )
                + (
                    f"; {sep} of {len(cats)} categories separated on their own (each at {level}, no correction across "
                    "categories)."
                    if len(cats) > 1
                    else "."
                )
            )
    for name, frame, prefix, unit in (
        ("COCO photorealism vs the reference", coco_realism_table(filtered), "realism_pref", "{:.0%}"),
        ("COCO caption alignment (0-100)", coco_alignment_table(filtered), "alignment_score", "{:.1f}"),
    ):
        for r in frame[frame["captions"] == ALL].to_dict("records") if not frame.empty else []:
            low, high = r.get(f"{prefix}_low"), r.get(f"{prefix}_high")
            bounds = (
                f" [{unit.format(low)}, {unit.format(high)}] ({level} interval)"
                if low is not None and high is not None
                else ""
            )
            out.append(f"{name}: {r['model']} {unit.format(r[prefix])}{bounds}, {int(r['n_answers'])} answers.")
    if exclusion.raters_total:
        out.append(
            f"Raters: {len(exclusion.raters_excluded)} of {exclusion.raters_total} below {exclusion.threshold_text()} "
            "(excluded from the COCO numbers and the control-filtered DrawBench table; DrawBench's headline keeps "
            "every rater, as the paper did)."
        )
    return out


def coco_section(analysis: RatingsAnalysis, after: str) -> Section:
    ci = analysis.config.describe()
    realism, alignment = coco_realism_table(analysis), coco_alignment_table(analysis)
    blocks = []
    if realism.empty:
        blocks.append(Paragraph("No coco_realism answers in the inputs.", kind="note"))
    else:
        blocks.append(
            Table(
                "coco_realism",
                realism,
                f"Photorealism preference = #model preferred / N (forced choice vs the "
                f"reference image) with {ci}; Wilson interval alongside. Rows: all captions "
                f"and those without people (Table 2's subset). {after}",
            )
        )
    if alignment.empty:
        blocks.append(Paragraph("No coco_alignment answers in the inputs.", kind="note"))
    else:
        blocks.append(
            Table(
                "coco_alignment",
                alignment,
                f"Caption alignment = mean of yes/somewhat/no = 100/50/0 with {ci} "
                f"(scaled to 0-100); Wilson interval alongside. Rows: all captions and those "
                f"without people (Table 2's subset). {after}",
            )
        )
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
    query = PowerQuery(
        effect=effect,
        grid=grid,
        n_prompts=prompts,
        answers_per_rater=int(min(per_rater.median(), prompts)),
        rater_model=model,
        studies=studies,
        method=analysis.config.method,
        seed=analysis.config.seed,
    )
    curve = power_curve(query)
    return Section(
        "Power",
        [
            Paragraph(
                query.describe()
                + " Prompt and rater spreads are the simulator's defaults, the tie rate is the observed one."
            ),
            Paragraph(needed(curve, query), kind="plain"),
            Table(
                "power",
                curve,
                "power = share of simulated studies whose interval excludes 0.5; mc_se = sqrt(p(1-p)/studies).",
            ),
            figure_block(
                stage,
                "power",
                lambda: plots.power_plot(curve, "raters", effect, query.target),
                f"Power vs raters; error bars: 95% Monte Carlo intervals; dashed: {query.target:.0%} target.",
            ),
        ],
    )


def gallery_section(images: dict[str, list[ImageRecord]], answers: pd.DataFrame, stage: Path) -> Section | None:
    """The same prompts side by side for the first rated pair of models that has images: one row per
    prompt category (its first rated prompt), the two models in two columns; thumbnails link to the
    full image. For a single-image protocol (COCO alignment), the rated model alone."""
    pairs = answers[["model_a", "model_b"]].drop_duplicates()
    models = None
    for model_a, model_b in pairs.itertuples(index=False):
        if model_a in images and (model_b in images or not model_b):
            models = [model_a, model_b] if model_b else [model_a]
            break
    if models is None:
        return None
    by_model = [{r.ref.prompt_id: r for r in images[m]} for m in models]
    rated = set(answers["prompt_id"].astype(str))
    first_per_category: dict[str, ImageRecord] = {}
    for record in sorted(images[models[0]], key=lambda r: (natural_key(r.ref.category), natural_key(r.ref.prompt_id))):
        key = record.ref.prompt_id
        if key in rated and all(key in m for m in by_model) and record.ref.category not in first_per_category:
            first_per_category[record.ref.category] = record
    if not first_per_category:
        return None
    rows = []
    for category, record in first_per_category.items():
        key = record.ref.prompt_id
        shown = []
        for model, recs in zip(models, by_model):
            shown.append(
                thumbnail(
                    stage,
                    recs[key].path,
                    f"{file_slug(model)}-{file_slug(key)}",
                    f"{category} #{key} {model}",
                    THUMBNAIL,
                )
            )
        rows.append((f"{category} #{key}: {record.ref.prompt}", tuple(shown)))
    title = (
        f"Sample images: {models[0]} and {models[1]} on the same prompts"
        if len(models) == 2
        else f"Sample images: {models[0]}"
    )
    return Section(
        title,
        [
            Grid(tuple(models), tuple(rows), THUMBNAIL),
            Paragraph(
                "The first rated prompt of each category, as the raters saw it (sides not shuffled here); "
                "click an image for the full size.",
                kind="how",
            ),
        ],
    )


def thumbnail(stage: Path, source: Path, stem: str, caption: str, size: int) -> Image:
    """images/STEM.png (long side `size` px) linking to a copy of the full image, images/full/STEM.<its suffix>."""
    thumb, full = f"images/{stem}.png", f"images/full/{stem}{Path(source).suffix.lower() or '.png'}"
    (stage / "images" / "full").mkdir(parents=True, exist_ok=True)
    with PILImage.open(source) as im:
        small = im.convert("RGB")
        small.thumbnail((size, size))
        small.save(stage / thumb)
    shutil.copyfile(source, stage / full)
    return Image(thumb, caption, link=full)


def _numeric(prompt_id: str) -> tuple:
    return (0, int(prompt_id), "") if prompt_id.isdigit() else (1, 0, prompt_id)


@dataclass
class HumanReport:
    summary: Section  # findings and the preference figures: the first screen
    samples: list[Section] = field(default_factory=list)
    body: list[Section] = field(default_factory=list)


def human_sections(
    answers: pd.DataFrame,
    exclusion: Exclusion,
    config: CIConfig,
    images: dict[str, list[ImageRecord]],
    power_effect: float,
    power_studies: int,
    stage: Path,
    unfiltered: pd.DataFrame | None = None,
) -> HumanReport:
    """`answers`: after control exclusions (the COCO protocols' headline, as in the paper);
    `unfiltered`: every rater's non-control answers (DrawBench's headline; default `answers`)."""
    analysis = RatingsAnalysis(answers, config)
    everyone = analysis if unfiltered is None else RatingsAnalysis(unfiltered.reset_index(drop=True), config)
    after = (
        f"Answers after control exclusions ({len(exclusion.raters_excluded)} of {exclusion.raters_total} raters below "
        f"{exclusion.threshold_text()}, {exclusion.answers_dropped} answers dropped; control rows not counted)."
    )
    sbs, figures = sbs_sections(everyone, analysis, stage, after)
    found = human_findings(everyone, analysis, exclusion)
    coco = coco_section(analysis, after)
    summary = Section(
        "What the study found",
        [
            Bullets(tuple(found)) if found else Paragraph("No ratings to summarise.", kind="note"),
            Figures(tuple(f for f in figures if isinstance(f, Image))),
        ]
        + [f for f in figures if not isinstance(f, Image)],
    )
    gallery = gallery_section(images, pd.concat([answers, everyone.answers]), stage) if images else None
    body = [
        *sbs,
        coco,
        power_section(analysis, power_effect, power_studies, stage),
        quality_section(answers, exclusion),
    ]
    return HumanReport(summary, [gallery] if gallery else [], body)
