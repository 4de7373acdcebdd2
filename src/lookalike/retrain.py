"""Safe retraining: train a challenger, put it beside the champion on the same frozen test
set, and promote it only when it wins (``lookalike.training.compare``).

One retrain at a time (an exclusive lock in the data dir, released by the kernel even when
the process is killed; with Redis, ``redis_url``, a lock in Redis shared by every machine,
renewed while the retrain runs and lapsing soon after a killed holder). Each step leaves
something whole behind, so a retrain killed at any point (``kill -9``) never hurts the
champion or the registry:

1. leftovers of a killed run are removed: model directories no registry row names;
   visitors' consented photos with a confirmed label join the dataset, withdrawn ones leave
   (``lookalike.data.visitors``); so do enrolled contributors, as classes of their own
   (``lookalike.data.contributors``);
2. the challenger is trained and saved (a directory renamed into place: whole or absent);
3. it is registered and becomes the ``challenger`` (one transaction);
4. the gate decides; decision, figures and promotion are one transaction.

Serving processes follow the champion alias (``Predictor``), so a promotion is picked up
without a restart. Embeddings are cached by image hash, so a retrain embeds only new images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lookalike.artifacts import load_model
from lookalike.config import Settings
from lookalike.data.apply_decisions import apply_review_decisions
from lookalike.data.contributors import gather_contributors
from lookalike.data.personal import GatherReport
from lookalike.data.visitors import gather_visitor_photos
from lookalike.datadir import DataDir
from lookalike.errors import LookalikeError
from lookalike.fsutil import lock_is_held
from lookalike.kinds import Trigger
from lookalike.redis_lock import lock_held, machines_lock
from lookalike.registry import Registry
from lookalike.training.compare import GateDecision, compare_models
from lookalike.training.train import Progress, TrainReport, train

log = logging.getLogger("lookalike.retrain")
LOCK_KEY = "lookalike:retrain:lock"  # in Redis: the holder's description, while held


class RetrainRunning(LookalikeError):
    status = 409
    code = "retrain.running"


@dataclass
class RetrainResult:
    visitors: GatherReport  # visitor photos added / forgotten before training
    contributors: GatherReport  # contributors' face crops added / forgotten
    report: TrainReport
    decision: GateDecision
    champion: str  # after the decision
    previous: str | None  # champion before it
    seconds: float

    @property
    def version(self) -> str:
        return self.report.version

    @property
    def promoted(self) -> bool:
        return self.decision.promoted


def _refused(holder: str) -> RetrainRunning:
    return RetrainRunning(
        f"A retrain is already running ({holder}); wait for it to finish.",
        details={"holder": holder},
    )


class RetrainLockUnavailable(LookalikeError):
    """Redis, which holds the retrain lock shared by every machine, cannot be reached."""

    status = 503
    code = "retrain.lock_unavailable"


@contextmanager
def training_lock(where: Path | Settings) -> Iterator[None]:
    """Held for a whole retrain; a second one is refused at once (not queued). ``where``:
    a data dir (its lock file), or the settings: in Redis when ``redis_url`` is set, so
    that machines sharing the database never retrain at once."""
    url = where.redis_url if isinstance(where, Settings) else None
    home = where.home if isinstance(where, Settings) else where
    path = DataDir(home).retrain_lock
    with machines_lock(url, LOCK_KEY, path, refused=_refused, unavailable=_lock_unavailable):
        yield


def _lock_unavailable(exc: Exception) -> RetrainLockUnavailable:
    return RetrainLockUnavailable(
        "Redis, which holds the retrain lock, cannot be reached; nothing was trained. Try"
        " again in a moment.",
        details={"reason": type(exc).__name__},
    )


def retrain_running(where: Path | Settings) -> bool:
    """Whether a retrain holds the lock now (in any process; with Redis, on any machine)."""
    if isinstance(where, Settings) and where.redis_url:
        return lock_held(where.redis_url, LOCK_KEY)
    home = where.home if isinstance(where, Settings) else where
    return lock_is_held(DataDir(home).retrain_lock)


def retrain(
    settings: Settings,
    *,
    trigger: Trigger = Trigger.MANUAL,
    actor: str = "cli",
    head: str = "auto",
    backbone_name: str | None = None,
    strict: bool = True,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> RetrainResult:
    """Train a challenger from the current dataset and let the gate decide.

    The first model becomes the champion directly. ``trigger`` says what started it
    (manual, schedule, new-images, api, deletion) and is recorded with ``actor`` as the
    version's ``created_by``. ``strict``: refuse to train while a class has fewer than
    ``min_images_per_class`` images (``lookalike train`` leaves such classes out instead)."""
    start = time.perf_counter()
    own = registry is None
    reg = registry or Registry.open(settings)
    try:
        with training_lock(settings):
            reg.adopt_existing()  # models from before the registry are never taken for orphans
            reg.remove_orphans()
            visitors = gather_visitor_photos(settings, reg.engine)
            apply_review_decisions(settings, reg.engine)  # admins' reviews; no undo after
            contributors = gather_contributors(settings, reg.engine)
            report = train(
                settings,
                head=head,
                backbone_name=backbone_name,
                progress=progress,
                reserved=reg.reserved_versions(),
                strict=strict,
            )
            created_by = f"{actor} ({trigger})"
            info = load_model(settings, report.version).info
            reg.register_model(info, created_by)
            if progress:
                progress("compare", 0, 1)
            champion_version = reg.champion()
            decision = challenge(settings, reg, report.version, created_by)
            if progress:
                progress("compare", 1, 1)
            refresh_checks(settings, info.backbone)
            return RetrainResult(
                visitors=visitors,
                contributors=contributors,
                report=report,
                decision=decision,
                champion=report.version if decision.promoted else str(champion_version),
                previous=champion_version,
                seconds=round(time.perf_counter() - start, 3),
            )
    finally:
        if own:
            reg.close()


def refresh_checks(settings: Settings, backbone: str) -> None:
    """The dataset checks after a retrain (their counts show on the admin dashboard). Never
    fails the retrain: the model is registered and decided by now."""
    from lookalike.data.review import check_and_report

    try:
        check_and_report(settings, backbone)
    except Exception:
        log.exception("the dataset checks failed after the retrain")


def challenge(settings: Settings, registry: Registry, version: str, actor: str) -> GateDecision:
    """Put registered ``version`` through the gate against the champion and record the
    decision (and the promotion when it wins). The first model wins by default."""
    challenger = load_model(settings, version)
    champion_version = registry.champion()
    if champion_version is None:
        decision = GateDecision(True, "First model: there is no champion to compare with.", {})
    else:
        try:
            champion = load_model(settings, champion_version)  # maybe from the object store
        except LookalikeError as exc:
            decision = GateDecision(
                True,
                f"The champion {champion_version} cannot be loaded ({exc.message}); the"
                " challenger replaces it.",
                {"champion": champion_version, "champion_error": exc.code},
            )
        else:
            decision = compare_models(settings, champion, challenger)
    registry.record_decision(
        version,
        promoted=decision.promoted,
        reason=decision.reason,
        figures=decision.figures,
        actor=actor,
    )
    return decision
