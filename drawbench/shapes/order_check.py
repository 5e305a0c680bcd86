"""How much does a text encoder tell "A rel B" from "B rel A"? (the shapes model card's encoder check)

    python -m drawbench.shapes.order_check [--n 100]

The U-Net's cross-attention sees the *set* of (layer-normed) token features and its FiLM
conditioning sees their masked mean, so a caption and its swap differ for the U-Net only through
contextual changes of the features. For n training captions with a relation this prints cosines
between a caption and (a) its swap, (b) the caption with the first object recoloured (a change the
model does learn), both for the pooled embedding and for the same word's token feature.
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import torch
import torch.nn.functional as F

from imagen.unet import masked_mean

from .dataset import split_item
from .grammar import format_caption, parse_caption
from .scene import COLORS


def swapped(caption: str) -> str:
    c = parse_caption(caption)
    return format_caption(dataclasses.replace(c, phrases=(c.phrases[1], c.phrases[0])))


def recoloured(caption: str) -> str:
    c = parse_caption(caption)
    a, b = c.phrases
    new = next(x for x in COLORS if x not in (a.color, b.color))
    return format_caption(dataclasses.replace(c, phrases=(dataclasses.replace(a, color=new), b)))


def _features(encoder, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, L, D) layer-normed token features (as the U-Net's text_norm sees them, without its affine), mask, token ids."""
    text, mask = encoder.encode(captions)
    ids = encoder.tokenizer(captions, padding="longest", truncation=True, max_length=encoder.max_length, return_tensors="pt")["input_ids"]
    return F.layer_norm(text.float(), text.shape[-1:]), mask, ids[:, : text.shape[1]]


def _same_word_cosine(a, b, special: set[int]) -> float:
    """Mean over captions of the mean cosine between the k-th occurrence of a token id in a and in b."""
    (fa, ma, ia), (fb, mb, ib) = a, b
    per_caption = []
    for i in range(len(fa)):
        where_b: dict[int, list[int]] = {}
        for j, t in enumerate(ib[i].tolist()):
            if mb[i, j] and t not in special:
                where_b.setdefault(t, []).append(j)
        seen: dict[int, int] = {}
        sims = []
        for j, t in enumerate(ia[i].tolist()):
            k = seen.get(t, 0)
            if not ma[i, j] or t not in where_b or k >= len(where_b[t]):
                continue
            seen[t] = k + 1
            sims.append(F.cosine_similarity(fa[i, j], fb[i, where_b[t][k]], dim=0).item())
        per_caption.append(sum(sims) / len(sims))
    return sum(per_caption) / len(per_caption)


def order_check(encoder, n: int = 100) -> dict[str, float]:
    captions, i = [], 0
    while len(captions) < n:  # training captions with a relation between two phrases
        c = format_caption(split_item("train", i)[1])
        if parse_caption(c).relation is not None:
            captions.append(c)
        i += 1
    special = set(encoder.tokenizer.all_special_ids)
    base, swap, recol = (_features(encoder, cs) for cs in (captions, [swapped(c) for c in captions], [recoloured(c) for c in captions]))
    pooled = masked_mean(base[0], base[1])
    return {
        "n": n,
        "pooled_cosine_swapped": F.cosine_similarity(pooled, masked_mean(swap[0], swap[1])).mean().item(),
        "pooled_cosine_recoloured": F.cosine_similarity(pooled, masked_mean(recol[0], recol[1])).mean().item(),
        "same_word_cosine_swapped": _same_word_cosine(base, swap, special),
        "same_word_cosine_recoloured": _same_word_cosine(base, recol, special),
    }


def main(argv: list[str] | None = None) -> int:
    from imagen.config import TextEncoderConfig
    from imagen.text_encoders import load_text_encoder

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="number of training captions with a relation")
    args = p.parse_args(argv)
    encoder = load_text_encoder(TextEncoderConfig(kind="minilm", max_length=32))  # the shapes cascade's encoder
    print(json.dumps({k: round(v, 4) for k, v in order_check(encoder, args.n).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
