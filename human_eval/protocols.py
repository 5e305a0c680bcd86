"""The three human-evaluation protocols of the Imagen paper (sec. 4.3 / appendix E): wording,
answer options, layout, and how a shown answer is de-randomised into the export's A / tie / B.

A protocol is data; the app renders any of them with the same code, so control tasks (built with
the same protocol) look exactly like ordinary tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

# Values an option can carry. "left"/"right" are positions on screen; they become "A"/"B"
# (model_a / model_b) only with the task's recorded side assignment.
SIDE_VALUES = ("left", "tie", "right")
CAPTION_VALUES = ("yes", "somewhat", "no")


@dataclass(frozen=True)
class Option:
    label: str  # exactly what the rater reads
    value: str  # one of SIDE_VALUES or CAPTION_VALUES


@dataclass(frozen=True)
class Question:
    key: str  # the export's `question` column
    text: str  # may contain {caption}
    options: tuple[Option, ...]

    def option_for(self, label: str) -> Option:
        for o in self.options:
            if o.label == label:
                return o
        raise ValueError(
            f"{label!r} is not an answer to {self.key!r}; answers: {', '.join(o.label for o in self.options)}"
        )


# How tasks are dealt to raters (human_eval.plan): the Imagen paper ran each DrawBench category as
# its own evaluation with 25 raters (sec. 4.3, App. E), and COCO over all sampled captions;
# "sequential" (A-vs-B protocols): one batch per rater, stopping by rule (human_eval.sequential).
DESIGNS = ("per_category", "all_prompts", "sequential")


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    layout: str  # "pair": two sides shown next to each other; "single": one image and its caption
    side_label: str  # "set" or "image": how each side is named on screen ("Set A", "Image B")
    images_per_set: (
        int  # per side, exactly (the paper: sets of 8 for DrawBench, 1 image for COCO); a study may choose another
    )
    second_source: str  # "required" (model B; the reference for coco_realism), "optional" (coco_alignment:
    #                     the reference images rated in the same pool, one image per task), "none"
    design: str  # default task design: "per_category" (the paper's DrawBench: one evaluation per
    #              category, its own raters) or "all_prompts" (every rater sees every prompt)
    control_kinds: tuple[str, ...]  # which automatic controls this protocol supports
    questions: tuple[Question, ...]

    def question(self, key: str) -> Question:
        for q in self.questions:
            if q.key == key:
                return q
        raise ValueError(f"{self.name} has no question {key!r}; questions: {', '.join(q.key for q in self.questions)}")


_SETS = (Option("I prefer set A", "left"), Option("I am indifferent", "tie"), Option("I prefer set B", "right"))

PROTOCOLS: dict[str, Protocol] = {
    "drawbench_sbs": Protocol(
        name="drawbench_sbs",
        title="Compare two sets of images",
        layout="pair",
        side_label="Set",
        images_per_set=8,
        second_source="required",
        design="per_category",
        control_kinds=("alignment", "fidelity"),
        questions=(
            Question("quality", "Which set of images is of higher quality?", _SETS),
            Question("alignment", "Which set of images better represents the text caption: {caption}?", _SETS),
        ),
    ),
    "coco_realism": Protocol(
        name="coco_realism",
        title="Which image looks more real?",
        layout="pair",
        side_label="Image",
        images_per_set=1,
        second_source="required",
        design="all_prompts",
        control_kinds=("fidelity",),
        # The paper forces a choice here: no "indifferent" option (ARCHITECTURE.md contract 2).
        questions=(
            Question(
                "realism",
                "Which image is more photorealistic (looks more real)?",
                (Option("Image A", "left"), Option("Image B", "right")),
            ),
        ),
    ),
    "coco_alignment": Protocol(
        name="coco_alignment",
        title="Does the caption fit the image?",
        layout="single",
        side_label="Image",
        images_per_set=1,
        second_source="optional",
        design="all_prompts",
        control_kinds=("alignment",),
        questions=(
            Question(
                "caption",
                "Does the caption accurately describe the above image?",
                (Option("Yes", "yes"), Option("Somewhat", "somewhat"), Option("No", "no")),
            ),
        ),
    ),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def derandomise(value: str, a_on_left: bool) -> str:
    """A shown option value -> the export's answer: "A" prefers model_a, "B" model_b, "tie";
    caption answers (yes/somewhat/no) pass through."""
    if value in CAPTION_VALUES:
        return value
    if value == "tie":
        return "tie"
    if value not in ("left", "right"):
        raise ValueError(f"unknown option value {value!r}; allowed: {', '.join(SIDE_VALUES + CAPTION_VALUES)}")
    return "A" if (value == "left") == a_on_left else "B"


def wording(protocol: Protocol) -> dict:
    """The exact wording shown to raters, recorded in study.json."""
    return {q.key: {"text": q.text, "options": [o.label for o in q.options]} for q in protocol.questions}
