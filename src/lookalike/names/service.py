"""The name generator as the service uses it: train + register + promotion gate (one
training at a time), and a lazily loaded, cached generator that follows the registry's
champion (``lookalike.follow``, as ``Predictor`` does).

Promotion gate for a newly trained version (recorded in the registry with its reason):

* no champion yet -> promoted;
* the champion was trained on another corpus -> promoted (the operator asked for this one);
* same corpus and a lower validation perplexity than the champion's -> promoted;
* otherwise it stays registered, not promoted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lookalike.artifacts import fetch_artifact
from lookalike.config import Settings
from lookalike.datadir import DataDir
from lookalike.errors import LookalikeError, ModelUnavailable
from lookalike.follow import ChampionFollower
from lookalike.names.corpus import load_corpus
from lookalike.names.generate import GeneratedNames, generate_names, validate_request
from lookalike.names.store import (
    KIND,
    WEIGHTS_FILE,
    NamesInfo,
    NamesModel,
    artifact_path,
    load_names_info,
    load_names_model,
    save_names_model,
)
from lookalike.names.train import HyperParameters, fit
from lookalike.redis_lock import machines_lock
from lookalike.registry import Registry


class NamesTrainingRunning(LookalikeError):
    status = 409
    code = "names.training_running"


def _refused(holder: str) -> NamesTrainingRunning:
    return NamesTrainingRunning(
        f"A name generator is already being trained ({holder}); wait for it to finish.",
        details={"holder": holder},
    )


class NamesLockUnavailable(LookalikeError):
    """Redis, which holds the name training lock shared by every machine, cannot be reached."""

    status = 503
    code = "names.lock_unavailable"


def _lock_unavailable(exc: Exception) -> NamesLockUnavailable:
    return NamesLockUnavailable(
        "Redis, which holds the name training lock, cannot be reached; nothing was trained."
        " Try again in a moment.",
        details={"reason": type(exc).__name__},
    )


NAMES_LOCK_KEY = "lookalike:names:lock"  # in Redis: the holder's description, while held


@contextmanager
def names_training_lock(where: DataDir | Settings) -> Iterator[None]:
    """Held for a whole name generator training; a second one is refused at once.

    The same kind of lock as the face retrain's (``retrain.training_lock``), of its own
    (``names.lock`` in the data dir, or with ``redis_url`` a key in Redis that every machine
    sees): two name trainings must not overlap (both would be judged against the same
    champion, and the later promotion would win whatever its perplexity), but a name
    training and a face retrain share nothing they could spoil: their artifacts live in
    different directories, each kind has its own aliases, and every registry change is one
    transaction. With one lock for both, a nightly retrain would refuse ``lookalike names
    train`` for no reason.
    """
    url = where.redis_url if isinstance(where, Settings) else None
    path = (where.data_dir if isinstance(where, Settings) else where).names_training_lock
    with machines_lock(url, NAMES_LOCK_KEY, path, refused=_refused, unavailable=_lock_unavailable):
        yield


@dataclass
class NamesTrainReport:
    version: str
    corpus: str
    corpus_names: int
    corpus_sha256: str
    metrics: dict[str, Any]
    promoted: bool
    reason: str
    previous: str | None  # the champion before

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def promotion_decision(info: NamesInfo, champion: NamesInfo | None) -> tuple[bool, str]:
    """(promote?, why) for a new version against the current champion's info."""
    ppl = info.val_perplexity
    if champion is None:
        return True, "first name generator: nothing to compare with"
    if champion.corpus_sha256 != info.corpus_sha256:
        return True, (
            f"trained on the {info.corpus_name!r} corpus, the champion {champion.version} on"
            f" {champion.corpus_name!r}: the operator asked for this corpus"
        )
    if ppl < champion.val_perplexity:
        return True, (
            f"validation perplexity {ppl:.3f} is lower than the champion {champion.version}'s"
            f" {champion.val_perplexity:.3f} on the same corpus"
        )
    return False, (
        f"validation perplexity {ppl:.3f} is not lower than the champion {champion.version}'s"
        f" {champion.val_perplexity:.3f} on the same corpus: kept registered, not promoted"
    )


def train_names(
    settings: Settings,
    corpus: str | Path = "pokemon",
    *,
    params: HyperParameters | None = None,
    created_by: str = "cli names train",
    progress: Callable[[int, int, float], None] | None = None,
) -> NamesTrainReport:
    """Train on a corpus (``pokemon``, ``first-names`` or a file of names), save the version,
    register it and run the promotion gate; refused while another one trains
    (``NamesTrainingRunning``)."""
    with names_training_lock(settings):
        return _train_names(settings, corpus, params, created_by, progress)


def _train_names(
    settings: Settings,
    corpus: str | Path,
    params: HyperParameters | None,
    created_by: str,
    progress: Callable[[int, int, float], None] | None,
) -> NamesTrainReport:
    data = load_corpus(
        corpus, max_names=settings.names_max_corpus_names, max_chars=settings.names_max_name_chars
    )
    params = params or HyperParameters(seed=settings.seed)
    result = fit(data.names, params, progress=progress)
    corpus_facts = {
        "name": data.name,
        "sha256": data.sha256,
        "names": len(data),
        "source": data.source,
    }
    info, _ = save_names_model(
        settings.home,
        result.model,
        list(data.names),
        corpus=corpus_facts,
        hyper_parameters=params.to_dict(),
        metrics=result.metrics(),
        created_by=created_by,
    )
    with Registry.open(settings) as registry:
        registry.register(
            kind=KIND,
            version=info.version,
            artifact=artifact_path(info.version),
            digest=info.files[WEIGHTS_FILE],
            created_by=created_by,
            head="gru",
            labels=[],
            metrics={**info.metrics, "corpus": data.name, "corpus_sha256": data.sha256},
        )
        previous = registry.champion(KIND)
        champion: NamesInfo | None = None
        if previous is not None:
            try:
                champion = load_names_info(settings.home, previous)
            except LookalikeError:
                champion = None  # unreadable: the new one replaces it
        promoted, reason = promotion_decision(info, champion)
        if previous is not None and champion is None:
            reason = f"the champion {previous} cannot be read: replaced"
        figures = {
            "val_perplexity": info.metrics["val_perplexity"],
            "bigram_perplexity": info.metrics["bigram_perplexity"],
            "champion_val_perplexity": champion.val_perplexity if champion else None,
        }
        registry.record_decision(
            info.version, promoted=promoted, reason=reason, figures=figures, actor=created_by
        )
    return NamesTrainReport(
        version=info.version,
        corpus=data.name,
        corpus_names=len(data),
        corpus_sha256=data.sha256,
        metrics=info.metrics,
        promoted=promoted,
        reason=reason,
        previous=previous,
    )


class NameGenerator:
    """Generates names with the registry's champion; loads it on first use and again only
    when the champion moves. Thread-safe; one per process (the web app keeps one)."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        """``registry``: share the caller's (the web app's); without one, the settings'
        database is opened on first use."""
        self.settings = settings
        self._lock = threading.Lock()
        self._registry = registry
        # A name generator loads in milliseconds: a new champion is loaded in the request
        # that first sees it (a damaged one is refused and the old one answers on).
        self._follower: ChampionFollower[NamesModel] = ChampionFollower(
            self._champion,
            self._load_version,
            lambda model: model.version,
            what="name generator",
        )

    @property
    def loaded_version(self) -> str | None:
        """The version in memory (None until the first request)."""
        model = self._follower.current
        return model.version if model is not None else None

    @property
    def failed(self) -> dict[str, tuple[float, str]]:
        """Champions that failed to load: version -> (when to try again, why)."""
        return self._follower.failed

    def _champion(self) -> str | None:
        if self._registry is None:
            with self._lock:
                if self._registry is None:
                    self._registry = Registry.open(self.settings)
        return self._registry.champion(KIND)

    def _load_version(self, version: str | None, previous: NamesModel | None) -> NamesModel:
        if version is None:
            raise ModelUnavailable(
                "No name generator has been trained yet. Train one with `lookalike names"
                " train` (default corpus: the Pokemon names), then ask again.",
                code="names.no_model",
            )
        # Trained on another machine: fetched from the shared object store, digests checked.
        fetch_artifact(self.settings, artifact_path(version))
        return load_names_model(self.settings.home, version)

    def load(self) -> NamesModel:
        return self._follower.get()

    def generate(
        self,
        count: int = 5,
        temperature: float = 1.0,
        prefix: str | None = None,
        seed: int | None = None,
        max_length: int | None = None,
    ) -> GeneratedNames:
        request = validate_request(
            count=count,
            temperature=temperature,
            prefix=prefix,
            seed=seed,
            max_length=max_length,
            max_count=self.settings.names_max_count,
            longest=self.settings.names_max_length,
        )
        model = self.load()
        return generate_names(model, request, max_tries=self.settings.names_max_tries)

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


def ensure_name_generator(settings: Settings, corpus: str = "pokemon") -> str:
    """Train and promote a name generator when none answers yet (``lookalike demo``);
    returns one line saying what answers /names."""
    with Registry.open(settings) as registry:
        champion = registry.champion(KIND)
    if champion is not None:
        return f"Name generator {champion} already answers /names."
    try:
        report = train_names(settings, corpus, created_by="demo")
    except LookalikeError as exc:
        return f"Name generator not trained ([{exc.code}] {exc.message}); /names answers 503."
    m = report.metrics
    return (
        f"Name generator {report.version} trained on {report.corpus_names} {report.corpus}"
        f" names in {m['train_seconds']} s: validation perplexity {m['val_perplexity']:.2f}"
        f" (bigram baseline {m['bigram_perplexity']:.2f}); see /names."
    )
