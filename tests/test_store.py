"""The dataset catalog on disk: records round-trip, renames are checked, corruption is named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.data.store import Catalog, DatasetStore, ImageRecord
from lookalike.errors import DatasetError, NotFound
from lookalike.fsutil import atomic_write_bytes, slugify


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def record(name: str, label: str, **extra: object) -> ImageRecord:
    return ImageRecord(
        sha256=sha(name),
        label=label,
        ext="png",
        source=f"{label}/{name}.png",
        width=92,
        height=112,
        **extra,  # type: ignore[arg-type]
    )


def saved_store(settings: Settings, counts: dict[str, int]) -> DatasetStore:
    store = DatasetStore(settings)
    catalog = Catalog()
    for label, n in counts.items():
        for i in range(n):
            rec = record(f"{label}-{i}", label)
            catalog.images[rec.sha256] = rec
    store.save(catalog)
    return store


def test_missing_catalog_loads_empty(settings: Settings) -> None:
    catalog = DatasetStore(settings).load()
    assert catalog.revision == 0
    assert catalog.images == {}


def test_save_load_round_trip_keeps_every_field(settings: Settings) -> None:
    store = DatasetStore(settings)
    face = record(
        "a",
        "Zoë O'Neil",
        faces_found=2,
        face_index=0,
        face_box=[1.5, 2.0, 30.0, 40.0],
        warnings=["several_faces"],
    )
    plain = record("b", "Bob")
    store.save(Catalog(images={face.sha256: face, plain.sha256: plain}))

    loaded = store.load()
    assert loaded.revision == 1
    assert loaded.images == {face.sha256: face, plain.sha256: plain}
    # Unicode is written as such, not as \\u escapes (the file is meant to be readable).
    assert "Zoë O'Neil" in store.catalog_path.read_text("utf-8")
    assert loaded.counts() == {"Zoë O'Neil": 1, "Bob": 1}
    assert list(loaded.by_label()) == ["Bob", "Zoë O'Neil"]


def test_each_save_bumps_the_revision(settings: Settings) -> None:
    store = saved_store(settings, {"A": 1})
    catalog = store.load()
    store.save(catalog)
    store.save(catalog)
    assert store.load().revision == 3


def test_unknown_record_fields_are_ignored(settings: Settings) -> None:
    """A catalog written by a newer version (extra keys) still loads."""
    rec = record("a", "A")
    raw = {"format": 1, "revision": 4, "images": {rec.sha256: {**rec.__dict__, "future": 1}}}
    store = DatasetStore(settings)
    store.root.mkdir(parents=True)
    store.catalog_path.write_text(json.dumps(raw), "utf-8")
    assert store.load().images == {rec.sha256: rec}
    assert store.load().revision == 4


def test_write_blob_is_content_addressed(settings: Settings) -> None:
    store = DatasetStore(settings)
    data = b"\x89PNG fake bytes"
    digest = hashlib.sha256(data).hexdigest()
    assert store.write_blob(digest, "png", data) is True
    path = store.blob_path(digest, "png")
    assert path == settings.home / "images" / digest[:2] / f"{digest}.png"
    assert path.read_bytes() == data
    assert store.write_blob(digest, "png", b"other") is False  # never overwritten
    assert path.read_bytes() == data
    assert store.path_of(record("x", "A")).name == f"{sha('x')}.png"


def test_rename_class_moves_every_image(settings: Settings) -> None:
    store = saved_store(settings, {"Marge": 3, "Homer": 2})
    assert store.rename_class("Marge", "  Marge Simpson ") == 3
    catalog = store.load()
    assert catalog.counts() == {"Marge Simpson": 3, "Homer": 2}
    assert catalog.revision == 2


def test_rename_class_to_an_existing_name_is_refused(settings: Settings) -> None:
    store = saved_store(settings, {"Marge": 3, "Homer": 2})
    with pytest.raises(DatasetError) as info:
        store.rename_class("Marge", "Homer")
    assert info.value.code == "dataset.class_exists"
    assert "Homer" in info.value.message
    assert store.load().counts() == {"Marge": 3, "Homer": 2}
    assert store.load().revision == 1  # nothing written


def test_rename_unknown_class_is_not_found(settings: Settings) -> None:
    store = saved_store(settings, {"Marge": 3, "Homer": 2})
    with pytest.raises(NotFound) as info:
        store.rename_class("Bart", "Lisa")
    assert info.value.code == "dataset.class_not_found"
    assert info.value.status == 404
    assert "Homer" in info.value.message and "Marge" in info.value.message  # lists what exists


@pytest.mark.parametrize("name", ["", "   ", "\t\n"])
def test_rename_to_an_empty_name_is_refused(settings: Settings, name: str) -> None:
    store = saved_store(settings, {"Marge": 3})
    with pytest.raises(DatasetError) as info:
        store.rename_class("Marge", name)
    assert info.value.code == "dataset.bad_class_name"
    assert store.load().counts() == {"Marge": 3}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[]",
        "null",
        '{"revision": 1}',
        '{"revision": 1, "images": []}',
        '{"revision": "x", "images": {}}',
        '{"revision": 1, "images": {"abc": {"sha256": "abc"}}}',
        '{"revision": 1, "images": {"abc": "not a record"}}',
    ],
)
def test_corrupt_catalog_is_a_dataset_error(settings: Settings, content: str) -> None:
    store = DatasetStore(settings)
    store.root.mkdir(parents=True)
    store.catalog_path.write_text(content, "utf-8")
    with pytest.raises(DatasetError) as info:
        store.load()
    assert info.value.code == "dataset.corrupt"
    assert str(store.catalog_path) in info.value.message


def test_catalog_with_invalid_utf8_is_a_dataset_error(settings: Settings) -> None:
    store = DatasetStore(settings)
    store.root.mkdir(parents=True)
    store.catalog_path.write_bytes(b'{"revision": 1, "images": {"\xff": 1}}')
    with pytest.raises(DatasetError) as info:
        store.load()
    assert info.value.code == "dataset.corrupt"


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Zoë O'Neil/2", "zoe-o-neil-2"), ("  Marge  Simpson ", "marge-simpson"), ("李小龍", "class")],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_removing_a_photo_when_the_object_store_is_away_still_removes_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The catalog no longer names the photo: the local file goes, the store's copy that
    could not be deleted is logged (and later deletions of the same batch still run)."""
    settings = Settings(
        home=tmp_path / "home",
        storage_url="s3://bucket/prefix",
        s3_endpoint_url="http://127.0.0.1:9",  # nothing listens there
        s3_access_key_id="key",
        s3_secret_access_key="secret",
    )
    store = DatasetStore(settings)
    rec = record("a", "Ada")
    store.write_blob(rec.sha256, rec.ext, b"photo")
    with caplog.at_level("WARNING", logger="lookalike.data.store"):
        store.remove_blob(rec)
    assert not store.path_of(rec).exists()
    assert "could not delete the object store's copy" in caplog.text
