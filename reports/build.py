"""Assemble a report: run folders and ratings in, one folder out (index.html, plots/*.png,
tables/*.csv + *.parquet, report.json), written atomically (publish.py)."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from common.files import write_json_atomic
from common.imagestore import ImageRecord
from common.tables import to_csv
from common.version import __version__
from human_eval.contract import DEFAULT_CONTROL_THRESHOLD, DEFAULT_FAST_ANSWER_MS, apply_controls, settings_of
from human_eval.export import study_images

from . import plots
from .html import Bullets, Paragraph, Section, Table, file_slug, natural_key, render, tables_of
from .human_sections import figure_block, human_sections
from .leaderboard import LeaderboardOptions
from .paired import DEFAULT_RESAMPLES as PAIRED_RESAMPLES
from .paired import paired_table
from .power import DEFAULT_STUDIES
from .preference import CIConfig
from .publish import MARKER, check_target, staged
from .run_overview import overview
from .runs import RunMetrics, headline_table, read_run_metrics, shapes_table, spec_sha256, split_how
from .sequential_section import sequential_sections
from .studies import combine_answers

# 0.05: the smallest preference difference the paper's DrawBench comparisons read as meaningful;
# 0 turns the power section off.
DEFAULT_POWER_EFFECT = 0.05


@dataclass(frozen=True)
class ReportOptions:
    ci: CIConfig = CIConfig()  # rating studies; its seed and level also serve the run folders' comparisons
    run_resamples: int = PAIRED_RESAMPLES  # run folders' paired comparisons (prompt bootstrap)
    # None: each study's own recorded threshold (study.json / the database; the default where none
    # is recorded); a value: that threshold for every study
    control_threshold: float | None = None
    power_effect: float = DEFAULT_POWER_EFFECT
    power_studies: int = DEFAULT_STUDIES
    title: str = "imagen-bench report"
    banner: str = ""  # shown on top in a box, e.g. that the ratings are simulated


@dataclass(frozen=True)
class ReportInputs:
    runs: tuple[Path, ...] = ()
    answers: tuple[tuple[str, pd.DataFrame], ...] = ()  # (where it came from, contract-2 frame)
    study_settings: dict[str, dict] = field(
        default_factory=dict
    )  # study -> its recorded settings (threshold, fast-answer time)
    images: dict[str, list[ImageRecord]] = field(default_factory=dict)  # model -> images, for an example gallery


DEFAULT_CI = CIConfig()  # the report's intervals unless told otherwise (a frozen default, shared)


def run_sections(
    run: RunMetrics,
    stage: Path,
    ci: CIConfig = DEFAULT_CI,
    resamples: int = PAIRED_RESAMPLES,
    labels: dict[str, str] | None = None,
    skipped: Paragraph | None = None,
) -> tuple[list[Section], list[Section]]:
    """(the run's sections, its collapsed details: how each metric was computed). `labels`: entry
    ("run/cell name") -> the overview's short label, shown in front of the cell ids, rows in label order;
    `skipped`: why the overview drew no Pareto figure for this run."""
    slug = file_slug(run.name)
    values, methods = split_how(headline_table(run))
    blocks = [skipped] if skipped else []
    blocks.append(
        Table(
            f"metrics_{slug}",
            _labelled(values, run, labels),
            f"From {run.run}/metrics_cell.parquet as the sweep wrote it (nothing recomputed): value per cell, N = images "
            "it was computed on; how each value was made: 'How each metric was computed' below.",
        )
    )
    shapes = shapes_table(run)
    if not shapes.empty:  # a run without the shapes verifier has nothing to say here
        blocks.append(
            Table(
                f"shapes_accuracy_{slug}",
                _labelled(shapes, run, labels),
                "Shapes-verifier accuracy per category = share of images the verifier judged to match their caption; "
                "N images per cell.",
            )
        )
    paired = paired_table(run.run, run.cells, "guidance", resamples, ci.level, ci.seed)
    if not paired.empty:
        blocks.append(
            Table(
                f"paired_guidance_{slug}",
                paired,
                f"Each cell against the cell that differs only in guidance (its smallest w), on the same prompts "
                f"and seeds (from metrics_image.parquet): difference of per-image means with a {ci.level:.0%} "
                f"interval (mean +- t x bootstrap SE from {resamples:,} resamples of prompts, seed {ci.seed}, kept inside "
                "the metric's range) and its p, with Holm's correction across each metric's rows (p (Holm)); "
                "for 0/1 metrics 'better' / "
                "'worse' count the prompts only one of the two got right, and McNemar p is the exact two-sided "
                "test on them.",
            )
        )
    if "aug_level" in run.varying():  # a figure over one level would be a point
        blocks.append(
            figure_block(
                stage,
                f"aug_level_{slug}",
                lambda: plots.aug_level_plot(run),
                "FID and alignment over the SR noise-augmentation level (Imagen Fig. A.11).",
            )
        )
    how = Table(
        f"metric_methods_{slug}",
        methods,
        "How each metric was computed, from its recorded details (resize mode, reference, feature weights sha256, "
        "N) or why it is unavailable; 'cells' says which rows of the run's metrics table it applies to.",
    )
    return [Section(f"Automated metrics: {run.name}", blocks)], [
        Section(f"How each metric was computed: {run.name}", [how], details=True)
    ]


def _labelled(table: pd.DataFrame, run: RunMetrics, labels: dict[str, str] | None) -> pd.DataFrame:
    """`table` (a cell_id column) with the overview's label in front, rows in label order."""
    if not labels:
        return table
    names = dict(zip(run.cells["cell_id"], run.cells["name"] if "name" in run.cells.columns else run.cells["cell_id"]))
    prefix = f"{Path(run.run).resolve().name}/"
    label = [labels.get(prefix + str(names.get(c, c)), str(c)) for c in table["cell_id"]]
    out = table.assign(label=label)[["label", *table.columns]]
    return out.iloc[sorted(range(len(out)), key=lambda i: natural_key(label[i]))].reset_index(drop=True)


def methods_section(options: ReportOptions) -> Section:
    return Section(
        "Methods",
        details=True,
        blocks=[
            Paragraph(t, kind="plain")
            for t in (
                f"Default interval: {options.ci.describe()}. The estimand is the population preference over prompts and raters; "
                "answers are clustered by prompt and by rater, so intervals that treat answers as independent (Wilson) are too narrow "
                "and the plain two-way bootstrap is too wide. See docs/reports.md.",
                (
                    "Raters (a rater is a (study, rater) pair: names restart in every study) below their study's recorded control "
                    f"accuracy threshold (default {DEFAULT_CONTROL_THRESHOLD:.0%})"
                    if options.control_threshold is None
                    else f"Raters below {options.control_threshold:.0%} control accuracy (the threshold given for every study)"
                )
                + " are excluded with all their answers; control rows never enter the analysis.",
                "Automated metrics are read from the run folders as written by `imagen-bench sweep`; the report reruns nothing.",
            )
        ],
    )


def provenance(inputs: ReportInputs, options: ReportOptions) -> dict:
    return {
        "format": "imagen-bench-report/1",
        "package_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.system()} python {platform.python_version()}",
        "runs": [str(r) for r in inputs.runs],
        "ratings": [src for src, _ in inputs.answers],
        "run_specs": {str(r): spec_sha256(r) for r in inputs.runs},  # each run's spec, as its run.json records it
        "options": {**asdict(options), "ci": asdict(options.ci)},
    }


def _lead_with(summary: Section, lines: list[str]) -> Section:
    """`summary` with `lines` (a sequential study's stop and result) as its first findings: the page
    leads with what the study's own rule found, before the per-pair rates of the pairs it dealt."""
    if not lines:
        return summary
    first, rest = summary.blocks[0], summary.blocks[1:]
    return Section(summary.title, [Bullets(tuple(lines) + (first.items if isinstance(first, Bullets) else ())), *rest])


def build_report(
    inputs: ReportInputs, out: str | Path, options: ReportOptions = ReportOptions(), force: bool = False
) -> Path:
    """Write the report folder `out`; refuses an existing folder unless force (then replaces it atomically)."""
    out = Path(out)
    check_target(out, force)
    if not inputs.runs and not inputs.answers:
        raise ValueError("nothing to report: give run folders and/or rating studies / ratings files")
    runs = [read_run_metrics(r) for r in inputs.runs]  # read and validate everything before writing anything
    # a study given twice counted once, namesakes refused, models named by study and source (reports.studies)
    answers, labels = combine_answers(list(inputs.answers), inputs.study_settings) if inputs.answers else (None, {})
    meta = provenance(inputs, options)
    with staged(out, force) as stage:
        (stage / "plots").mkdir()
        (stage / "tables").mkdir()
        head = [Paragraph(options.banner, kind="banner")] if options.banner else []
        summaries, samples, body, details = [], [], [], []
        if runs:
            compare = LeaderboardOptions(resamples=options.run_resamples, seed=options.ci.seed, level=options.ci.level)
            opening = overview(runs, stage, compare)
            summaries.append(opening.summary)
            samples += opening.samples
            body += opening.body
            details += opening.details
            for run in runs:
                shown, how = run_sections(
                    run, stage, options.ci, options.run_resamples, opening.labels, opening.skipped.get(run.name)
                )
                body += shown
                details += how
        if answers is not None:
            recorded = settings_of(inputs.study_settings, "control_threshold", DEFAULT_CONTROL_THRESHOLD)
            clean, exclusion = apply_controls(
                answers,
                recorded if options.control_threshold is None else options.control_threshold,
                settings_of(inputs.study_settings, "fast_answer_ms", DEFAULT_FAST_ANSWER_MS),
            )
            images = inputs.images or study_images(
                [src for src, _ in inputs.answers], labels
            )  # human_eval.export: the study's own copies
            human = human_sections(
                clean,
                exclusion,
                options.ci,
                images,
                options.power_effect,
                options.power_studies,
                stage,
                unfiltered=answers[~answers["is_control"]],
            )
            found, sequential = sequential_sections(answers, inputs.study_settings)  # why it stopped, what it found
            summaries.append(_lead_with(human.summary, found))
            summaries += sequential
            samples += human.samples
            body += human.body
        if head:
            summaries[0] = Section(summaries[0].title, head + summaries[0].blocks)
        provenance_text = (
            f"imagen-bench {__version__}, created {meta['created']} on {meta['machine']}; "
            f"inputs: {', '.join(meta['runs'] + meta['ratings'])}."
        )
        details = [
            Section("Provenance", [Paragraph(provenance_text, kind="plain")], details=True),
            *details,
            methods_section(options),
        ]
        sections = summaries + samples + body + details
        for table in tables_of(sections):
            to_csv(table.frame, stage / "tables" / f"{table.name}.csv")  # formula cells neutralised; parquet exact
            table.frame.to_parquet(stage / "tables" / f"{table.name}.parquet", index=False)
        stamp = f"[imagen-bench {__version__}]"
        (stage / "index.html").write_text(render(options.title, sections, stamp), encoding="utf-8")
        write_marker(
            stage / MARKER,
            {
                **meta,
                "tables": [t.name for t in tables_of(sections)],
                "plots": sorted(p.name for p in (stage / "plots").iterdir()),
            },
        )
    return out


def write_marker(path: Path, data: dict) -> None:

    write_json_atomic(path, data)
