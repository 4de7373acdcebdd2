"""Retraining on real ORL faces: 30 people, then 10 more (promoted because it recognises them),
a challenger trained on shuffled labels (refused, with its figures in the registry), a tie
(refused), rollback (the predictor follows without a restart), and a too-small class."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.training import copy_home

from lookalike.artifacts import TrainedModel, load_model, save_model
from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.errors import DatasetError
from lookalike.inference import Predictor
from lookalike.registry import Registry
from lookalike.retrain import RetrainResult, challenge, retrain
from lookalike.training.compare import mcnemar_p
from lookalike.training.evaluate import evaluate_version as evaluate
from lookalike.training.heads import create_head

Orl = dict[str, list[Path]]
FIRST = [f"s{i}" for i in range(1, 31)]
ADDED = [f"s{i}" for i in range(31, 41)]
PHOTOS = slice(0, 8)  # photos 9 and 10 stay out: visitors


def _import(settings: Settings, root: Path, orl: Orl, people: list[str]) -> None:
    source = root / "source"
    shutil.rmtree(source, ignore_errors=True)
    for person in people:
        (source / person).mkdir(parents=True)
        for photo in orl[person][PHOTOS]:
            shutil.copy(photo, source / person / photo.name)
    import_images(source, settings)


@pytest.fixture(scope="module")
def grown(
    tmp_path_factory: pytest.TempPathFactory, orl: Orl
) -> tuple[Settings, RetrainResult, RetrainResult]:
    """30 people -> champion m0001; 10 more people -> retrain -> m0002."""
    root = tmp_path_factory.mktemp("retrain")
    settings = Settings(home=root / "home", backbone="face")
    _import(settings, root, orl, FIRST)
    first = retrain(settings, actor="test")
    _import(settings, root, orl, ADDED)
    second = retrain(settings, actor="test")
    return settings, first, second


def test_first_model_becomes_champion(grown: tuple[Settings, RetrainResult, RetrainResult]) -> None:
    settings, first, _ = grown
    assert first.version == "m0001" and first.promoted and first.previous is None
    assert "First model" in first.decision.reason
    assert len(load_model(settings.home, "m0001").info.labels) == 30


def test_new_people_are_recognised_and_promoted(
    grown: tuple[Settings, RetrainResult, RetrainResult],
) -> None:
    settings, _, second = grown
    assert second.version == "m0002"
    assert second.promoted, second.decision.reason
    assert (second.previous, second.champion) == ("m0001", "m0002")
    figures = second.decision.figures
    assert figures["classes_added"] == sorted(ADDED)
    assert figures["classes_removed"] == []
    assert figures["new_class_mean_recall"] >= settings.promotion_new_class_floor
    assert set(figures["new_class_recall"]) == set(ADDED)
    assert figures["n_shared"] == 30 * 2  # both models on the same 60 photos of the 30
    assert figures["recall_drops"] == {}
    assert "10 new class(es)" in second.decision.reason
    report = json.loads(settings.data_dir.dataset_check.read_text())  # checks ran after it
    assert report["images"] == 40 * 8 and set(report["counts"]) >= {"likely_mislabelled"}
    # Nothing embedded again: the importer embedded each photo once (to find its face).
    assert (second.report.embedded, second.report.cached) == (0, 40 * 8)

    with Registry(settings) as registry:
        assert registry.champion() == "m0002"
        assert registry.challenger() is None  # promoted: no longer a challenger
        decision = next(e for e in registry.events(version="m0002") if e.kind == "decision")
        assert decision.promoted and decision.previous == "m0001"
        assert decision.figures["classes_added"] == sorted(ADDED)
        rows = {r.version: r for r in registry.versions()}
        assert rows["m0002"].decision == "promoted"
        assert rows["m0002"].test_version == 2 and rows["m0001"].test_version == 1


def test_test_set_grew_by_a_version_and_the_old_one_is_reproducible(
    grown: tuple[Settings, RetrainResult, RetrainResult], tmp_path: Path
) -> None:
    settings, first, _ = grown
    again, _ = evaluate(settings, "m0001", tmp_path)
    assert again["test_version"] == 1
    assert again["n"] == first.report.metrics["n"] == 60
    assert again["accuracy"] == first.report.metrics["accuracy"]


def _shuffled_challenger(settings: Settings, champion: str, registry: Registry) -> str:
    """A real model trained on the champion's gallery with its labels shuffled."""
    model = load_model(settings.home, champion)
    rng = np.random.default_rng(0)
    labels = rng.permutation(model.gallery_labels)
    head = create_head("logistic")
    head.fit(model.gallery, labels, len(model.info.labels), None, None)
    info = dataclasses.replace(model.info, version="", head="logistic", head_params=head.params())
    bad = TrainedModel(info, head, model.gallery, labels, model.gallery_hashes, model.gallery_exts)
    version = save_model(settings.home, bad, registry.reserved_versions())
    registry.register_model(load_model(settings.home, version).info, "test (shuffled labels)")
    return version


def test_a_worse_challenger_is_refused_with_its_figures(
    grown: tuple[Settings, RetrainResult, RetrainResult], tmp_path: Path
) -> None:
    settings, _, _ = grown
    settings = settings.model_copy(update={"home": copy_home(settings.home, tmp_path / "h")})
    with Registry(settings) as registry:
        version = _shuffled_challenger(settings, "m0002", registry)
        assert registry.challenger() == version
        decision = challenge(settings, registry, version, "test")
        assert not decision.promoted
        assert registry.champion() == "m0002"
        figures = decision.figures
        assert figures["champion_accuracy"] >= 0.9
        assert figures["challenger_accuracy"] < 0.3
        assert figures["only_champion_right"] > figures["only_challenger_right"]
        assert figures["mcnemar_p"] < 1e-6
        assert "Refused" in decision.reason
        recorded = next(e for e in registry.events(version=version) if e.kind == "decision")
        assert recorded.promoted is False
        assert recorded.figures == figures
        assert recorded.reason == decision.reason
        assert registry.get(version).decision == "refused"
        assert registry.challenger() == version  # refused: it stays the challenger


def test_a_tie_keeps_the_champion(
    grown: tuple[Settings, RetrainResult, RetrainResult], tmp_path: Path
) -> None:
    settings, _, _ = grown
    settings = settings.model_copy(update={"home": copy_home(settings.home, tmp_path / "h")})
    again = retrain(settings, actor="test")  # nothing new: the same model again
    assert not again.promoted
    assert again.report.embedded == 0
    assert again.champion == "m0002"
    figures = again.decision.figures
    assert figures["champion_accuracy"] == figures["challenger_accuracy"]
    assert "ties keep the champion" in again.decision.reason


def test_rollback_and_the_predictor_follows(
    grown: tuple[Settings, RetrainResult, RetrainResult], orl: Orl, tmp_path: Path
) -> None:
    settings, _, _ = grown
    settings = settings.model_copy(update={"home": copy_home(settings.home, tmp_path / "h")})
    predictor = Predictor(settings)
    newcomer = orl["s35"][9].read_bytes()  # one of the 10 added people, never imported
    answer = predictor.predict(newcomer)
    assert (answer.model_version, answer.best_label) == ("m0002", "s35")
    with Registry(settings) as registry:
        assert registry.rollback(reason="test", actor="test") == ("m0002", "m0001")
        assert predictor.load(wait=True).info.version == "m0001"  # no restart
        answer = predictor.predict(newcomer)
        assert answer.model_version == "m0001"
        assert answer.best_label in FIRST  # the old champion does not know s35
        rollback = registry.events()[0]
        assert (rollback.kind, rollback.version, rollback.previous) == (
            "rollback",
            "m0001",
            "m0002",
        )
        # Nothing before m0001: a second rollback is refused with a clear error.
        with pytest.raises(Exception, match="no earlier champion"):
            registry.rollback(reason="test", actor="test")


def test_retrain_refuses_while_a_class_is_too_small(
    grown: tuple[Settings, RetrainResult, RetrainResult], orl: Orl, tmp_path: Path
) -> None:
    settings, _, _ = grown
    settings = settings.model_copy(update={"home": copy_home(settings.home, tmp_path / "h")})
    source = tmp_path / "small"
    (source / "newbie").mkdir(parents=True)
    for photo in orl["s1"][8:10]:
        shutil.copy(photo, source / "newbie" / photo.name)
    import_images(source, settings)
    with Registry(settings) as registry:
        before = [r.version for r in registry.versions()]
        with pytest.raises(DatasetError) as exc:
            retrain(settings, registry=registry)
        assert exc.value.code == "dataset.class_too_small"
        assert exc.value.details["too_few"] == {"newbie": 2}
        assert "newbie (2)" in exc.value.message
        assert [r.version for r in registry.versions()] == before
        assert registry.champion() == "m0002"


def test_mcnemar_exact_p_values() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # two-sided exact binomial
    assert mcnemar_p(6, 0) == mcnemar_p(0, 6)
    assert mcnemar_p(1, 9) == pytest.approx(22 / 1024)
