"""Shared set-up for the review queue's tests (no tests here): a dataset with planted
problems and its check report, and visitors' kept photos logged straight into the database.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from PIL import Image
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.review import review_dataset, write_review
from lookalike.db.models import PredictionRecord
from lookalike.storage import ObjectStore

Orl = dict[str, list[Path]]
PLANTED = "s1/from-s2.pgm"  # s2's photo 8 filed under s1: closer to s2
DUPLICATE = "s3/again.png"  # s3's photo 1 again as a PNG: a near-duplicate


def flawed_home(root: Path, orl: Orl, people: int = 4) -> Settings:
    """s1..s<people> with photos 1-6, a mislabelled photo and a near-duplicate, imported
    with the face backbone; the dataset check's report written where ``lookalike check``
    writes it."""
    source = root / "source"
    for person in [f"s{i}" for i in range(1, people + 1)]:
        (source / person).mkdir(parents=True)
        for photo in orl[person][:6]:
            shutil.copy(photo, source / person / photo.name)
    shutil.copy(orl["s2"][7], source / PLANTED)
    Image.open(orl["s3"][0]).save(source / DUPLICATE)
    settings = Settings(home=root / "home", backbone="face")
    import_images(source, settings)
    write_review(review_dataset(settings), settings.data_dir.dataset_check)
    return settings


def kept_photo(
    settings: Settings,
    engine: Engine,
    photo: Path,
    *,
    best_label: str,
    probability: float,
    feedback_label: str | None = None,
) -> str:
    """A visitor's answered photo kept with consent (object store + log row): its id."""
    prediction_id = uuid.uuid4().hex
    key = f"consented/{prediction_id}.pgm"
    ObjectStore(settings).put(key, photo.read_bytes(), "image/x-portable-graymap")
    with Session(engine) as session, session.begin():
        session.add(
            PredictionRecord(
                id=prediction_id,
                model_version="m0001",
                label=best_label if probability >= 0.5 else None,
                best_label=best_label,
                probability=probability,
                probabilities=[
                    {"label": best_label, "probability": probability},
                    {"label": "other", "probability": 1 - probability},
                ],
                match_score=0.3,
                no_strong_match=probability < 0.5,
                faces_found=1,
                latency_ms=20.0,
                client="web",
                consent=True,
                storage_key=key,
                deletion_token_hash="0" * 64,
                feedback="dislike" if feedback_label else None,
                feedback_label=feedback_label,
            )
        )
    return prediction_id
