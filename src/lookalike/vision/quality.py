"""Is a face good enough to judge? Size, brightness and sharpness of the face a photo shows.

Measured on the aligned crop the embedding is computed from (its centre, where the face is),
so the figures do not depend on the photo's size. The thresholds are settings
(``judge_min_face_px``, ``judge_min_brightness``, ``judge_min_sharpness``), set where
recognition itself breaks down on ORL (``bench/resemblance.py``): faces stay recognised
down to 17 px wide and 10 grey levels, and stop being so once blurred to a sharpness near
0.002 (a 92x112 photo blurred with sigma 4-5 px). A face that fails is answered "cannot
judge" with why and how to retake it, never a lookalike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import CannotJudge
from lookalike.vision.backbones import Face

# The face's centre inside the 112x112 aligned crop (eyes, nose, mouth; no background).
_CENTRE = (slice(16, 104), slice(16, 96))


@dataclass(frozen=True)
class FaceQuality:
    face_px: float  # the face box's smaller side, in pixels of the photo
    brightness: float  # mean grey level of the face, 0-255
    sharpness: float  # Laplacian variance / intensity variance (contrast-free)

    def to_dict(self) -> dict[str, Any]:
        return {
            "face_px": round(self.face_px, 1),
            "brightness": round(self.brightness, 1),
            "sharpness": round(self.sharpness, 5),
        }


def measure(crop: np.ndarray, face: Face) -> FaceQuality:
    """Quality of one face from its aligned RGB crop."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64)
    centre = grey[_CENTRE]
    laplacian = cv2.Laplacian(grey, cv2.CV_64F)[_CENTRE]
    return FaceQuality(
        face_px=float(min(face.box[2], face.box[3])),
        brightness=float(centre.mean()),
        sharpness=float(laplacian.var() / max(float(centre.var()), 1.0)),
    )


def judge(quality: FaceQuality, settings: Settings) -> CannotJudge | None:
    """Why this face cannot be judged (an error to raise or report), or None if it can."""
    details = {"quality": quality.to_dict()}
    if quality.face_px < settings.judge_min_face_px:
        return CannotJudge(
            f"The face is too small to judge ({quality.face_px:.0f} px across; at least"
            f" {settings.judge_min_face_px:.0f} px needed). Come closer to the camera or crop"
            " the photo around the face.",
            code="face.too_small",
            details=details,
        )
    if quality.brightness < settings.judge_min_brightness:
        return CannotJudge(
            f"The face is too dark to judge (brightness {quality.brightness:.0f} of 255; at"
            f" least {settings.judge_min_brightness:.0f} needed). Face a window or a lamp and"
            " try again.",
            code="face.too_dark",
            details=details,
        )
    if quality.sharpness < settings.judge_min_sharpness:
        return CannotJudge(
            f"The face is too blurred to judge (sharpness {quality.sharpness:.4f}; at least"
            f" {settings.judge_min_sharpness:.4f} needed). Hold still, focus and try again.",
            code="face.blurry",
            details=details,
        )
    return None
