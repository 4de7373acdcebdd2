"""Two machines, one service: each has its own data dir, and they share one PostgreSQL, one
S3 bucket and one Redis. A model trained on one is served by the other (fetched from the
bucket, its digests checked); a damaged copy in the bucket is refused; a retrain asked for on
one machine while another machine's is queued or running joins it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.api import SECRET, client_for
from support.pg import new_database
from support.redis_server import RedisServer
from support.s3 import endpoint, s3_server, s3_settings
from support.training import quick_import

from lookalike.artifacts import load_model, models_dir
from lookalike.backup import backup, restore
from lookalike.config import Settings
from lookalike.data.personal import forget_sources
from lookalike.data.store import DatasetStore, image_key
from lookalike.errors import ModelUnavailable, NotFound
from lookalike.inference import Predictor
from lookalike.jobs import Jobs, QueuedJob
from lookalike.registry import Registry
from lookalike.retrain import (
    RetrainLockUnavailable,
    RetrainRunning,
    retrain,
    retrain_running,
    training_lock,
)
from lookalike.storage import ObjectStore

Orl = dict[str, list[Path]]
Machine = Callable[[str], Settings]
BUCKET = "lookalike-shared"
PEOPLE = ("s1", "s2", "s3")


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Machine]:
    """``machine(name)``: the settings of one machine (a data dir of its own) of a service
    sharing one database, one bucket and one Redis."""
    root = tmp_path_factory.mktemp("machines")
    with (
        new_database(postgres_url, "shared") as database,
        s3_server() as s3,
        RedisServer() as redis,
    ):

        def settings(name: str) -> Settings:
            base = Settings(
                home=root / name,
                backbone="test",
                database_url=database,
                redis_url=redis.url,
                secret_key=SECRET,
                rate_limit_per_minute=0,
            )
            return s3_settings(base, endpoint(s3), BUCKET, "service")

        yield settings


@pytest.fixture(scope="module")
def trained(machine: Machine, orl: Orl, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Machine "a" with a dataset and its first model, the champion."""
    a = machine("a")
    quick_import(a, tmp_path_factory.mktemp("photos"), {p: orl[p][:5] for p in PEOPLE})
    assert retrain(a, actor="test").promoted
    return a


def bucket_keys(settings: Settings, prefix: str) -> list[str]:
    return list(ObjectStore(settings).iter_keys(prefix))


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_a_champion_trained_on_one_machine_serves_on_another(
    trained: Settings, machine: Machine, orl: Orl
) -> None:
    a, b = trained, machine("b")
    champion = Registry(a).champion()
    assert champion is not None
    assert set(bucket_keys(a, f"models/{champion}/")) == {
        f"models/{champion}/model.json",
        f"models/{champion}/arrays.npz",
    }
    assert not models_dir(b.home).exists()  # b never trained anything

    answer = Predictor(b).predict(orl["s2"][8].read_bytes())
    assert answer.model_version == champion
    fetched = models_dir(b.home) / champion  # a cache of the bucket's copy, checked
    assert digests(fetched) == digests(models_dir(a.home) / champion)

    with client_for(machine("c")) as client:  # the app on a third machine
        assert client.get("/api/health").json()["model"] == champion

    # A version a trains next is promoted by hand on b: b fetches it to check it first.
    second = retrain(a, actor="test").version
    assert second != champion and not (models_dir(b.home) / second).exists()
    with Registry.open(b) as registry:
        if registry.champion() != second:  # the gate may have promoted it already
            assert registry.promote(second, reason="test", actor="test") == champion
    assert (models_dir(b.home) / second).is_dir()
    predictor = Predictor(b)
    assert predictor.load(wait=True).info.version == second


def test_a_name_generator_trained_on_one_machine_answers_on_another(
    trained: Settings, machine: Machine
) -> None:
    from lookalike.names.service import NameGenerator, train_names
    from lookalike.names.train import HyperParameters

    report = train_names(trained, "pokemon", params=HyperParameters(max_epochs=1, seed=0))
    assert report.promoted
    d = machine("d")
    generator = NameGenerator(d)
    try:
        names = generator.generate(count=3, seed=1)
    finally:
        generator.close()
    assert len(names.names) == 3
    assert generator.loaded_version == report.version
    assert (d.data_dir.names / report.version / "model.json").is_file()


def test_a_damaged_copy_in_the_bucket_is_refused(trained: Settings, machine: Machine) -> None:
    a = trained
    version = retrain(a, actor="test").version
    store = ObjectStore(a)
    store.put(f"models/{version}/arrays.npz", b"tampered")
    b = machine("tampered")
    with pytest.raises(ModelUnavailable) as exc:
        load_model(b, version)
    assert exc.value.code == "model.corrupt" and "SHA-256" in exc.value.message
    assert not (models_dir(b.home) / version).exists()  # nothing half-fetched is kept
    with Registry.open(b) as registry, pytest.raises(ModelUnavailable) as refused:
        registry.promote(version, reason="test", actor="test")
    assert refused.value.code == "model.corrupt"

    store.delete(f"models/{version}/arrays.npz")  # a file gone from the bucket
    with pytest.raises(ModelUnavailable, match="missing or damaged"):
        load_model(b, version)
    with pytest.raises(NotFound) as unknown:  # a version nowhere at all
        load_model(b, "m0999")
    assert unknown.value.code == "model.not_found"


def test_the_bucket_s_orphan_versions_are_removed(trained: Settings, machine: Machine) -> None:
    """A retrain killed between publishing and registering left files in the bucket: the
    next retrain's cleanup (on any machine) removes them, registered versions stay."""
    store = ObjectStore(trained)
    store.put("models/m0777/arrays.npz", b"x")
    store.put("models/m0777/model.json", b"{}")
    b = machine("cleaner")
    with Registry.open(b) as registry:
        registered = {row.version for row in registry.versions()}
        assert "m0777" in registry.remote_orphans()
        assert registry.remove_orphans() == ["m0777"]
    assert bucket_keys(b, "models/m0777/") == []
    left = {key.split("/")[1] for key in bucket_keys(b, "models/")}
    assert left == registered


def test_machines_join_one_retrain_through_redis(trained: Settings, machine: Machine) -> None:
    a, b = trained, machine("joins")
    one, other = Jobs(a), Jobs(b)
    other.training.flush()
    try:
        queued = one.enqueue_retrain("api", "a")
        assert not queued.joined
        # b's data dir has no retrain.job: the last job is in Redis, and b joins it.
        assert other.enqueue_retrain("api", "b") == QueuedJob(queued.id, joined=True)
        assert len(other.training.pending()) == 1
        assert not b.data_dir.retrain_job.exists()

        # While a retrain runs on a (holding the lock), b neither retrains nor queues one.
        with training_lock(a):
            assert retrain_running(b) and not retrain_running(b.home)  # not b's files
            with pytest.raises(RetrainRunning) as exc:
                retrain(b, actor="b")
            assert f"pid {os.getpid()}" in exc.value.message
            while (task := other.training.dequeue()) is not None and task.id != queued.id:
                pass  # a's worker took the job and runs it
            assert other.enqueue_retrain("api", "b") == QueuedJob(queued.id, joined=True)
        assert not retrain_running(a)
        assert not other.enqueue_retrain("api", "b").joined  # it died unfinished: a new one
    finally:
        other.training.flush()


def test_the_retrain_lock_needs_redis_when_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", backbone="test", redis_url="redis://127.0.0.1:9/0")
    with pytest.raises(RetrainLockUnavailable) as exc:
        retrain(settings)
    assert exc.value.status == 503


def test_reference_photos_are_shown_by_every_machine(
    trained: Settings, machine: Machine, orl: Orl
) -> None:
    """A version's reference photos are published with it: an app on a machine without the
    dataset serves them from the bucket; removing a photo from the dataset removes its copy."""
    a = trained
    champion = Registry(a).champion()
    assert champion is not None
    model = load_model(a, champion)
    photos = dict(zip(model.gallery_hashes.tolist(), model.gallery_exts.tolist(), strict=True))
    published = {key.rsplit("/", 1)[1] for key in bucket_keys(a, "images/")}
    assert {f"{sha}.{ext}" for sha, ext in photos.items()} <= published

    viewer = machine("viewer")
    with client_for(viewer) as client:
        answer = client.post(
            "/api/predictions", files={"photo": ("a.pgm", orl["s1"][9].read_bytes())}
        ).json()
        urls = {n["url"] for n in answer["nearest"]}
        assert urls and all(url.removeprefix("/api/images/") in photos for url in urls)
        for url in urls:
            shown = client.get(url)
            assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
            assert shown.content.startswith(b"\x89PNG")  # ORL's PGM, converted
    assert not viewer.data_dir.images.exists()  # served from the bucket, nothing copied

    sha = next(iter(photos))
    record = DatasetStore(a).load().images[sha]
    assert forget_sources(a, {record.source}) == [record]
    assert not ObjectStore(a).exists(image_key(sha, record.ext))
    with client_for(machine("viewer-2")) as client:
        assert client.get(f"/api/images/{sha}").status_code == 404


def test_a_restore_publishes_its_versions_to_the_bucket(
    trained: Settings, machine: Machine, postgres_url: str, tmp_path: Path, orl: Orl
) -> None:
    """A backup restored into a service with a bucket: its versions and reference photos are
    published there, so a machine that only has the bucket and the database serves them."""
    champion = Registry(trained).champion()
    assert champion is not None
    backup(trained, tmp_path / "backup")
    with new_database(postgres_url, "restored") as database:
        restored = machine("restored").model_copy(
            update={"database_url": database, "storage_url": f"s3://{BUCKET}/restored"}
        )
        restore(restored, tmp_path / "backup")
        assert bucket_keys(restored, f"models/{champion}/")
        assert bucket_keys(restored, "images/")
        other = restored.model_copy(update={"home": tmp_path / "other"})
        answer = Predictor(other).predict(orl["s3"][8].read_bytes())
        assert answer.model_version == champion


def test_one_name_training_at_a_time_across_machines(trained: Settings, machine: Machine) -> None:
    from lookalike.names.service import (
        NamesLockUnavailable,
        NamesTrainingRunning,
        names_training_lock,
        train_names,
    )

    a, b = trained, machine("names-b")
    with names_training_lock(a):
        with pytest.raises(NamesTrainingRunning) as exc:
            train_names(b, "pokemon")  # b's data dir holds no lock file: Redis does
        assert f"pid {os.getpid()}" in exc.value.message
        assert not b.data_dir.names_training_lock.exists()
    with names_training_lock(b):  # released: b takes it
        pass
    dead = b.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    with pytest.raises(NamesLockUnavailable) as down:
        train_names(dead, "pokemon")
    assert down.value.status == 503
