"""The run folder's axes (docs/ARCHITECTURE.md, contract 1): what a cell of a sweep varies over.
bench.sweep writes them as cells.parquet columns; the report groups and pairs cells by them."""
from __future__ import annotations

# sampling settings a model may expand (bench.models.base.Sampling has one field for each)
SAMPLING_AXES = ("sampler", "steps", "guidance", "thresholding", "percentile", "aug_level")
# what makes one cell differ from another: the plots' series and the paired comparisons use these
# and nothing else (cells.parquet also holds bookkeeping columns: name, model_description, ...)
CELL_AXES = ("model", "prompt_set", *SAMPLING_AXES, "seed")
