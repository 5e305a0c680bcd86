"""The procedural shapes world: scenes, caption grammar, renderer, exact verifier, COCO export.

A text-to-image world a small cascade can learn on CPU, whose every caption is checkable:
see scene.py (vocabulary, held-out pairs), grammar.py (captions), verify.py (claims).
"""
from .dataset import ShapesDataset, reference_images, test_prompts
from .render import render_scene
from .scene import CATEGORIES, HELD_OUT, Scene

__all__ = ["CATEGORIES", "HELD_OUT", "Scene", "ShapesDataset", "reference_images", "render_scene", "test_prompts"]
