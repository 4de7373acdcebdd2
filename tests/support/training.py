"""Data dirs for the training, inference and retraining tests (no tests here).

``orl_face_template``: ``KNOWN`` x 8 real ORL photos + ``TINY`` imported with the real ``face``
backbone, once per test session (importing is the slow part: face detection + embedding);
every module that needs it works on its own copy (``copy_home``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lookalike.config import Settings
from lookalike.data.importers import ImportReport, import_images
from lookalike.inference import Predictor
from lookalike.training.train import TrainReport

Orl = dict[str, list[Path]]

KNOWN = [f"s{i}" for i in range(1, 13)]  # the 12 people the face model is trained on
IMPORTED = slice(0, 8)  # photos 1-8 of each are imported; 9 and 10 are never seen
TINY = "Tiny"  # a class with 2 photos: below min_images_per_class (3)

FaceModel = tuple[Settings, TrainReport, Predictor]  # the ``face_model`` fixture (conftest.py)

_TEMPLATE: dict[str, tuple[Path, ImportReport]] = {}


def class_folders(dest: Path, photos: dict[str, list[Path]]) -> Path:
    """``dest/<class>/<photo>`` copies; returns ``dest``."""
    for label, paths in photos.items():
        folder = dest / label
        folder.mkdir(parents=True, exist_ok=True)
        for p in paths:
            shutil.copy(p, folder / p.name)
    return dest


def orl_face_template(factory: pytest.TempPathFactory, orl: Orl) -> tuple[Path, ImportReport]:
    """A data dir with ``KNOWN`` x 8 ORL photos + ``TINY`` imported with the face backbone.

    Built once per session; callers copy it (``copy_home``) and never change it."""
    if "home" not in _TEMPLATE:
        root = factory.mktemp("orl_face_template")
        photos = {p: orl[p][IMPORTED] for p in KNOWN} | {TINY: orl["s13"][:2]}
        source = class_folders(root / "source", photos)
        home = root / "home"
        report = import_images(source, Settings(home=home, backbone="face"))
        _TEMPLATE["home"] = (home, report)
    return _TEMPLATE["home"]


def copy_home(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def quick_import(settings: Settings, tmp_path: Path, photos: dict[str, list[Path]]) -> None:
    """Import ``photos`` (``{class: paths}``) from class folders under ``tmp_path``."""
    source = class_folders(tmp_path / "source", photos)
    report = import_images(source, settings)
    assert report.added == sum(len(v) for v in photos.values())
