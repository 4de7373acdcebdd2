"""Stratified train/validation/test splits with a frozen, versioned test set.

An image, once assigned, keeps its subset forever: the test set only grows, by versioned
additions (new classes and new images get their own held-out share), so every model can be
evaluated on exactly the test set version it names, and two models on the same one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lookalike.config import Settings
from lookalike.data.store import Catalog, is_personal, now_iso
from lookalike.errors import DatasetError
from lookalike.fsutil import atomic_write_json, file_lock

Subset = Literal["train", "val", "test"]


@dataclass
class TestVersion:
    """One addition to the frozen test set (versions are cumulative)."""

    __test__ = False  # not a pytest class
    version: int
    created_at: str
    added: list[str]


@dataclass
class Splits:
    seed: int
    assignments: dict[str, Subset] = field(default_factory=dict)
    test_versions: list[TestVersion] = field(default_factory=list)

    @property
    def test_version(self) -> int:
        return self.test_versions[-1].version if self.test_versions else 0

    def test_hashes(self, version: int | None = None) -> set[str]:
        """The test set as it was at ``version`` (default: the latest)."""
        version = self.test_version if version is None else version
        if version > self.test_version or version < 0:
            raise DatasetError(
                f"Test set version {version} does not exist (latest is {self.test_version}).",
                code="dataset.unknown_test_version",
            )
        return {h for v in self.test_versions if v.version <= version for h in v.added}

    def subset(self, name: Subset) -> set[str]:
        return {h for h, s in self.assignments.items() if s == name}


def target_counts(n: int, settings: Settings) -> tuple[int, int]:
    """(test, val) image counts for a class of ``n`` images; the rest trains."""
    n_test = max(1, round(n * settings.test_fraction))
    rest = n - n_test
    n_val = max(1, round(n * settings.val_fraction)) if rest >= 3 and settings.val_fraction else 0
    return n_test, n_val


class SplitStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.data_dir.splits
        self.lock_path = settings.data_dir.splits_lock

    def load(self) -> Splits:
        if not self.path.exists():
            return Splits(seed=self.settings.seed)
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return Splits(
                seed=int(raw["seed"]),
                assignments=dict(raw["assignments"]),
                test_versions=[TestVersion(**v) for v in raw["test_versions"]],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(
                f"The split file {self.path} is unreadable ({exc}). Restore it from a backup;"
                " deleting it re-draws every split and starts a new test set.",
                code="dataset.corrupt",
            ) from exc

    def forget(self, hashes: set[str]) -> int:
        """Drop deleted images' assignments (training-only images: a frozen test set never
        loses one). Returns how many were dropped."""
        with file_lock(self.lock_path):
            splits = self.load()
            tested = {h for v in splits.test_versions for h in v.added}
            gone = (hashes & set(splits.assignments)) - tested
            if not gone:
                return 0
            for h in gone:
                del splits.assignments[h]
            self._write(splits)
            return len(gone)

    def _write(self, splits: Splits) -> None:
        atomic_write_json(
            self.path,
            {
                "seed": splits.seed,
                "assignments": dict(sorted(splits.assignments.items())),
                "test_versions": [v.__dict__ for v in splits.test_versions],
            },
        )

    def update(self, catalog: Catalog) -> tuple[Splits, dict[str, int]]:
        """Assign every unassigned image of every large-enough class; freeze test additions.

        Returns the splits and the classes left out for having too few images (name -> count).
        """
        with file_lock(self.lock_path):
            splits = self.load()
            too_few: dict[str, int] = {}
            new_test: list[str] = []
            changed = False
            for label, records in catalog.by_label().items():
                hashes = [r.sha256 for r in records]
                if len(hashes) < self.settings.min_images_per_class:
                    too_few[label] = len(hashes)
                    continue
                # Personal photos (visitors', contributors') always train: the test set
                # stays the operator's photos, and never loses one to a deletion.
                for r in records:
                    if r.sha256 not in splits.assignments and is_personal(r.source):
                        splits.assignments[r.sha256] = "train"
                        changed = True
                hashes = [r.sha256 for r in records if not is_personal(r.source)]
                fresh = [h for h in hashes if h not in splits.assignments]
                if not fresh:
                    continue
                changed = True
                # Seeded by (seed, class) so adding one class never reshuffles another.
                digest = hashlib.sha256(f"{splits.seed}:{label}".encode()).digest()
                rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
                fresh = [fresh[i] for i in rng.permutation(len(fresh))]
                want_test, want_val = target_counts(len(hashes), self.settings)
                have = [splits.assignments[h] for h in hashes if h in splits.assignments]
                need_test = max(0, want_test - have.count("test"))
                need_val = max(0, want_val - have.count("val"))
                for h in fresh:
                    if need_test:
                        splits.assignments[h] = "test"
                        new_test.append(h)
                        need_test -= 1
                    elif need_val:
                        splits.assignments[h] = "val"
                        need_val -= 1
                    else:
                        splits.assignments[h] = "train"
            if new_test:
                splits.test_versions.append(
                    TestVersion(splits.test_version + 1, now_iso(), sorted(new_test))
                )
            if changed:
                self._write(splits)
            return splits, too_few
