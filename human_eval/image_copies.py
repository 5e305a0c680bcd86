"""A study's copies of the rated images: the only images the app serves, under opaque ids.

Each source image (and each degraded control copy) is written once, by the one encoder every served
image goes through (human_eval.serving); the control pool keeps every image to one task per rater
(human_eval.plan). What was written is listed for study.json (`images`, `served_bytes`).
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

from common.files import sha256_file
from common.imagestore import open_image

from .controls import DegradeSettings, degrade
from .serving import encode, padded_length

DISK_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
)  # the disk written to, never the source


def write_error(e: OSError, dst: Path, out: Path) -> OSError:
    """An error while writing an image's copy: a disk error names the copy and the study being made
    (shutil names its *source* on ENOSPC, which blamed the rated image for a full disk)."""
    if e.errno not in DISK_ERRORS:
        return e
    return OSError(e.errno, f"{os.strerror(e.errno)} (writing the study's image copies for {out})", str(dst))


class ImageCopies:
    """The copies written into `folder` (a study's images/) for the study `out` being made;
    degraded copies are seeded from `seed` and the number of copies before them."""

    def __init__(self, folder: Path, out: Path, seed: int, settings: DegradeSettings):
        self.folder, self.out, self.seed, self.settings = folder, out, seed, settings
        self.images: dict[str, dict] = {}  # image id -> its study.json entry
        self._ids: dict[tuple[Path, bool], str] = {}  # (source image, degraded) -> image id

    def image_id(self, path: Path, degraded: bool, model: str) -> str:
        """The id of the copy of `path` (degraded or not), written on first use."""
        key = (path, degraded)
        if key not in self._ids:
            self._ids[key] = self._write(path, degraded, model)
        return self._ids[key]

    def _write(self, path: Path, degraded: bool, model: str) -> str:
        with open_image(path) as im:  # a corrupt / truncated / non-image file is refused here, naming it
            data = encode(degrade(path, seed=self.seed + len(self._ids), settings=self.settings) if degraded else im)
        iid = secrets.token_hex(16)
        dst = self.folder / f"{iid}.jpg"
        try:
            dst.write_bytes(data)
        except OSError as e:
            raise write_error(e, dst, self.out) from None
        self.images[iid] = {
            "file": dst.name,
            "sha256": sha256_file(dst),
            "source": str(path),
            "model": model,
            "degraded": degraded,
        }
        return iid

    def served_bytes(self) -> int:
        """The size every served image is padded to: the largest copy's, rounded up (human_eval.serving)."""
        return padded_length(max(im.stat().st_size for im in self.folder.iterdir()))
