"""The generated scenes' words: referring expressions checked to pick one object, Video-REG descriptions of a
track's looks and motion."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .scenes import _Object

__all__ = ["expression_matches"]

# Speed in fractions of the frame diagonal per frame: description bins (generation, `scenes._SPEEDS`, stays clear
# of the bin edges so the words match what is drawn).
_STILL, _SLOW, _FAST = 0.003, 0.012, 0.025
_DIRECTIONS = (
    "to the right",
    "up and to the right",
    "up",
    "up and to the left",
    "to the left",
    "down and to the left",
    "down",
    "down and to the right",
)
_POSITION_MARGIN = 0.12  # fraction of W (or H) that "on the left" needs between the objects' centers


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def expression_matches(
    parts: dict[str, str | None], scene: Sequence[dict[str, Any]], frame_size: Sequence[int]
) -> list[int]:
    """Indices of the scene's objects an expression's parts pick in frame 0 (a valid expression picks one).

    `parts` has optional color/shape/size/texture words and a position in {left, right, top, bottom}:
    among the objects matching the words, the one whose center is that far out by at least
    `_POSITION_MARGIN` of the frame from all the others (none if no object is).
    """
    keys = ("color", "shape", "size", "texture")
    same = [o for o in scene if all(parts.get(k) in (None, o[k]) for k in keys)]
    position = parts.get("position")
    if not position:
        return [int(o["index"]) for o in same]
    axis, sign = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}[position]
    margin = _POSITION_MARGIN * frame_size[axis]
    picked = []
    for o in same:
        mine = sign * o["center0"][axis] * frame_size[axis]
        if all(mine - sign * p["center0"][axis] * frame_size[axis] >= margin for p in same if p is not o):
            picked.append(int(o["index"]))
    return picked


def _expression_text(parts: dict[str, str | None], group: int) -> str:
    """Words in the usual English order: "the small red striped circle on the left" / "the leftmost red one"."""
    # "the plain red one" but "the red striped one": a plain texture reads best before the color
    order = ("size", "texture", "color") if parts.get("texture") == "plain" else ("size", "color", "texture")
    words = [parts[k] for k in order if parts.get(k)]
    noun = parts.get("shape") or ("shape" if not words else "one")
    position = parts.get("position")
    if position and group >= 3:
        superlative = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "lowest"}[position]
        return " ".join(["the", superlative, *words, noun])
    text = " ".join(["the", *words, noun])
    if position:
        text += {"left": " on the left", "right": " on the right", "top": " at the top", "bottom": " at the bottom"}[
            position
        ]
    return text


def _choose_expression(
    rng: np.random.Generator, target: dict[str, Any], scene: list[dict[str, Any]], frame_size: Sequence[int]
) -> tuple[str, dict[str, str | None]]:
    """A random referring expression that picks exactly the target, usually one of the shortest."""
    valid: list[tuple[int, dict[str, str | None], int]] = []
    keys = ("color", "shape", "size", "texture")
    for r in range(0, 5):
        for chosen in itertools.combinations(keys, r):
            base = {k: (target[k] if k in chosen else None) for k in keys}
            if "texture" in chosen and not ({"color", "shape"} & set(chosen)):
                continue  # "the dotted one" alone reads oddly; pair texture with a color or a shape
            for position in (None, "left", "right", "top", "bottom"):
                parts = {**base, "position": position}
                if expression_matches(parts, scene, frame_size) != [target["index"]]:
                    continue
                group = len(expression_matches({**base, "position": None}, scene, frame_size))
                if position and group == 1:  # over-specified: say it only where it is true of the frame
                    axis = 0 if position in ("left", "right") else 1
                    where = target["center0"][axis]
                    if not (where < 1 / 3 if position in ("left", "top") else where > 2 / 3):
                        continue
                valid.append((r + (position is not None), parts, group))
    if not valid:  # attributes are distinct per video, so the full description always works
        raise AssertionError("no unique expression; attributes should be distinct")
    shortest = min(v[0] for v in valid)
    pool = [v for v in valid if v[0] == shortest] if rng.random() < 0.6 else valid
    _, parts, group = pool[int(rng.integers(len(pool)))]
    return _expression_text(parts, group), parts


def _speed_word(speed: float) -> str | None:
    """None for still; '' for an ordinary speed."""
    if speed < _STILL:
        return None
    return "slowly" if speed < _SLOW else ("" if speed < _FAST else "quickly")


def _motion_phrase(obj: _Object, first: int, last: int, diag: float) -> str:
    """Motion phases (direction x speed, short blips merged) of the track between two frames, in words."""
    centers = obj.centers[first : last + 1]
    if len(centers) < 2:
        return "staying still"
    steps = np.diff(centers, axis=0)
    kernel = np.ones(3) / 3
    smooth = np.stack([np.convolve(steps[:, k], kernel, mode="same") for k in range(2)], axis=1)
    smooth[0], smooth[-1] = steps[0], steps[-1]
    labels: list[tuple[str | None, int | None]] = []
    for vx, vy in smooth:
        speed = math.hypot(vx, vy) / diag
        word = _speed_word(speed)
        direction = None if word is None else int(round(math.atan2(-vy, vx) / (math.pi / 4))) % 8
        labels.append((word, direction))
    runs: list[list[Any]] = []  # [label, start, length]
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1][2] += 1
        else:
            runs.append([label, i, 1])
    merged: list[list[Any]] = []
    for run in runs:  # blips shorter than 3 steps join the phase before them
        if merged and (run[2] < 3 or merged[-1][0] == run[0]):
            merged[-1][2] += run[2]
        else:
            merged.append(run)
    if len(merged) > 1 and merged[0][2] < 3:
        merged[1][2] += merged[0][2]
        merged[1][1] = merged[0][1]
        merged.pop(0)
    phases = []
    for run in merged:  # re-merge neighbours that became equal
        if phases and phases[-1][0] == run[0]:
            phases[-1][2] += run[2]
        else:
            phases.append(run)
    if len(phases) > 3:
        mean_speed = float(np.mean(np.hypot(steps[:, 0], steps[:, 1]))) / diag
        word = _speed_word(mean_speed)
        return "moving around in changing directions" if not word else f"moving {word} in changing directions"
    abrupt = {t - first for t in obj.abrupt_frames}
    ranks = {None: 0, "slowly": 1, "": 2, "quickly": 3}
    out = []
    previous: tuple[str | None, int | None] = (None, None)
    for k, ((word, direction), start, _) in enumerate(phases):
        then = "then suddenly" if k and any(abs(start - a) <= 2 for a in abrupt) else "then"
        if word is None:
            text = "staying still" if k == 0 else f"{then} stopping"
        elif k and direction == previous[1]:  # same heading, other speed
            text = f"{then} {'speeding up' if ranks[word] > ranks[previous[0]] else 'slowing down'}"
        else:
            motion = " ".join(x for x in (word, _DIRECTIONS[direction]) if x)
            if k == 0:
                text = f"moving {motion}"
            else:  # "then suddenly moving slowly up" reads better than "then suddenly slowly up"
                text = f"then suddenly moving {motion}" if then != "then" else f"then {motion}"
        out.append(text)
        previous = (word, direction)
    return ", ".join(out)


def _name(obj: dict[str, Any], scene: list[dict[str, Any]]) -> str:
    """The shortest attribute name (no position) that tells an object from the others in the scene."""
    for keys in (("color", "shape"), ("size", "color", "shape"), ("size", "color", "texture", "shape")):
        if sum(all(o[k] == obj[k] for k in keys) for o in scene) == 1:
            words = [obj[k] for k in keys if k != "shape" and obj[k] != "plain"]
            return " ".join(["the", *words, obj["shape"]])
    return f"the {obj['color']} {obj['shape']}"


def _description(
    obj: _Object,
    scene: list[dict[str, Any]],
    kept: list[int],
    flags: dict[str, bool],
    occluder: int | None,
    diag: float,
) -> str:
    """Video-REG text of a track: looks, then motion, scale, leaving the frame and occlusion, as they happen."""
    texture = "" if obj.texture == "plain" else obj.texture
    looks = " ".join(x for x in (obj.size_name, obj.color, texture, obj.shape) if x)
    parts = [f"{_article(looks)} {looks}", _motion_phrase(obj, kept[0], kept[-1], diag)]
    text = " ".join(parts)
    extras = []
    if obj.scale_change > 1.25:
        extras.append("growing larger")
    elif obj.scale_change < 0.8:
        extras.append("shrinking")
    if flags["reenters"]:
        extras.append("leaving the frame and coming back")
    elif flags["exits"]:
        extras.append("until it leaves the frame")
    elif flags["truncated"]:
        extras.append("partly going out of view")
    if occluder is not None:
        extras.append(f"partly hidden behind {_name(scene[occluder], scene)}")
    return ", ".join([text, *extras])


# The fixed wording of `_expression_text`, `_motion_phrase` and `_description`, for `synth_tokenizer`.
_PHRASES = (
    "the leftmost one on the left",
    "the rightmost shape on the right",
    "the topmost one at the top",
    "the lowest one at the bottom",
    "staying still, then stopping, then speeding up, then slowing down",
    "moving around in changing directions",
    "then suddenly moving",
    "growing larger",
    "shrinking",
    "leaving the frame and coming back",
    "until it leaves the frame",
    "partly going out of view",
    "partly hidden behind",
)
