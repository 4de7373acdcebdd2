"""Data checks: small registered functions over what was learned about one image.

In the style of cleanlab's Datalab issue checks: each check looks at the facts of an image
(its decoded pixels and what the backbone found) and returns a ``Problem`` or ``None``.
Severity ``error`` keeps the image out of the dataset; ``warning`` imports it with a note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lookalike.config import Settings
from lookalike.errors import LookalikeError, NoFaceFound
from lookalike.vision.backbones import Analysis, Backbone
from lookalike.vision.images import DecodedImage

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    code: str
    severity: Severity
    message: str


@dataclass
class ImageFacts:
    image: DecodedImage
    backbone: Backbone
    analysis: Analysis | None
    error: LookalikeError | None  # what the backbone raised, if anything


Check = Callable[[ImageFacts, Settings], Problem | None]
CHECKS: dict[str, Check] = {}


def register_check(name: str) -> Callable[[Check], Check]:
    def decorate(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return decorate


def run_checks(facts: ImageFacts, settings: Settings) -> list[Problem]:
    return [p for check in CHECKS.values() if (p := check(facts, settings)) is not None]


@register_check("no_face")
def no_face(facts: ImageFacts, settings: Settings) -> Problem | None:
    if isinstance(facts.error, NoFaceFound):
        return Problem("no_face", "error", "no face found; use a photo where the face is visible")
    if facts.error is not None:
        return Problem(facts.error.code, "error", facts.error.message)
    return None


@register_check("several_faces")
def several_faces(facts: ImageFacts, settings: Settings) -> Problem | None:
    a = facts.analysis
    if a is None or len(a.faces) < 2:
        return None
    return Problem(
        "several_faces",
        "warning",
        f"{len(a.faces)} faces found; used the largest (face {a.face_index}). Crop the photo"
        " to one person if that is the wrong one.",
    )


@register_check("too_small")
def too_small(facts: ImageFacts, settings: Settings) -> Problem | None:
    a = facts.analysis
    if a is None:
        return None
    if a.face is not None:
        side = min(a.face.box[2], a.face.box[3])
        what = "face"
    else:
        side = min(facts.image.width, facts.image.height)
        what = "image"
    if side < settings.min_face_size:
        return Problem(
            "too_small",
            "error",
            f"the {what} is {side:.0f} px across; at least {settings.min_face_size} px is needed"
            " (setting min_face_size). Use a larger or closer photo.",
        )
    return None


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian: low on blurred images."""
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@register_check("blurry")
def blurry(facts: ImageFacts, settings: Settings) -> Problem | None:
    import cv2

    a = facts.analysis
    if a is None or settings.blur_threshold <= 0:
        return None
    if a.face is not None and hasattr(facts.backbone, "align"):
        crop = facts.backbone.align(facts.image.rgb, a.face)
    else:
        crop = cv2.resize(facts.image.rgb, (224, 224), interpolation=cv2.INTER_AREA)
    score = sharpness(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    if score < settings.blur_threshold:
        return Problem(
            "blurry",
            "warning",
            f"looks blurred (sharpness {score:.0f} < {settings.blur_threshold:.0f},"
            " setting blur_threshold)",
        )
    return None
