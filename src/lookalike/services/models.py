"""The model registry as the API and the CLI show and change it: the public view of a
version and its history, promote, roll back, queue a retrain."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lookalike.db import ModelEvent, ModelVersion
from lookalike.kinds import Trigger
from lookalike.registry import Registry

if TYPE_CHECKING:
    from lookalike.jobs import Jobs, QueuedJob

log = logging.getLogger("lookalike.services")


@dataclass(frozen=True)
class ChampionMove:
    champion: str
    previous: str | None


def version_view(row: ModelVersion, alias: str | None, *, show_authors: bool) -> dict[str, Any]:
    """One version as the API and ``lookalike models`` show it (JSON-ready). Who made it
    only with ``show_authors`` (admins, the CLI): it names admins and their tokens."""
    return {
        "version": row.version,
        "alias": alias,
        "created_at": row.created_at,
        "created_by": row.created_by if show_authors else None,
        "backbone": row.backbone,
        "head": row.head,
        "labels": list(row.labels),
        "classes": len(row.labels),
        "dataset_revision": row.dataset_revision,
        "test_version": row.test_version,
        "metrics": row.metrics,
        "decision": row.decision,
    }


def event_view(event: ModelEvent, *, show_authors: bool) -> dict[str, Any]:
    """One history entry (register, decision, promote, rollback); the actor only with
    ``show_authors``."""
    return {
        "at": event.at,
        "kind": event.kind,
        "version": event.version,
        "previous": event.previous,
        "promoted": event.promoted,
        "reason": event.reason,
        "actor": event.actor if show_authors else None,
        "figures": event.figures,
    }


def alias_of(version: str, aliases: dict[str, str]) -> str | None:
    return next((a for a, v in aliases.items() if v == version), None)


def promote(registry: Registry, version: str, *, reason: str, actor: str) -> ChampionMove:
    """Make ``version`` the champion by hand (its artifact checked first). Serving
    processes follow between their requests."""
    previous = registry.promote(version, reason=reason, actor=actor)
    return ChampionMove(version, previous)


def rollback(registry: Registry, *, reason: str, actor: str, to: str | None) -> ChampionMove:
    """Back to the previous champion (or to ``to``)."""
    old, new = registry.rollback(reason=reason, actor=actor, to=to)
    return ChampionMove(new, old)


def queue_retrain(jobs: Jobs, trigger: Trigger, actor: str) -> QueuedJob:
    """Queue a retrain, or join the one already queued or running."""
    return jobs.enqueue_retrain(trigger, actor)


def retrain_after_deletion(jobs: Jobs, actor: str) -> None:
    """Queue the retrain whose challenger replaces a champion trained on personal data just
    deleted. Never raises: the data is gone either way, and while the queue is down the
    champion keeps the deleted classes hidden (``Predictor``) until the next schedule."""
    try:
        jobs.enqueue_retrain(Trigger.DELETION, actor)
    except Exception:
        log.exception("could not queue the retrain after a deletion")
