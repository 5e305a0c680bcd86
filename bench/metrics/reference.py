"""FID/KID reference sets: parse a spec, compute its Inception features once, cache them on disk.

Specs:  folder:DIR      an image folder (sorted file names; .png .jpg .jpeg .webp)
        coco:DIR        COCO as downloaded (DIR/annotations/captions_val2014.json + DIR/val2014/, or the
                        2017 / train names), or captions.json + images/; each image once
        stats:FILE.npz  statistics saved by `imagen-bench fid-stats` (mu, sigma, n [, features])
        shapes:SPLIT    renders of the shapes world's ground-truth scenes (drawbench.shapes)
The cache key holds everything that changes the features: the spec, a content hash of the images,
the crop / size the references are brought to, resize mode, feature weights sha256, n, dtype,
memory format, and the device kind (cpu / cuda) and precision the features were made on: statistics
made on one are recomputed on the other, and a stats file made on another is refused, never mixed.
Under torchrun the ranks share the extraction (compute_reference).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import atomic_path, sha256_file
from common.imagestore import IMAGE_SUFFIXES, coco_files
from common.version import __version__
from drawbench.shapes import reference_images
from drawbench.shapes.scene import SPLITS
from imagen.distributed import Dist, joined

from .features import FeatureExtractor
from .preprocess import load_rgb, to_eval_resolution
from .stats import feature_stats

REFERENCE_KINDS = ("folder", "coco", "stats", "shapes")
STATS_FORMAT = "imagen-bench-fid-stats/1"


@dataclass(frozen=True)
class ReferenceStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    features: np.ndarray | None  # (n, D) float64, or None for a stats file saved without them
    meta: dict  # JSON-able: spec, content sha256, feature details, converted modes, package version


def parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, arg = spec.partition(":")
    if not sep or kind not in REFERENCE_KINDS or not arg:
        raise ValueError(
            f"reference {spec!r} is not understood; use one of: folder:DIR, coco:DIR, stats:FILE.npz, shapes:SPLIT"
        )
    return kind, arg


def check_reference(spec: str) -> None:
    """`spec` names something that is there (before a sweep starts; the images are read on use):
    a folder, a COCO folder with its captions, a statistics file, a shapes split."""
    kind, arg = parse_spec(spec)
    root = Path(arg).expanduser()
    if kind == "folder" and not root.is_dir():
        raise FileNotFoundError(f"folder {root} does not exist")
    if kind == "coco":
        coco_files(root)  # the captions JSON found, its shape checked, its file names confined to the folder
    if kind == "stats" and not root.is_file():
        raise FileNotFoundError(f"statistics file {root} does not exist (make one with imagen-bench fid-stats)")
    if kind == "shapes":
        if arg not in SPLITS:
            raise ValueError(f"shapes split {arg!r} is unknown; choose from {', '.join(SPLITS)}")


def image_files(kind: str, arg: str) -> list[Path]:
    root = Path(arg)
    if kind == "folder":
        if not root.is_dir():
            raise FileNotFoundError(f"reference folder {root} does not exist")
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        files = coco_image_files(root)
        missing = [p for p in files if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"COCO reference {root}: {len(missing)} images listed in captions.json are missing, e.g. {missing[0]}"
            )
    if not files:
        raise ValueError(f"{kind}:{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def coco_image_files(root: Path) -> list[Path]:
    """The images of a COCO folder (common.imagestore.coco_files: the official layout or captions.json
    + images/), each once, sorted."""
    return sorted(set(coco_files(root)[1].values()))


def _source(
    kind: str, arg: str, n: int | None, shapes_size: int
) -> tuple[Callable[[int], tuple[np.ndarray, str | None]], str, int, Callable[[Dist], str]]:
    """(image i -> (image, converted-from mode), inputs key, count, content sha256 of a world).
    Files are keyed by name, size and modification time, read by nobody: a COCO-30K reference's
    second run reads no image (6 GB of val2014 used to be hashed on every run to make the key). The
    content sha256 of every byte is computed when the statistics are made and on `verify`, each
    rank of a torchrun job hashing its share of the files."""
    if kind == "shapes":
        images = list(reference_images(arg, shapes_size, n))
        h = hashlib.sha256()
        for im in images:  # content hash of the renders: changes whenever the renderer or scenes change
            h.update(np.ascontiguousarray(im).tobytes())
        return (lambda i: (images[i], None)), h.hexdigest(), len(images), lambda world: h.hexdigest()
    files = image_files(kind, arg)[:n]
    stat = hashlib.sha256()
    for f in files:
        st = f.stat()
        stat.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    def content(world: Dist) -> str:
        hashes: dict[int, str] = {}
        for part in world.gather({i: sha256_file(files[i]) for i in range(world.rank, len(files), world.size)}):
            hashes.update(part)
        h = hashlib.sha256()
        for i, f in enumerate(files):
            h.update(f"{f.name}\0{hashes[i]}\n".encode())
        return h.hexdigest()

    return (lambda i: load_rgb(files[i])), stat.hexdigest(), len(files), content


def _extract_shared(
    load: Callable[[int], tuple[np.ndarray, str | None]],
    count: int,
    extractor: FeatureExtractor,
    crop: str,
    size: int | None,
    world: Dist,
) -> tuple[np.ndarray, dict]:
    """((count, D) features in image order, {converted-from mode: images}). Batch b (images
    [b B, (b + 1) B), B = the extractor's batch size) is extracted by rank b mod world size and
    gathered round by round: every batch is the one a single process makes, so the features (a
    convolution's last bits can depend on its batch) and everything computed from them equal one
    process's, bit for bit, while each rank reads and runs only its share of the images."""
    bs = extractor.config.batch_size
    batches = [range(i, min(i + bs, count)) for i in range(0, count, bs)]
    feats, converted = [], {}
    for first in range(0, len(batches), world.size):
        part, failure = None, None
        if first + world.rank < len(batches):
            try:
                loaded = [load(i) for i in batches[first + world.rank]]
                pixels = [to_eval_resolution(im, crop, size) for im, _ in loaded]
                part = (
                    extractor(pixels).numpy(),
                    [mode for _, mode in loaded if mode is not None],
                )  # RGBA / L / P -> RGB, recorded
            except Exception as e:
                failure, part = e, f"{type(e).__name__}: {e}"
        parts = world.gather(part)
        if failure is not None:
            raise failure
        for rank, got in enumerate(parts):
            if isinstance(got, str):
                raise RuntimeError(f"reference extraction failed on rank {rank}: {got}")
            if got is not None:
                feats.append(got[0])
                for mode in got[1]:
                    converted[mode] = converted.get(mode, 0) + 1
    return np.concatenate(feats), converted


def compute_reference(
    spec: str,
    extractor: FeatureExtractor,
    n: int | None = None,
    shapes_size: int = 256,
    cache_dir: Path | None = None,
    crop: str = "none",
    size: int | None = None,
    verify: bool = False,
) -> ReferenceStats:
    """Reference features + statistics for `spec`, from the cache when every input matches (the
    files by name, size and modification time; with `verify` also by the sha256 of every byte,
    against the one recorded when the statistics were made). Each reference image is first brought
    to the evaluated resolution (preprocess.to_eval_resolution: `crop`, then `size`), then resized
    for the feature network as the generated images are.

    Inside a torchrun job (a joined process group) this is a collective, as a metric's compute() is:
    every rank calls it, each extracts its share of the images (_extract_shared) and all get the
    statistics one process makes. The cache is used only when every rank finds it (ranks on other
    nodes may not share the cache folder); each node's local rank 0 writes it."""
    kind, arg = parse_spec(spec)
    if kind == "stats":
        return load_stats(Path(arg), extractor)
    world = joined()
    load, inputs_key, count, content = _source(kind, arg, n, shapes_size)
    key = {
        "spec": spec if kind == "shapes" else f"{kind}:{Path(arg).resolve()}",
        "inputs_key": inputs_key,
        "n": count,
        "shapes_size": shapes_size if kind == "shapes" else None,
        "reference_crop": crop,
        "reference_size": size,
        **extractor.details(),
    }
    key_sha = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    cached = Path(cache_dir) / f"fid-ref-{key_sha[:24]}.npz" if cache_dir is not None else None
    have = cached is not None and cached.is_file()
    if all(world.gather(have)):
        ref = read_stats_file(cached)
        if verify and content(world) != ref.meta.get("content_sha256"):
            raise ValueError(
                f"reference {spec}: the images' bytes differ from those the cached statistics {cached} were made from "
                "(same names, sizes and times); remove that file to recompute them"
            )
        return ref
    features, converted = _extract_shared(load, count, extractor, crop, size, world)
    mu, sigma = feature_stats(features)
    meta = {
        "format": STATS_FORMAT,
        "reference": spec,
        "key_sha256": key_sha,
        "converted_to_rgb": converted,
        "package_version": __version__,
        "content_sha256": content(world),
        **key,
    }
    ref = ReferenceStats(mu=mu, sigma=sigma, n=count, features=features, meta=meta)
    if cached is not None and not have and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_stats_file(cached, ref, overwrite=True)  # a cache entry: same key, same content
    return ref


def write_stats_file(path: Path, ref: ReferenceStats, overwrite: bool = False, with_features: bool = True) -> None:
    """Atomic .npz write (temp file + rename); refuses to replace an existing file unless overwrite."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists; refusing to overwrite it (choose another --out or remove it)")
    arrays = {
        "mu": ref.mu,
        "sigma": ref.sigma,
        "n": np.int64(ref.n),
        "meta": np.array(json.dumps(ref.meta, sort_keys=True)),
    }
    if with_features and ref.features is not None:
        # lossless: features come out of the network in float32 (or bf16); mu/sigma stay float64
        arrays["features"] = ref.features.astype(np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_stats_file(path: Path) -> ReferenceStats:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference statistics {path} not found (make one with `imagen-bench fid-stats SRC --out {path.name}`)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            feats = z["features"].astype(np.float64) if "features" in z.files else None
            ref = ReferenceStats(mu=z["mu"], sigma=z["sigma"], n=int(z["n"]), features=feats, meta=meta)
    except (KeyError, ValueError, OSError) as e:
        raise ValueError(f"{path} is not an imagen-bench statistics file (need mu, sigma, n, meta): {e}") from None
    if meta.get("format") != STATS_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {STATS_FORMAT!r}")
    return ref


def load_stats(path: Path, extractor: FeatureExtractor) -> ReferenceStats:
    """A saved statistics file, checked to be made with the same features and preprocessing."""
    ref = read_stats_file(path)
    ours = extractor.details()
    diff = [
        f"{k}: file {repr(ref.meta[k]) if k in ref.meta else '(not recorded)'}, metric {v!r}"
        for k, v in ours.items()
        if ref.meta.get(k) != v
    ]
    if diff:
        raise ValueError(f"{path} was made with other feature settings; refusing to compare: " + "; ".join(diff))
    return ref
