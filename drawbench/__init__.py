"""drawbench: prompt sets (DrawBench, COCO captions, PartiPrompts, GenEval) and the procedural shapes world."""

from .prompts import DRAWBENCH_CATEGORIES, load_drawbench
from .suites import load_geneval, load_parti

__all__ = ["DRAWBENCH_CATEGORIES", "load_drawbench", "load_geneval", "load_parti"]
