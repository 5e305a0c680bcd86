"""Finding the objects in an image of the shapes world: colour segmentation + shape features.

1. Background = median of the 1-px border; named if within BG_TOLERANCE of a background colour.
2. A pixel belongs to colour k if k is its nearest object colour, within COLOR_TOLERANCE, and it is
   nearer to k than to the background (anti-aliased / blurred edges are mixtures far from every
   colour, so they stay unassigned instead of forming rings of a third colour).
3. Per colour: 3x3 opening from 48 px up (drops 1-2 px specks and slivers), connected components, components
   smaller than MIN_AREA of the canvas dropped.
4. Per component, a soft coverage alpha = projection of each pixel onto the background->object
   colour line, inside the component dilated by ~3 % of the side (where blurred edges spread).
   normalised so the interior is 1. Blur and noise preserve its sums, so these are sub-pixel:
     skew  = skewness of the vertical profile: triangle (apex up) -0.57, circle / square 0
     area  = sum(alpha); chords = max column sum (height) and max row sum (width)
     fill  = area / (width * height): square 1, circle pi/4 = 0.785
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .scene import BACKGROUNDS, COLORS, SIZES

COLOR_TOLERANCE = 60.0  # RGB distance; half the gap to the nearest other colour is >= 41
BG_TOLERANCE = 60.0
MIN_AREA = 0.004  # fraction of the canvas; the smallest object (small triangle) covers 0.018
SQUARE_FILL = 0.89  # midpoint between square 1.0 and circle pi/4
TRIANGLE_SKEW = 0.2  # apex-up triangle: -0.57 clean, >= 0.32 in size after blur+noise at 64^2; circle/square <= 0.07
LARGE_EXTENT = (SIZES["small"] + SIZES["large"]) / 2  # 0.25 of the side
MIN_SIDE = 32
OPEN_FROM = 48  # below this a 3x3 opening erases small triangles (6 px at 32^2)

_PALETTE = np.array(list(COLORS.values()), np.float32)  # (K, 3)
_NAMES = tuple(COLORS)
_OPEN = np.ones((3, 3), bool)


@dataclass(frozen=True)
class Detection:
    color: str
    shape: str
    size: str
    x: float  # alpha-weighted centroid, fraction of width
    y: float  # fraction of height (down)
    area: float  # soft area, fraction of the canvas
    extent: float  # max(width, height) chord, fraction of the side
    fill: float  # area / (width * height) chords
    skew: float  # skewness of the vertical mass profile: 0 for circle/square, -0.57 for a triangle


def as_array(image) -> np.ndarray:
    """PIL image or uint8 (H, W, 3) array -> float32 (H, W, 3); rejects anything else clearly."""
    if isinstance(image, Image.Image):
        arr = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        arr = image
    else:
        raise ValueError(f"image must be a PIL image or a uint8 numpy array, got {type(image).__name__}")
    if min(arr.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"the verifier needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {arr.shape[1]}x{arr.shape[0]}"
        )
    return arr.astype(np.float32)


def background_of(arr: np.ndarray) -> tuple[np.ndarray, str | None]:
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    bg = np.median(border, axis=0).astype(np.float32)
    names = tuple(BACKGROUNDS)
    dist = np.linalg.norm(np.array([BACKGROUNDS[n] for n in names], np.float32) - bg, axis=1)
    return bg, (names[int(dist.argmin())] if dist.min() <= BG_TOLERANCE else None)


def _classify(fill: float, skew: float) -> str:
    if abs(skew) >= TRIANGLE_SKEW:
        return "triangle"
    return "square" if fill >= SQUARE_FILL else "circle"


def _chord(profile: np.ndarray) -> float:
    """Longest chord from a row/column-sum profile, smoothed [1, 2, 1] / 4 first so pixel noise
    does not bias the maximum upwards (the centre chord of a circle barely changes)."""
    return float(np.convolve(profile, [0.25, 0.5, 0.25], mode="same").max())


def _measure(
    arr: np.ndarray, bg: np.ndarray, comp: np.ndarray, color: str, origin: tuple[int, int], canvas: tuple[int, int]
) -> Detection:
    """comp: boolean mask of one component inside the crop `arr` whose top-left pixel is `origin`
    (row, col) of a canvas of shape (H, W); the crop has room for the dilation on every side."""
    h, w = canvas
    region = ndimage.binary_dilation(comp, iterations=_grow(canvas))
    ys, xs = np.nonzero(region)
    obj = np.median(arr[comp], axis=0)  # the object's actual colour (tolerates colour drift)
    axis = obj - bg
    alpha = np.zeros(comp.shape, np.float32)
    # clip only far outliers: clipping at 0 / 1 would bias the sums (and moments) under noise
    alpha[ys, xs] = np.clip((arr[ys, xs] - bg) @ axis / float(axis @ axis), -0.5, 1.5)
    core = ndimage.binary_erosion(comp)
    level = float(np.median(alpha[core if core.sum() >= 4 else comp]))  # interior = coverage 1
    alpha /= max(level, 1e-3)
    area = float(alpha.sum())
    width, height = _chord(alpha.sum(axis=0)), _chord(alpha.sum(axis=1))
    wts = alpha[ys, xs]
    cx, cy = float(wts @ (xs + 0.5)) / area, float(wts @ (ys + 0.5)) / area
    dy = ys + 0.5 - cy
    skew = float(wts @ dy**3) / area / max(float(wts @ dy**2) / area, 1e-6) ** 1.5
    fill = area / max(width * height, 1e-6)
    extent = max(width / w, height / h)
    size = "large" if extent >= LARGE_EXTENT else "small"
    x, y = (origin[1] + cx) / w, (origin[0] + cy) / h
    return Detection(color, _classify(fill, skew), size, x, y, area / (h * w), extent, fill, skew)


def _grow(canvas: tuple[int, int]) -> int:
    """Dilation (px) that covers blurred edges: 3.5 % of the side (9 px at 256), at least 3 px."""
    return max(3, int(np.ceil(0.035 * max(canvas))))


def detect(image) -> tuple[str | None, tuple[Detection, ...]]:
    """(background name or None, detected objects sorted by position) of an image >= 32x32."""
    arr = as_array(image)
    bg, bg_name = background_of(arr)
    flat = arr.reshape(-1, 3)
    sq = (flat * flat).sum(axis=1)
    d2 = sq[:, None] - 2 * flat @ _PALETTE.T + (_PALETTE * _PALETTE).sum(axis=1)  # (H*W, K) squared
    nearest = d2.argmin(axis=1)
    dmin2 = d2[np.arange(len(flat)), nearest]
    bg2 = sq - 2 * flat @ bg + float(bg @ bg)
    assigned = ((dmin2 <= COLOR_TOLERANCE**2) & (dmin2 < bg2)).reshape(arr.shape[:2])
    nearest = nearest.reshape(arr.shape[:2])
    min_px = MIN_AREA * arr.shape[0] * arr.shape[1]
    found = []
    for k in np.unique(nearest[assigned]):
        mask = assigned & (nearest == k)
        if min(arr.shape[:2]) >= OPEN_FROM:
            mask = ndimage.binary_opening(mask, structure=_OPEN)
        labels, n = ndimage.label(mask)
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        boxes = ndimage.find_objects(labels)
        pad = _grow(arr.shape[:2]) + 2
        for j in np.flatnonzero(sizes >= min_px):
            rows, cols = boxes[j]
            r0, c0 = max(0, rows.start - pad), max(0, cols.start - pad)
            crop = (slice(r0, rows.stop + pad), slice(c0, cols.stop + pad))
            comp = labels[crop] == j + 1
            found.append(_measure(arr[crop], bg, comp, _NAMES[k], (r0, c0), arr.shape[:2]))
    return bg_name, tuple(sorted(found, key=lambda d: (d.y, d.x)))
