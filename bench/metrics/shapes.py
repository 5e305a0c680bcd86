"""Shapes-world accuracy: drawbench.shapes.verify checks every claim of a shapes caption on the
image (colour/shape, counts, relations, background, nothing else). Same definitions as
drawbench.shapes.accuracy: prompt accuracy = share of prompts whose claims all pass; claim
accuracy = share of single claims that pass; per cell overall, per shapes category, and per pair
group ("held-out": the caption names a colour x shape pair never seen in training; "seen").
Prompts outside the shapes caption grammar get no value and are counted in details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common.version import __version__

from .base import PROPORTION, MetricResult, ScoredImage, check_image, parse_options
from .state import KeyedStates, SumCount

OVERALL = ""  # category key of the whole cell


@dataclass(frozen=True)
class ShapesOptions:
    # also report shapes_accuracy/<group> and shapes_claim_accuracy/<group> for every category and
    # for the two pair groups (held-out, seen)
    per_category: bool = True


class ShapesVerifier:
    name = "shapes_verifier"
    option_classes = (ShapesOptions,)
    meta = {
        "shapes_accuracy": replace(
            PROPORTION, estimator="share of images whose every claim the exact verifier accepts", role="alignment"
        ),
        "shapes_claim_accuracy": replace(
            PROPORTION, interval="none", estimator="share of all claims accepted (claim-weighted)"
        ),
    }

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None):
        self.options = parse_options(ShapesOptions, options, self.name)
        from drawbench.shapes import verify
        from drawbench.shapes.grammar import pair_group, parse_caption

        self._verify, self._parse, self._pair_group = verify, parse_caption, pair_group
        self.prompts: KeyedStates[SumCount] = KeyedStates(
            SumCount
        )  # (cell, category or pair group) -> correct prompts / prompts
        self.claims: KeyedStates[SumCount] = KeyedStates(SumCount)  # (cell, category) -> passed claims / claims
        self.skipped: KeyedStates[SumCount] = KeyedStates(SumCount)  # cell -> prompts outside the grammar (count)

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for im in images:
            where = f"shapes_verifier cell {im.cell_id} prompt {im.ref.prompt_id} sample {im.ref.sample}"
            check_image(im.image, where)
            self.skipped[im.cell_id].update([])  # the cell is known even if every prompt is skipped
            try:
                parsed = self._parse(im.ref.prompt)
            except ValueError:
                self.skipped[im.cell_id].update([1.0])
                out.append({})  # not a shapes caption: no value (not 0)
                continue
            try:
                v = self._verify(im.image, im.ref.prompt)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
            passed = [float(ok) for _, ok in v.claims]  # one 0/1 per claim
            for cat in (OVERALL, v.category, self._pair_group(parsed)):
                self.prompts[(im.cell_id, cat)].update([float(v.correct)])
                self.claims[(im.cell_id, cat)].update(passed)
            # every caption has >= 1 claim ("nothing else"), so the share is defined
            out.append({"shapes_correct": float(v.correct), "shapes_claim_accuracy": sum(passed) / len(passed)})
        return out

    def compute(self) -> list[MetricResult]:
        claims = dict(self.claims.synced_items())
        prompts = dict(self.prompts.synced_items())
        out = []
        for cell, state in self.skipped.synced_items():
            skipped, _ = state.compute()
            base = {
                "package_version": __version__,
                "verifier": "drawbench.shapes.verify",
                "skipped_prompts": int(skipped),
            }
            for (c, cat), p in sorted(prompts.items()):
                if c != cell or (cat != OVERALL and not self.options.per_category):
                    continue
                correct, n = p.compute()
                passed, n_claims = claims[(c, cat)].compute()
                suffix = f"/{cat}" if cat != OVERALL else ""
                details = {**base, "category": cat or "overall", "n_prompts": n, "n_claims": n_claims}
                # the overall accuracy is the mean of the per-image shapes_correct (the report's intervals resample those)
                accuracy_details = {**details, "per_image_metric": "shapes_correct"} if cat == OVERALL else details
                out += [
                    MetricResult(f"shapes_accuracy{suffix}", correct / n, n, accuracy_details, cell_id=cell),
                    MetricResult(f"shapes_claim_accuracy{suffix}", passed / n_claims, n, details, cell_id=cell),
                ]
        return out

    def reset(self) -> None:
        for s in (self.prompts, self.claims, self.skipped):
            s.reset()
