"""Helpers for the import tests (no tests here): files to import, what an import left."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.data.cache import EmbeddingCache
from lookalike.data.importers import ImportReport, import_images
from lookalike.data.store import Catalog
from lookalike.errors import InvalidInput
from lookalike.vision.backbones import TestBackbone


def png_bytes(photo: Path, width: int | None = None) -> bytes:
    with Image.open(photo) as opened:
        img = opened.copy()
    if width is not None:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png_folder(folder: Path, photos: list[Path]) -> Path:
    """``photos`` written as ``folder/<stem>.png``; returns ``folder``."""
    for photo in photos:
        put(folder / f"{photo.stem}.png", png_bytes(photo))
    return folder


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_files(home: Path) -> dict[str, bytes]:
    images = home / "images"
    if not images.exists():
        return {}
    return {str(p.relative_to(images)): p.read_bytes() for p in images.rglob("*") if p.is_file()}


def problem_codes(report: ImportReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.source, []).append(p.code)
    return out


def cache_of(settings: Settings) -> EmbeddingCache:
    return EmbeddingCache(settings.home / "cache" / "embeddings.sqlite")


@dataclass
class Imported:
    """An import done once per module and shared (read-only) by its tests."""

    settings: Settings
    src: Path
    report: ImportReport
    catalog: Catalog
    progress: list[tuple[int, int]]


def fast_import(source: Path, settings: Settings, **options: Any) -> ImportReport:
    """``import_images`` with the fast ``test`` backbone: only the plumbing is under test."""
    return import_images(source, settings, backbone=TestBackbone(settings), **options)


def refused(source: Path, settings: Settings) -> InvalidInput:
    """The ``InvalidInput`` that importing ``source`` (``test`` backbone) raises."""
    with pytest.raises(InvalidInput) as info:
        fast_import(source, settings)
    return info.value
