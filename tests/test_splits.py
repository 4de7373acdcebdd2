"""Splits: stratified per class, seeded, and frozen - assignments never move, the test set grows
by versioned additions only."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.splits import SplitStore, target_counts
from lookalike.data.store import Catalog, DatasetStore, ImageRecord
from lookalike.errors import DatasetError
from lookalike.vision.backbones import TestBackbone


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def add(catalog: Catalog, label: str, start: int, stop: int) -> list[str]:
    """Add images ``label-start`` .. ``label-(stop-1)`` to ``catalog``; returns their hashes."""
    added = []
    for i in range(start, stop):
        h = sha(f"{label}-{i}")
        catalog.images[h] = ImageRecord(h, label, "png", f"{label}/{i}.png", 92, 112)
        added.append(h)
    return added


def catalog_of(counts: dict[str, int]) -> Catalog:
    catalog = Catalog()
    for label, n in counts.items():
        add(catalog, label, 0, n)
    return catalog


def subsets_of(assignments: Mapping[str, str], hashes: list[str]) -> dict[str, int]:
    out = {"train": 0, "val": 0, "test": 0}
    for h in hashes:
        out[assignments[h]] += 1
    return out


@pytest.mark.parametrize(
    ("n", "test", "val"), [(3, 1, 0), (4, 1, 1), (5, 1, 1), (10, 2, 2), (20, 4, 3), (41, 8, 6)]
)
def test_target_counts_follow_the_default_fractions(n: int, test: int, val: int) -> None:
    assert target_counts(n, Settings()) == (test, val)


def test_splits_are_stratified_per_class(settings: Settings) -> None:
    catalog = catalog_of({"Ada": 10, "Bob": 20, "Cy": 5})
    splits, too_few = SplitStore(settings).update(catalog)
    assert too_few == {}
    by_label = catalog.by_label()
    got = {
        label: subsets_of(splits.assignments, [r.sha256 for r in recs])
        for label, recs in by_label.items()
    }
    assert got == {
        "Ada": {"train": 6, "val": 2, "test": 2},
        "Bob": {"train": 13, "val": 3, "test": 4},
        "Cy": {"train": 3, "val": 1, "test": 1},
    }
    assert set(splits.assignments) == set(catalog.images)
    assert splits.test_version == 1
    assert splits.test_hashes() == splits.subset("test")
    assert len(splits.subset("test")) == 7


def test_fractions_come_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, test_fraction=0.3, val_fraction=0.1)
    catalog = catalog_of({"Ada": 10})
    splits, _ = SplitStore(settings).update(catalog)
    assert subsets_of(splits.assignments, list(catalog.images)) == {
        "train": 6,
        "val": 1,
        "test": 3,
    }
    no_val = Settings(home=tmp_path / "b", val_fraction=0)
    splits, _ = SplitStore(no_val).update(catalog)
    assert subsets_of(splits.assignments, list(catalog.images)) == {
        "train": 8,
        "val": 0,
        "test": 2,
    }


def test_splits_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    catalog = catalog_of({"Ada": 30, "Bob": 30})

    def assign(home: str, seed: int) -> dict[str, str]:
        store = SplitStore(Settings(home=tmp_path / home, seed=seed))
        return dict(store.update(catalog)[0].assignments)

    first, again, other = assign("a", 7), assign("b", 7), assign("c", 8)
    assert first == again
    # 30 images, 6 held out: the same 6 under another seed would be a 1-in-593,775 fluke.
    assert {h for h, s in first.items() if s == "test"} != {
        h for h, s in other.items() if s == "test"
    }


def test_the_seed_is_frozen_in_the_split_file(tmp_path: Path) -> None:
    catalog = catalog_of({"Ada": 10})
    SplitStore(Settings(home=tmp_path, seed=1)).update(catalog)
    # Changing the setting later does not re-draw anything: the file's seed is used.
    splits = SplitStore(Settings(home=tmp_path, seed=2)).load()
    assert splits.seed == 1


def test_small_classes_are_reported_and_left_out(settings: Settings) -> None:
    catalog = catalog_of({"Ada": 5, "Tiny": 2, "Solo": 1})
    splits, too_few = SplitStore(settings).update(catalog)
    assert too_few == {"Tiny": 2, "Solo": 1}
    assigned_labels = {catalog.images[h].label for h in splits.assignments}
    assert assigned_labels == {"Ada"}

    # Once it reaches min_images_per_class it is split like any other class.
    add(catalog, "Tiny", 2, 3)
    splits, too_few = SplitStore(settings).update(catalog)
    assert too_few == {"Solo": 1}
    tiny = [h for h, r in catalog.images.items() if r.label == "Tiny"]
    assert subsets_of(splits.assignments, tiny) == {"train": 2, "val": 0, "test": 1}


def test_min_images_per_class_comes_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, min_images_per_class=6)
    _, too_few = SplitStore(settings).update(catalog_of({"Ada": 5, "Bob": 6}))
    assert too_few == {"Ada": 5}


def test_adding_images_never_moves_existing_assignments(settings: Settings) -> None:
    store = SplitStore(settings)
    catalog = catalog_of({"Ada": 10, "Bob": 10})
    before, _ = store.update(catalog)
    old = dict(before.assignments)
    old_test = before.test_hashes()

    new_ada = add(catalog, "Ada", 10, 20)  # Ada doubles: she needs 2 more test images
    after, _ = store.update(catalog)
    assert {h: after.assignments[h] for h in old} == old
    assert set(after.assignments) == set(catalog.images)
    ada = [h for h, r in catalog.images.items() if r.label == "Ada"]
    assert subsets_of(after.assignments, ada) == {"train": 13, "val": 3, "test": 4}
    assert after.test_version == 2
    assert set(after.test_versions[-1].added) <= set(new_ada)
    assert len(after.test_versions[-1].added) == 2
    assert after.test_hashes(1) == old_test
    assert after.test_hashes() == old_test | set(after.test_versions[-1].added)


def test_a_new_class_adds_a_test_version_that_only_adds(settings: Settings) -> None:
    store = SplitStore(settings)
    catalog = catalog_of({"Ada": 10, "Bob": 10})
    first, _ = store.update(catalog)
    v1 = first.test_hashes()
    assert first.test_version == 1

    cy = add(catalog, "Cy", 0, 10)
    second, _ = store.update(catalog)
    assert second.test_version == 2
    assert second.test_hashes(1) == v1  # the old version is exactly as it was
    assert second.test_hashes(2) >= v1
    added = second.test_hashes(2) - v1
    assert added == set(second.test_versions[-1].added)
    assert added <= set(cy) and len(added) == 2

    # Reproducible from disk, by a fresh store (another process).
    reloaded = SplitStore(settings).load()
    assert reloaded.test_hashes(1) == v1
    assert reloaded.test_hashes(2) == second.test_hashes(2)
    assert reloaded.assignments == second.assignments
    assert reloaded.test_hashes(0) == set()


def test_an_unchanged_catalog_writes_nothing_new(settings: Settings) -> None:
    store = SplitStore(settings)
    catalog = catalog_of({"Ada": 10})
    store.update(catalog)
    before = store.path.read_bytes()
    splits, _ = store.update(catalog)
    assert splits.test_version == 1
    assert store.path.read_bytes() == before


@pytest.mark.parametrize("version", [2, 99, -1])
def test_unknown_test_version_is_a_dataset_error(settings: Settings, version: int) -> None:
    splits, _ = SplitStore(settings).update(catalog_of({"Ada": 10}))
    with pytest.raises(DatasetError) as info:
        splits.test_hashes(version)
    assert info.value.code == "dataset.unknown_test_version"
    assert "latest is 1" in info.value.message


def test_no_splits_yet_has_version_zero(settings: Settings) -> None:
    splits = SplitStore(settings).load()
    assert splits.test_version == 0
    assert splits.test_hashes() == set()
    with pytest.raises(DatasetError):
        splits.test_hashes(1)


@pytest.mark.parametrize(
    "content", ["{broken", "[]", '{"seed": 0}', '{"seed": 0, "assignments": {}}']
)
def test_corrupt_split_file_is_a_dataset_error(settings: Settings, content: str) -> None:
    store = SplitStore(settings)
    store.path.parent.mkdir(parents=True)
    store.path.write_text(content, "utf-8")
    with pytest.raises(DatasetError) as info:
        store.load()
    assert info.value.code == "dataset.corrupt"


def test_split_file_is_plain_sorted_json(settings: Settings) -> None:
    store = SplitStore(settings)
    store.update(catalog_of({"Ada": 4}))
    raw = json.loads(store.path.read_text("utf-8"))
    assert raw["seed"] == settings.seed
    assert list(raw["assignments"]) == sorted(raw["assignments"])
    assert [v["version"] for v in raw["test_versions"]] == [1]


def test_splits_of_an_imported_folder(
    settings: Settings, tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    """End to end with real images and the fast test backbone."""
    src = tmp_path / "src"
    for person, n in (("s1", 5), ("s2", 5), ("s3", 2)):
        (src / person).mkdir(parents=True)
        for photo in orl[person][:n]:
            shutil.copy(photo, src / person / photo.name)
    report = import_images(src, settings, backbone=TestBackbone(settings))
    assert report.added == 12
    catalog = DatasetStore(settings).load()
    splits, too_few = SplitStore(settings).update(catalog)
    assert too_few == {"s3": 2}
    for person in ("s1", "s2"):
        hashes = [r.sha256 for r in catalog.by_label()[person]]
        assert subsets_of(splits.assignments, hashes) == {"train": 3, "val": 1, "test": 1}
