"""The shapes world's vocabulary and its ground-truth scene (what a caption describes).

Coordinates are fractions of the canvas side (0..1, y down), so one scene renders at any size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from common.errors import check_choice as check_name  # re-exported: the shapes modules import it from here

SHAPES = ("circle", "square", "triangle")
# Hues far apart (closest pair orange/yellow is 83 apart in RGB) so the verifier separates them after
# blur + noise; saturated enough that an edge blended with any background is far from every colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 230),
    "purple": (150, 60, 200),
}
# Plain backgrounds, none close to an object colour (nearest pair gray/purple: 101 apart).
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "black": (0, 0, 0),
}
# Bounding-box side as a fraction of the canvas: small is >= 3 px at 16x16 (0.19 * 16 = 3.04);
# large/small differ by 1.6x so the size claim survives blur.
SIZES: dict[str, float] = {"small": 0.19, "large": 0.31}
RELATIONS = ("left of", "right of", "above", "below")
CATEGORIES = ("Colors", "Counting", "Positional", "Descriptions")
SPLITS = ("train", "validation", "test")
# Colour x shape pairs that never appear in train or validation images or captions, only in the
# test split / test prompts: the benchmark measures composition, not memory. Each colour and each
# shape still appears in training with the other shapes / colours.
HELD_OUT: frozenset[tuple[str, str]] = frozenset({("red", "triangle"), ("green", "circle"), ("purple", "square")})
# Clear space between objects (and to the canvas edge) as a fraction of the side: 6 % is ~4 px at
# 64x64, so blurred edges of neighbouring objects never touch.
GAP = 0.06
EDGE = 0.03


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    size: str
    x: float  # centre, fraction of canvas width
    y: float  # centre, fraction of canvas height (down)

    @property
    def side(self) -> float:
        return SIZES[self.size]

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) bounding box in canvas fractions."""
        h = self.side / 2
        return (self.x - h, self.y - h, self.x + h, self.y + h)


@dataclass(frozen=True)
class Scene:
    background: str
    objects: tuple[Obj, ...]

    def __post_init__(self) -> None:
        check_name("background", self.background, tuple(BACKGROUNDS))
        for o in self.objects:
            check_name("shape", o.shape, SHAPES)
            check_name("colour", o.color, tuple(COLORS))
            check_name("size", o.size, tuple(SIZES))

    def to_json(self) -> str:
        return json.dumps(
            {"background": self.background, "objects": [asdict(o) for o in self.objects]}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Scene:
        d = json.loads(text)
        return cls(d["background"], tuple(Obj(**o) for o in d["objects"]))
