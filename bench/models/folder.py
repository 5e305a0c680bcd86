"""`kind = "folder"`: precomputed images named by prompt id (how closed models are compared), read
with common.imagestore.read_folder; the folder says which prompts they were made for (its
prompt_set.json: `imagen-bench folder-manifest`). Sampling settings do not apply; the files are copied into the
run byte for byte, so their sha256 in the manifest is the sha256 of the source files."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.imagestore import open_image, read_folder

from .base import GeneratedImage, ImageRequest, Sampling


@dataclass(frozen=True)
class FolderModelConfig:
    path: str  # folder of <prompt id>.<ext> or <prompt id>_<sample>.<ext>
    seed: int = -1  # the seed the images were made with, if known (recorded; -1 = unknown)


class FolderModel:
    kind = "folder"
    axes: tuple[str, ...] = ()

    def __init__(self, name: str, config: FolderModelConfig, cache_dir: Path | None = None):
        self.name, self.config = name, config
        self.path = Path(config.path).expanduser()
        if not self.path.is_dir():
            raise FileNotFoundError(f"model {name!r}: image folder {self.path} does not exist")
        self._files: dict[str, dict[tuple[str, int], Path]] = {}  # prompt set -> (id, sample) -> file
        self._sizes: dict[Path, tuple[int, int]] = {}  # checked in check(): file -> (width, height)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path.resolve()), "seed": self.config.seed}

    def check(self, prompt_set: str, prompts: pd.DataFrame, samples: int, source: str) -> None:
        # the folder's manifest says which prompt each id's images were made for: a folder made for
        # another prompt set (or version) is refused here, naming both
        records = read_folder(self.path, prompts, model=self.name, prompt_set=prompt_set)
        files = self._files[prompt_set] = {(r.ref.prompt_id, r.ref.sample): r.path for r in records}
        missing = [
            f"{pid}" + (f"_{s}" if s else "")
            for pid in prompts["id"]
            for s in range(samples)
            if (str(pid), s) not in files
        ]
        if missing:
            raise ValueError(
                f"model {self.name!r}: {len(missing)} of {len(prompts) * samples} requested images are missing from "
                f"{self.path} (prompt set {prompt_set!r}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}; "
                "sample k > 0 of prompt ID is read from ID_k.<ext>"
            )
        for pid in prompts["id"]:  # every image the sweep will copy must decode: refuse now, before the run starts
            for s in range(samples):
                with open_image(files[(str(pid), s)]) as im:
                    self._sizes[files[(str(pid), s)]] = im.size

    def generate(self, sampling: Sampling, requests: Sequence[ImageRequest]) -> Iterator[GeneratedImage]:
        for r in requests:
            path = self._files[r.ref.prompt_set][(r.ref.prompt_id, r.ref.sample)]  # check() ran at cell expansion
            w, h = self._sizes[path]  # and decoded every file it maps
            yield GeneratedImage(path.read_bytes(), path.suffix.lower(), w, h)
