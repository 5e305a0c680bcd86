"""Per-sample random streams: each image's noise depends only on its own seed and stage, never on
what else is in the batch, so a batch of 4 equals four batches of 1."""

from __future__ import annotations

import numpy as np
import torch


def sample_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for (image seed, stream); streams separate stages and uses (noise vs aug)."""
    child = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(stream)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(child[0]) << 32 | int(child[1]))


class PerSampleNoise:
    """Draws (C, H, W) standard normals from one generator per sample; returned on `device`."""

    def __init__(self, seeds: list[int], stream: int, shape: tuple[int, int, int], device: torch.device | str = "cpu"):
        self.gens = [sample_generator(s, stream) for s in seeds]
        self.shape, self.device = shape, device

    def __call__(self) -> torch.Tensor:
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.gens]).to(self.device)
