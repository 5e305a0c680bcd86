"""The run folder's axes (docs/ARCHITECTURE.md, contract 1): what a cell of a sweep varies over
(bench.sweep writes them as cells.parquet columns; the report groups and pairs cells by them), and
which prompt an image is of (PromptRef: manifest.parquet's prompt columns)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# The sampling settings a model may expand: the flat keys of imagen.pipeline.StageSampling (its
# SAMPLING_FIELDS; tests/test_settings_once.py holds the two equal), named here because the report
# side reads them and may not import imagen. bench.models.Sampling and the sweep grid are made from
# these names, in this order (cells.parquet's column order). Adding an axis: docs/ARCHITECTURE.md.
SAMPLING_AXES = ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level")
# what makes one cell differ from another: the plots' series and the paired comparisons use these
# and nothing else (cells.parquet also holds bookkeeping columns: name, model_description, ...)
CELL_AXES = ("model", "prompt_set", *SAMPLING_AXES, "seed")


@dataclass(frozen=True)
class PromptRef:
    """Which image of which prompt: the one definition of the prompt fields that every record of an
    image carries. The manifest's prompt columns are these fields; common.imagestore.ImageRecord,
    bench's ImageRequest (what a model is asked for) and ScoredImage (what a metric sees) embed it."""

    prompt_set: str  # the sweep's label for its prompt set ("drawbench", "coco", "parti:Animals")
    prompt_id: str  # the prompt's id in that set, as text ("1", "203564")
    category: str  # DrawBench / Parti category, GenEval tag, "coco"
    prompt: str  # the caption the image was made from
    sample: int  # 0-based index among the images of this prompt in one cell

    def key(self) -> tuple[str, str, int]:
        """What tells two images of one cell apart (the caption and category follow from the id):
        the values of PROMPT_KEY_COLUMNS."""
        return (self.prompt_set, self.prompt_id, self.sample)

    def row(self) -> dict[str, Any]:
        """The manifest's prompt columns of this image."""
        return asdict(self)

    @classmethod
    def of(cls, row: Any) -> PromptRef:
        """From a manifest row (a pandas itertuples() row or a mapping), typed as the contract says."""
        get = row.__getitem__ if isinstance(row, dict) else lambda name: getattr(row, name)
        return cls(
            str(get("prompt_set")), str(get("prompt_id")), str(get("category")), str(get("prompt")), int(get("sample"))
        )


PROMPT_REF_COLUMNS = tuple(f.name for f in fields(PromptRef))
PROMPT_KEY_COLUMNS = ("prompt_set", "prompt_id", "sample")  # PromptRef.key(): with cell_id, one image of a run
