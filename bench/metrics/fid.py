"""FID and KID against a reference set, one value per cell (clean-fid / torch-fidelity practice).

Per-cell state is torchmetrics state (features.FeatureMoments: sum-reduced moments for FID;
features.FeatureBank: cat-reduced features for KID), so under torch.distributed each rank feeds
its share of the images and compute() returns the numbers of the whole set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from common.errors import check_choice
from common.version import __version__

from .base import KeyedStates, MetricResult, ScoredImage, check_image, parse_option_groups
from .feature_spaces import unavailable
from .features import FeatureBank, FeatureConfig, FeatureExtractor, FeatureMoments, shared_extractor
from .preprocess import CROP_MODES
from .reference import ReferenceStats, compute_reference, parse_spec
from .stats import (
    CMMD_SCALE,
    CMMD_SIGMA,
    cmmd,
    density_coverage,
    feature_stats,
    frechet_bootstrap,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    recentred,
    resampled,
)


@dataclass(frozen=True)
class ReferenceOptions:
    reference: str = ""  # folder:DIR | coco:DIR | stats:FILE.npz | shapes:SPLIT (required)
    n: int | None = None  # use the first n reference images (sorted by name); None = all
    shapes_size: int = 256  # render size of shapes:SPLIT references (the shapes dataset's size)
    # Reference images brought to the evaluated resolution before the Inception resize: crop "center"
    # (largest centred square) and size = the generated images' side (COCO FID-30K for Imagen:
    # crop = "center", size = 256). Defaults: the reference as stored.
    crop: str = "none"
    size: int | None = None

    def __post_init__(self) -> None:
        check_choice("crop", self.crop, CROP_MODES)
        if self.size is not None and self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if not self.reference:
            raise ValueError("FID/KID need a reference: set reference=folder:DIR | coco:DIR | stats:FILE.npz | shapes:SPLIT")
        parse_spec(self.reference)  # a malformed spec fails at build time, before any model loads


@dataclass(frozen=True)
class KernelOptions:
    subsets: int = 100  # torch-fidelity / torchmetrics defaults
    subset_size: int = 1000  # capped at the smaller set's size (clean-fid)
    degree: int = 3
    gamma: float | None = None  # None = 1 / feature dim
    coef: float = 1.0
    seed: int = 0  # subset draws are seeded: the same images give the same KID


class _FeatureMetric:
    """Shared by FID and KID: extract features per cell, compare with the reference at compute()."""

    name = ""
    option_classes: tuple[type, ...] = (FeatureConfig, ReferenceOptions)

    def __init__(self, options: Mapping[str, Any] | None = None, *, cache_dir: Path | None = None,
                 extractor: FeatureExtractor | None = None):
        """`extractor` replaces the default Inception extractor (tests); its config must match the options."""
        groups = parse_option_groups(self.option_classes, options, self.name)
        self.features_config, self.ref_options = groups[0], groups[1]
        self.extra_options = groups[2:]
        if extractor is not None and extractor.config != self.features_config:
            raise ValueError(f"{self.name}: extractor config {extractor.config} differs from the options' {self.features_config}")
        self.cache_dir = cache_dir
        self._extractor = extractor
        self._reference: ReferenceStats | None = None
        # weights that are not there: no features, no number, and a result that says how to supply them
        self.unavailable = "" if extractor is not None else unavailable(self.features_config.space, self.features_config.weights)
        self.unavailable_counts: dict[str, int] = {}
        self.states: KeyedStates = KeyedStates(self._new_state)

    def _new_state(self):
        raise NotImplementedError

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:  # the network loads on first use, not at build time; shared by the metrics on its space
            self._extractor = shared_extractor(FeatureConfig(**dataclasses.asdict(self.features_config)))  # CMMDFeatures too
        return self._extractor

    def results_unavailable(self, names: Sequence[str]) -> list[MetricResult]:
        details = {"unavailable": self.unavailable, "feature_space": self.features_config.space, "package_version": __version__}
        return [MetricResult(name, None, n, details, cell_id=cell) for cell, n in sorted(self.unavailable_counts.items()) for name in names]

    def reference(self) -> ReferenceStats:
        if self._reference is None:
            o = self.ref_options
            self._reference = compute_reference(o.reference, self.extractor, o.n, o.shapes_size, self.cache_dir, o.crop, o.size)
        return self._reference

    def update(self, images: Sequence[ScoredImage]) -> list[dict[str, float]]:
        for im in images:
            check_image(im.image, f"{self.name} cell {im.cell_id} prompt {im.ref.prompt_id} sample {im.ref.sample}")
        if self.unavailable:
            for im in images:
                self.unavailable_counts[im.cell_id] = self.unavailable_counts.get(im.cell_id, 0) + 1
            return [{} for _ in images]
        self.add_features([im.cell_id for im in images], self.extractor([im.image for im in images]))
        return [{} for _ in images]  # set-level metric: no per-image values

    def add_features(self, cell_ids: Sequence[str], feats: torch.Tensor) -> None:
        """Accumulate already-extracted (B, D) float64 features (made by self.extractor) per cell."""
        by_cell: dict[str, list[int]] = {}
        for i, cell in enumerate(cell_ids):
            by_cell.setdefault(cell, []).append(i)
        for cell, idx in by_cell.items():
            self.states[cell].update(feats[idx])

    def details(self, n: int) -> dict:
        ref = self.reference()
        return {**self.extractor.details(), "n": n, "reference": self.ref_options.reference, "reference_n": ref.n,
                # as the reference statistics were made (a stats file carries its own)
                "reference_crop": ref.meta.get("reference_crop", "none"), "reference_size": ref.meta.get("reference_size"),
                "reference_sha256": ref.meta.get("content_sha256"), "reference_converted_to_rgb": ref.meta.get("converted_to_rgb", {}),
                "package_version": __version__}

    def reset(self) -> None:
        self.states.reset()
        self.unavailable_counts.clear()


@dataclass(frozen=True)
class BootstrapOptions:
    # bootstrap > 0: a percentile interval from that many resamples of each cell's generated images
    # (the reference fixed), stored as ci_low / ci_high in the result's details (FID, KID, PRDC).
    # Off by default: for FID at D = 2048 a resample costs one 2048 x 2048 eigendecomposition (~1-2 s
    # on 2 CPU cores), KID one full KID (its subsets), and FID must keep the features (a FeatureBank).
    bootstrap: int = 0
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.bootstrap <= 10_000 or (0 < self.bootstrap < 100):
            raise ValueError(f"bootstrap must be 0 (off) or in [100, 10000] resamples, got {self.bootstrap}")


def ci_method(o: BootstrapOptions, what: str) -> str:
    return (f"{what}: spread (2.5-97.5 percentiles around the median) of {o.bootstrap} resamples of the generated images "
            f"(reference fixed, seed {o.bootstrap_seed}), recentred on the estimate; bootstrap_shift = how far duplicates in a "
            "resample moved the median (stats.recentred). It measures sampling variability at this N; FID-N is biased upward "
            "as N shrinks: compare equal N only")


class FID(_FeatureMetric):
    """Frechet distance on a feature space: "fid" on the FID Inception, "fd_dinov2" (FD-DINOv2,
    Stein et al. 2023) or "fd_clip" on the others; optionally with a bootstrap interval."""

    name = "fid"
    option_classes = (FeatureConfig, ReferenceOptions, BootstrapOptions)

    def _new_state(self):
        if self.extra_options[0].bootstrap:
            bank = FeatureBank()
            if not self.unavailable:
                bank.update(torch.zeros(0, self.extractor.feature_dim, dtype=torch.float64))
            return bank
        return FeatureMoments(self.extractor.feature_dim)

    def result_name(self) -> str:
        return "fid" if self.features_config.space == "inception" else f"fd_{self.features_config.space}"

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable([self.result_name()])
        o: BootstrapOptions = self.extra_options[0]
        out = []
        for cell, state in self.states.synced_items():
            ref = self.reference()
            if o.bootstrap:
                feats = state.compute()
                (mu, sigma), n = feature_stats(feats), len(feats)
                _, _, reps = frechet_bootstrap(ref.mu, ref.sigma, feats, o.bootstrap, o.bootstrap_seed)
                value = frechet_distance(ref.mu, ref.sigma, mu, sigma)
                low, high, shift = recentred(value, reps)
                details = {**self.details(n), "ci_low": low, "ci_high": high, "bootstrap_shift": shift, "ci_method": ci_method(o, "FID")}
            else:
                mu, sigma, n = state.compute()
                details = self.details(n)
            out.append(MetricResult(self.result_name(), frechet_distance(ref.mu, ref.sigma, mu, sigma), n, details, cell_id=cell))
        return out


@dataclass(frozen=True)
class ManifoldOptions:
    k_pr: int = 3  # Kynkaanniemi et al. 2019's k for precision / recall
    k_dc: int = 5  # Naeem et al. 2020's k for density / coverage

    def __post_init__(self) -> None:
        if self.k_pr < 1 or self.k_dc < 1:
            raise ValueError(f"k_pr and k_dc must be >= 1, got {self.k_pr}, {self.k_dc}")


class _BankMetric(_FeatureMetric):
    """Set metrics that need every generated feature (not only moments): one FeatureBank per cell."""

    def _new_state(self) -> FeatureBank:
        bank = FeatureBank()
        if self.unavailable:
            return bank
        # a (0, D) entry: a rank that sees no image of a cell must still gather a 2-D tensor
        # (torchmetrics would substitute a 1-D empty one, a shape mismatch in the all-gather)
        bank.update(torch.zeros(0, self.extractor.feature_dim, dtype=torch.float64))
        return bank

    def reference_features(self):
        ref = self.reference()
        if ref.features is None:
            raise ValueError(f"{self.name} needs reference features; {self.ref_options.reference} holds only mu/sigma "
                             "(re-run `imagen-bench fid-stats` without --no-features)")
        return ref.features


class PRDC(_BankMetric):
    """Fidelity and diversity apart, on the FID Inception features: precision / recall (k_pr) and
    density / coverage (k_dc) of each cell's images against the reference set."""

    name = "prdc"
    option_classes = (FeatureConfig, ReferenceOptions, ManifoldOptions, BootstrapOptions)

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("precision", "recall", "density", "coverage"))
        o: ManifoldOptions = self.extra_options[0]
        real = self.reference_features()
        out = []
        for cell, state in self.states.synced_items():
            fake = state.compute()
            details = {"feature_space": "fid_inception_pool3", **self.details(len(fake)), "k_pr": o.k_pr, "k_dc": o.k_dc}

            def four(f, o=o):
                return (*precision_recall(real, f, o.k_pr), *density_coverage(real, f, o.k_dc))

            values = four(fake)
            b: BootstrapOptions = self.extra_options[1]
            reps = resampled(four, fake, b.bootstrap, b.bootstrap_seed) if b.bootstrap else None
            for i, name in enumerate(("precision", "recall", "density", "coverage")):
                extra = {}
                if reps is not None:
                    low, high, shift = recentred(values[i], reps[:, i])
                    extra = {"ci_low": low, "ci_high": high, "bootstrap_shift": shift, "ci_method": ci_method(b, name)}
                out.append(MetricResult(name, values[i], len(fake), {**details, **extra}, cell_id=cell))
        return out


class KID(_BankMetric):
    name = "kid"
    option_classes = (FeatureConfig, ReferenceOptions, KernelOptions, BootstrapOptions)

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("kid_mean", "kid_std"))
        k: KernelOptions = self.extra_options[0]
        real = self.reference_features()
        out = []
        for cell, state in self.states.synced_items():
            feats = state.compute()
            mean, std, m = kernel_inception_distance(real, feats, k.subsets, k.subset_size, k.seed, k.degree, k.gamma, k.coef)
            details = {**self.details(len(feats)), "subsets": k.subsets, "subset_size": m, "degree": k.degree,
                       "gamma": k.gamma, "coef": k.coef, "seed": k.seed}
            b: BootstrapOptions = self.extra_options[1]
            if b.bootstrap:
                reps = resampled(lambda f, k=k: kernel_inception_distance(real, f, k.subsets, k.subset_size, k.seed, k.degree, k.gamma,
                                                                          k.coef)[0], feats, b.bootstrap, b.bootstrap_seed)
                low, high, shift = recentred(mean, reps[:, 0])
                mean_details = {**details, "ci_low": low, "ci_high": high, "bootstrap_shift": shift, "ci_method": ci_method(b, "KID")}
            else:
                mean_details = details
            out += [MetricResult("kid_mean", mean, len(feats), mean_details, cell_id=cell),
                    MetricResult("kid_std", std, len(feats), details, cell_id=cell)]
        return out


@dataclass(frozen=True)
class CMMDFeatures(FeatureConfig):
    """CMMD's feature options: FeatureConfig with CLIP as the space (the paper's embedding)."""
    space: str = "clip"


class CMMD(_BankMetric):
    """CMMD (Jayasumana et al. 2024): 1000 x unbiased Gaussian-kernel MMD^2 (sigma 10) between the
    reference's and each cell's L2-normalised CLIP image embeddings (stats.cmmd). The paper uses
    CLIP ViT-L/14@336px; the weights folder used is recorded with its checksum."""

    name = "cmmd"
    option_classes = (CMMDFeatures, ReferenceOptions, BootstrapOptions)

    def compute(self) -> list[MetricResult]:
        if self.unavailable:
            return self.results_unavailable(("cmmd",))
        real = self.reference_features()
        b: BootstrapOptions = self.extra_options[0]
        out = []
        for cell, state in self.states.synced_items():
            fake = state.compute()
            value = cmmd(real, fake)
            details = {**self.details(len(fake)), "sigma": CMMD_SIGMA, "scale": CMMD_SCALE, "estimator": "unbiased", "normalised": True}
            if b.bootstrap:
                low, high, shift = recentred(value, resampled(lambda f: cmmd(real, f), fake, b.bootstrap, b.bootstrap_seed)[:, 0])
                details.update({"ci_low": low, "ci_high": high, "bootstrap_shift": shift, "ci_method": ci_method(b, "CMMD")})
            out.append(MetricResult("cmmd", value, len(fake), details, cell_id=cell))
        return out
