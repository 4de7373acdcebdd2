"""The answer to a photo as the API gives it: one function from the engine's ``Prediction``
(and its log row) to ``PredictionPublic``. Reference photos become ``/api/images/<sha256>``
URLs (never file paths); the faces become small JPEG data URLs for display."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from lookalike.api.gallery import GalleryIndex, image_url, reference_url
from lookalike.api.schemas import LookalikePublic, NeighbourPublic, PredictionPublic
from lookalike.services.predictions import RecordedPrediction
from lookalike.vision.images import DecodedImage

FACE_CROP_SIDE = 160
FACE_THUMB_SIDE = 96
MAX_FACE_THUMBS = 12


def face_crop_data_url(
    image: DecodedImage, box: tuple[float, ...] | None, side: int = FACE_CROP_SIDE
) -> str | None:
    """A small JPEG data URL of the face box (clipped to the image), for display."""
    if box is None:
        return None
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(image.width, int(np.ceil(x + w))), min(image.height, int(np.ceil(y + h)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    crop = Image.fromarray(image.rgb[y0:y1, x0:x1])
    crop.thumbnail((side, side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def deletion_code(kind: str, record_id: str, token: str | None) -> str | None:
    """One code to paste into the /forget page: ``<kind>.<id>.<token>`` (``p``: a kept
    prediction photo, ``c``: a contribution); tokens never contain a dot."""
    return f"{kind}.{record_id}.{token}" if token else None


def prediction_public(
    recorded: RecordedPrediction, gallery: GalleryIndex | None
) -> PredictionPublic:
    """``gallery``: the answering model's reference photos (None: no class image)."""
    prediction, record, image = recorded.prediction, recorded.record, recorded.image
    answer = prediction.to_dict()
    lookalikes = []
    for item, shown in zip(prediction.lookalikes, answer["answer"]["lookalikes"], strict=True):
        ref = item.reference
        lookalikes.append(
            LookalikePublic(
                **{k: v for k, v in shown.items() if k != "reference"},
                reference_url=reference_url(ref) if ref else None,
                reference_similarity=round(ref.similarity, 4) if ref else None,
            )
        )
    faces = answer["faces"]
    for i, seen in enumerate(prediction.faces[:MAX_FACE_THUMBS]):
        faces[i]["thumbnail"] = face_crop_data_url(image, seen.box, FACE_THUMB_SIDE)
    face = prediction.face
    return PredictionPublic(
        **{k: v for k, v in answer.items() if k not in ("answer", "nearest", "faces")},
        answer={**answer["answer"], "lookalikes": lookalikes},
        faces=faces,
        nearest=[
            NeighbourPublic(
                label=n.label, similarity=round(n.similarity, 4), url=image_url(n.sha256)
            )
            for n in prediction.nearest
        ],
        id=record.id,
        created_at=record.created_at,
        visit=recorded.visit,
        face_crop=face_crop_data_url(image, face.box if face is not None else None),
        class_image_url=gallery.class_image_url(prediction.best_label) if gallery else None,
        consent=record.consent,
        deletion_token=recorded.deletion_token,
        deletion_code=deletion_code("p", record.id, recorded.deletion_token),
        feedback_token=recorded.feedback_token,
    )
