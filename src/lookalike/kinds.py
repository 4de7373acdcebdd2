"""The registry's and the job queue's vocabularies, as types: what kind of model, what
happened to it, which alias, what started a retrain. ``StrEnum``: each member is its
string, so the database and JSON hold the same text as before."""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    """The kinds of model the registry keeps, each with its own champion."""

    FACES = "lookalike"  # the face/image models answering predictions (models/mNNNN)
    NAMES = "names"  # the name generator (names/nNNNN)


class EventKind(StrEnum):
    """One entry of a model's history."""

    REGISTER = "register"  # a complete artifact was registered
    DECISION = "decision"  # the gate compared it with the champion (figures kept)
    PROMOTE = "promote"  # it became the champion (by the gate or by hand)
    ROLLBACK = "rollback"  # the champion went back to it
    DATA_DELETED = "data-deleted"  # personal data it was trained on was deleted: never serves


CHAMPION_CHANGES = (EventKind.PROMOTE, EventKind.ROLLBACK)


class Alias(StrEnum):
    CHAMPION = "champion"  # answers requests
    CHALLENGER = "challenger"  # the newest model the gate has not promoted


class Trigger(StrEnum):
    """What started a retrain (kept in the version's ``created_by``)."""

    MANUAL = "manual"  # lookalike train / retrain, the Python API, the demo
    API = "api"  # an admin's POST /api/models/retrain
    SCHEDULE = "schedule"  # the retrain_cron schedule
    NEW_IMAGES = "new-images"  # enough new images arrived
    DELETION = "deletion"  # personal data the champion was trained on was deleted
