"""The object store: atomic puts, safe keys, clear errors."""

from __future__ import annotations

import errno
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.errors import InvalidInput, NotFound
from lookalike.storage import ObjectStore, StorageUnavailable


@pytest.fixture
def store(settings: Settings) -> ObjectStore:
    return ObjectStore(settings)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_get_exists_delete(store: ObjectStore, settings: Settings) -> None:
    assert not store.exists("uploads/abc")
    store.put("uploads/abc", b"\xff\xd8jpeg bytes", "image/jpeg")
    assert store.exists("uploads/abc")
    assert store.get("uploads/abc") == b"\xff\xd8jpeg bytes"
    assert (
        Path(settings.home) / "objects" / "uploads" / "abc"
    ).read_bytes() == b"\xff\xd8jpeg bytes"
    store.put("uploads/abc", b"replaced", "image/png")  # overwrite is atomic too
    assert store.get("uploads/abc") == b"replaced"
    mtime = store.mtime("uploads/abc")
    assert mtime.tzinfo is not None and abs(mtime - datetime.now(UTC)) < timedelta(minutes=1)
    assert store.delete("uploads/abc") is True
    assert store.delete("uploads/abc") is False
    assert not store.exists("uploads/abc")


def test_missing_objects_are_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFound) as err:
        store.get("consented/nope")
    assert err.value.code == "storage.not_found" and err.value.status == 404
    assert err.value.details == {"key": "consented/nope"}
    with pytest.raises(NotFound):
        store.mtime("consented/nope")
    store.put("consented/dir/x", b"1")
    with pytest.raises(NotFound):
        store.get("consented/dir")  # a directory is not an object
    assert not store.exists("consented/dir")


def test_iter_keys_by_prefix(store: ObjectStore) -> None:
    assert list(store.iter_keys("uploads/")) == []  # nothing stored yet: no error
    for key in ["uploads/b", "uploads/a", "consented/0123abcd", "uploads2/c", "uploads/x/y.z"]:
        store.put(key, key.encode())
    assert list(store.iter_keys("uploads/")) == ["uploads/a", "uploads/b", "uploads/x/y.z"]
    assert list(store.iter_keys("uploads")) == [
        "uploads/a",
        "uploads/b",
        "uploads/x/y.z",
        "uploads2/c",
    ]
    assert list(store.iter_keys("consented/01")) == ["consented/0123abcd"]
    assert len(list(store.iter_keys())) == 5


def test_put_is_atomic_and_leaves_no_temporary_files(
    store: ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(settings.home) / "objects"
    store.put("uploads/a", b"old")
    threads = [
        threading.Thread(target=store.put, args=("uploads/a", bytes([i]) * 100_000))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = store.get("uploads/a")
    assert len(set(data)) == 1 and len(data) == 100_000  # one whole write won, never a mix
    assert _files(root) == ["uploads/a"]

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("lookalike.storage.os.replace", broken_replace)
    with pytest.raises(StorageUnavailable) as full:  # the one error shape: a clean 503
        store.put("uploads/a", b"new")
    assert full.value.status == 503 and full.value.details["reason"] == "disk_full"
    assert "the disk is full" in full.value.message
    assert store.get("uploads/a") == data  # the old object is intact
    assert _files(root) == ["uploads/a"]  # and the temporary file was removed


def test_temporary_files_are_not_listed(store: ObjectStore, settings: Settings) -> None:
    store.put("uploads/a", b"1")
    (Path(settings.home) / "objects" / "uploads" / ".a.123.tmp").write_bytes(b"partial")
    assert list(store.iter_keys("uploads/")) == ["uploads/a"]


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/abs",
        "a\x00b",
        "",
        "uploads/../../etc/passwd",
        "uploads/./a",
        "uploads//a",
        "uploads/",
        ".hidden",
        "uploads/.a.tmp",
        "a b",
        "a\\b",
        "é",
        "x" * 600,
    ],
)
def test_bad_keys_are_refused(store: ObjectStore, settings: Settings, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.mtime(key),
    ):
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.code == "storage.bad_key" and err.value.status == 400
    assert (
        not (Path(settings.home) / "objects").exists()
        or _files(Path(settings.home) / "objects") == []
    )


@pytest.mark.parametrize("prefix", ["../", "/abs", "a\x00b", "uploads/../", "//"])
def test_bad_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidInput) as err:
        list(store.iter_keys(prefix))
    assert err.value.code == "storage.bad_key"
