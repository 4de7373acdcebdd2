"""Problems found while importing, file by file (no face, not an image, too small, two faces,
a conflict, too large), with messages that say what to do, and sources that cannot be imported
at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.imports import (
    Imported,
    blob_files,
    cache_of,
    fast_import,
    jpeg_bytes,
    png_bytes,
    problem_codes,
    put,
    refused,
    sha,
)

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.store import DatasetStore
from lookalike.vision.backbones import Backbone, TestBackbone

# --- problems, file by file ------------------------------------------------------------------

LONG_NAME = "x" * 101


@pytest.fixture(scope="module")
def messy(
    tmp_path_factory: pytest.TempPathFactory,
    orl: dict[str, list[Path]],
    nonfaces: dict[str, np.ndarray],
    two_faces_png: Path,
    face: Backbone,
) -> Imported:
    root = tmp_path_factory.mktemp("messy")
    src = root / "src"
    ada = [put(src / "Ada" / f"{p.stem}.png", png_bytes(p)) for p in orl["s1"][:3]]
    put(src / "Ada" / "coffee.jpg", jpeg_bytes(nonfaces["coffee"]))
    put(src / "Ada" / "notes.jpg", b"Shopping list:\n- milk\n- eggs\n")
    put(src / "Ada" / "empty.jpg", b"")
    put(src / "Ada" / "tiny.png", png_bytes(orl["s1"][5], width=16))
    put(src / "Ada" / ".DS_Store", b"junk")
    put(src / "Pair" / "two_faces.png", two_faces_png.read_bytes())
    for photo in orl["s2"][:2]:
        put(src / "Pair" / photo.name, photo.read_bytes())
    put(src / "Dup" / "copy.png", ada[0].read_bytes())  # the same photo in another class
    put(src / "stray.jpg", jpeg_bytes(np.asarray(Image.open(orl["s3"][0]).convert("RGB"))))
    put(src / ".hidden" / "a.png", png_bytes(orl["s3"][1]))
    put(src / LONG_NAME / "a.png", png_bytes(orl["s3"][2]))

    settings = Settings(home=root / "home")
    report = import_images(src, settings, backbone=face)
    return Imported(settings, src, report, DatasetStore(settings).load(), [])


def test_problems_are_reported_per_file(messy: Imported) -> None:
    codes = problem_codes(messy.report)
    codes.pop("Ada/tiny.png")
    tiny = [p for p in messy.report.problems if p.source == "Ada/tiny.png"]
    # A 16 px face: not found, or found and refused as too small (maybe also blurry).
    assert [p.code for p in tiny if p.severity == "error"] in (["no_face"], ["too_small"])
    assert {p.code for p in tiny if p.severity == "warning"} <= {"blurry"}
    assert codes == {
        "Ada/coffee.jpg": ["no_face"],
        "Ada/notes.jpg": ["image.not_an_image"],
        "Ada/empty.jpg": ["image.empty"],
        "Pair/two_faces.png": ["several_faces"],
        "Dup/copy.png": ["conflicting_label"],
        "stray.jpg": ["import.not_in_class_folder"],
        f"{LONG_NAME}/": ["import.bad_label"],
    }
    severity = {p.source: p.severity for p in messy.report.problems if p not in tiny}
    assert severity.pop("Pair/two_faces.png") == "warning"
    assert set(severity.values()) == {"error"}
    assert messy.report.rejected == 7
    assert messy.report.added == 6
    assert messy.report.classes == {"Ada": 3, "Pair": 3}


def test_problem_messages_say_what_to_do(messy: Imported) -> None:
    messages = {p.source: p.message for p in messy.report.problems}
    assert "face" in messages["Ada/coffee.jpg"]
    assert "'Ada'" in messages["Dup/copy.png"]  # names the class that already has it
    assert "class folder" in messages["stray.jpg"]
    assert "at most 100" in messages[f"{LONG_NAME}/"]


def test_rejected_files_are_neither_stored_nor_cached(
    messy: Imported, nonfaces: dict[str, np.ndarray], face: Backbone
) -> None:
    catalog = messy.catalog
    assert catalog.counts() == {"Ada": 3, "Pair": 3}
    sources = {r.source for r in catalog.images.values()}
    assert sources == {"Ada/1.png", "Ada/2.png", "Ada/3.png"} | {
        "Pair/two_faces.png",
        "Pair/1.pgm",
        "Pair/2.pgm",
    }
    blobs = blob_files(messy.settings.home)
    assert len(blobs) == 6
    assert {name.split("/")[1].split(".")[0] for name in blobs} == set(catalog.images)
    coffee = sha((messy.src / "Ada" / "coffee.jpg").read_bytes())
    assert not any(coffee in name for name in blobs)
    assert cache_of(messy.settings).count(face.key) == 6


def test_two_faces_are_imported_with_a_warning(messy: Imported, two_faces_png: Path) -> None:
    rec = messy.catalog.images[sha(two_faces_png.read_bytes())]
    assert rec.label == "Pair"
    assert rec.faces_found == 2
    assert rec.face_index == 0
    assert rec.warnings == ["several_faces"]
    with Image.open(two_faces_png) as img:
        assert (rec.width, rec.height) == img.size
    assert rec.face_box is not None
    # The face used lies on one side of the picture, not across both.
    x, _, w, _ = rec.face_box
    assert x + w < rec.width / 2 + 10 or x > rec.width / 2 - 10


def test_same_image_already_in_another_class_is_a_conflict(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    settings = Settings(home=tmp_path / "home")
    backbone = TestBackbone(settings)
    put(tmp_path / "a" / "Marge" / "1.pgm", orl["s1"][0].read_bytes())
    import_images(tmp_path / "a", settings, backbone=backbone)
    put(tmp_path / "b" / "Homer" / "1.pgm", orl["s1"][0].read_bytes())
    report = import_images(tmp_path / "b", settings, backbone=backbone)
    assert problem_codes(report) == {"Homer/1.pgm": ["conflicting_label"]}
    assert report.added == 0
    assert DatasetStore(settings).load().counts() == {"Marge": 1}


def test_oversized_file_in_a_folder_is_refused(tmp_path: Path, orl: dict[str, list[Path]]) -> None:
    settings = Settings(home=tmp_path / "home", max_image_bytes=5_000)
    put(tmp_path / "src" / "A" / "big.pgm", orl["s1"][0].read_bytes())  # 10 KB
    report = fast_import(tmp_path / "src", settings)
    assert problem_codes(report) == {"A/big.pgm": ["image.too_many_bytes"]}
    assert report.added == 0


# --- sources that cannot be imported at all --------------------------------------------------


def test_nonexistent_source(tmp_path: Path, settings: Settings) -> None:
    error = refused(tmp_path / "nope", settings)
    assert error.code == "import.not_found"
    message = error.message
    assert "does not exist" in message
    assert "folder" in message and ".zip" in message and "CSV" in message
    assert not settings.home.joinpath("dataset.json").exists()


def test_unsupported_source(tmp_path: Path, settings: Settings) -> None:
    tarball = put(tmp_path / "people.tar.gz", b"\x1f\x8b not really")
    error = refused(tarball, settings)
    assert error.code == "import.unsupported_source"
    assert "people.tar.gz" in error.message
    assert ".zip" in error.message and "folder" in error.message


def test_too_many_files(tmp_path: Path, orl: dict[str, list[Path]]) -> None:
    for photo in orl["s1"][:3]:
        put(tmp_path / "src" / "A" / photo.name, photo.read_bytes())
    settings = Settings(home=tmp_path / "home", max_import_files=2)
    error = refused(tmp_path / "src", settings)
    assert error.code == "import.too_many_files"
    assert "max_import_files" in error.message
