"""Dataset checks over the embeddings (``lookalike check``): ORL faces with problems put in
on purpose are flagged with the right kind, reason and suggestion; clean photos are not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from support.cli import run

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.review import DATASET_CHECKS, check_and_report, review_dataset

Orl = dict[str, list[Path]]


@pytest.fixture(scope="module")
def flawed(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Settings:
    """s1-s4 with 6 photos each, plus: s2's photo 8 filed under s1 (mislabelled); s3's photo
    1 again as a PNG (the same pixels: a near-duplicate, not a byte duplicate); s5 with only
    2 photos (underrepresented)."""
    root = tmp_path_factory.mktemp("review")
    source = root / "source"
    for person in ("s1", "s2", "s3", "s4"):
        (source / person).mkdir(parents=True)
        for photo in orl[person][:6]:
            shutil.copy(photo, source / person / photo.name)
    shutil.copy(orl["s2"][7], source / "s1" / "from-s2.pgm")
    Image.open(orl["s3"][0]).save(source / "s3" / "again.png")
    (source / "s5").mkdir()
    for photo in orl["s5"][:2]:
        shutil.copy(photo, source / "s5" / photo.name)
    settings = Settings(home=root / "home", backbone="face")
    report = import_images(source, settings)
    assert report.added == 4 * 6 + 2 + 2
    return settings


def test_injected_problems_are_flagged_with_a_reason(flawed: Settings) -> None:
    review = review_dataset(flawed)
    assert review.images == 28 and review.classes == 5
    by_kind = {kind: [f for f in review.flags if f.kind == kind] for kind in DATASET_CHECKS}

    dupes = by_kind["near_duplicate"]
    assert [f.label for f in dupes] == ["s3"] and "near-duplicate of" in dupes[0].reason
    assert {dupes[0].source} <= {"s3/again.png", "s3/1.pgm"}

    moved = [f for f in by_kind["closer_to_another_class"] if f.source == "s1/from-s2.pgm"]
    assert moved and moved[0].suggested_label == "s2"
    assert "closer to 's2'" in moved[0].reason
    # The worst flag of the kind is the planted one, and clean photos are hardly flagged.
    assert by_kind["closer_to_another_class"][0].source == "s1/from-s2.pgm"
    assert len(by_kind["closer_to_another_class"]) <= 2

    small = by_kind["class_imbalance"]
    assert [f.label for f in small] == ["s5"] and small[0].sha256 is None
    assert "2 photos against 6" in small[0].reason

    outliers = by_kind["outlier"]
    assert outliers and outliers[0].source == "s1/from-s2.pgm"  # the worst one
    assert len(outliers) <= 2
    assert all(np.isfinite(f.score) for f in review.flags)
    assert review.counts()["near_duplicate"] == 1


def test_a_clean_dataset_is_not_flagged(tmp_path: Path, orl: Orl) -> None:
    source = tmp_path / "source"
    for person in ("s6", "s7", "s8"):
        (source / person).mkdir(parents=True)
        for photo in orl[person][:6]:
            shutil.copy(photo, source / person / photo.name)
    settings = Settings(home=tmp_path / "home", backbone="face")
    import_images(source, settings)
    review = review_dataset(settings)
    assert review.counts()["near_duplicate"] == 0
    assert review.counts()["class_imbalance"] == 0
    assert review.counts()["closer_to_another_class"] <= 1
    assert review.counts()["outlier"] <= 1


def test_the_command_prints_the_problems_and_writes_a_report(flawed: Settings) -> None:
    proc = run("check", "--home", flawed.home)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Problems (28 photos, 5 classes)" in out
    assert "s1/from-s2.pgm" in out and "-> s2?" in out
    report = flawed.data_dir.reports / "dataset-check.json"
    assert report.is_file() and '"near_duplicate": 1' in report.read_text().replace("\n", "")


def test_an_import_ends_with_the_checks_summary(tmp_path: Path, orl: Orl) -> None:
    source = tmp_path / "source"
    for person in ("s9", "s10"):
        (source / person).mkdir(parents=True)
        for photo in orl[person][:4]:
            shutil.copy(photo, source / person / photo.name)
    Image.open(orl["s9"][0]).save(source / "s9" / "again.png")
    proc = run("import", source, "--home", tmp_path / "home", "--backbone", "face")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Checks: 1 near duplicate" in out and "lookalike check" in out


def test_photo_problems_and_confident_learning(tmp_path: Path, orl: Orl) -> None:
    """s11-s14 with 6 photos each, plus under s11: two people side by side, a heavily
    blurred photo, a dark one, and s12's photo 8 (mislabelled)."""
    source = tmp_path / "source"
    for person in ("s11", "s12", "s13", "s14"):
        (source / person).mkdir(parents=True)
        for photo in orl[person][:6]:
            shutil.copy(photo, source / person / photo.name)
    grey = [np.asarray(Image.open(orl[p][8])) for p in ("s11", "s13")]
    Image.fromarray(np.hstack(grey)).save(source / "s11" / "two.png")
    Image.open(orl["s11"][7]).filter(ImageFilter.GaussianBlur(3)).save(source / "s11" / "blur.png")
    dark = (np.asarray(Image.open(orl["s11"][6])) * 0.25).astype(np.uint8)
    Image.fromarray(dark).save(source / "s11" / "dark.png")
    shutil.copy(orl["s12"][7], source / "s11" / "from-s12.pgm")
    from skimage import data as sky  # galaxies the detector takes for two faces

    Image.fromarray(sky.hubble_deep_field()).save(source / "s11" / "sky.png")
    settings = Settings(home=tmp_path / "home", backbone="face")
    assert import_images(source, settings).added == 4 * 6 + 5

    review = review_dataset(settings)
    assert review.skipped == {}  # cleanlab is installed here (the quality extra)
    worst = {kind: [f.source for f in review.flags if f.kind == kind] for kind in DATASET_CHECKS}
    # Two people rank above two spurious "faces"; the sky's face is doubtful.
    assert worst["several_faces"] == ["s11/two.png", "s11/sky.png"]
    assert worst["doubtful_face"] == ["s11/sky.png"]
    assert worst["blurred"] == ["s11/blur.png"]
    assert worst["too_dark"] == ["s11/dark.png"]
    assert worst["too_small"] == []
    mislabelled = [f for f in review.flags if f.kind == "likely_mislabelled"]
    assert mislabelled and mislabelled[0].source == "s11/from-s12.pgm"  # the worst one
    assert mislabelled[0].suggested_label == "s12" and "never saw it" in mislabelled[0].reason
    assert len(mislabelled) <= 3  # the planted one, the two-face photo, hardly any clean one


def test_a_check_that_cannot_run_says_why(tmp_path: Path, orl: Orl) -> None:
    source = tmp_path / "source"
    for person, n in (("s15", 3), ("s16", 1)):
        (source / person).mkdir(parents=True)
        for photo in orl[person][:n]:
            shutil.copy(photo, source / person / photo.name)
    settings = Settings(home=tmp_path / "home", backbone="face")
    import_images(source, settings)
    review = check_and_report(settings)
    why = review.skipped["likely_mislabelled"]
    assert "at least 2 photos each" in why and "s16" in why
    report = json.loads(settings.data_dir.dataset_check.read_text())
    assert report["skipped"] == {"likely_mislabelled": why} and report["written_at"]
    assert report["counts"]["likely_mislabelled"] == 0
    proc = run("check", "--home", settings.home)
    assert proc.returncode == 0 and "skipped" in proc.stdout, proc.stdout + proc.stderr


def test_the_checks_never_fork(flawed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """They run inside the web service's job worker after a retrain: a process forked from a
    threaded server can deadlock (cleanlab forks a pool unless told not to)."""
    import os

    def no_fork() -> int:
        raise AssertionError("a dataset check forked a process")

    monkeypatch.setattr(os, "fork", no_fork)
    review = review_dataset(flawed)
    assert "likely_mislabelled" not in review.skipped
    assert any(f.kind == "likely_mislabelled" for f in review.flags)
