"""drawbench: prompt sets (DrawBench, COCO captions) and the procedural shapes world."""
from .prompts import DRAWBENCH_CATEGORIES, load_drawbench

__all__ = ["DRAWBENCH_CATEGORIES", "load_drawbench"]
