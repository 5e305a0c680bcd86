"""What a script sees of one task in the browser, and detectors that try to tell controls from
ordinary tasks with it (the `detect-controls` trial, issue 30).

A TaskView holds everything the page received for one task: the caption, every image's src (its
bytes decoded from the data: URL), its pixel size and DOM position, the page's element sequence,
the time from Submit to the next task's images being shown, the websocket bytes received meanwhile,
and any HTTP responses (URL, status, headers). Detectors score each task (higher = "control");
`balanced_accuracy` flags the top half of a balanced set (every control, as many ordinary tasks).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Shown:
    src: str  # the img element's src, as the page has it
    data: bytes  # what that src delivers
    size: tuple[int, int]  # naturalWidth, naturalHeight
    side: int  # 0 left, 1 right (DOM order)


@dataclass(frozen=True)
class TaskView:
    rater: str
    index: int  # position in the rater's queue
    is_control: bool  # truth, from the database: never used by a detector
    caption: str
    images: tuple[Shown, ...]
    dom: str  # the data-testid sequence of the page's main block
    render_s: float  # Submit click (or page load) -> every image of this task complete
    ws_bytes: int  # websocket payload received for this task
    http: tuple[str, ...]  # "status content-type header-names" of every HTTP response meanwhile


def decode_src(src: str) -> bytes:
    if not src.startswith("data:"):
        raise ValueError(f"image src is not a data: URL ({src[:60]!r}); the trial reads what the page received")
    return base64.b64decode(src.split(",", 1)[1])


def strip_comments(jpeg: bytes) -> bytes:
    """The JPEG without its comment (COM) segments: the underlying file, whatever padding a render added."""
    out, i = [jpeg[:2]], 2
    while i + 4 <= len(jpeg) and jpeg[i] == 0xFF and jpeg[i + 1] != 0xDA:  # up to start-of-scan
        n = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if jpeg[i + 1] != 0xFE:
            out.append(jpeg[i : i + 2 + n])
        i += 2 + n
    return b"".join(out) + jpeg[i:]


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def dhash(data: bytes) -> int:
    """64-bit difference hash (perceptual: survives re-encoding and mild changes)."""
    g = np.asarray(_image(data).convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def tables(data: bytes) -> str:
    q = getattr(_image(data), "quantization", None) or {}
    return hashlib.sha256(repr(sorted((k, tuple(v)) for k, v in q.items())).encode()).hexdigest()[:16]


def sharpness(data: bytes) -> float:
    """Edge energy at 64 x 64 (pixel noise averaged away, blur kept): a judgment of the content, not of the transport."""
    g = _image(data).convert("L").resize((64, 64), Image.Resampling.BOX)
    return float(np.asarray(g.filter(ImageFilter.FIND_EDGES), dtype=np.float32).var())


def _hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


class Digest:
    """Per-image facts every detector reads, computed once per view."""

    def __init__(self, views: list[TaskView]):
        self.url, self.raw, self.core, self.hash, self.table = {}, {}, {}, {}, {}
        for v in views:
            for k, im in enumerate(v.images):
                key = (v.rater, v.index, k)
                self.url[key] = im.src
                self.raw[key] = hashlib.sha256(im.data).hexdigest()
                self.core[key] = hashlib.sha256(strip_comments(im.data)).hexdigest()
                self.hash[key] = dhash(im.data)
                self.table[key] = tables(im.data)


def _rarity(values: list, value) -> float:
    return 1.0 - Counter(values)[value] / len(values)


def single_rater_scores(views: list[TaskView], dg: Digest) -> dict[str, list[float]]:
    """Detector name -> a score per view (views of ONE rater): transport and identity signals."""
    keys = [[(v.rater, v.index, k) for k in range(len(v.images))] for v in views]
    sizes = [len(im.data) for v in views for im in v.images]
    med = float(np.median(sizes))
    captions = Counter(v.caption for v in views)
    doms = [v.dom for v in views]
    dims = [tuple(im.size for im in v.images) for v in views]
    tabs = [dg.table[k] for ks in keys for k in ks]
    times = np.array([v.render_s for v in views])
    ws = np.array([v.ws_bytes - 4 * len(v.caption) for v in views], dtype=float)  # the caption's own bytes taken out
    https = [v.http for v in views]

    def elsewhere(table: dict, i: int) -> float:
        """2: met in an earlier task (the issue's bot, remembering as it goes), 1: in a later one, 0: never."""
        mine = {table[k] for k in keys[i]}
        met = [j for j, ks in enumerate(keys) if j != i and any(table[k] in mine for k in ks)]
        return 2.0 if any(views[j].index < views[i].index for j in met) else 1.0 if met else 0.0

    def nearest(i: int) -> float:
        others = [dg.hash[k] for j, ks in enumerate(keys) if j != i for k in ks]
        return -min(_hamming(dg.hash[k], o) for k in keys[i] for o in others) if others else 0.0

    def z(x: np.ndarray, i: int) -> float:
        return abs(x[i] - x.mean()) / (x.std() or 1.0)

    return {
        "url seen in another task": [elsewhere(dg.url, i) for i in range(len(views))],
        "bytes seen in another task": [elsewhere(dg.raw, i) for i in range(len(views))],
        "file (padding stripped) seen in another task": [elsewhere(dg.core, i) for i in range(len(views))],
        "perceptual hash near another task's": [nearest(i) for i in range(len(views))],
        "caption repeated in the queue": [float(captions[v.caption] > 1) for v in views],
        "byte size off the median": [max(abs(len(im.data) - med) for im in v.images) for v in views],
        "rare JPEG table": [max(_rarity(tabs, dg.table[k]) for k in ks) for ks in keys],
        "rare pixel sizes": [_rarity(dims, d) for d in dims],
        "rare DOM sequence": [_rarity(doms, d) for d in doms],
        "render time off the mean": [z(times, i) for i in range(len(views))],
        "websocket bytes off the mean": [z(ws, i) for i in range(len(views))],
        "rare HTTP traffic": [_rarity(https, h) for h in https],
    }


def colluding_scores(views: list[TaskView], partner: list[TaskView], dg: Digest) -> dict[str, list[float]]:
    """Detector name -> a score per view of one rater, comparing notes with a partner's views."""
    by_caption: dict[str, list[TaskView]] = {}
    for p in partner:
        by_caption.setdefault(p.caption, []).append(p)

    def files(v: TaskView, table: dict) -> set:
        return {table[(v.rater, v.index, k)] for k in range(len(v.images))}

    def mismatch(v: TaskView, table: dict) -> float:
        same = by_caption.get(v.caption, [])
        return 1.0 if not same else float(min(len(files(v, table) ^ files(p, table)) for p in same))

    def hash_gap(v: TaskView) -> float:
        same = by_caption.get(v.caption, [])
        if not same:
            return 64.0
        mine = [dg.hash[(v.rater, v.index, k)] for k in range(len(v.images))]
        return float(
            min(
                sum(min(_hamming(h, dg.hash[(p.rater, p.index, k)]) for k in range(len(p.images))) for h in mine)
                for p in same
            )
        )

    partner_urls = {dg.url[(p.rater, p.index, k)] for p in partner for k in range(len(p.images))}
    return {
        "caption missing from the partner's queue": [float(v.caption not in by_caption) for v in views],
        "files differ from the partner's task with this caption": [mismatch(v, dg.core) for v in views],
        "perceptual hashes differ from the partner's task": [hash_gap(v) for v in views],
        "url shared with the partner": [
            float(any(dg.url[(v.rater, v.index, k)] in partner_urls for k in range(len(v.images)))) for v in views
        ],
    }


def content_scores(views: list[TaskView], dg: Digest) -> dict[str, list[float]]:
    """Not a client-view leak: judging what the pictures show, as raters are asked to (reported, not a
    pass criterion). A fidelity control has a blurred side; an alignment control shows another
    prompt's images on one side, so its two sides look less alike than two models' images of one
    prompt (very alike for SD v1.4 vs v1.5, which share seeds)."""
    blur = []
    for v in views:
        s = sorted(sharpness(im.data) for im in v.images)
        blur.append(s[-1] / max(s[0], 1e-6))
    keys = [[(v.rater, v.index, k) for k in range(len(v.images))] for v in views]
    return {
        "one side much blurrier (content)": blur,
        "sides look unlike (content, perceptual hash)": [
            float(_hamming(dg.hash[ks[0]], dg.hash[ks[-1]])) for ks in keys
        ],
    }


def combined(scores: dict[str, list[float]]) -> list[float]:
    """Mean rank over detectors (each detector's scores ranked, ties averaged)."""
    ranks = []
    for values in scores.values():
        order = sorted(range(len(values)), key=lambda i: values[i])
        r = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        ranks.append(r)
    return [float(np.mean(col)) for col in zip(*ranks)]


def balanced_accuracy(scores: list[float], truth: list[bool], rng: random.Random) -> tuple[int, int]:
    """(right, trials): every control and as many ordinary tasks drawn at random; the top half by
    score (ties broken at random) is called control."""
    controls = [i for i, t in enumerate(truth) if t]
    ordinary = [i for i, t in enumerate(truth) if not t]
    chosen = controls + rng.sample(ordinary, min(len(ordinary), len(controls)))
    jitter = {i: rng.random() for i in chosen}
    ranked = sorted(chosen, key=lambda i: (scores[i], jitter[i]), reverse=True)
    flagged = set(ranked[: len(ranked) // 2])
    return sum((i in flagged) == truth[i] for i in chosen), len(chosen)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (mid - half, mid + half)
