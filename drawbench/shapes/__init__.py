"""The procedural shapes world: scenes, caption grammar, renderer, exact verifier, COCO export.

A text-to-image world a small cascade can learn on CPU, whose every caption is checkable:
scene.py (vocabulary, held-out colour x shape pairs), generate.py (seeded sampling, splits),
grammar.py (captions), render.py, dataset.py (ShapesDataset, test_prompts, reference_images),
detect.py + verify.py (claims and their semantics), measure.py (verifier accuracy), coco.py;
diagnostics of a trained cascade: stage_check.py (which stage loses prompts), order_check.py (does
the text encoder tell "A rel B" from "B rel A"), swap_check.py (does the base follow word order).
"""

from .coco import export_coco
from .dataset import ShapesDataset, reference_images, test_prompts
from .render import render_scene
from .scene import CATEGORIES, HELD_OUT, Scene
from .verify import Verification, accuracy, verify

__all__ = [
    "CATEGORIES",
    "HELD_OUT",
    "Scene",
    "ShapesDataset",
    "Verification",
    "accuracy",
    "export_coco",
    "reference_images",
    "render_scene",
    "test_prompts",
    "verify",
]
