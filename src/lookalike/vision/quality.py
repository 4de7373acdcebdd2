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


# (code, measure, setting, what the message says is wrong, how to retake the photo)
_RULES = (
    ("face.too_small", "face_px", "judge_min_face_px", "too small to judge ({:.0f} px across;"
     " at least {:.0f} px needed)", "Come closer to the camera or crop the photo around the"
     " face."),
    ("face.too_dark", "brightness", "judge_min_brightness", "too dark to judge (brightness"
     " {:.0f} of 255; at least {:.0f} needed)", "Face a window or a lamp and try again."),
    ("face.blurry", "sharpness", "judge_min_sharpness", "too blurred to judge (sharpness"
     " {:.4f}; at least {:.4f} needed)", "Hold still, focus and try again."),
)  # fmt: skip


def judge(quality: FaceQuality, settings: Settings) -> CannotJudge | None:
    """Why this face cannot be judged (an error to raise or report), or None if it can."""
    for code, measure_name, setting, wrong, retake in _RULES:
        value, least = getattr(quality, measure_name), getattr(settings, setting)
        if value < least:
            return CannotJudge(
                f"The face is {wrong.format(value, least)}. {retake}",
                code=code,
                details={"quality": quality.to_dict()},
            )
    return None
