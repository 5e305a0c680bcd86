"""FID and KID against a reference set, one value per cell (clean-fid / torch-fidelity practice).

Per-cell state is torchmetrics state (features.FeatureMoments: sum-reduced moments for FID;
features.FeatureBank: cat-reduced features for KID), so under torch.distributed each rank feeds
its share of the images and compute() returns the numbers of the whole set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import check_choice
from common.fields import bounded, path_field
from common.version import __version__

from . import blocks as B
from .base import MetricMeta, MetricResult, ScoredImage, check_image, parse_option_groups
from .feature_spaces import unavailable
from .features import FeatureBank, FeatureConfig, FeatureExtractor, FeatureMoments, shared_extractor
from .preprocess import CROP_MODES, to_eval_resolution
from .reference import ReferenceStats, check_reference, compute_reference, parse_spec
from .state import KeyedStates
from .stats import (
    CMMD_ESTIMATORS,
    CMMD_SCALE,
    CMMD_SIGMA,
    cmmd,
    frechet_distance,
    gaussian_kernel,
    kernel_inception_distance,
    knn_radii_many,
    polynomial_kernel,
    prdc_groups,
    psd_root,
)

# FID-N below the feature dimension: the covariance is rank-deficient and the 1/N bias dominates
# (TTUR's README: N > 2048, 10,000 recommended), so the report marks such values and never orders them.
FD_MIN_N = 2048


@dataclass(frozen=True)
class ReferenceOptions:
    # folder:DIR | coco:DIR | stats:FILE.npz | shapes:SPLIT (required; checked to be there before a sweep starts)
    reference: str = path_field("", check_reference)
    # the first n reference images (sorted by name); None = all. Two at least: a covariance needs them
    n: int | None = bounded(None, 2, 10_000_000)
    shapes_size: int = bounded(256, 16, 4096)  # render size of shapes:SPLIT references (the shapes dataset's size)
    # The evaluated resolution, for both sides, before the Inception resize: crop "center" (largest
    # centred square), then PIL bicubic to size x size (preprocess.to_eval_resolution). COCO FID-30K
    # at 256 (Imagen): crop = "center", size = 256: the photographs are cropped and brought to 256,
    # and a model's 512 or 1024 images are brought to 256 the same way, so the number is "FID at
    # 256 x 256" whatever the model's size. Defaults: both sides as they are.
    crop: str = "none"
    size: int | None = bounded(None, 16, 8192)
    # the cached reference statistics are found by the files' names, sizes and modification times;
    # true: also rehash every byte and compare with the sha256 recorded when they were made
    verify: bool = False

    def __post_init__(self) -> None:
        check_choice("crop", self.crop, CROP_MODES)
        if not self.reference:
            raise ValueError(
                "FID/KID need a reference: set reference=folder:DIR | coco:DIR | stats:FILE.npz | shapes:SPLIT"
            )
        parse_spec(self.reference)  # a malformed spec fails where the spec is read, before any model loads


@dataclass(frozen=True)
class KernelOptions:
    # torch-fidelity / torchmetrics defaults; the bounds keep a typo from running for days: 10,000
    # subsets of 100,000 images are already ~10^14 kernel evaluations
    subsets: int = bounded(100, 1, 10_000)
    subset_size: int = bounded(
        1000, 2, 100_000
    )  # capped at the smaller set's size (clean-fid); the unbiased MMD needs 2
    degree: int = bounded(3, 1, 10)
    gamma: float | None = bounded(None, 1e-12, None)  # None = 1 / feature dim
    coef: float = bounded(1.0, 0.0, None)
    seed: int = bounded(0, 0, 2**63 - 1)  # subset draws are seeded: the same images give the same KID


class _FeatureMetric:
    """Shared by FID and KID: extract features per cell, compare with the reference at compute()."""

    name = ""
    option_classes: tuple[type, ...] = (FeatureConfig, ReferenceOptions)
    removed_options = {
        "bootstrap": "resampling generated images with replacement gives invalid set-metric intervals "
        "(duplicates; docs/metrics.md); use blocks = 20 (disjoint prompt blocks)"
    }

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        cache_dir: Path | None = None,
        extractor: FeatureExtractor | None = None,
    ):
        """`extractor` replaces the default Inception extractor (tests); its config must match the options."""
        groups = parse_option_groups(self.option_classes, options, self.name, removed=self.removed_options)
        self.features_config, self.ref_options = groups[0], groups[1]
        self.extra_options = groups[2:]
        if extractor is not None and extractor.config != self.features_config:
            raise ValueError(
                f"{self.name}: extractor config {extractor.config} differs from the options' {self.features_config}"
            )
        self.cache_dir = cache_dir
        self._extractor = extractor
        self._reference: ReferenceStats | None = None
        # weights that are not there: no features, no number, and a result that says how to supply them
        self.unavailable = (
            "" if extractor is not None else unavailable(self.features_config.space, self.features_config.weights)
        )
        self.unavailable_counts: dict[str, int] = {}
        self.states: KeyedStates = KeyedStates(self._new_state)

    def _new_state(self):
        raise NotImplementedError

    @property
    def extractor(self) -> FeatureExtractor:
        if (
            self._extractor is None
        ):  # the network loads on first use, not at build time; shared by the metrics on its space
            self._extractor = shared_extractor(
                FeatureConfig(**dataclasses.asdict(self.features_config))
            )  # CMMDFeatures too
        return self._extractor

    def results_unavailable(self, names: Sequence[str]) -> list[MetricResult]:
        details = {
            "unavailable": self.unavailable,
            "feature_space": self.features_config.space,
            "package_version": __version__,
        }
        return [
            MetricResult(name, None, n, details, cell_id=cell)
            for cell, n in sorted(self.unavailable_counts.items())
            for name in names
        ]

    def reference(self) -> ReferenceStats:
        if self._reference is None:
            o = self.ref_options
            self._reference = compute_reference(
                o.reference, self.extractor, o.n, o.shapes_size, self.cache_dir, o.crop, o.size, o.verify
            )
        return self._reference

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        for im in images:
            check_image(im.image, f"{self.name} cell {im.cell_id} prompt {im.ref.prompt_id} sample {im.ref.sample}")
        if self.unavailable:
            for im in images:
                self.unavailable_counts[im.cell_id] = self.unavailable_counts.get(im.cell_id, 0) + 1
            return [{} for _ in images]
        codes = [B.prompt_code(im.ref.prompt_set, im.ref.prompt_id) for im in images]
        o = self.ref_options  # the evaluated resolution applies to the generated side too
        pixels = [to_eval_resolution(im.image, o.crop, o.size) for im in images]
        self.add_features([im.cell_id for im in images], self.extractor(pixels), codes)
        return [{} for _ in images]  # set-level metric: no per-image values

    def blocks(self) -> int:
        """G, the number of prompt blocks for intervals (0: none)."""
        return next((o.blocks for o in self.extra_options if isinstance(o, IntervalOptions)), 0)

    def keeps_codes(self) -> bool:
        """Whether each feature row carries its prompt code (blocks need them)."""
        return bool(self.blocks())

    def add_features(self, cell_ids: Sequence[str], feats: torch.Tensor, codes: Sequence[float]) -> None:
        """Accumulate already-extracted (B, D) float64 features (made by self.extractor) per cell, with
        each image's prompt code (blocks.prompt_code) as a last column when keeps_codes()."""
        if self.keeps_codes():
            feats = torch.cat(
                [feats.to(torch.float64), torch.tensor(codes, dtype=torch.float64)[:, None]], 1
            )  # (B, D + 1)
        by_cell: dict[str, list[int]] = {}
        for i, cell in enumerate(cell_ids):
            by_cell.setdefault(cell, []).append(i)
        for cell, idx in by_cell.items():
            self.states[cell].update(feats[idx])

    def features_and_blocks(self, state) -> tuple:
        """(features (N, D), prompt codes (N,) or None, blocks or None): blocks = ((N,) block index,
        block key) with intervals on."""
        f = state.compute()
        if not self.keeps_codes():
            return f, None, None
        feats, codes = f[:, :-1], f[:, -1]
        if not self.blocks():
            return feats, codes, None
        return feats, codes, (B.assign_blocks(codes, self.blocks()), B.block_key(codes, self.blocks()))

    def details(self, n: int) -> dict:
        ref = self.reference()
        return {
            **self.extractor.details(),
            **self.extractor.placement.summary(),
            "n": n,
            "reference": self.ref_options.reference,
            "reference_n": ref.n,
            # as the reference statistics were made (a stats file carries its own)
            "reference_crop": ref.meta.get("reference_crop", "none"),
            "reference_size": ref.meta.get("reference_size"),
            "generated_crop": self.ref_options.crop,
            "generated_size": self.ref_options.size,
            "reference_checked": "sha256 of every byte"
            if self.ref_options.verify
            else "names, sizes and modification times",
            "reference_sha256": ref.meta.get("content_sha256"),
            "reference_converted_to_rgb": ref.meta.get("converted_to_rgb", {}),
            "package_version": __version__,
        }

    def reset(self) -> None:
        self.states.reset()
        self.unavailable_counts.clear()


@dataclass(frozen=True)
class IntervalOptions:
    # blocks = G: intervals from G disjoint blocks of the cell's prompts (bench.metrics.blocks; every
    # interval conditional on the fixed reference). 0 = off (the default: FID then keeps only moments,
    # not every feature, and costs no extra eigendecompositions; with G blocks it costs G + 1).
    blocks: int = bounded(0, 0, 100)

    def __post_init__(self) -> None:
        if not (self.blocks == 0 or B.MIN_BLOCKS <= self.blocks <= 100):
            raise ValueError(f"blocks must be 0 (off) or a whole number in [{B.MIN_BLOCKS}, 100], got {self.blocks!r}")


def interval_details(r: dict, blocks: tuple[np.ndarray, str], method: str) -> dict:
    """What a blocked interval records: bounds, SE, the per-block pseudo-values (paired comparisons
    of two entries subtract them block by block) and which prompts the blocks hold (block_key:
    entries with the same key are on the same prompts in the same blocks) and, for KID and CMMD, the
    block-pair kernel sums and block sizes a paired comparison takes the second-order excess from."""
    index, key = blocks
    return {
        "ci_low": r["ci_low"],
        "ci_high": r["ci_high"],
        "se": r["se"],
        "blocks": int(len(np.unique(index))),
        "ci_method": method,
        "block_values": [float(v) for v in r["pseudo"]],
        "block_key": key,
        **{k: r[k] for k in ("se_jackknife", "bootstrap_t", "second_order") if k in r},
    }


FD_META = MetricMeta(
    "lower",
    0.0,
    None,
    "none",
    "Frechet distance of Gaussian fits at N images (biased upward by ~c / N)",
    FD_MIN_N,
    role="fidelity",
)
FD_DEBIASED_META = MetricMeta(
    "lower",
    0.0,
    None,
    "jackknife-blocks",
    "delete-a-block jackknife G FD_N - (G-1) mean FD_(-g): the c / N bias removed",
    FD_MIN_N,
    role="fidelity",
)


class FID(_FeatureMetric):
    """Frechet distance on a feature space: "fid" on the FID Inception, "fd_dinov2" (FD-DINOv2,
    Stein et al. 2023) or "fd_clip" on the others; with blocks = G also "<name>_debiased", the
    jackknife value with its interval."""

    name = "fid"
    option_classes = (FeatureConfig, ReferenceOptions, IntervalOptions)
    meta = {
        **{n: FD_META for n in ("fid", "fd_dinov2", "fd_clip")},
        **{f"{n}_debiased": FD_DEBIASED_META for n in ("fid", "fd_dinov2", "fd_clip")},
    }

    def _new_state(self):
        if self.blocks():
            bank = FeatureBank()
            if not self.unavailable:
                bank.update(torch.zeros(0, self.extractor.feature_dim + 1, dtype=torch.float64))
            return bank
        return FeatureMoments(self.extractor.feature_dim)

    def result_name(self) -> str:
        return "fid" if self.features_config.space == "inception" else f"fd_{self.features_config.space}"

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable([self.result_name()])
        out = []
        name = self.result_name()
        root = None  # S_ref^{1/2}
        for cell, state in self.states.synced_items():
            ref = self.reference()
            if self.blocks():
                feats, _, blocks = self.features_and_blocks(state)
                root = root if root is not None else psd_root(ref.sigma)  # once for every cell
                r = B.frechet_blocks(ref.mu, ref.sigma, feats, blocks[0], root=root)
                details = self.details(len(feats))
                out += [
                    MetricResult(name, r["value_n"], len(feats), details, cell_id=cell),
                    MetricResult(
                        f"{name}_debiased",
                        r["value_debiased"],
                        len(feats),
                        {
                            **details,
                            **interval_details(r, blocks, "delete-a-block jackknife over prompt blocks, t(G-1)"),
                        },
                        cell_id=cell,
                    ),
                ]
            else:
                mu, sigma, n = state.compute()
                root = root if root is not None else psd_root(ref.sigma)  # once: a D x D eigh per cell saved
                out.append(
                    MetricResult(
                        name, frechet_distance(ref.mu, ref.sigma, mu, sigma, root), n, self.details(n), cell_id=cell
                    )
                )
        return out


@dataclass(frozen=True)
class ManifoldOptions:
    k_pr: int = bounded(3, 1, 100)  # Kynkaanniemi et al. 2019's k for precision / recall
    k_dc: int = bounded(5, 1, 100)  # Naeem et al. 2020's k for density / coverage


class _BankMetric(_FeatureMetric):
    """Set metrics that need every generated feature (not only moments): one FeatureBank per cell."""

    def _new_state(self) -> FeatureBank:
        bank = FeatureBank()
        if self.unavailable:
            return bank
        # a (0, D) entry: a rank that sees no image of a cell must still gather a 2-D tensor
        # (torchmetrics would substitute a 1-D empty one, a shape mismatch in the all-gather)
        bank.update(torch.zeros(0, self.extractor.feature_dim + 1, dtype=torch.float64))
        return bank

    def keeps_codes(self) -> bool:
        """Always: KID and CMMD leave pairs of images of one prompt out of their U-statistic."""
        return True

    def reference_features(self):
        ref = self.reference()
        if ref.features is None:
            raise ValueError(
                f"{self.name} needs reference features; {self.ref_options.reference} holds only mu/sigma "
                "(re-run `imagen-bench fid-stats` without --no-features)"
            )
        return ref.features


class PRDC(_BankMetric):
    """Fidelity and diversity apart, on the FID Inception features: precision / recall (k_pr) and
    density / coverage (k_dc) of each cell's images against the reference set."""

    name = "prdc"
    option_classes = (FeatureConfig, ReferenceOptions, ManifoldOptions, IntervalOptions)
    # with blocks = G each is the metric of m = N / G generated images (recall and coverage depend on m),
    # the mean over G disjoint blocks; without, the metric of all N images and no interval
    meta = {
        "precision": MetricMeta(
            "higher", 0.0, 1.0, "block-means", "share of generated images inside the reference manifold"
        ),
        "recall": MetricMeta(
            "higher", 0.0, 1.0, "block-means", "share of reference images inside the generated manifold"
        ),
        "density": MetricMeta(
            "higher", 0.0, None, "block-means", "mean count of reference balls holding a generated image / k"
        ),
        "coverage": MetricMeta(
            "higher", 0.0, 1.0, "block-means", "share of reference balls holding a generated image"
        ),
    }

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("precision", "recall", "density", "coverage"))
        o: ManifoldOptions = self.extra_options[0]
        real = self.reference_features()
        radii = None  # the reference's k-NN radii: computed once for all cells
        out = []
        for cell, state in self.states.synced_items():
            fake, _, blocks = self.features_and_blocks(state)
            details = {
                "feature_space": "fid_inception_pool3",
                **self.details(len(fake)),
                "k_pr": o.k_pr,
                "k_dc": o.k_dc,
            }
            radii = radii or tuple(knn_radii_many(real, (o.k_pr, o.k_dc)))
            if blocks is None:
                values = prdc_groups(real, fake, np.zeros(len(fake)), o.k_pr, o.k_dc, radii)
                out += [
                    MetricResult(name, float(v[0]), len(fake), {**details, "set_size": len(fake)}, cell_id=cell)
                    for name, v in values.items()
                ]
                continue
            for name, r in B.prdc_blocks(real, fake, blocks[0], o.k_pr, o.k_dc, real_radii=radii).items():
                extra = interval_details(
                    r, blocks, "mean of disjoint prompt blocks, Hall skew-corrected t(G-1), kept in range"
                )
                out.append(
                    MetricResult(
                        name, r["value"], len(fake), {**details, **extra, "set_size": r["set_size"]}, cell_id=cell
                    )
                )
        return out


class KID(_BankMetric):
    name = "kid"
    option_classes = (FeatureConfig, ReferenceOptions, KernelOptions, IntervalOptions)
    meta = {
        "kid_mean": MetricMeta(
            "lower",
            None,
            None,
            "bootstrap-t-units",
            "unbiased MMD^2 (cubic kernel), mean over random subsets (clean-fid), same-prompt pairs left out; "
            "may be < 0 near 0",
            role="fidelity",
        ),
        "kid_std": MetricMeta(
            "none", 0.0, None, "none", "spread of the subsets' MMD^2 (torch-fidelity's kid_std), not an SE"
        ),
    }

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("kid_mean", "kid_std"))
        k: KernelOptions = self.extra_options[0]
        real = self.reference_features()
        out = []
        for cell, state in self.states.synced_items():
            feats, codes, blocks = self.features_and_blocks(state)
            mean, std, m = kernel_inception_distance(
                real, feats, k.subsets, k.subset_size, k.seed, k.degree, k.gamma, k.coef, codes
            )
            details = {
                **self.details(len(feats)),
                "subsets": k.subsets,
                "subset_size": m,
                "degree": k.degree,
                "gamma": k.gamma,
                "coef": k.coef,
                "seed": k.seed,
                "same_prompt_pairs": "left out",
            }
            mean_details = details
            if blocks is not None:

                def kernel(a, b, k=k):
                    return polynomial_kernel(a, b, k.degree, k.gamma, k.coef)

                # the subsets' mean is, given the images, an unbiased Monte Carlo estimate of the all-images
                # U-statistic: its variance adds std^2 / subsets to the U-statistic's
                r = B.mmd_blocks(
                    kernel,
                    feats,
                    real,
                    codes,
                    self.blocks(),
                    mean,
                    std**2 / k.subsets if k.subsets > 1 else 0.0,
                    interval=B.MMD_INTERVALS["kid"],
                    seed=k.seed,
                )
                method = B.MMD_INTERVALS["kid"].method() + " + the subsets' Monte Carlo variance"
                mean_details = {**details, **interval_details(r, blocks, method)}
            out += [
                MetricResult("kid_mean", mean, len(feats), mean_details, cell_id=cell),
                MetricResult("kid_std", std, len(feats), details, cell_id=cell),
            ]
        return out


@dataclass(frozen=True)
class CMMDFeatures(FeatureConfig):
    """CMMD's feature options: FeatureConfig with CLIP as the space (the paper's embedding)."""

    space: str = "clip"


@dataclass(frozen=True)
class CMMDOptions:
    # "unbiased": the U-statistic (diagonals left out; no O(1/n) bias, may be < 0); "released": the
    # released code's V-statistic (every pair, i = j included), for numbers comparable to its
    # published ones. The interval is the U-statistic's jackknife either way (the two differ by O(1/n))
    estimator: str = "unbiased"

    def __post_init__(self) -> None:
        check_choice("estimator", self.estimator, CMMD_ESTIMATORS)


class CMMD(_BankMetric):
    """CMMD (Jayasumana et al. 2024): 1000 x Gaussian-kernel MMD^2 (sigma 10) between the
    reference's and each cell's L2-normalised CLIP image embeddings (stats.cmmd). The paper uses
    CLIP ViT-L/14@336px; the weights folder used is recorded with its checksum."""

    name = "cmmd"
    option_classes = (CMMDFeatures, ReferenceOptions, CMMDOptions, IntervalOptions)
    meta = {
        "cmmd": MetricMeta(
            "lower",
            None,
            None,
            "jackknife-blocks",
            "1000 x unbiased Gaussian-kernel MMD^2 of CLIP embeddings, same-prompt pairs left out; may be < 0 near 0",
            role="fidelity",
        )
    }

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("cmmd",))
        real = self.reference_features()
        out = []
        for cell, state in self.states.synced_items():
            fake, codes, blocks = self.features_and_blocks(state)
            estimator = self.extra_options[0].estimator
            value = cmmd(real, fake, estimator, codes)
            details = {
                **self.details(len(fake)),
                "sigma": CMMD_SIGMA,
                "scale": CMMD_SCALE,
                "estimator": estimator,
                "normalised": True,
                "same_prompt_pairs": "left out" if estimator == "unbiased" else "kept (the released estimator)",
            }
            if blocks is not None:
                unit_real, unit_fake = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (real, fake))
                r = B.mmd_blocks(
                    partial(gaussian_kernel, sigma=CMMD_SIGMA),
                    unit_fake,
                    unit_real,
                    codes,
                    self.blocks(),
                    value,
                    scale=CMMD_SCALE,
                    interval=B.MMD_INTERVALS["cmmd"],
                )
                details.update(interval_details(r, blocks, B.MMD_INTERVALS["cmmd"].method()))
            out.append(MetricResult("cmmd", value, len(fake), details, cell_id=cell))
        return out
