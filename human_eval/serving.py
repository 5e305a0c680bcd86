"""How a study's images reach the browser, made so that nothing received tells a control from an
ordinary task (issue 30).

- One encoder for every served image: at study creation each rated image and each degraded copy
  is decoded and written again by ENCODING (baseline JPEG, one quality, one chroma subsampling, no
  metadata), so every file carries the same quantization and Huffman tables and headers.
- Served as a data: URL built per render (`served_url`), never through Streamlit's /media/ route:
  that URL is a hash of the bytes, so the same image under two tasks had the same address. Every
  render inserts fresh random bytes (JPEG comment segments, which decoders skip) and pads every
  image of the study to one length (`served_bytes`, recorded in study.json): no two renders share
  a URL or bytes, every image has the same size, and there is no per-image HTTP request (headers,
  timing) at all.
"""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass

from PIL import Image

_COM = b"\xff\xfe"  # JPEG comment marker; its 2-byte length counts itself, so one carries <= 65533 bytes
_COM_MAX = 65533
MIN_PAD = 32  # random bytes every render inserts at least: the same image is never the same bytes twice


@dataclass(frozen=True)
class Encoding:
    quality: int = 90
    subsampling: str = "4:2:0"

    def __post_init__(self):
        if not 50 <= self.quality <= 95:
            raise ValueError(f"JPEG quality must be in [50, 95], got {self.quality}")
        if self.subsampling not in ("4:4:4", "4:2:2", "4:2:0"):
            raise ValueError(f"subsampling must be one of 4:4:4, 4:2:2, 4:2:0, got {self.subsampling!r}")


ENCODING = Encoding()


def encode(image: Image.Image, enc: Encoding = ENCODING) -> bytes:
    """`image` as the study serves it: RGB baseline JPEG at one quality, no EXIF / ICC / comment."""
    buf = io.BytesIO()
    image.convert("RGB").save(
        buf, format="JPEG", quality=enc.quality, subsampling=enc.subsampling, optimize=False, progressive=False
    )
    return buf.getvalue()


def padded_length(largest: int) -> int:
    """The one length every served image of a study is padded to: room for the largest file plus
    the random bytes every render adds (and a comment segment's header per 64 KiB)."""
    room = largest + MIN_PAD + 4 * (1 + largest // _COM_MAX)
    return room + (-room) % 1024


def pad(jpeg: bytes, length: int) -> bytes:
    """`jpeg` with random comment segments right after its start marker, `length` bytes in all."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no start-of-image marker); recreate the study")
    extra = length - len(jpeg)
    if extra < MIN_PAD + 4:
        raise ValueError(
            f"an image of {len(jpeg)} bytes does not fit the study's served size {length}; recreate the study"
        )
    segments = []
    while extra:
        body = min(_COM_MAX, extra - 4)
        if extra - 4 - body in range(1, 4):  # the remainder could not hold a segment header: split earlier
            body -= 4
        segments.append(_COM + (body + 2).to_bytes(2, "big") + secrets.token_bytes(body))
        extra -= body + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def served_url(data: bytes, length: int | None, suffix: str = ".jpg") -> str:
    """The data: URL one render shows: fresh random padding to the study's one length; a study made
    before uniform serving (length None) has its file sent as it is."""
    body = pad(data, length) if length is not None else data
    return f"data:{MIME[suffix.lower()]};base64," + base64.b64encode(body).decode("ascii")
