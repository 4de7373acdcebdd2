"""The data dir's layout in one place (``DataDir``), versioned artifact directories
(``VersionedDirs``), the champion follower, side-effect-free registry reads, and the name
generator's training lock."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from support.names import names_home, register_and_promote, trained_pokemon

from lookalike.artifacts import ModelInfo, models_dir
from lookalike.config import Settings
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore
from lookalike.datadir import DataDir
from lookalike.errors import ModelUnavailable
from lookalike.follow import ChampionFollower
from lookalike.names.service import (
    NameGenerator,
    NamesTrainingRunning,
    names_training_lock,
    train_names,
)
from lookalike.names.store import load_names_info, names_dir, save_names_model
from lookalike.registry import Registry
from lookalike.retrain import training_lock
from lookalike.storage import ObjectStore
from lookalike.versioned import VersionedDirs
from lookalike.vision.faces import FaceBackbone

# --- the layout -------------------------------------------------------------------------------


def test_every_path_of_the_data_dir_is_named_once(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "home")
    paths = {
        name: getattr(data_dir, name)
        for name, value in vars(DataDir).items()
        if isinstance(value, property)
    }
    assert len(set(paths.values())) == len(paths)  # no two names for one path
    assert all(p.is_relative_to(data_dir.root) for p in paths.values())
    assert not data_dir.root.exists()  # naming paths touches nothing
    assert data_dir.artifact("models/m0001") == data_dir.models / "m0001"
    for bad in ("../x", "/etc", "models/../../x"):
        with pytest.raises(ValueError):
            data_dir.artifact(bad)


def test_the_engine_takes_its_paths_from_the_settings_data_dir(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test")
    data_dir = settings.data_dir
    store = DatasetStore(settings)
    assert (store.catalog_path, store.lock_path, store.images_dir) == (
        data_dir.catalog,
        data_dir.catalog_lock,
        data_dir.images,
    )
    splits = SplitStore(settings)
    assert (splits.path, splits.lock_path) == (data_dir.splits, data_dir.splits_lock)
    assert ObjectStore(settings).root == str(data_dir.objects.resolve())
    assert models_dir(settings.home) == data_dir.models
    assert names_dir(settings.home) == data_dir.names
    face = FaceBackbone(settings)  # nothing loaded
    assert face.folded_path.parent == face.detector_path.parent == data_dir.backbones
    assert settings.effective_database_url.endswith(str(data_dir.database.resolve()))
    # A copy for another data dir never sees the old layout.
    other = settings.model_copy(update={"home": tmp_path / "other"})
    assert (
        other.data_dir.root == tmp_path / "other" and settings.data_dir.root != other.data_dir.root
    )


# --- versioned artifact directories -----------------------------------------------------------


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_a_version_is_claimed_whole_and_readable_by_everyone(
    tmp_path: Path, strict_umask: None
) -> None:
    dirs = VersionedDirs(tmp_path / "models", "m")
    (tmp_path / "models" / "m0001").mkdir(parents=True)
    (tmp_path / "models" / "m10").mkdir()  # not a version name
    seen: list[str] = []

    def manifest(version: str) -> dict[str, bytes]:
        seen.append(version)
        if len(seen) == 1:  # another writer takes this number first
            (dirs.root / version).mkdir()
            (dirs.root / version / "model.json").write_text("{}")
        return {"model.json": json.dumps({"version": version}).encode()}

    version = dirs.write({"arrays.npz": b"x" * 10}, manifest, reserved={"m0002", "n0009"})
    assert seen == ["m0003", "m0004"] and version == "m0004"
    path = dirs.root / version
    assert json.loads((path / "model.json").read_text()) == {"version": "m0004"}
    assert (path / "arrays.npz").read_bytes() == b"x" * 10
    assert path.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in path.iterdir()} == {0o644}
    assert dirs.versions() == ["m0001", "m0003", "m0004"]
    assert not [p for p in dirs.root.iterdir() if p.name.startswith(".building-")]


def test_a_failed_write_leaves_no_version(tmp_path: Path) -> None:
    dirs = VersionedDirs(tmp_path / "names", "n")

    def manifest(version: str) -> dict[str, bytes]:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        dirs.write({"weights.npz": b"w"}, manifest)
    assert list(dirs.root.iterdir()) == []


def test_names_versions_are_written_like_models(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, strict_umask: None
) -> None:
    template, result, info = trained_pokemon(tmp_path_factory)
    home = names_home(template, tmp_path / "home")
    again, digest = save_names_model(
        home,
        result.model,
        ["ada", "bob"],
        corpus=info.corpus,
        hyper_parameters=info.hyper_parameters,
        metrics=info.metrics,
        created_by="tests",
    )
    path = names_dir(home) / again.version
    assert again.version == "n0002" and load_names_info(home, "n0002") == again
    assert hashlib.sha256((path / "model.json").read_bytes()).hexdigest() == digest
    assert path.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in path.iterdir()} == {0o644}


# --- the champion follower --------------------------------------------------------------------


class Loads:
    """A fake registry and loader: versions ending in "!" are damaged."""

    def __init__(self) -> None:
        self.champion: str | None = "v1"
        self.calls: list[tuple[str | None, str | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.down = False

    def wanted(self) -> str | None:
        if self.down:
            raise ConnectionError("database down")
        return self.champion

    def load(self, version: str | None, previous: str | None) -> str:
        self.calls.append((version, previous))
        self.gate.wait(5)
        if version is None:
            raise ModelUnavailable("no model", code="model.none")
        if version.endswith("!"):
            raise ModelUnavailable(f"{version} is damaged", code="model.corrupt")
        return version


def test_the_follower_swaps_in_the_new_champion_and_keeps_the_old_one_when_it_is_damaged() -> None:
    loads = Loads()
    follower = ChampionFollower(loads.wanted, loads.load, str, retry_seconds=60)
    assert follower.current is None
    assert follower.get() == "v1" and follower.get() == "v1"
    assert loads.calls == [("v1", None)]  # loaded once
    loads.champion = "v2"
    assert follower.get() == "v2" and loads.calls[-1] == ("v2", "v1")  # the old one is offered
    loads.champion = "v3!"
    assert follower.get() == "v2"  # refused: the old one answers on
    assert "damaged" in follower.failed["v3!"][1]
    calls = len(loads.calls)
    assert follower.get() == "v2" and len(loads.calls) == calls  # not retried at once
    follower.retry_seconds = 0
    follower.failed["v3!"] = (0.0, "expired")
    loads.champion = "v3"
    assert follower.get() == "v3" and "v3!" in follower.failed and "v3" not in follower.failed
    loads.champion = None  # no champion any more: said at once
    with pytest.raises(ModelUnavailable):
        follower.get()


def test_the_follower_serves_on_while_the_registry_is_unreadable() -> None:
    loads = Loads()
    follower = ChampionFollower(
        loads.wanted,
        loads.load,
        str,
        unreadable=lambda exc: ModelUnavailable(str(exc), code="model.registry_unavailable"),
    )
    loads.down = True
    with pytest.raises(ModelUnavailable) as info:  # nothing loaded: the caller hears why
        follower.get()
    assert info.value.code == "model.registry_unavailable"
    loads.down = False
    assert follower.get() == "v1"
    loads.down = True
    assert follower.get() == "v1" and follower.wanted_version() == "v1"


def test_the_follower_loads_in_the_background_beside_the_old_one() -> None:
    loads = Loads()
    follower = ChampionFollower(loads.wanted, loads.load, str, background=True)
    assert follower.get() == "v1"  # the first load happens in the caller
    loads.gate.clear()
    loads.champion = "v2"
    assert follower.get() == "v1"  # v2 is loading: v1 answers meanwhile
    assert follower.get() == "v1"
    loads.gate.set()
    deadline = time.monotonic() + 5
    while follower.current != "v2" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert follower.get() == "v2"
    assert loads.calls.count(("v2", "v1")) == 1  # one load, however many requests asked
    assert follower.get(wait=True) == "v2"


# --- registry: reads write nothing; opening prepares -----------------------------------------


def _pre_registry_model(home: Path, version: str) -> None:
    """A model directory as a version from before the registry left it (whole, verified)."""
    path = models_dir(home) / version
    path.mkdir(parents=True)
    arrays = b"not really an npz"
    (path / "arrays.npz").write_bytes(arrays)
    info = ModelInfo(
        version=version,
        created_at="2024-01-01T00:00:00+00:00",
        backbone="test",
        backbone_key="test@1",
        preprocessing={},
        head="gallery",
        head_params={},
        labels=["a", "b"],
        threshold=0.5,
        open_set={},
        top_k=3,
        dataset_revision=1,
        test_version=1,
        counts={},
        files={"arrays.npz": hashlib.sha256(arrays).hexdigest()},
    )
    (path / "model.json").write_text(json.dumps(asdict(info)))


def test_building_and_reading_a_registry_write_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test")
    Registry(settings).close()
    assert not settings.home.exists()  # no database, not even the data dir

    _pre_registry_model(settings.home, "m0001")
    _pre_registry_model(settings.home, "m0002")
    (models_dir(settings.home) / "current").write_text("m0002")
    with Registry(settings) as registry:
        registry.migrate()
        assert registry.champion() is None and registry.versions() == []  # not adopted
        assert registry.reserved_versions() == set()
        assert registry.orphan_artifacts() == []  # waiting for adoption, not orphans
        registry.prepare()
        assert registry.champion() == "m0002"
        assert [v.version for v in registry.versions()] == ["m0002", "m0001"]


def test_opening_a_registry_readies_a_fresh_data_dir(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test")
    with Registry.open(settings) as registry:
        assert registry.champion() is None and registry.versions() == []
    assert settings.data_dir.database.exists()


# --- the name generator: one training at a time, a damaged champion is refused ---------------


def test_name_training_takes_its_own_lock(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    with names_training_lock(settings.data_dir):
        with pytest.raises(NamesTrainingRunning) as info:
            train_names(settings, "pokemon")
        assert info.value.status == 409 and info.value.code == "names.training_running"
        assert f"pid {os.getpid()}" in info.value.message
        with training_lock(settings.home):  # a face retrain is not held up by it
            pass
    assert not names_dir(settings.home).exists()  # refused before any work


def test_the_name_generator_keeps_its_champion_when_the_new_one_is_damaged(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    template, result, info = trained_pokemon(tmp_path_factory)
    settings = Settings(home=names_home(template, tmp_path / "home"))
    register_and_promote(settings, info)
    generator = NameGenerator(settings)
    try:
        assert generator.load().version == "n0001"
        info2, _ = save_names_model(
            settings.home,
            result.model,
            sorted(generator.load().corpus),
            corpus={**info.corpus, "name": "pokemon-copy"},
            hyper_parameters=info.hyper_parameters,
            metrics=info.metrics,
            created_by="tests",
        )
        register_and_promote(settings, info2)
        weights = names_dir(settings.home) / info2.version / "weights.npz"
        weights.write_bytes(weights.read_bytes()[:-10])
        assert generator.load().version == "n0001"  # refused: the old one answers on
        assert "n0002" in generator.failed and "damaged" in generator.failed["n0002"][1]
        assert generator.generate(count=2, seed=1).model == "n0001"
    finally:
        generator.close()
