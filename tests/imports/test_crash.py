"""Nothing half-imported: a crash or an interrupt midway, in one stream or in a parallel
worker, leaves the dataset as it was; a parallel import matches one stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.imports import (
    blob_files,
    cache_of,
    fast_import,
    png_bytes,
    png_folder,
    put,
)

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.store import DatasetStore
from lookalike.vision.backbones import Analysis, Backbone, TestBackbone

# --- nothing half-imported -------------------------------------------------------------------


class CrashingBackbone(TestBackbone):
    """A test double for a crash (out of memory, a killed worker) on the n-th image."""

    def __init__(
        self, settings: Settings | None, crash_on: int, message: str = "simulated crash"
    ) -> None:
        super().__init__(settings)
        self.calls = 0
        self.crash_on = crash_on
        self.message = message

    def analyze(self, rgb: np.ndarray, face_index: int | None = None) -> Analysis:
        self.calls += 1
        if self.calls == self.crash_on:
            raise RuntimeError(self.message)
        return super().analyze(rgb, face_index)


def all_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()}


def test_a_crash_midway_leaves_the_dataset_as_it_was(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    settings = Settings(home=tmp_path / "home")
    src = tmp_path / "src"
    png_folder(src / "Ada", orl["s1"][:3])
    first = fast_import(src, settings)
    assert first.added == 3
    store = DatasetStore(settings)
    catalog_before = store.catalog_path.read_bytes()
    blobs_before = blob_files(settings.home)
    files_before = all_files(settings.home)

    # Ada is already there (no analysis); Bob's 3rd photo crashes after two were stored.
    for person, label in (("s2", "Bob"), ("s3", "Cy")):
        png_folder(src / label, orl[person][:3])
    crashing = CrashingBackbone(settings, crash_on=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        import_images(src, settings, backbone=crashing)
    assert crashing.calls == 3

    assert store.catalog_path.read_bytes() == catalog_before
    assert blob_files(settings.home) == blobs_before  # earlier blobs intact, new ones gone
    assert {f for f in all_files(settings.home) if not f.startswith("cache/")} == {
        f for f in files_before if not f.startswith("cache/")
    }
    assert not list(settings.home.rglob("*.tmp"))

    # The next import finishes the job.
    again = fast_import(src, settings)
    assert (again.added, again.already_present) == (6, 3)
    assert store.load().counts() == {"Ada": 3, "Bob": 3, "Cy": 3}
    assert len(blob_files(settings.home)) == 9


def test_an_interrupt_midway_leaves_the_dataset_as_it_was(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    """Ctrl-C (here raised from the progress callback) is cleaned up like a crash."""
    settings = Settings(home=tmp_path / "home")
    src = tmp_path / "src"
    png_folder(src / "Dee", orl["s4"][:4])

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fast_import(src, settings, progress=interrupt)
    assert not DatasetStore(settings).catalog_path.exists()
    assert blob_files(settings.home) == {}


# --- parallel import ------------------------------------------------------------------------


def test_parallel_import_matches_one_stream(
    tmp_path: Path, orl: dict[str, list[Path]], face: Backbone
) -> None:
    """Two workers (each with its own face backbone) give the same dataset and embeddings,
    the same per-file report order, as one stream."""
    src = tmp_path / "src"
    for person in ("s3", "s4", "s5"):
        png_folder(src / person, orl[person][:4])
    put(src / "s3" / "not-an-image.jpg", b"hello")
    serial = Settings(home=tmp_path / "serial", embed_workers=1)
    parallel = Settings(home=tmp_path / "parallel", embed_workers=2)
    one = import_images(src, serial, backbone_name="face")
    two = import_images(src, parallel, backbone_name="face")
    assert (one.added, two.added) == (12, 12)
    assert [(p.source, p.code) for p in one.problems] == [(p.source, p.code) for p in two.problems]
    cat_one, cat_two = DatasetStore(serial).load(), DatasetStore(parallel).load()
    assert cat_one.images.keys() == cat_two.images.keys()
    key = face.key  # same settings that change embeddings -> same cache key
    a = cache_of(serial).get_many(key, list(cat_one.images))
    b = cache_of(parallel).get_many(key, list(cat_two.images))
    assert a.keys() == b.keys() and len(a) == 12
    for h in a:
        assert np.allclose(a[h].vector, b[h].vector, atol=1e-5)


class CrashOnThird(CrashingBackbone):
    """Registered test double: every instance crashes on its third image (a worker dying)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings, crash_on=3, message="simulated worker crash")


def test_a_crash_in_a_parallel_worker_leaves_the_dataset_as_it_was(
    tmp_path: Path, orl: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lookalike.vision import backbones

    backbones.list_backbones()  # registers the built-ins first
    monkeypatch.setitem(backbones._REGISTRY, "crash-on-third", (CrashOnThird, "test double"))
    settings = Settings(home=tmp_path / "home", embed_workers=2)
    first = tmp_path / "first"
    put(first / "a" / "1.png", png_bytes(orl["s1"][0]))
    assert import_images(first, settings, backbone_name="test").added == 1
    catalog_before = DatasetStore(settings).catalog_path.read_bytes()
    blobs_before = blob_files(settings.home)
    src = tmp_path / "src"
    for person in ("s2", "s3"):
        png_folder(src / person, orl[person][:5])
    with pytest.raises(RuntimeError, match="simulated worker crash"):
        import_images(src, settings, backbone_name="crash-on-third")
    assert DatasetStore(settings).catalog_path.read_bytes() == catalog_before
    assert blob_files(settings.home) == blobs_before
