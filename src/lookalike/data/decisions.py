"""The admins' review queue: what needs a person's eye, their decisions, and applying them.

The queue holds

* the dataset photos flagged by the latest ``lookalike check`` report (``data/review.py``:
  near-duplicates, outliers, photos closer to another class), and
* visitors' kept photos (consent only) to label: those with an "I look more like X" answer
  (at most ``review_feedback_max``) and a stable sample of low-confidence answers
  (``review_low_confidence_*``).

Items are grouped by kind and class, worst first. An admin decides (keep, relabel, delete,
"not a face"; ``label`` for a visitor's photo); a decision waits in ``review_decisions``
until the next retrain applies it (``apply_review_decisions`` in ``data/apply_decisions.py``,
called right after the visitors' photos are gathered) and can be undone until then. Nothing
is overwritten: an undo, or a newer decision on the same photo, stamps the older row
``undone_*``.

Applying: a relabel changes the record's label (a new class is allowed); delete and "not a
face" remove the record (one catalog write), then its blob, cached embeddings and split
entry; on a visitor's photo they erase the kept photo as its owner's deletion would. A
labelled visitor photo joins the dataset as ``visitor:<prediction id>`` (always training,
never shown to another visitor); since the visitors' gathering keeps only photos whose
owners confirmed a label, each retrain restores the labels admins gave. A decision that
would leave a class with photos but fewer than ``min_images_per_class`` (a retrain would
refuse that dataset) waits, with the reason in the report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from lookalike.config import Settings
from lookalike.data.store import DatasetStore, is_contribution
from lookalike.db.models import PredictionRecord, ReviewDecision, utcnow
from lookalike.errors import LookalikeError, NotFound

log = logging.getLogger("lookalike.review")

VISITOR_FEEDBACK = "visitor_feedback"
LOW_CONFIDENCE = "low_confidence"
# Photo flags of the dataset checks, most actionable first (class-wide flags such as
# class_imbalance ask for more photos, not for a decision on one: they stay in the report).
PHOTO_FLAGS = (
    "likely_mislabelled",
    "closer_to_another_class",
    "several_faces",
    "doubtful_face",
    "near_duplicate",
    "blurred",
    "too_dark",
    "too_small",
    "outlier",
)
KINDS = (*PHOTO_FLAGS, VISITOR_FEEDBACK, LOW_CONFIDENCE)
DATASET_ACTIONS = ("keep", "relabel", "delete", "not_a_face")
VISITOR_ACTIONS = ("keep", "label", "delete", "not_a_face")
REMOVING = ("delete", "not_a_face")
MAX_LABEL = 100  # characters, as the importers allow for a class name
_HEX = re.compile(r"[0-9a-f]+")


class ReviewError(LookalikeError):
    code = "review.invalid"
    status = 422


class ReviewConflict(LookalikeError):
    code = "review.conflict"
    status = 409


@dataclass
class QueueItem:
    id: str  # "<kind>:<sha256 or prediction id>"
    kind: str
    label: str | None  # the photo's class now (a visitor's photo: the model's answer)
    score: float  # higher: worse
    reason: str
    suggested_label: str | None = None
    sha256: str | None = None
    prediction_id: str | None = None
    source: str | None = None
    pending: ReviewDecision | None = None  # the decision waiting for the next retrain


@dataclass
class Queue:
    items: list[QueueItem]  # filtered, in group order
    total: int  # items before the filters
    kinds: dict[str, int]  # items per kind before the filters
    classes: list[str]  # the dataset's classes (to relabel into)
    report_at: datetime | None  # when the dataset check report was written


# --- the queue -----------------------------------------------------------------------------------


def target_of(row: ReviewDecision) -> str:
    return row.sha256 or row.prediction_id or ""


def _report(settings: Settings) -> tuple[list[dict[str, Any]], datetime | None]:
    """The photo flags of the latest dataset check, and when it was written."""
    path = settings.data_dir.dataset_check
    try:
        raw = json.loads(path.read_text("utf-8"))
        at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        flags = [f for f in raw["flags"] if isinstance(f, dict)]
    except FileNotFoundError:
        return [], None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("review queue: the dataset check report is unreadable (%s)", exc)
        return [], None
    return flags, at


def _sampled(prediction_id: str, rate: float) -> bool:
    """A stable draw: the same photo is in (or out of) the sample on every listing."""
    digest = hashlib.sha256(f"review:{prediction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _probability_of(row: PredictionRecord, label: str) -> float:
    for entry in row.probabilities or []:
        if entry.get("label") == label:
            return float(entry.get("probability") or 0.0)
    return 0.0


def _visitor_items(settings: Settings, session: Session) -> list[QueueItem]:
    applied = select(ReviewDecision.prediction_id).where(
        ReviewDecision.prediction_id.is_not(None),
        ReviewDecision.applied_at.is_not(None),
        ReviewDecision.undone_at.is_(None),
    )
    kept = and_(PredictionRecord.storage_key.is_not(None), PredictionRecord.id.not_in(applied))
    items: list[QueueItem] = []
    if settings.review_feedback_max:
        rows = session.scalars(
            select(PredictionRecord)
            .where(kept, PredictionRecord.feedback_label.is_not(None))
            .order_by(PredictionRecord.created_at.desc())
            .limit(settings.review_feedback_max)
        ).all()
        for row in rows:
            said = str(row.feedback_label)
            items.append(
                QueueItem(
                    id=f"{VISITOR_FEEDBACK}:{row.id}",
                    kind=VISITOR_FEEDBACK,
                    label=row.best_label,
                    score=round(1.0 - _probability_of(row, said), 4),
                    reason=f"the visitor says they look more like {said!r} than the answer"
                    f" {row.best_label!r}",
                    suggested_label=said,
                    prediction_id=row.id,
                )
            )
    rate, cap = settings.review_low_confidence_rate, settings.review_low_confidence_max
    if rate > 0 and cap:
        # Newest first; enough rows scanned to fill the cap at this sampling rate.
        scan = min(50_000, int(cap / rate) * 2 + 10)
        rows = session.scalars(
            select(PredictionRecord)
            .where(
                kept,
                PredictionRecord.feedback_label.is_(None),
                or_(PredictionRecord.feedback.is_(None), PredictionRecord.feedback != "like"),
                PredictionRecord.outcome != "no_face",
                PredictionRecord.probability < settings.review_low_confidence_below,
            )
            .order_by(PredictionRecord.created_at.desc())
            .limit(scan)
        ).all()
        for row in [r for r in rows if _sampled(r.id, rate)][:cap]:
            probability = float(row.probability or 0.0)
            items.append(
                QueueItem(
                    id=f"{LOW_CONFIDENCE}:{row.id}",
                    kind=LOW_CONFIDENCE,
                    label=row.best_label,
                    score=round(1.0 - probability, 4),
                    reason=f"a low-confidence answer: {row.best_label!r} at {probability:.0%};"
                    " label the photo to teach the model",
                    prediction_id=row.id,
                )
            )
    return items


def _all_items(settings: Settings, session: Session) -> tuple[list[QueueItem], Queue]:
    """Every item of the queue (unfiltered, in group order) and the queue's facts."""
    catalog = DatasetStore(settings).load()
    flags, report_at = _report(settings)
    live = session.scalars(
        select(ReviewDecision).where(ReviewDecision.undone_at.is_(None)).order_by(ReviewDecision.id)
    ).all()
    pending: dict[str, ReviewDecision] = {}
    kept_flags: set[tuple[str, str]] = set()  # (kind, sha256) an admin kept: never again
    changed_at: dict[str, datetime] = {}  # sha256 -> when a relabel or removal was applied
    for row in live:
        if row.applied_at is None:
            pending[target_of(row)] = row  # ordered by id: the newest wins
        elif row.sha256 and row.action == "keep":
            kept_flags.add((row.kind, row.sha256))
        elif row.sha256:
            changed_at[row.sha256] = row.applied_at
    items: list[QueueItem] = []
    seen: set[str] = set()
    for flag in flags:
        kind, sha = flag.get("kind"), flag.get("sha256")
        if kind not in PHOTO_FLAGS or not isinstance(sha, str) or f"{kind}:{sha}" in seen:
            continue
        record = catalog.images.get(sha)
        if record is None or (kind, sha) in kept_flags:
            continue
        if sha in changed_at and (report_at is None or changed_at[sha] >= report_at):
            continue  # the photo changed since this report flagged it
        seen.add(f"{kind}:{sha}")
        items.append(
            QueueItem(
                id=f"{kind}:{sha}",
                kind=str(kind),
                label=record.label,
                score=float(flag.get("score") or 0.0),
                reason=str(flag.get("reason") or ""),
                suggested_label=flag.get("suggested_label"),
                sha256=sha,
                source=record.source,
            )
        )
    items += _visitor_items(settings, session)
    for item in items:
        item.pending = pending.get(item.sha256 or item.prediction_id or "")
    # Groups by kind (in KINDS' order) and class, the group with the worst item first.
    worst: dict[tuple[str, str], float] = {}
    for item in items:
        key = (item.kind, item.label or "")
        worst[key] = max(worst.get(key, float("-inf")), item.score)
    items.sort(
        key=lambda i: (
            KINDS.index(i.kind),
            -worst[(i.kind, i.label or "")],
            i.label or "",
            -i.score,
            i.id,
        )
    )
    facts = Queue(
        items=items,
        total=len(items),
        kinds=dict(Counter(i.kind for i in items)),
        classes=sorted(catalog.counts()),
        report_at=report_at,
    )
    return items, facts


def review_queue(
    settings: Settings, session: Session, *, kind: str | None = None, label: str | None = None
) -> Queue:
    """The queue, optionally one kind and/or one class; each item with its pending decision."""
    if kind is not None and kind not in KINDS:
        raise ReviewError(
            f"Unknown kind {kind!r}; expected one of {', '.join(KINDS)}.",
            code="review.unknown_kind",
            details={"kind": kind[:64], "kinds": list(KINDS)},
        )
    items, queue = _all_items(settings, session)
    queue.items = [
        i for i in items if (kind is None or i.kind == kind) and (label is None or i.label == label)
    ]
    return queue


# --- deciding and undoing ------------------------------------------------------------------------


def clean_label(raw: str | None) -> str:
    """A class name as the dataset keeps it (NFC, single spaces), or ``ReviewError``."""
    label = " ".join(unicodedata.normalize("NFC", raw or "").split())
    if not label:
        raise ReviewError(
            "The new label is empty. Type a class name, e.g. an existing class such as 's3'"
            " or a new one.",
            code="review.bad_label",
        )
    if len(label) > MAX_LABEL or label.startswith(".") or not label.isprintable():
        raise ReviewError(
            f"A class name must be printable, not start with a dot and be at most {MAX_LABEL}"
            f" characters long; this one is {len(label)} characters.",
            code="review.bad_label",
            details={"length": len(label), "max_length": MAX_LABEL},
        )
    return label


@contextmanager
def _committed(session: Session) -> Iterator[None]:
    """Commit what the block wrote, or roll all of it back (the session may already be in a
    transaction: reading a committed row's attributes begins one)."""
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


def _unknown_item(item_id: str) -> NotFound:
    return NotFound(
        "No such item in the review queue: it may have been decided and applied by a"
        " retrain, or the dataset check report has changed. Reload the queue.",
        code="review.item_not_found",
        details={"item": item_id[:200]},
    )


def decide(
    settings: Settings,
    session: Session,
    item_id: str,
    action: str,
    actor: str,
    label: str | None = None,
) -> ReviewDecision:
    """Record an admin's decision on a queue item (replacing its pending one, if any)."""
    kind, _, target = item_id.partition(":")
    if kind not in KINDS or not _HEX.fullmatch(target) or len(target) > 64:
        raise _unknown_item(item_id)
    with _committed(session):
        items, _ = _all_items(settings, session)
        item = next((i for i in items if i.id == item_id), None)
        if item is None:
            raise _unknown_item(item_id)
        allowed = VISITOR_ACTIONS if item.prediction_id else DATASET_ACTIONS
        if action not in allowed:
            raise ReviewError(
                f"Action {action!r} does not apply to this item; expected one of"
                f" {', '.join(allowed)}.",
                code="review.bad_action",
                details={"action": action[:32], "allowed": list(allowed)},
            )
        if item.source and is_contribution(item.source) and action != "keep":
            raise ReviewError(
                "This photo is a face crop of someone who joined the gallery: it follows"
                " their contribution. Keep it here, or delete the contribution on the"
                " contributions page.",
                code="review.contribution_photo",
            )
        after: str | None = None
        if action in ("relabel", "label"):
            after = clean_label(label)
            if action == "relabel" and after == item.label:
                raise ReviewError(
                    f"The photo is already labelled {after!r}; pick another class, or keep it.",
                    code="review.same_label",
                )
        now = utcnow()
        on_target = (
            ReviewDecision.sha256 == item.sha256
            if item.sha256
            else ReviewDecision.prediction_id == item.prediction_id
        )
        session.execute(
            update(ReviewDecision)
            .where(on_target, ReviewDecision.applied_at.is_(None))
            .where(ReviewDecision.undone_at.is_(None))
            .values(undone_at=now, undone_by=actor)
        )
        row = ReviewDecision(
            kind=item.kind,
            sha256=item.sha256,
            prediction_id=item.prediction_id,
            action=action,
            label_before=item.label,
            label_after=after,
            score=item.score,
            actor=actor,
            decided_at=now,
        )
        session.add(row)
    session.refresh(row)  # loaded whatever the session's expire_on_commit
    return row


def undo(session: Session, decision_id: int, actor: str) -> ReviewDecision:
    """Withdraw a decision no retrain has used yet (the row stays, stamped undone)."""
    with _committed(session):
        row = session.get(ReviewDecision, decision_id)
        if row is None:
            raise NotFound(
                f"No review decision {decision_id}.",
                code="review.decision_not_found",
                details={"id": decision_id},
            )
        if row.undone_at is not None:
            raise ReviewConflict(
                f"Decision {decision_id} was already undone (by {row.undone_by}).",
                code="review.already_undone",
                details={"id": decision_id},
            )
        result = cast(
            CursorResult[Any],
            session.execute(
                update(ReviewDecision)
                .where(ReviewDecision.id == decision_id, ReviewDecision.applied_at.is_(None))
                .where(ReviewDecision.undone_at.is_(None))
                .values(undone_at=utcnow(), undone_by=actor)
            ),
        )
        if result.rowcount != 1:  # a retrain claimed it meanwhile
            raise ReviewConflict(
                f"Decision {decision_id} was already applied by a retrain and can no longer"
                " be undone; decide again on the photo to change it.",
                code="review.already_applied",
                details={"id": decision_id},
            )
    session.refresh(row)
    return row


def audit_trail(session: Session, *, limit: int = 100, offset: int = 0) -> list[ReviewDecision]:
    """Every decision, newest first (undone and applied ones too)."""
    return list(
        session.scalars(
            select(ReviewDecision).order_by(ReviewDecision.id.desc()).limit(limit).offset(offset)
        ).all()
    )
