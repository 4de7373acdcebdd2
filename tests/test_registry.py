"""The model registry on SQLite and PostgreSQL: registration, aliases, promotion, rollback,
refusing damaged artifacts, adopting models trained before the registry, orphan cleanup."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_clean_error, run
from support.training import copy_home, quick_import
from typer.testing import CliRunner

from lookalike.artifacts import load_model, models_dir
from lookalike.cli import app
from lookalike.config import Settings, get_settings
from lookalike.errors import InvalidInput, ModelUnavailable, NotFound
from lookalike.registry import Registry, verify_artifact
from lookalike.retrain import RetrainRunning, retrain, training_lock
from lookalike.training.train import train

Orl = dict[str, list[Path]]


@pytest.fixture(scope="module")
def three_models(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Path:
    """A data dir with three trained (unregistered) models, `test` backbone."""
    root = tmp_path_factory.mktemp("registry")
    settings = Settings(home=root / "home", backbone="test")
    quick_import(settings, root, {p: orl[p][:5] for p in ("s1", "s2", "s3", "s4")})
    for head in ("logistic", "gallery", "logistic"):
        train(settings, head=head)
    return settings.home


@pytest.fixture
def registry(three_models: Path, tmp_path: Path, database_url: str) -> Iterator[Registry]:
    home = copy_home(three_models, tmp_path / "home")
    reg = Registry(Settings(home=home, backbone="test", database_url=database_url))
    reg.migrate()  # the tables only: the models are registered here, not adopted
    for version in ("m0001", "m0002", "m0003"):
        reg.register_model(load_model(home, version).info, "test")
    yield reg
    reg.close()


def test_register_records_the_version_and_its_figures(registry: Registry) -> None:
    rows = registry.versions()
    assert [r.version for r in rows] == ["m0003", "m0002", "m0001"]  # newest first
    row = registry.get("m0002")
    info = load_model(registry.home, "m0002").info
    assert row.kind == "lookalike" and row.head == "gallery"
    assert row.backbone == info.backbone_key
    assert row.labels == ["s1", "s2", "s3", "s4"]
    assert row.test_version == info.test_version == 1
    assert row.dataset_revision == info.dataset_revision
    assert row.metrics["accuracy"] == info.metrics["accuracy"]
    assert "confusion" not in row.metrics  # headline figures only; the artifact has the rest
    assert row.artifact == "models/m0002" and row.digest == info.files["arrays.npz"]
    assert row.decision is None
    assert registry.challenger() == "m0003" and registry.champion() is None
    assert [e.kind for e in registry.events(version="m0002")] == ["register"]

    with pytest.raises(InvalidInput) as exc:
        registry.register_model(info, "again")
    assert exc.value.code == "model.exists"
    with pytest.raises(NotFound):
        registry.get("m0042")


def test_promote_rollback_and_history(registry: Registry) -> None:
    assert registry.promote("m0001", reason="first", actor="alice") is None
    assert registry.promote("m0002", reason="second", actor="bob") == "m0001"
    assert registry.promote("m0003", reason="third", actor="carol") == "m0002"
    assert registry.challenger() is None  # m0003 was the challenger; now it is the champion
    with pytest.raises(InvalidInput) as exc:
        registry.promote("m0003", reason="again", actor="carol")
    assert exc.value.code == "model.already_champion"

    assert registry.rollback(reason="bad answers", actor="dave") == ("m0003", "m0002")
    # A second rollback goes further back, skipping what was rolled back from.
    assert registry.rollback(reason="still bad", actor="dave") == ("m0002", "m0001")
    with pytest.raises(InvalidInput) as exc:
        registry.rollback(reason="nothing left", actor="dave")
    assert exc.value.code == "model.no_previous"
    assert registry.rollback(reason="explicit", actor="dave", to="m0003") == ("m0001", "m0003")
    assert registry.champion() == "m0003"

    history = [
        (e.kind, e.version, e.previous, e.actor)
        for e in reversed(registry.events())
        if e.kind != "register"
    ]
    assert history == [
        ("promote", "m0001", None, "alice"),
        ("promote", "m0002", "m0001", "bob"),
        ("promote", "m0003", "m0002", "carol"),
        ("rollback", "m0002", "m0003", "dave"),
        ("rollback", "m0001", "m0002", "dave"),
        ("rollback", "m0003", "m0001", "dave"),
    ]
    assert registry.events()[0].reason == "explicit"


def test_a_damaged_or_missing_artifact_is_never_promoted(registry: Registry) -> None:
    registry.promote("m0001", reason="first", actor="test")
    npz = models_dir(registry.home) / "m0002" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(ModelUnavailable) as exc:
        registry.promote("m0002", reason="x", actor="test")
    assert exc.value.code == "model.corrupt"
    shutil.rmtree(models_dir(registry.home) / "m0003")
    with pytest.raises(ModelUnavailable):
        registry.promote("m0003", reason="x", actor="test")
    with pytest.raises(ModelUnavailable):
        registry.record_decision("m0003", promoted=True, reason="x", figures={}, actor="t")
    assert registry.champion() == "m0001"
    assert registry.events()[0].kind == "promote"  # nothing recorded after it
    # A refusal needs no artifact: it is recorded.
    registry.record_decision("m0003", promoted=False, reason="gone", figures={"n": 0}, actor="t")
    assert registry.get("m0003").decision == "refused"


def test_artifact_paths_cannot_leave_the_data_dir(registry: Registry) -> None:
    for outside in ("../elsewhere", "models/../../x", "/etc"):
        with pytest.raises(ModelUnavailable):
            verify_artifact(registry.home, outside, "0" * 64)
    digest = registry.get("m0001").digest
    verify_artifact(registry.home, "models/m0001", digest)  # the real one passes
    with pytest.raises(ModelUnavailable):
        verify_artifact(registry.home, "models/m0001", "f" * 64)  # not its digest


def test_models_trained_before_the_registry_are_adopted(
    three_models: Path, tmp_path: Path, database_url: str
) -> None:
    home = copy_home(three_models, tmp_path / "home")
    (models_dir(home) / "current").write_text("m0002")  # the old pointer file
    with Registry.open(Settings(home=home, backbone="test", database_url=database_url)) as reg:
        assert reg.champion() == "m0002"
        assert sorted(r.version for r in reg.versions()) == ["m0001", "m0002", "m0003"]
        assert {r.created_by for r in reg.versions()} == {"adopted from an earlier version"}


def test_orphans_of_a_killed_training_are_removed(registry: Registry) -> None:
    root = models_dir(registry.home)
    shutil.copytree(root / "m0001", root / "m0009")  # saved, never registered
    (root / ".building-abc").mkdir()  # killed while writing
    assert [p.name for p in registry.orphan_artifacts()] == [".building-abc", "m0009"]
    assert registry.remove_orphans() == [".building-abc", "m0009"]
    assert sorted(p.name for p in root.iterdir()) == ["m0001", "m0002", "m0003"]
    assert registry.reserved_versions() == {"m0001", "m0002", "m0003"}


def test_two_retrains_never_run_at_once(registry: Registry) -> None:
    settings = registry.settings
    with training_lock(Path(settings.home)):
        with pytest.raises(RetrainRunning) as exc:
            retrain(settings, registry=registry)
        assert exc.value.status == 409 and exc.value.code == "retrain.running"
        assert f"pid {os.getpid()}" in exc.value.message
    result = retrain(settings, registry=registry)  # free again
    assert result.version == "m0004"


@pytest.fixture
def cli_env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """In-process CLI runs read the settings once per process: point them at this test's
    database and forget them afterwards."""
    env = {"LOOKALIKE_DATABASE_URL": registry.settings.database_url}
    monkeypatch.setenv("LOOKALIKE_DATABASE_URL", env["LOOKALIKE_DATABASE_URL"])
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_models_cli(registry: Registry, cli_env: dict[str, str]) -> None:
    home = str(registry.home)
    env = cli_env
    runner = CliRunner()
    out = runner.invoke(app, ["models", "promote", "m0002", "--home", home])
    assert out.exit_code == 0, out.output
    assert "m0002" in out.output
    listed = runner.invoke(app, ["models", "list", "--json", "--home", home])
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.output)
    assert body["count"] == 3 and body["aliases"] == {"champion": "m0002", "challenger": "m0003"}
    assert [v["version"] for v in body["data"]] == ["m0003", "m0002", "m0001"]
    shown = runner.invoke(app, ["models", "show", "m0002", "--home", home])
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert detail["alias"] == "champion"
    assert [e["kind"] for e in detail["events"]] == ["register", "promote"]
    # Errors go through the real console script: one line, exit status 2, no traceback.
    back = run("models", "rollback", "--home", home, env=env)
    assert_clean_error(back, "model.no_previous")
    assert "no earlier champion" in back.stderr
    assert_clean_error(
        run("models", "promote", "m0042", "--home", home, env=env), "model.not_found"
    )
    table = run("models", "list", "--home", home, env=env)
    assert table.returncode == 0, table.stderr
    assert "champion" in table.stdout and "challenger" in table.stdout and "m0001" in table.stdout


def test_the_first_retrain_on_a_new_database_keeps_earlier_models(
    three_models: Path, tmp_path: Path, database_url: str
) -> None:
    """Models trained before the registry (or with another database) are adopted, never
    taken for a killed run's leftovers."""
    home = copy_home(three_models, tmp_path / "home")
    (models_dir(home) / "current").write_text("m0001")
    settings = Settings(home=home, backbone="test", database_url=database_url)
    result = retrain(settings)
    assert result.version == "m0004" and result.previous == "m0001"
    assert sorted(p.name for p in models_dir(home).iterdir() if p.is_dir()) == [
        "m0001",
        "m0002",
        "m0003",
        "m0004",
    ]
