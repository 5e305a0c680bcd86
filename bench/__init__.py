"""bench: the model benchmark: sweeps that generate images (models), score them (metrics) and
write run folders; diagnostics of trained cascades. Shipped specs are in SPECS."""

from pathlib import Path

SPECS = Path(__file__).parent / "specs"  # demo.toml, coco_fid30k.toml, pareto_3x3.toml, ...
