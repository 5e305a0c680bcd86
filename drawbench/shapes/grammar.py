"""The caption grammar: a structured `Caption` <-> its one text form.

    Colors        NP and NP | NP, NP and NP          "a red circle and a blue square"
    Counting      NUM COLOUR SHAPE(s)                "three yellow triangles"
    Positional    NP REL NP                          "a green square to the left of a red circle"
    Descriptions  NPS [REL NPS] on a BG background   "a small purple triangle above a large orange
                                                      circle on a white background"
    NP  = a(n) COLOUR SHAPE       NPS = a SIZE COLOUR SHAPE        NUM = one | two | three | four
    REL = to the left of | to the right of | above | below

Every caption describes the WHOLE scene (generation guarantees it), so each one also claims that
nothing else is in the image; the verifier checks that claim too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .scene import BACKGROUNDS, CATEGORIES, COLORS, HELD_OUT, RELATIONS, SHAPES, SIZES, check_name

NUMBERS = ("one", "two", "three", "four")
RELATION_TEXT = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
GRAMMAR_HELP = (
    "captions follow the shapes grammar, e.g. 'a red circle and a blue square', 'three yellow triangles', "
    "'a green square to the left of a red circle', 'a small purple triangle above a large orange circle on a "
    f"white background'; colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)}; sizes: {', '.join(SIZES)}; "
    f"backgrounds: {', '.join(BACKGROUNDS)}"
)


@dataclass(frozen=True)
class Phrase:
    color: str
    shape: str
    size: str | None = None  # only Descriptions name sizes

    def text(self) -> str:
        words = [w for w in (self.size, self.color, self.shape) if w]
        return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)

    def noun(self) -> str:
        """'the small red circle' form used in claim texts."""
        return " ".join(w for w in ("the", self.size, self.color, self.shape) if w)


@dataclass(frozen=True)
class Caption:
    """phrases[0] REL phrases[1] when relation is set; Counting has one phrase and a count."""

    category: str
    phrases: tuple[Phrase, ...]
    count: int | None = None
    relation: str | None = None
    background: str | None = None

    def __post_init__(self) -> None:
        check_name("category", self.category, CATEGORIES)
        if self.relation is not None:
            check_name("relation", self.relation, RELATIONS)


PAIR_GROUPS = ("held-out", "seen")


def pair_group(c: Caption) -> str:
    """ "held-out" if the caption names a colour x shape pair never seen in training (HELD_OUT),
    else "seen": the split that tells composition from memory."""
    return "held-out" if any((p.color, p.shape) in HELD_OUT for p in c.phrases) else "seen"


def format_caption(c: Caption) -> str:
    if c.category == "Counting":
        p = c.phrases[0]
        return f"{NUMBERS[c.count - 1]} {p.color} {p.shape}{'s' if c.count > 1 else ''}"
    if c.relation is not None:
        text = f"{c.phrases[0].text()} {RELATION_TEXT[c.relation]} {c.phrases[1].text()}"
    elif len(c.phrases) > 2:
        text = ", ".join(p.text() for p in c.phrases[:-1]) + " and " + c.phrases[-1].text()
    else:
        text = " and ".join(p.text() for p in c.phrases)
    return text + (f" on a {c.background} background" if c.background else "")


_WORD = r"([a-z]+)"
_NP = re.compile(rf"an? (?:(small|large) )?{_WORD} {_WORD}")
_COUNT = re.compile(rf"(one|two|three|four) {_WORD} {_WORD}")
_BG = re.compile(rf"(.*) on a {_WORD} background")
_REL = re.compile("(.*) (" + "|".join(RELATION_TEXT.values()) + ") (.*)")


def _phrase(text: str, caption: str) -> Phrase:
    m = _NP.fullmatch(text)
    if not m:
        raise ValueError(f"cannot parse {text!r} in caption {caption!r}; {GRAMMAR_HELP}")
    size, color, shape = m.groups()
    return Phrase(check_name("colour", color, tuple(COLORS)), check_name("shape", shape, SHAPES), size)


def parse_caption(text: str) -> Caption:
    """Caption text -> Caption; ValueError naming the grammar for anything outside it."""
    t = " ".join(text.strip().lower().rstrip(".").split())
    background = None
    if m := _BG.fullmatch(t):
        t, background = m.group(1), check_name("background", m.group(2), tuple(BACKGROUNDS))
    if m := _COUNT.fullmatch(t):
        num, color, shape = m.groups()
        n = NUMBERS.index(num) + 1
        if (n > 1) != shape.endswith("s") or background:
            raise ValueError(f"cannot parse {text!r}: counting captions are 'NUMBER COLOUR SHAPE(s)'; {GRAMMAR_HELP}")
        shape = shape[:-1] if n > 1 else shape
        phrase = Phrase(check_name("colour", color, tuple(COLORS)), check_name("shape", shape, SHAPES))
        return Caption("Counting", (phrase,), count=n)
    relation = None
    if m := _REL.fullmatch(t):
        relation = next(k for k, v in RELATION_TEXT.items() if v == m.group(2))
        phrases = (_phrase(m.group(1), text), _phrase(m.group(3), text))
    else:
        parts = re.split(r", | and ", t)
        phrases = tuple(_phrase(p, text) for p in parts)
    sized = {p.size is not None for p in phrases}
    if background is not None:
        if sized != {True} or (relation is None and len(phrases) != 1):
            raise ValueError(f"cannot parse {text!r}: a description names the size of every object; {GRAMMAR_HELP}")
        return Caption("Descriptions", phrases, relation=relation, background=background)
    if sized != {False}:
        raise ValueError(
            f"cannot parse {text!r}: sizes appear only in '... on a BG background' captions; {GRAMMAR_HELP}"
        )
    if relation is not None:
        return Caption("Positional", phrases, relation=relation)
    if len(phrases) < 2:
        raise ValueError(f"cannot parse {text!r}: a colour caption names 2-3 objects; {GRAMMAR_HELP}")
    return Caption("Colors", phrases)
