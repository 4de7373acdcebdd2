"""Importing labelled images from a folder per class: real ORL photos with the real ``face``
backbone (loaded once: ``conftest.py``), the report, the records, blobs named by
SHA-256, the cached embeddings; importing again adds nothing; hidden and system files are
ignored."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from support.imports import (
    Imported,
    blob_files,
    cache_of,
    png_bytes,
    png_folder,
    put,
    sha,
)

from lookalike.config import Settings
from lookalike.data.embed import Embedder
from lookalike.data.importers import import_images
from lookalike.data.store import DatasetStore
from lookalike.vision.backbones import Backbone
from lookalike.vision.images import read_image

# --- a clean folder-per-class import (shared, read-only) -------------------------------------

ZOE_NFD = unicodedata.normalize("NFD", "Zoë O'Neil")  # as macOS writes folder names


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, orl: dict[str, list[Path]], face: Backbone
) -> Imported:
    """4 ORL people x 4 photos, as PNG or PGM, in folders with display names."""
    root = tmp_path_factory.mktemp("clean")
    src = root / "people"
    for folder, person, as_png in (
        (ZOE_NFD, "s1", True),
        ("Ada Lovelace", "s2", False),
        ("Bob", "s3", True),
        ("Chen   Wei", "s4", False),  # runs of spaces collapse to one
    ):
        for photo in orl[person][:4]:
            if as_png:
                put(src / folder / f"{photo.stem}.png", png_bytes(photo))
            else:
                put(src / folder / photo.name, photo.read_bytes())
    # Things a file manager leaves behind, which are not part of the dataset.
    put(src / "Bob" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    put(src / "Bob" / "Thumbs.db", b"junk")
    put(src / ".thumbnails" / "x.png", png_bytes(orl["s5"][0]))
    put(src / ".DS_Store", b"junk")

    settings = Settings(home=root / "home")
    progress: list[tuple[int, int]] = []
    report = import_images(
        src, settings, backbone=face, progress=lambda done, total: progress.append((done, total))
    )
    return Imported(settings, src, report, DatasetStore(settings).load(), progress)


LABELS = {"Zoë O'Neil", "Ada Lovelace", "Bob", "Chen Wei"}


def test_folder_import_report(imported: Imported) -> None:
    report = imported.report
    assert report.problems == []
    assert report.added == 16
    assert report.seen == 16
    assert report.already_present == 0
    assert report.rejected == 0
    assert report.classes == {label: 4 for label in LABELS}
    assert imported.progress[-1] == (16, 16)
    assert [done for done, _ in imported.progress] == list(range(1, 17))


def test_folder_import_records(imported: Imported, face: Backbone) -> None:
    catalog = imported.catalog
    assert catalog.revision == 1
    assert catalog.counts() == {label: 4 for label in LABELS}
    # The display name is the folder name, NFC-normalised (a lookup by the typed name works).
    assert "Zoë O'Neil" in catalog.by_label()
    assert ZOE_NFD not in catalog.by_label()
    for sha256, rec in catalog.images.items():
        assert rec.sha256 == sha256
        assert (rec.width, rec.height) == (92, 112)
        assert rec.ext == ("png" if rec.source.endswith(".png") else "ppm")
        assert rec.faces_found == 1
        assert rec.face_index == 0
        assert rec.face_box is not None
        x, y, w, h = rec.face_box
        assert w >= face.settings.min_face_size and h >= face.settings.min_face_size
        assert 0 <= x + w / 2 <= 92 and 0 <= y + h / 2 <= 112
        assert rec.warnings == []
        assert not rec.source.startswith(".")
        # The source is the path inside the imported folder, and its bytes are the record's.
        assert sha((imported.src / rec.source).read_bytes()) == sha256


def test_folder_import_blobs_are_named_by_sha256(imported: Imported) -> None:
    store = DatasetStore(imported.settings)
    blobs = blob_files(imported.settings.home)
    assert len(blobs) == 16  # no temporary or stray files beside them
    for rec in imported.catalog.images.values():
        path = store.path_of(rec)
        assert path.parent.name == rec.sha256[:2]
        data = path.read_bytes()
        assert sha(data) == rec.sha256
        assert data == (imported.src / rec.source).read_bytes()  # original bytes, not re-encoded


def test_folder_import_caches_the_embeddings(imported: Imported, face: Backbone) -> None:
    cache = cache_of(imported.settings)
    assert cache.count(face.key) == 16
    assert cache.count() == 16
    hits = cache.get_many(face.key, list(imported.catalog.images))
    assert len(hits) == 16
    for hit in hits.values():
        assert hit.vector.shape == (face.dim,)
        assert np.isclose(np.linalg.norm(hit.vector), 1.0, atol=1e-5)
        assert hit.meta["faces_found"] == 1 and hit.meta["face_index"] == 0
    # The cached vector is what the backbone computes for the stored file.
    rec = next(iter(imported.catalog.images.values()))
    path = DatasetStore(imported.settings).path_of(rec)
    fresh = face.analyze(read_image(path, imported.settings).rgb).vector
    assert np.allclose(hits[rec.sha256].vector, fresh, atol=1e-5)
    # So training finds every embedding cached and computes none.
    store = DatasetStore(imported.settings)
    files = {r.sha256: store.path_of(r) for r in imported.catalog.images.values()}
    result = Embedder(face, cache).embed_files(files)
    assert result.computed == 0 and result.failures == {} and len(result.vectors) == 16


def test_same_person_is_closer_than_another(imported: Imported, face: Backbone) -> None:
    """A sanity check that what was cached is an identity embedding of the right face."""
    cache = cache_of(imported.settings)
    by_label = imported.catalog.by_label()
    vec = {
        label: np.stack([cache.get_many(face.key, [r.sha256])[r.sha256].vector for r in recs])
        for label, recs in by_label.items()
    }
    zoe, bob = vec["Zoë O'Neil"], vec["Bob"]
    same = (zoe @ zoe.T)[np.triu_indices(4, 1)].mean()
    other = (zoe @ bob.T).mean()
    assert same > other + 0.2


# --- idempotence -----------------------------------------------------------------------------


def test_reimport_adds_nothing_and_leaves_the_catalog_alone(
    tmp_path: Path, orl: dict[str, list[Path]], face: Backbone
) -> None:
    src = tmp_path / "src"
    for person in ("s6", "s7"):
        png_folder(src / person, orl[person][:3])
    settings = Settings(home=tmp_path / "home")
    first = import_images(src, settings, backbone=face)
    assert first.added == 6
    store = DatasetStore(settings)
    catalog_bytes = store.catalog_path.read_bytes()
    blobs = blob_files(settings.home)

    second = import_images(src, settings, backbone=face)
    assert second.added == 0
    assert second.already_present == 6
    assert second.problems == []
    assert second.classes == {}
    assert store.catalog_path.read_bytes() == catalog_bytes  # not even the revision moved
    assert blob_files(settings.home) == blobs
    assert cache_of(settings).count() == 6

    # One new photo: only it is added.
    put(src / "s7" / "new.png", png_bytes(orl["s7"][5]))
    third = import_images(src, settings, backbone=face)
    assert (third.added, third.already_present) == (1, 6)
    assert store.load().revision == 2
    assert store.load().counts() == {"s6": 3, "s7": 4}


def test_hidden_and_system_files_are_ignored(imported: Imported) -> None:
    sources = [r.source for r in imported.catalog.images.values()]
    assert len(sources) == 16
    assert not any(".thumbnails" in s or "DS_Store" in s or "Thumbs" in s for s in sources)
    assert imported.report.problems == []
