"""Mutations of image folders and cascade checkpoints (see fuzz_mutations for the text formats).
Each `(folder, rng) -> Mutated` rewrites one randomly chosen image / stage of the folder in place."""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from .fuzz_mutations import ANY, BYTES, ERROR, Mutated, Mutation, structure

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

# -- images --------------------------------------------------------------------------------------


def _pick_image(folder: Path, rng: random.Random) -> Path:
    return rng.choice(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))


def _pixels(size: int, rng: random.Random):
    import numpy as np

    return np.random.default_rng(rng.randrange(1 << 30)).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _encode(mode: str, fmt: str, rng: random.Random, size: int = 32) -> bytes:
    im = Image.fromarray(_pixels(size, rng))
    if mode == "I;16":
        import numpy as np

        im = Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257)  # mode I;16
    elif mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, followed by a tiny IDAT (a decompression-bomb header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _replace(content: Callable[[random.Random], bytes], expect: str, what: str, suffix: str | None = None) -> Mutation:
    def apply(folder: Path, rng: random.Random) -> Mutated:
        path = _pick_image(folder, rng)
        data = content(rng)
        if suffix and path.suffix != suffix:
            path.unlink()
            path = path.with_suffix(suffix)
        path.write_bytes(data)
        return Mutated(f"{path.name}: {what}", expect, (path.name,))

    return apply


def _edit(fn: Callable[[bytes, random.Random], bytes], expect: str, what: str) -> Mutation:
    def apply(folder: Path, rng: random.Random) -> Mutated:
        path = _pick_image(folder, rng)
        path.write_bytes(fn(path.read_bytes(), rng))
        return Mutated(f"{path.name}: {what}", expect, (path.name,))

    return apply


def _corrupt(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(32):
        i = rng.randrange(len(out) // 4, len(out))
        out[i] = rng.randrange(256)
    return bytes(out)


def _dir_named_png(folder: Path, rng: random.Random) -> Mutated:
    path = _pick_image(folder, rng)
    path.unlink()
    path.mkdir()
    return Mutated(f"{path.name}: a folder named like an image", ERROR, (path.name,))


def _unmatched_name(folder: Path, rng: random.Random) -> Mutated:
    (folder / "zz-extra.png").write_bytes(_encode("RGB", "PNG", rng))
    return Mutated("zz-extra.png: an image whose name matches no prompt id", ANY, ("zz-extra.png",))


def _manifest_removed(folder: Path, rng: random.Random) -> Mutated:
    (
        folder / "prompt_set.json"
    ).unlink()  # refused where images are paired with prompts; FID reads images alone (exit 0)
    return Mutated(
        "prompt_set.json deleted: the folder no longer says which prompts it answers", ANY, ("folder-manifest",)
    )


def _manifest_other_text(folder: Path, rng: random.Random) -> Mutated:
    """The images made for other wordings (another prompt set or version): never paired silently."""
    path = folder / "prompt_set.json"
    data = json.loads(path.read_text())
    pid = rng.choice(sorted(data["prompts"]))
    data["prompts"][pid] = "a photo of a bench"
    path.write_text(json.dumps(data))
    return Mutated(
        f"prompt_set.json: prompt {pid} made for 'a photo of a bench'", ANY, ("answers prompt set",)
    )  # as above


IMAGE: dict[str, Mutation] = {
    "corrupt_bytes": _edit(_corrupt, ANY, "32 bytes of the image data overwritten"),
    "truncated_png": _replace(
        lambda r: (lambda d: d[: len(d) // 2])(_encode("RGB", "PNG", r)), ERROR, "PNG cut in half", ".png"
    ),
    "truncated_jpeg": _replace(
        lambda r: (lambda d: d[: len(d) // 2])(_encode("RGB", "JPEG", r)), ERROR, "JPEG cut in half", ".jpg"
    ),
    "mode_L": _replace(lambda r: _encode("L", "PNG", r), ANY, "grayscale (L) PNG", ".png"),
    "mode_RGBA": _replace(lambda r: _encode("RGBA", "PNG", r), ANY, "RGBA PNG", ".png"),
    "mode_P": _replace(lambda r: _encode("P", "PNG", r), ANY, "palette (P) PNG", ".png"),
    "mode_I16": _replace(lambda r: _encode("I;16", "PNG", r), ANY, "16-bit (I;16) PNG", ".png"),
    "mode_CMYK": _replace(lambda r: _encode("CMYK", "JPEG", r), ANY, "CMYK JPEG", ".jpg"),
    "jpeg_named_png": _replace(lambda r: _encode("RGB", "JPEG", r), ANY, "JPEG bytes in a .png file", ".png"),
    "one_pixel": _replace(lambda r: _encode("RGB", "PNG", r, size=1), ANY, "a 1x1 image", ".png"),
    "zero_bytes": _replace(lambda r: b"", ERROR, "an empty file", ".png"),
    "bomb_header": _replace(
        lambda r: _png_with_size(100_000, 100_000), ERROR, "PNG header claiming 100000x100000 pixels", ".png"
    ),
    "big_header": _replace(
        lambda r: _png_with_size(12_000, 12_000), ERROR, "PNG header claiming 12000x12000 pixels, no data", ".png"
    ),
    "text_named_png": _replace(lambda r: b"this is not an image\n", ERROR, "a text file named .png", ".png"),
    "folder_named_png": _dir_named_png,
    "unmatched_name": _unmatched_name,
    "manifest_removed": _manifest_removed,
    "manifest_other_text": _manifest_other_text,
}

# -- checkpoints ---------------------------------------------------------------------------------


def _stage(ckpt: Path, rng: random.Random) -> Path:
    return rng.choice(sorted(p for p in ckpt.iterdir() if (p / "config.json").is_file()))


def _tensors(fn: Callable[[dict, random.Random], tuple[str, tuple]], expect: str = ERROR) -> Mutation:
    def apply(ckpt: Path, rng: random.Random) -> Mutated:
        from safetensors.torch import load_file, save_file

        stage = _stage(ckpt, rng)
        weights = stage / "model.safetensors"
        state = load_file(str(weights))
        detail, names = fn(state, rng)
        save_file(state, str(weights))
        return Mutated(f"{stage.name}/model.safetensors: {detail}", expect, ("model.safetensors", *names))

    return apply


def _wrong_shape(state: dict, rng: random.Random) -> tuple[str, tuple]:
    import torch

    k = rng.choice(sorted(state))
    shape = list(state[k].shape) or [1]
    shape[rng.randrange(len(shape))] += 1
    state[k] = torch.zeros(shape, dtype=state[k].dtype)
    return f"tensor {k} reshaped to {tuple(shape)}", (k,)


def _missing(state: dict, rng: random.Random) -> tuple[str, tuple]:
    k = rng.choice(sorted(state))
    del state[k]
    return f"tensor {k} removed", (k,)


def _extra(state: dict, rng: random.Random) -> tuple[str, tuple]:
    import torch

    state["extra.fuzz.weight"] = torch.zeros(3)
    return "extra tensor extra.fuzz.weight", ("extra.fuzz.weight",)


def _int_dtype(state: dict, rng: random.Random) -> tuple[str, tuple]:
    k = rng.choice(sorted(state))
    state[k] = state[k].round().long()
    return f"tensor {k} stored as int64", (k,)


def _weights_bytes(fn: Callable[[bytes, random.Random], bytes], what: str) -> Mutation:
    def apply(ckpt: Path, rng: random.Random) -> Mutated:
        weights = _stage(ckpt, rng) / "model.safetensors"
        weights.write_bytes(fn(weights.read_bytes(), rng))
        return Mutated(f"{weights.parent.name}/model.safetensors: {what}", ERROR, ("model.safetensors",))

    return apply


def _header_len(data: bytes, rng: random.Random) -> bytes:
    return struct.pack("<Q", rng.choice([0, 7, len(data) * 4, 1 << 60])) + data[8:]


def _header_garbage(data: bytes, rng: random.Random) -> bytes:
    return data[:8] + rng.randbytes(40) + data[48:]


def _flip_data(data: bytes, rng: random.Random) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    i = rng.randrange(8 + n, len(data))
    return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1 :]


def _delete_weights(ckpt: Path, rng: random.Random) -> Mutated:
    stage = _stage(ckpt, rng)
    (stage / "model.safetensors").unlink()
    return Mutated(f"{stage.name}/model.safetensors deleted", ERROR, ("model.safetensors",))


def _delete_stage(ckpt: Path, rng: random.Random) -> Mutated:
    stage = _stage(ckpt, rng)
    shutil.rmtree(stage)
    return Mutated(f"stage folder {stage.name}/ deleted", ERROR, (stage.name, "config.json"))


def _json_file(name: str, mutations: dict[str, Mutation]) -> dict[str, Mutation]:
    """The text-format mutations applied to CKPT/<stage>/config.json or CKPT/cascade.json."""

    def wrap(m: Mutation) -> Mutation:
        def apply(ckpt: Path, rng: random.Random) -> Mutated:
            path = ckpt / name if name == "cascade.json" else _stage(ckpt, rng) / name
            out = m(path, rng)
            return Mutated(f"{path.parent.name}/{out.detail}", out.expect, (name, *out.mentions))

        return apply

    return {f"{name.split('.')[0]}_{k}": wrap(m) for k, m in mutations.items()}


def checkpoint_mutations() -> dict[str, Mutation]:
    return {
        "wrong_shape": _tensors(_wrong_shape),
        "missing_tensor": _tensors(_missing),
        "extra_tensor": _tensors(_extra),
        "int_tensor": _tensors(_int_dtype, ANY),
        "header_length": _weights_bytes(_header_len, "safetensors header length overwritten"),
        "header_garbage": _weights_bytes(_header_garbage, "safetensors header overwritten with random bytes"),
        "weights_truncated": _weights_bytes(lambda d, r: d[: r.randrange(1, len(d))], "truncated"),
        "weights_flipped": _weights_bytes(_flip_data, "one byte of tensor data flipped"),
        "weights_deleted": _delete_weights,
        "stage_deleted": _delete_stage,
        **_json_file("config.json", {**structure("json"), **{k: BYTES[k] for k in ("empty", "garbage", "truncated")}}),
        **_json_file("cascade.json", {**structure("json"), **{k: BYTES[k] for k in ("empty", "truncated")}}),
    }
