"""Set metrics at protocol size: FID, KID, PRDC and CMMD on N synthetic features per side (COCO
FID-30K: N = 30,000), each in a fresh process that reports its seconds and its peak resident memory
(ru_maxrss). Features are seeded Gaussians of the networks' dimensions (Inception pool3: 2048, CLIP
ViT-L/14: 768); the features' extraction is the scoring section's business, this is what comes after
it: statistics, kernels, k-NN balls and the blocked intervals (blocks = 20).

    python -m selfcheck.perf.setmetrics '{"job": "prdc", "n": 30000, ...}'   is one such process
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from .results import Row, Section, run_marked

MARKER = "SETMETRIC-RESULT "
JOBS = ("fid", "fid_blocks", "kid", "kid_blocks", "prdc", "prdc_blocks", "cmmd", "cmmd_blocks")


@dataclass(frozen=True)
class SetMetricSettings:
    n: int = 30_000  # features per side: the COCO FID-30K protocol
    dim: int = 2048  # Inception pool3 (FID, KID, PRDC)
    clip_dim: int = 768  # CLIP ViT-L/14 image embeddings (CMMD)
    blocks: int = 20  # the sweeps' interval blocks
    jobs: tuple[str, ...] = JOBS
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n < 100 or self.dim < 2 or self.clip_dim < 2 or not set(self.jobs) <= set(JOBS):
            raise ValueError(
                f"setmetrics: n >= 100, dims >= 2, jobs from {', '.join(JOBS)}; got {self.n}, {self.dim}, {self.jobs}"
            )


def _features(s: SetMetricSettings, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(s.n, dim))
    fake = rng.normal(0.05, 1.1, size=(s.n, dim))
    return real, fake, np.arange(s.n) % s.blocks


def one_process(s: SetMetricSettings, job: str) -> dict:
    """The job, in this process: what the metric's compute() does for one cell after extraction."""
    from bench.metrics import blocks as B
    from bench.metrics import stats

    real, fake, blocks = _features(s, s.clip_dim if job.startswith("cmmd") else s.dim)
    t0 = time.perf_counter()
    if job == "fid":
        value = stats.frechet_distance(*stats.feature_stats(real), *stats.feature_stats(fake))
    elif job == "fid_blocks":
        value = B.frechet_blocks(*stats.feature_stats(real), fake, blocks)["value_debiased"]
    elif job == "kid":
        value = stats.kernel_inception_distance(real, fake)[0]
    elif job == "kid_blocks":
        value = B.mmd_blocks(
            stats.polynomial_kernel, fake, real, np.arange(s.n), s.blocks, 0.0, interval=B.MMD_INTERVALS["kid"]
        )["se"]
    elif job == "prdc":
        value = float(stats.prdc_groups(real, fake, np.zeros(s.n))["precision"][0])
    elif job == "prdc_blocks":
        value = B.prdc_blocks(real, fake, blocks, 3, 5)["precision"]["value"]
    elif job == "cmmd":
        value = stats.cmmd(real, fake)
    else:
        unit = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in (real, fake)]
        value = B.mmd_blocks(
            stats.gaussian_kernel,
            unit[1],
            unit[0],
            np.arange(s.n),  # one image per prompt
            s.blocks,
            0.0,
            scale=stats.CMMD_SCALE,
            interval=B.MMD_INTERVALS["cmmd"],
        )["se"]
    return {
        "job": job,
        "seconds": time.perf_counter() - t0,
        "value": float(value),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_process(s: SetMetricSettings, job: str) -> dict:
    return run_marked("selfcheck.perf.setmetrics", {**asdict(s), "job": job}, MARKER, f"setmetrics: the {job} process")


def measure(s: SetMetricSettings) -> Section:
    sec = Section("setmetrics", settings=asdict(s))
    if s.device != "cpu":
        sec.skipped = "the set metrics' statistics run in numpy on the CPU; run this section with --device cpu"
        return sec
    base = run_process(replace(s, n=100), "fid")  # the interpreter, numpy and the features' arrays alone, for scale
    for job in s.jobs:
        r = run_process(s, job)
        sec.measurements[job] = r
        sec.rows.append(
            Row(
                f"setmetrics: {job} at N = {s.n:,} per side, seconds",
                r["seconds"],
                "s",
                note=f"peak resident {r['peak_rss_mib']:,.0f} MiB (process start-up alone: {base['peak_rss_mib']:,.0f} MiB)",
            )
        )
    dense = (
        3 * s.n * s.n * 8 / 2**20
    )  # what PRDC's dense version held: the reference, generated and cross distance matrices
    sec.notes.append(
        f"synthetic Gaussian features, {s.dim}-d ({s.clip_dim}-d for CMMD), each job in a fresh process; _blocks jobs "
        f"add the interval over {s.blocks} prompt blocks. PRDC's former dense distance matrices alone: {dense:,.0f} MiB"
    )
    return sec


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    job = settings.pop("job")
    settings["jobs"] = tuple(settings["jobs"])
    print(MARKER + json.dumps(one_process(SetMetricSettings(**settings), job)), flush=True)
