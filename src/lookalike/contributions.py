"""Joining the gallery: from a short face video (or a few photos) to the face crops and
embeddings that make a contributor matchable at once, and deleting every copy again.

Processing (a background job, ``process``): the frames sampled from the video (or the
photos) -> frames with exactly one face (several faces: dropped, never attributed to the
contributor) -> faces good enough to judge (``vision.quality``) -> near-duplicates dropped
-> all one person (the crops never split into two groups of different people) -> up to
``contribution_max_crops`` crops that differ most (farthest-point sampling on the
embeddings: turning the head gives varied views) -> at least ``contribution_min_crops``, else
refused, saying why and how to do better. The crops (the face region of each chosen frame,
JPEG) go to the object store under ``contributions/<id>/``; their embeddings stay in the
contribution's row, in the embedding space of the champion that was serving. The video (or
the photos) is deleted once processed, enrolled or refused: only the crops are kept.

Matching: ``lookalike.enrolled.EnrolledGallery``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from lookalike.artifacts import TrainedModel, backbone_for, load_model
from lookalike.config import Settings
from lookalike.data.store import image_key
from lookalike.db import Contribution, utcnow
from lookalike.errors import CannotJudge, LookalikeError
from lookalike.storage import ObjectStore
from lookalike.vision.backbones import Backbone, Face, l2_normalize
from lookalike.vision.images import decode_image
from lookalike.vision.quality import FaceQuality, judge, measure

if TYPE_CHECKING:
    from lookalike.enrolled import EnrolledGallery

log = logging.getLogger("lookalike.contributions")

QUEUED, PROCESSING, ENROLLED, REFUSED = "queued", "processing", "enrolled", "refused"
CROP_SIDE = 320  # the stored face region's longest side, in pixels
CROP_MARGIN = 0.6  # of the face box's size, on every side: enough for the detector again

Frames = Iterable[tuple[float | None, np.ndarray]]  # (time in the video or None, RGB)


def object_prefix(contribution_id: str) -> str:
    return f"contributions/{contribution_id}/"


class ContributionRefused(LookalikeError):
    """Too few usable faces, or more than one person: nothing of the person is kept."""

    status = 422


@dataclass
class FaceCrop:
    index: int  # frame (or photo) number, in order
    seconds: float | None  # where in the video
    vector: np.ndarray  # unit embedding
    quality: FaceQuality
    jpeg: bytes  # the face region of the frame (with a margin), for retraining and display


@dataclass
class Selection:
    """What processing saw, to say why a contribution was refused."""

    looked: int = 0  # frames (or photos) examined
    no_face: int = 0
    several_faces: int = 0
    poor: int = 0  # a face too small, dark or blurred
    duplicates: int = 0
    crops: list[FaceCrop] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "looked": self.looked,
            "no_face": self.no_face,
            "several_faces": self.several_faces,
            "poor": self.poor,
            "duplicates": self.duplicates,
            "usable": len(self.crops),
        }


def face_region_jpeg(rgb: np.ndarray, face: Face) -> bytes:
    """The face and a margin around it, at most ``CROP_SIDE`` pixels, as JPEG."""
    x, y, w, h = face.box
    mx, my = w * CROP_MARGIN, h * CROP_MARGIN
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
    x1, y1 = min(width, int(np.ceil(x + w + mx))), min(height, int(np.ceil(y + h + my)))
    region = Image.fromarray(rgb[y0:y1, x0:x1])
    region.thumbnail((CROP_SIDE, CROP_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    region.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def face_crops(
    frames: Frames,
    backbone: Backbone,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
) -> Selection:
    """Every frame with exactly one face good enough to judge, near-duplicates dropped."""
    selection = Selection()
    kept: list[np.ndarray] = []
    for index, (seconds, rgb) in enumerate(frames):
        selection.looked += 1
        if progress is not None:
            progress(selection.looked)
        faces = backbone.detect(rgb)
        if not faces:
            selection.no_face += 1
            continue
        if len(faces) > 1:  # never attributed to the contributor: it may be someone else
            selection.several_faces += 1
            continue
        analysis = backbone.analyze(rgb, 0)
        if analysis.crop is None:
            selection.poor += 1
            continue
        quality = measure(analysis.crop, faces[0])
        if judge(quality, settings) is not None:
            selection.poor += 1
            continue
        vector = analysis.vector
        if kept and float(np.max(np.stack(kept) @ vector)) >= (
            settings.contribution_duplicate_similarity
        ):
            selection.duplicates += 1
            continue
        kept.append(vector)
        jpeg = face_region_jpeg(rgb, faces[0])
        selection.crops.append(FaceCrop(index, seconds, vector, quality, jpeg))
    return selection


def two_people(vectors: np.ndarray, threshold: float) -> bool:
    """Whether the crops split into two groups of at least two whose mean faces are less
    similar than ``threshold``: seeded by the least similar pair, every other crop joins the
    nearer seed."""
    n = len(vectors)
    if n < 4:
        return False
    sims = vectors @ vectors.T
    i, j = np.unravel_index(int(np.argmin(sims)), sims.shape)
    nearer_i = sims[:, i] >= sims[:, j]
    group_a, group_b = vectors[nearer_i], vectors[~nearer_i]
    if len(group_a) < 2 or len(group_b) < 2:
        return False
    a, b = l2_normalize(group_a.mean(axis=0)), l2_normalize(group_b.mean(axis=0))
    return float(a @ b) < threshold


def farthest_point(vectors: np.ndarray, k: int) -> list[int]:
    """``k`` rows that differ most: start at the one closest to the mean face (the most
    typical view), then repeatedly add the row least similar to everything chosen."""
    n = len(vectors)
    if n <= k:
        return list(range(n))
    centre = l2_normalize(vectors.mean(axis=0))
    chosen = [int(np.argmax(vectors @ centre))]
    closest = vectors @ vectors[chosen[0]]
    while len(chosen) < k:
        nxt = int(np.argmin(closest))
        chosen.append(nxt)
        closest = np.maximum(closest, vectors @ vectors[nxt])
    return sorted(chosen)


def choose_crops(selection: Selection, settings: Settings, media: str) -> list[FaceCrop]:
    """The crops to enrol, or ``ContributionRefused`` saying why."""
    crops = selection.crops
    counts = selection.counts()
    if len(crops) >= 2 and two_people(
        np.stack([c.vector for c in crops]), settings.contribution_same_person_similarity
    ):
        raise ContributionRefused(
            f"The {media} shows more than one person. Record (or choose) {_only_you(media)}"
            " with only your face in view.",
            code="contribution.several_people",
            details=counts,
        )
    if len(crops) < settings.contribution_min_crops:
        raise ContributionRefused(
            f"Only {len(crops)} usable {'frame' if media == 'video' else 'photo'}"
            f"{'' if len(crops) == 1 else 's'} (at least {settings.contribution_min_crops} are"
            f" needed): {_advice(selection)}",
            code="contribution.too_few_faces",
            details={**counts, "min_crops": settings.contribution_min_crops},
        )
    vectors = np.stack([c.vector for c in crops])
    return [crops[i] for i in farthest_point(vectors, settings.contribution_max_crops)]


def _only_you(media: str) -> str:
    return "a video" if media == "video" else "photos"


def _advice(selection: Selection) -> str:
    """What went wrong most often, as something to do."""
    problems = {
        "no_face": (selection.no_face, "keep your face in the frame, facing the camera"),
        "several_faces": (selection.several_faces, "make sure nobody else is in view"),
        "poor": (selection.poor, "hold the camera closer, in better light, and move slowly"),
        "duplicates": (selection.duplicates, "turn your head slowly to both sides"),
    }
    worst = max(problems.values(), key=lambda p: p[0])
    return (worst[1] if worst[0] else "hold the camera closer, in better light") + "."


# --- processing (the background job) -----------------------------------------------------------


def frames_of(
    row: Contribution, store: ObjectStore, settings: Settings
) -> Iterator[tuple[float | None, np.ndarray]]:
    """The frames (video) or photos of a contribution, decoded one at a time."""
    if row.media == "video":
        from lookalike.vision.video import sample_frames

        yield from sample_frames(store.get(row.sources[0]), settings, name="the video")
        return
    for i, key in enumerate(row.sources):
        yield None, decode_image(store.get(key), settings, name=f"photo {i + 1}").rgb


def _update(engine: Engine, contribution_id: str, **values: object) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(Contribution, contribution_id)
        if row is None:  # deleted meanwhile: nothing to update
            return
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = utcnow()


def process(
    settings: Settings,
    engine: Engine,
    contribution_id: str,
    model: TrainedModel | None = None,
) -> str:
    """Turn a queued contribution into an enrolled or refused one; returns the status.

    ``model``: the serving model whose embedding space enrols it (default: the registry's
    champion). A contribution deleted while it is processed leaves nothing behind."""
    store = ObjectStore(settings)
    with Session(engine) as session, session.begin():
        # Claimed in one statement: a contribution queued twice is processed once.
        claimed = session.execute(
            update(Contribution)
            .where(Contribution.id == contribution_id, Contribution.status == QUEUED)
            .values(status=PROCESSING, progress=0.0, updated_at=utcnow())
        )
        row = session.get(Contribution, contribution_id)
        if row is None or not getattr(claimed, "rowcount", 0):
            return row.status if row is not None else "deleted"
        session.expunge(row)
    started = time.perf_counter()
    try:
        if model is None:
            from lookalike.registry import Registry

            model = load_model(settings, Registry(settings, engine).champion())
        backbone = backbone_for(model.info, settings)
        if not backbone.uses_faces:
            raise ContributionRefused(
                "The serving model compares whole images, not faces: joining needs a face"
                " model (backbone 'face').",
                code="contribution.not_a_face_model",
            )
        expected = _expected_frames(row, settings)
        last = [0.0]

        def progress(looked: int) -> None:
            share = min(0.95, looked / max(1, expected))
            if share - last[0] >= 0.1:
                last[0] = share
                _update(engine, contribution_id, progress=round(share, 2))

        selection = face_crops(frames_of(row, store, settings), backbone, settings, progress)
        chosen = choose_crops(selection, settings, row.media)
    except LookalikeError as exc:
        if isinstance(exc, CannotJudge):  # a photo that cannot be read at all
            exc = ContributionRefused(exc.message, code=exc.code, details=exc.details)
        _refuse(settings, engine, store, contribution_id, exc)
        return REFUSED
    except Exception:
        log.exception("contribution %s could not be processed", contribution_id)
        _refuse(
            settings,
            engine,
            store,
            contribution_id,
            LookalikeError(
                "The contribution could not be processed; try again.",
                code="contribution.failed",
            ),
        )
        return REFUSED
    keys = []
    for n, crop in enumerate(chosen):
        key = crop_key(contribution_id, n)
        store.put(key, crop.jpeg, "image/jpeg")
        keys.append(key)
    vectors = np.stack([c.vector for c in chosen]).astype(np.float32)
    review = already_enrolled(settings, model, vectors, row.display_name)
    with Session(engine) as session, session.begin():
        live = session.get(Contribution, contribution_id)
        if live is None:  # deleted while processing: nothing may stay
            for key in keys:
                store.delete(key)
            return "deleted"
        live.status = ENROLLED
        live.progress = 1.0
        live.crops = len(chosen)
        live.backbone_key = model.info.backbone_key
        live.embeddings = vectors.tobytes()
        live.updated_at = utcnow()
        if review is not None:  # the same face under another name: an admin decides
            live.approved = False
            live.reason_code = "contribution.review"
            live.reason = (
                "This face is already in the gallery under another name; an admin will"
                " review it before others can find you."
            )
            log.warning("contribution %s looks like %r: held for review", contribution_id, review)
        sources, live.sources = list(live.sources), []
    for key in sources:  # the crops are all that is kept: not the video, not the photos
        store.delete(key)
    log.info(
        "contribution %s enrolled: %d crops of %d frames in %.1f s",
        contribution_id,
        len(chosen),
        selection.looked,
        time.perf_counter() - started,
    )
    return ENROLLED


def already_enrolled(
    settings: Settings, model: TrainedModel, vectors: np.ndarray, name: str
) -> str | None:
    """The display name of another enrolled contributor these crops match (the same face
    under a different name), if any."""
    found = enrolled_gallery(settings).match(
        l2_normalize(vectors.mean(axis=0)), model.info.backbone_key
    )
    if found is None or found.name == name or found.score < model.info.threshold:
        return None
    return found.name


_GALLERIES: OrderedDict[str, EnrolledGallery] = OrderedDict()
_GALLERIES_LOCK = threading.Lock()
GALLERIES_KEPT = 2  # a worker serves one service; tests make many


def enrolled_gallery(settings: Settings) -> EnrolledGallery:
    """This process's gallery of enrolled contributors for ``settings``, kept between jobs:
    it follows the database incrementally, so only the first job reads every embedding (or
    the index's shared snapshot), not each one."""
    from lookalike.db import make_engine
    from lookalike.enrolled import EnrolledGallery  # it reads this module's rows

    key = settings.model_dump_json()
    with _GALLERIES_LOCK:
        gallery = _GALLERIES.get(key)
        if gallery is None:
            engine = make_engine(settings.effective_database_url)
            gallery = EnrolledGallery(
                engine,
                settings.top_k_per_class,
                settings.enrolled_index_min_size,
                ObjectStore(settings),
            )
            _GALLERIES[key] = gallery
            while len(_GALLERIES) > GALLERIES_KEPT:
                _, old = _GALLERIES.popitem(last=False)
                old.engine.dispose()
        _GALLERIES.move_to_end(key)
        return gallery


def _expected_frames(row: Contribution, settings: Settings) -> int:
    if row.media == "video":
        return int(settings.video_max_seconds * settings.video_sample_fps) // 2 or 1
    return len(row.sources)


def _refuse(
    settings: Settings,
    engine: Engine,
    store: ObjectStore,
    contribution_id: str,
    error: LookalikeError,
) -> None:
    """Refused: the reason stays (for the status page), nothing of the person does."""
    with Session(engine) as session:
        row = session.get(Contribution, contribution_id)
        sources = list(row.sources) if row is not None else []
    for key in sources:
        store.delete(key)
    _update(
        engine,
        contribution_id,
        status=REFUSED,
        progress=1.0,
        reason_code=error.code,
        reason=error.message,
        sources=[],
    )


def delete_contribution(session: Session, store: ObjectStore, row: Contribution) -> int:
    """Every copy of a contribution: its sources and crops in the object store, then its
    row (with the embeddings). Returns the number of objects removed."""
    removed = 0
    prefix = object_prefix(row.id)
    keys = list(store.iter_keys(prefix))
    if store.settings.storage_url:  # crops published as a model's reference photos go too
        for key in (k for k in keys if "/face-" in k):
            sha = hashlib.sha256(store.get(key)).hexdigest()
            removed += store.delete(image_key(sha, key.rpartition(".")[2]))
    for key in keys:
        removed += store.delete(key)
    store.remove_empty(prefix)  # not even the folder named after it stays
    session.delete(row)
    return removed


def crop_key(contribution_id: str, crop: int) -> str:
    return f"{object_prefix(contribution_id)}face-{crop:02d}.jpg"
