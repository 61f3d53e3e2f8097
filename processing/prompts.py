"""Task prompts: our own paraphrase sets for SOT, RSOT, Video-REG, REC, REG and VideoQA.

Index 0 of each set is the released model's inference wording where it is known (DESIGN.md), so greedy
evaluation with `paraphrase=0` asks the released checkpoint exactly what it was asked. Training draws a
paraphrase per sample, as the paper does, so the model is not tied to one wording.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .boxes import check_box, format_box

SOT = "sot"
RSOT = "rsot"
VIDEO_REG = "video_reg"
REC = "rec"
REG = "reg"
VIDEO_QA = "video_qa"
TASKS = (SOT, RSOT, VIDEO_REG, REC, REG, VIDEO_QA)

PARAPHRASES: dict[str, tuple[str, ...]] = {
    SOT: (
        "This is a video showing an object with coordinates {box} in Frame 1. "
        "Please provide the detailed coordinates of the object in each frame.",
        "The object at {box} in Frame 1 moves through this video. Give its coordinates in every frame.",
        "Track the object located at {box} in the first frame and report its box in each frame.",
        "In Frame 1 an object sits at {box}. Where is it in each of the frames?",
        "Follow the object whose box in Frame 1 is {box}, and list its coordinates frame by frame.",
        "Given the box {box} of an object in Frame 1, locate the same object in all frames.",
    ),
    RSOT: (
        "Please find {expression} in the initial frame and provide the detailed coordinates in each frame.",
        "Locate {expression} in the first frame and give its coordinates in every frame.",
        "Track {expression} through the video and report its box in each frame.",
        "Where is {expression} in each frame? Give the coordinates frame by frame.",
        "Find {expression} and follow it through all frames, listing its coordinates.",
        "Give the box of {expression} in every frame of this video.",
    ),
    VIDEO_REG: (
        "Please describe the object at {box} in Frame 1 of this video.",
        "What is the object located at {box} in the first frame? Describe it briefly.",
        "Give a short description of the object whose box in Frame 1 is {box}.",
        "Describe the object that appears at {box} in Frame 1 and is followed through the video.",
        "Tell me what the object at {box} in the initial frame is.",
    ),
    REC: (
        "Please provide the bounding box coordinates of the region this sentence describes: {expression}.",
        "Where is {expression} in the image? Give its coordinates.",
        "Locate {expression} and answer with its box.",
        "Give the coordinates of {expression}.",
        "Find {expression} in this image and report its bounding box.",
    ),
    REG: (
        "Please provide a short description for this region: {box}.",
        "Describe the object at {box} in the image.",
        "What is shown in the region {box}? Describe it briefly.",
        "Give a short phrase that refers to the object at {box}.",
    ),
    VIDEO_QA: ("{question}",),
}

# The released model's own template lines, the first of each its eval wording (DESIGN.md; Hon-Wong/Elysium's
# template files). A processor with `prompt_format="released"` (a converted released checkpoint) asks with these
# first, then our paraphrases. RSOT's eval line names the object's class ("person"), its README demo an expression.
RELEASED_TEMPLATES: dict[str, tuple[str, ...]] = {
    SOT: (PARAPHRASES[SOT][0],),
    RSOT: (
        "Please find one {expression} and provide the detailed coordinates in each frame.",
        "Please find {expression} in the initial frame and provide the detailed coordinates in each frame.",
    ),
    VIDEO_REG: ("This is a video showing an object with coordinates {box} in Frame 1. Please describe the object.",),
    REC: ("Give me the location of {expression}.", "Where is {expression}?"),
    REG: ("What object is in this location {box}?",),
    VIDEO_QA: ("{question}",),
}


def templates(task: str, released: bool = False) -> tuple[str, ...]:
    """The wordings of `task`: ours, or (released) the released lines followed by our paraphrases."""
    if task not in PARAPHRASES:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if not released:
        return PARAPHRASES[task]
    extra = tuple(p for p in PARAPHRASES[task] if p not in RELEASED_TEMPLATES[task])
    return RELEASED_TEMPLATES[task] + extra


def task_prompt(
    task: str,
    *,
    box: Sequence[float] | None = None,
    expression: str | None = None,
    question: str | None = None,
    paraphrase: int | None = 0,
    rng: random.Random | None = None,
    released: bool = False,
) -> str:
    """The question for `task`: `paraphrase` picks a wording by index; `None` draws one with `rng`.

    `box` is normalized `[x1,y1,x2,y2]`; `expression` names the object (RSOT, REC); `question` is VideoQA's text.
    `released` picks from the released model's template lines first (`RELEASED_TEMPLATES`).
    """
    options = templates(task, released)
    if paraphrase is None:
        template = (rng or random).choice(options)
    else:
        template = options[paraphrase % len(options)]
    values: dict[str, str] = {}
    if "{box}" in template:
        if box is None:
            raise ValueError(f"Task {task!r} needs a box of the object in the first frame.")
        values["box"] = format_box(check_box(box, what="The first-frame box (normalized)"))
    if "{expression}" in template:
        if not expression or not expression.strip():
            raise ValueError(f"Task {task!r} needs a non-empty expression naming the object.")
        values["expression"] = expression.strip().rstrip(".")
    if "{question}" in template:
        if not question or not question.strip():
            raise ValueError("Task 'video_qa' needs a non-empty question.")
        values["question"] = question.strip()
    return template.format(**values)
