"""How much does a text encoder tell "A rel B" from "B rel A"? (the shapes model card's encoder check)

    python -m bench.diagnostics.order_check [--n 100] [--reader]

The U-Net's cross-attention sees the *set* of (layer-normed) token features and its FiLM
conditioning sees their masked mean, so a caption and its swap differ for the U-Net only through
contextual changes of the features. For n training captions with a relation this prints cosines
between a caption and (a) its swap, (b) the caption with the first object recoloured (a change the
model does learn), both for the pooled embedding and for the same word's token feature.

--reader also trains a small cross-attention-like reader on the frozen features (learned queries,
no token positions: it sees the set, as the U-Net does) to name the colour of the object that is
on the left (or on top) in Positional captions: a bag of words cannot beat ~50 % (it knows the two
colours, not which is where), a reader that recovers the order from the features gets ~100 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch
import torch.nn.functional as F

from drawbench.shapes.dataset import ShapesDataset, split_item
from drawbench.shapes.grammar import format_caption, parse_caption
from drawbench.shapes.scene import COLORS
from imagen.config import TextEncoderConfig
from imagen.text_encoders import load_text_encoder
from imagen.unet import masked_mean


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
    ids = encoder.tokenizer(
        captions, padding="longest", truncation=True, max_length=encoder.max_length, return_tensors="pt"
    )["input_ids"]
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
    base, swap, recol = (
        _features(encoder, cs) for cs in (captions, [swapped(c) for c in captions], [recoloured(c) for c in captions])
    )
    pooled = masked_mean(base[0], base[1])
    return {
        "n": n,
        "pooled_cosine_swapped": F.cosine_similarity(pooled, masked_mean(swap[0], swap[1])).mean().item(),
        "pooled_cosine_recoloured": F.cosine_similarity(pooled, masked_mean(recol[0], recol[1])).mean().item(),
        "same_word_cosine_swapped": _same_word_cosine(base, swap, special),
        "same_word_cosine_recoloured": _same_word_cosine(base, recol, special),
    }


class _SetReader(torch.nn.Module):
    """(B, L, D) features -> class logits: `heads` learned queries attend over the layer-normed tokens."""

    def __init__(self, dim: int, classes: int, heads: int = 4, width: int = 64):
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.query = torch.nn.Parameter(torch.randn(heads, width) * 0.1)
        self.key, self.value = torch.nn.Linear(dim, width), torch.nn.Linear(dim, width)
        self.out = torch.nn.Linear(heads * width, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        w = torch.einsum("hd,bld->bhl", self.query, self.key(x)).masked_fill(~mask[:, None], float("-inf")).softmax(-1)
        return self.out(torch.einsum("bhl,bld->bhd", w, self.value(x)).flatten(1))


def _first_colour_data(encoder, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features and masks of n Positional captions of a split, and the colour index of the object
    that is first in space (left, or top) in each caption's scene."""
    ds = ShapesDataset(split, 16, categories=("Positional",))
    captions, labels = [], []
    for i in range(n):
        scene, caption = ds.scene(i)
        axis = 0 if caption.relation in ("left of", "right of") else 1
        first = min(scene.objects, key=lambda o: (o.x, o.y)[axis])
        captions.append(format_caption(caption))
        labels.append(list(COLORS).index(first.color))
    feats = [encoder.encode(captions[k : k + 256]) for k in range(0, n, 256)]
    return torch.cat([f for f, _ in feats]), torch.cat([m for _, m in feats]), torch.tensor(labels)


def reader_probe(encoder, n_train: int = 6000, n_val: int = 1000, steps: int = 1500, seed: int = 0) -> float:
    """Validation accuracy of _SetReader at naming the colour of the left / top object."""
    torch.manual_seed(seed)
    x, m, y = _first_colour_data(encoder, "train", n_train)
    reader = _SetReader(x.shape[-1], len(COLORS))
    opt = torch.optim.Adam(reader.parameters(), lr=3e-3)
    for _ in range(steps):
        i = torch.randint(0, n_train, (128,))
        loss = F.cross_entropy(reader(x[i], m[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    xv, mv, yv = _first_colour_data(encoder, "validation", n_val)
    with torch.no_grad():
        return (reader(xv, mv).argmax(1) == yv).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="number of training captions with a relation")
    p.add_argument("--reader", action="store_true", help="also train the set reader (~1 min on 2 cores)")
    args = p.parse_args(argv)
    encoder = load_text_encoder(TextEncoderConfig(kind="minilm", max_length=32))  # the shapes cascade's encoder
    out = order_check(encoder, args.n)
    if args.reader:
        out["reader_first_colour_accuracy"] = reader_probe(encoder)
    print(json.dumps({k: round(v, 4) for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
