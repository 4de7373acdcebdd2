"""The model registry: every model version, the ``champion`` and ``challenger`` aliases, and
the history of every registration, gate decision, promotion and rollback.

The registry lives in the database (tables ``model_versions``, ``model_aliases``,
``model_events``); artifacts live on disk under the data dir and a row is written only once
its artifact is complete (with a remote object store, ``storage_url``: once it is also
published there, where the other machines fetch it from; ``artifacts.publish_artifact``).
Every change is one transaction, so a process killed at any point leaves the aliases and
the history consistent: the champion is whatever the last committed transaction made it.
Serving processes ask :meth:`Registry.champion` between requests (one indexed read) and swap
models when it moves, which makes promotion and rollback the same mechanism.

Two kinds of models share it: ``lookalike`` (the face/image models, ``models/mNNNN``) and
``names`` (the name generator).

Building a ``Registry`` and reading from it write nothing. A process that opens the database
itself (a CLI command, a worker, a script) uses :meth:`Registry.open`, which also runs
:meth:`Registry.prepare`: the migrations, and the adoption of model directories trained
before the registry existed. The web app prepares its registry once at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lookalike.artifacts import (
    MANIFEST,
    VERSION_PATTERN,
    ModelInfo,
    artifact_name,
    fetch_artifact,
    list_versions,
    models_dir,
    publish_artifact,
    remote_versions,
    remove_remote,
)
from lookalike.config import Settings
from lookalike.data.store import CONTRIBUTION, VISITOR, DatasetStore
from lookalike.datadir import DataDir
from lookalike.db import (
    Contribution,
    ModelAlias,
    ModelEvent,
    ModelVersion,
    PredictionRecord,
    init_db,
    make_engine,
    session_factory,
    utcnow,
)
from lookalike.errors import InvalidInput, LookalikeError, ModelUnavailable, NotFound
from lookalike.kinds import CHAMPION_CHANGES, Alias, EventKind, ModelKind
from lookalike.storage import remote_store

LOOKALIKE = ModelKind.FACES
NAMES = ModelKind.NAMES
CHAMPION = Alias.CHAMPION
CHALLENGER = Alias.CHALLENGER


def verify_artifact(home: Path | Settings, artifact: str, digest: str) -> None:
    """Refuse an artifact that is missing or damaged: every file listed in its
    ``model.json`` must match its recorded SHA-256, and ``digest`` must be one of them.
    ``home``: a data dir, or the settings, when an artifact the data dir lacks is fetched
    from the remote object store first (checked there too)."""
    try:
        if isinstance(home, Settings):
            DataDir(home.home).artifact(artifact)  # ValueError before anything is fetched
            fetch_artifact(home, artifact)
            home = Path(home.home)
        path = DataDir(home).artifact(artifact)  # ValueError when it leaves the data dir
        files = json.loads((path / MANIFEST).read_text())["files"]
        if digest not in files.values():
            raise ValueError("the registered digest is not among the artifact's files")
        for name, expected in files.items():
            if hashlib.sha256((path / name).read_bytes()).hexdigest() != expected:
                raise ValueError(f"{name} does not match its recorded SHA-256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelUnavailable(
            f"The artifact {artifact} is missing or damaged ({exc}); it cannot serve.",
            code="model.corrupt",
            details={"artifact": artifact},
        ) from exc


def _personal_what(source: str) -> str:
    return "a visitor's photo" if source.startswith(VISITOR) else "a contributor's face crops"


class Registry:
    """Read and change the registry. ``engine``: share the caller's (the web app's);
    without one, an engine of its own is made on first use. Nothing is written until a
    change is asked for: :meth:`open` (or :meth:`prepare`) readies the database."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.home = Path(settings.home)
        self._own_engine = engine is None
        self._engine = engine
        self._sessions = session_factory(engine) if engine is not None else None
        self._engine_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, engine: Engine | None = None) -> Registry:
        """A registry on a ready database: for a process that opens the database itself
        (works on a fresh data dir: see :meth:`prepare`)."""
        registry = cls(settings, engine)
        try:
            return registry.prepare()
        except BaseException:
            registry.close()
            raise

    def prepare(self) -> Registry:
        """Ready the database and the registry (idempotent, safe in several processes at
        once): run the migrations (a database already at the newest schema is only read),
        then adopt the model directories trained before the registry existed."""
        self.migrate()
        self.adopt_existing()
        return self

    def migrate(self) -> None:
        """Create or upgrade the database's tables (the first half of :meth:`prepare`)."""
        init_db(self.engine.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    self._engine = make_engine(self.settings.effective_database_url)
        return self._engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._sessions = session_factory(self.engine)
        return self._sessions

    def close(self) -> None:
        if self._own_engine and self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def champion(self, kind: str = LOOKALIKE) -> str | None:
        """The version answering requests (None before the first model)."""
        return self.alias(CHAMPION, kind)

    def challenger(self, kind: str = LOOKALIKE) -> str | None:
        return self.alias(CHALLENGER, kind)

    def alias(self, alias: str, kind: str = LOOKALIKE) -> str | None:
        with self.engine.connect() as conn:
            version: str | None = conn.execute(
                select(ModelAlias.version).where(ModelAlias.kind == kind, ModelAlias.alias == alias)
            ).scalar()
            return version

    def get(self, version: str) -> ModelVersion:
        with self.sessions() as session:
            row = session.get(ModelVersion, version)
        if row is None:
            raise NotFound(
                f"Model version {version!r} is not in the registry; `lookalike models list`"
                " shows the known ones.",
                code="model.not_found",
                details={"version": version},
            )
        return row

    def versions(self, kind: str = LOOKALIKE) -> list[ModelVersion]:
        """Every registered version of ``kind``, newest first."""
        with self.sessions() as session:
            rows = session.scalars(
                select(ModelVersion)
                .where(ModelVersion.kind == kind)
                .order_by(ModelVersion.created_at.desc(), ModelVersion.version.desc())
            ).all()
        return list(rows)

    def events(
        self,
        model_kind: str = LOOKALIKE,  # a ModelKind (rows read back hold plain text)
        version: str | None = None,
        limit: int | None = 500,
        event_kinds: Sequence[str] = (),
    ) -> list[ModelEvent]:
        """The history of ``model_kind``'s models, newest first (``version``: one model's;
        ``event_kinds``: only these)."""
        query = select(ModelEvent).where(ModelEvent.model_kind == model_kind)
        if version is not None:
            query = query.where(ModelEvent.version == version)
        if event_kinds:
            query = query.where(ModelEvent.kind.in_(event_kinds))
        with self.sessions() as session:
            rows = session.scalars(
                query.order_by(ModelEvent.at.desc(), ModelEvent.id.desc()).limit(limit)
            ).all()
        return list(rows)

    def aliases(self, kind: str = LOOKALIKE) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ModelAlias.alias, ModelAlias.version).where(ModelAlias.kind == kind)
            ).all()
        return {alias: version for alias, version in rows}

    # -- changing ----------------------------------------------------------------------

    def register(
        self,
        *,
        kind: str,
        version: str,
        artifact: str,
        digest: str,
        created_by: str,
        backbone: str | None = None,
        head: str | None = None,
        labels: Sequence[str] = (),
        dataset_revision: int | None = None,
        test_version: int | None = None,
        metrics: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        challenger: bool = False,
    ) -> ModelVersion:
        """Record a complete artifact as a new version (``challenger``: also point the
        challenger alias at it)."""
        if kind not in set(ModelKind):
            kinds = ", ".join(ModelKind)
            raise InvalidInput(f"Unknown model kind {kind!r}; expected one of {kinds}.")
        verify_artifact(self.settings, artifact, digest)
        if self.settings.storage_url:
            with self.sessions() as session:
                if session.get(ModelVersion, version) is not None:  # never overwrite its files
                    raise _exists(version)
            self.publish(kind, artifact)  # other machines fetch it from there
        row = ModelVersion(
            version=version,
            kind=kind,
            created_at=created_at or utcnow(),
            created_by=created_by,
            artifact=artifact,
            digest=digest,
            backbone=backbone,
            head=head,
            labels=list(labels),
            dataset_revision=dataset_revision,
            test_version=test_version,
            metrics=metrics or {},
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
                session.flush()
                session.add(
                    ModelEvent(
                        kind=EventKind.REGISTER,
                        model_kind=kind,
                        version=version,
                        reason="registered",  # who: in actor (shown to admins only)
                        figures=_headline(metrics or {}),
                        actor=created_by,
                    )
                )
                if challenger:
                    _set_alias(session, kind, CHALLENGER, version)
        except IntegrityError as exc:
            raise _exists(version) from exc
        return row

    def publish(self, kind: str, artifact: str) -> None:
        """Copy a version to the remote object store: its artifact, and for a face/image
        model the dataset photos it shows as references (another machine's data dir lacks
        them). Nothing without a remote store; what the store already holds is kept."""
        if not self.settings.storage_url:
            return
        publish_artifact(self.settings, artifact)
        if kind == LOOKALIKE:
            photos = _reference_photos(DataDir(self.home).artifact(artifact))
            DatasetStore(self.settings).publish_blobs(photos)

    def publish_all(self) -> list[str]:
        """Publish every registered version the data dir holds (after a restore into a
        service with a remote store); returns the versions published."""
        if not self.settings.storage_url:
            return []
        published = []
        for row in self.versions(LOOKALIKE) + self.versions(NAMES):
            if (DataDir(self.home).artifact(row.artifact) / MANIFEST).is_file():
                self.publish(row.kind, row.artifact)
                published.append(row.version)
        return published

    def register_model(
        self, info: ModelInfo, created_by: str, *, challenger: bool = True
    ) -> ModelVersion:
        """Register a saved face/image model (``models/<version>``)."""
        return self.register(
            kind=LOOKALIKE,
            version=info.version,
            artifact=f"models/{info.version}",
            digest=info.files["arrays.npz"],
            created_by=created_by,
            backbone=info.backbone_key,
            head=info.head,
            labels=info.labels,
            dataset_revision=info.dataset_revision,
            test_version=info.test_version,
            metrics=_headline(info.metrics),
            created_at=datetime.fromisoformat(info.created_at) if info.created_at else None,
            challenger=challenger,
        )

    def record_decision(
        self,
        version: str,
        *,
        promoted: bool,
        reason: str,
        figures: dict[str, Any],
        actor: str,
    ) -> None:
        """The promotion gate's verdict on ``version``, and the promotion itself when it
        won: one transaction."""
        row = self.get(version)
        if promoted:
            verify_artifact(self.settings, row.artifact, row.digest)
        with self.sessions.begin() as session:
            previous = _alias(session, row.kind, CHAMPION)
            db_row = session.get(ModelVersion, version)
            assert db_row is not None
            db_row.decision = "promoted" if promoted else "refused"
            session.add(
                ModelEvent(
                    kind=EventKind.DECISION,
                    model_kind=row.kind,
                    version=version,
                    previous=previous,
                    promoted=promoted,
                    reason=reason,
                    figures=figures,
                    actor=actor,
                )
            )
            if promoted:
                self._promote_in(
                    session, row.kind, version, previous, reason, actor, EventKind.PROMOTE
                )

    def promote(self, version: str, *, reason: str, actor: str) -> str | None:
        """Make ``version`` the champion of its kind by hand; returns the previous one."""
        row = self.get(version)
        verify_artifact(self.settings, row.artifact, row.digest)
        self.refuse_deleted_data(row)
        with self.sessions.begin() as session:
            previous = _alias(session, row.kind, CHAMPION)
            if previous == version:
                raise InvalidInput(
                    f"{version} is already the champion.", code="model.already_champion"
                )
            self._promote_in(session, row.kind, version, previous, reason, actor, EventKind.PROMOTE)
        return previous

    def rollback(
        self, *, reason: str, actor: str, kind: str = LOOKALIKE, to: str | None = None
    ) -> tuple[str, str]:
        """Go back to the champion before the current one (or to ``to``); returns
        (from, to). Versions that were rolled back away from are skipped."""
        current = self.champion(kind)
        if current is None:
            raise InvalidInput(
                "There is no champion to roll back from.", code="model.none", status=409
            )
        target = to if to is not None else self._rollback_target(kind, current)
        if target is None:
            raise InvalidInput(
                f"{current} has no earlier champion to roll back to; promote another version"
                " instead (the models page, or lookalike models promote VERSION).",
                code="model.no_previous",
                status=409,  # the request is fine; the history has nothing to go back to
            )
        row = self.get(target)
        if row.kind != kind or target == current:
            raise InvalidInput(
                f"Cannot roll back from {current} to {target}.",
                code="model.bad_rollback",
                status=409,
                details={"from": current, "to": target},
            )
        verify_artifact(self.settings, row.artifact, row.digest)
        self.refuse_deleted_data(row)
        with self.sessions.begin() as session:
            previous = _alias(session, kind, CHAMPION)
            self._promote_in(session, kind, target, previous, reason, actor, EventKind.ROLLBACK)
        return current, target

    def _personal_sources(self, row: ModelVersion) -> list[str]:
        """The personal photos ``row``'s model lists in its ``model.json`` (none for a name
        model; none readable in a damaged artifact: ``verify_artifact`` speaks for it)."""
        if row.kind != LOOKALIKE:
            return []
        try:
            path = self.settings.data_dir.artifact(row.artifact) / MANIFEST
            if path.exists() or (store := remote_store(self.settings)) is None:
                info = json.loads(path.read_text())
            else:  # trained on another machine: its manifest, not the whole artifact
                info = json.loads(store.get(f"{row.artifact}/{MANIFEST}"))
            sources = info.get("personal_sources", info.get("visitor_sources", []))
            return [str(s) for s in sources]
        except (OSError, ValueError, AttributeError, TypeError, LookalikeError):
            return []

    def deleted_sources(self, row: ModelVersion) -> list[str]:
        """The personal photos ``row``'s model was trained on that their owners have deleted
        since (its ``model.json`` lists them): a visitor's kept photo has a ``storage_key``
        until deleted; a contributor's row exists, enrolled, until deleted."""
        sources = self._personal_sources(row)
        if not sources:
            return []
        photos = {s.removeprefix(VISITOR): s for s in sources if s.startswith(VISITOR)}
        people = {s.removeprefix(CONTRIBUTION): s for s in sources if s.startswith(CONTRIBUTION)}
        with self.sessions() as session:
            kept = set(
                session.scalars(
                    select(PredictionRecord.id).where(
                        PredictionRecord.id.in_(list(photos)),
                        PredictionRecord.storage_key.is_not(None),
                    )
                ).all()
            )
            kept |= set(
                session.scalars(
                    select(Contribution.id).where(
                        Contribution.id.in_(list(people)), Contribution.status == "enrolled"
                    )
                ).all()
            )
        everything = photos | people
        return sorted(source for key, source in everything.items() if key not in kept)

    def mark_trained_on(self, sources: Collection[str], actor: str) -> set[str]:
        """Record on every registered version trained on one of ``sources`` (personal data
        just deleted) that it may not serve any longer, one event per version and source;
        returns those versions. Each version's ``model.json`` is read once, whatever the
        number of sources. The refusal itself is ``refuse_deleted_data``'s."""
        with self.sessions() as session:
            rows = session.scalars(select(ModelVersion).where(ModelVersion.kind == LOOKALIKE)).all()
        trained = {row.version: set(self._personal_sources(row)) for row in rows}
        events = [
            ModelEvent(
                kind=EventKind.DATA_DELETED,
                model_kind=LOOKALIKE,
                version=version,
                reason=f"Trained on {_personal_what(source)}, deleted by their owner: it may"
                " not serve.",
                actor=actor,
            )
            for source in sorted(sources)
            for version, used in trained.items()
            if source in used
        ]
        if events:
            with self.sessions.begin() as session:
                session.add_all(events)
        return {event.version for event in events}

    def refuse_deleted_data(self, row: ModelVersion) -> None:
        """A version trained on photos their owners deleted never serves again."""
        deleted = self.deleted_sources(row)
        if deleted:
            raise InvalidInput(
                f"{row.version} was trained on personal data its owners have deleted since"
                f" ({len(deleted)} visitor photo(s) or contributor(s)); it cannot serve."
                " Retrain (lookalike retrain) and promote the new version.",
                code="model.trained_on_deleted_data",
                status=409,
                details={"version": row.version, "deleted_photos": len(deleted)},
            )

    def _rollback_target(self, kind: str, current: str) -> str | None:
        changes = self.events(kind, limit=None, event_kinds=CHAMPION_CHANGES)
        history = list(reversed(changes))  # oldest first
        last_state: dict[str, str] = {}  # version -> "promoted" | "rolled_back"
        order: list[str] = []
        for event in history:
            if event.kind in CHAMPION_CHANGES:
                last_state[event.version] = "promoted"
                order.append(event.version)
            if event.kind == EventKind.ROLLBACK and event.previous:
                last_state[event.previous] = "rolled_back"
        for version in reversed(order):
            if version != current and last_state.get(version) == "promoted":
                return version
        return None

    @staticmethod
    def _promote_in(
        session: Session,
        kind: str,
        version: str,
        previous: str | None,
        reason: str,
        actor: str,
        event: str,
    ) -> None:
        _set_alias(session, kind, CHAMPION, version)
        if _alias(session, kind, CHALLENGER) == version:
            session.execute(
                delete(ModelAlias).where(ModelAlias.kind == kind, ModelAlias.alias == CHALLENGER)
            )
        session.add(
            ModelEvent(
                kind=event,
                model_kind=kind,
                version=version,
                previous=previous,
                promoted=True,
                reason=reason,
                actor=actor,
            )
        )

    # -- housekeeping ------------------------------------------------------------------

    def _knows_models(self) -> bool:
        with self.engine.connect() as conn:
            known = conn.execute(
                select(func.count()).select_from(ModelVersion).where(ModelVersion.kind == LOOKALIKE)
            ).scalar()
        return bool(known)

    def adopt_existing(self) -> None:
        """Register model directories trained before the registry existed: all of them, and
        the one ``models/current`` named becomes the champion. Only while the registry knows
        no face/image model yet (a database that never saw this data dir's models); a
        cheap read otherwise."""
        if self._knows_models() or not list_versions(self.home):
            return
        pointer = models_dir(self.home) / "current"
        current = pointer.read_text().strip() if pointer.exists() else None
        for version in list_versions(self.home):
            try:
                raw = (models_dir(self.home) / version / "model.json").read_text()
                info = ModelInfo(**json.loads(raw))
                self.register_model(info, "adopted from an earlier version", challenger=False)
            except (OSError, ValueError, TypeError, KeyError, ModelUnavailable, InvalidInput):
                continue  # damaged or registered meanwhile by another process
        if current:
            with contextlib.suppress(NotFound, InvalidInput, ModelUnavailable):
                self.promote(current, reason="champion before the registry existed", actor="adopt")

    def orphan_artifacts(self) -> list[Path]:
        """Model directories no registry row points at: what a killed training left.

        While the registry knows no model at all, the version directories are models from
        before the registry (waiting for :meth:`adopt_existing`), never orphans."""
        root = models_dir(self.home)
        if not root.exists():
            return []
        registered = self._registered_models()
        return sorted(
            p
            for p in root.iterdir()
            if p.is_dir()
            and (
                p.name.startswith(".building-")
                or (VERSION_PATTERN.fullmatch(p.name) and registered and p.name not in registered)
            )
        )

    def remote_orphans(self) -> list[str]:
        """Model versions the remote object store holds files of that no registry row
        names (a retrain killed between publishing and registering); as
        :meth:`orphan_artifacts`, none while the registry knows no model."""
        found = remote_versions(self.settings)
        if not found:
            return []
        registered = self._registered_models()
        return sorted(v for v in found if registered and v not in registered)

    def remove_orphans(self) -> list[str]:
        """Delete orphan artifacts, in the data dir and in the remote object store (call
        only while holding the training lock: across machines, the Redis-shared one)."""
        removed = set()
        for path in self.orphan_artifacts():
            shutil.rmtree(path, ignore_errors=True)
            removed.add(path.name)
        orphans = [artifact_name(v) for v in self.remote_orphans()]
        removed |= {
            artifact.rpartition("/")[2] for artifact in remove_remote(self.settings, orphans)
        }
        return sorted(removed)

    def _registered_models(self) -> set[str]:
        with self.engine.connect() as conn:
            query = select(ModelVersion.version).where(ModelVersion.kind == LOOKALIKE)
            return set(conn.execute(query).scalars())

    def reserved_versions(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(ModelVersion.version)).scalars())


def _reference_photos(path: Path) -> list[tuple[str, str]]:
    """The (sha256, ext) of the dataset photos the face/image model saved in ``path`` shows."""
    with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
        hashes = arrays["gallery_hashes"].astype(str).tolist()
        exts = arrays["gallery_exts"].astype(str).tolist()
    return list(zip(hashes, exts, strict=True))


def _exists(version: str) -> InvalidInput:
    return InvalidInput(
        f"Model version {version!r} is already registered.",
        code="model.exists",
        details={"version": version},
    )


def _alias(session: Session, kind: str, alias: str) -> str | None:
    # FOR UPDATE (PostgreSQL): two promotions at once see each other's champion, in turn.
    row = session.get(ModelAlias, (kind, alias), with_for_update=True)
    return row.version if row is not None else None


def _set_alias(session: Session, kind: str, alias: str, version: str) -> None:
    row = session.get(ModelAlias, (kind, alias))
    if row is None:
        session.add(ModelAlias(kind=kind, alias=alias, version=version, updated_at=utcnow()))
    else:
        row.version = version
        row.updated_at = utcnow()
    session.flush()


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures worth keeping in the registry row (not the confusion matrix)."""
    keep = (
        "n",
        "accuracy",
        "macro_f1",
        "no_strong_match_rate",
        "val_scores",
        "fit_seconds",
        "reference",
    )
    out = {k: metrics[k] for k in keep if k in metrics}
    out.update({k: v for k, v in metrics.items() if k not in out and isinstance(v, int | float)})
    return out
