"""Importing from zip archives (byte limits and bombs refused unread, damaged members) and CSV
/ TSV manifests (bad rows are that row's problem)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from support.imports import (
    cache_of,
    fast_import,
    png_bytes,
    problem_codes,
    put,
    refused,
)

from lookalike.config import Settings
from lookalike.data.importers import import_images
from lookalike.data.store import DatasetStore
from lookalike.vision.backbones import Backbone

# --- zip archives ----------------------------------------------------------------------------


def write_zip(path: Path, members: dict[str, bytes], stored: bool = False) -> Path:
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def damage_member(path: Path, name: str) -> None:
    """Flip bytes inside a stored member's data, so reading it fails its CRC check."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 10, start + 20):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("top", ["", "photos/"], ids=["flat", "wrapped"])
def test_zip_import(tmp_path: Path, orl: dict[str, list[Path]], face: Backbone, top: str) -> None:
    members = {
        f"{top}Ada/1.pgm": orl["s8"][0].read_bytes(),
        f"{top}Ada/2.pgm": orl["s8"][1].read_bytes(),
        f"{top}Bob/1.png": png_bytes(orl["s9"][0]),
        f"{top}Bob/2.png": png_bytes(orl["s9"][1]),
        f"{top}Bob/.DS_Store": b"junk",
        f"{top}.DS_Store": b"junk",
        # macOS Finder adds resource forks beside every file; none of them is an image.
        f"__MACOSX/{top}Ada/._1.pgm": b"\x00\x05\x16\x07 resource fork",
        f"__MACOSX/{top}Ada/1.pgm": b"\x00\x05\x16\x07 resource fork",
    }
    archive = write_zip(tmp_path / "people.zip", members)
    settings = Settings(home=tmp_path / "home")
    report = import_images(archive, settings, backbone=face)
    assert report.problems == []
    assert report.added == 4
    catalog = DatasetStore(settings).load()
    assert catalog.counts() == {"Ada": 2, "Bob": 2}
    assert {r.source for r in catalog.images.values()} == {
        f"{top}Ada/1.pgm",
        f"{top}Ada/2.pgm",
        f"{top}Bob/1.png",
        f"{top}Bob/2.png",
    }
    for rec in catalog.images.values():
        assert DatasetStore(settings).path_of(rec).read_bytes() == members[rec.source]
        assert rec.faces_found == 1
    assert cache_of(settings).count(face.key) == 4


def test_zip_file_outside_a_class_folder(tmp_path: Path, orl: dict[str, list[Path]]) -> None:
    archive = write_zip(
        tmp_path / "a.zip",
        {"Ada/1.pgm": orl["s1"][0].read_bytes(), "loose.pgm": orl["s1"][1].read_bytes()},
    )
    settings = Settings(home=tmp_path / "home")
    report = fast_import(archive, settings)
    assert problem_codes(report) == {"loose.pgm": ["import.not_in_class_folder"]}
    assert report.added == 1


def test_zip_member_over_the_byte_limit_is_refused_unread(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    settings = Settings(home=tmp_path / "home", max_image_bytes=50_000)
    archive = write_zip(
        tmp_path / "a.zip",
        {
            "Ada/1.pgm": orl["s1"][0].read_bytes(),
            "Ada/huge.png": bytes(60_000),
        },
        stored=True,
    )
    # Its data is damaged: had the importer read it, the CRC check would fail instead.
    damage_member(archive, "Ada/huge.png")
    report = fast_import(archive, settings)
    assert problem_codes(report) == {"Ada/huge.png": ["image.too_many_bytes"]}
    assert "max_image_bytes" in report.problems[0].message
    assert report.added == 1


def test_zip_bomb_member_is_refused(tmp_path: Path, orl: dict[str, list[Path]]) -> None:
    """32 MB of zeros (over the 15 MB default) deflate to ~32 KB; the declared size refuses it."""
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Ada/1.pgm", orl["s1"][0].read_bytes())
        with zf.open("Ada/bomb.png", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(32):
                member.write(chunk)
    assert archive.stat().st_size < 200_000
    settings = Settings(home=tmp_path / "home")
    report = fast_import(archive, settings)
    assert problem_codes(report) == {"Ada/bomb.png": ["image.too_many_bytes"]}
    assert report.added == 1


def test_damaged_zip_member_is_that_files_problem(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    archive = write_zip(
        tmp_path / "a.zip",
        {f"Ada/{i}.pgm": orl["s1"][i].read_bytes() for i in range(3)},
        stored=True,
    )
    damage_member(archive, "Ada/1.pgm")
    settings = Settings(home=tmp_path / "home")
    report = fast_import(archive, settings)
    assert problem_codes(report) == {"Ada/1.pgm": ["import.unreadable"]}
    assert report.added == 2


def test_not_a_zip(tmp_path: Path, settings: Settings) -> None:
    fake = put(tmp_path / "people.zip", b"this is not a zip archive")
    error = refused(fake, settings)
    assert error.code == "import.bad_zip"
    assert "people.zip" in error.message


# --- CSV manifests ---------------------------------------------------------------------------


@pytest.fixture
def manifest_dir(tmp_path: Path, orl: dict[str, list[Path]]) -> Path:
    folder = tmp_path / "data"
    put(folder / "photos" / "a1.pgm", orl["s10"][0].read_bytes())
    put(folder / "photos" / "a2.pgm", orl["s10"][1].read_bytes())
    put(folder / "photos" / "b 1.png", png_bytes(orl["s11"][0]))
    return folder


def test_csv_manifest_import(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text(
        "Path,Label\n"  # header names are case-insensitive
        "photos/a1.pgm,Ada\n"
        "photos/a2.pgm,  Ada \n"
        '"photos/b 1.png","Zoë O\'Neil"\n'
        "\n"
        "photos/missing.png,Bob\n"
        ",Bob\n"
        "photos/a1.pgm,\n",
        "utf-8",
    )
    settings = Settings(home=tmp_path / "home")
    report = fast_import(manifest, settings)
    assert report.added == 3
    assert problem_codes(report) == {
        "labels.csv:6": ["import.missing_file"],  # physical line numbers, blank line counted
        "labels.csv:7": ["import.bad_manifest"],
        "labels.csv:8": ["import.bad_label"],
    }
    assert "missing.png" in report.problems[0].message
    catalog = DatasetStore(settings).load()
    assert catalog.counts() == {"Ada": 2, "Zoë O'Neil": 1}
    assert {r.source for r in catalog.images.values()} == {
        "photos/a1.pgm",
        "photos/a2.pgm",
        "photos/b 1.png",
    }


def test_tsv_manifest_import(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.tsv"
    manifest.write_text("path\tlabel\nphotos/a1.pgm\tAda Lovelace\nphotos/b 1.png\tBob\n")
    settings = Settings(home=tmp_path / "home")
    report = fast_import(manifest, settings)
    assert report.problems == []
    assert DatasetStore(settings).load().counts() == {"Ada Lovelace": 1, "Bob": 1}


@pytest.mark.parametrize("content", ["file,name\nphotos/a1.pgm,Ada\n", "", "photos/a1.pgm\n"])
def test_manifest_without_path_and_label_columns(
    manifest_dir: Path, tmp_path: Path, content: str
) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text(content)
    settings = Settings(home=tmp_path / "home")
    error = refused(manifest, settings)
    assert error.code == "import.bad_manifest"
    assert "path" in error.message and "label" in error.message
    assert not DatasetStore(settings).catalog_path.exists()


def test_malformed_manifest_is_an_input_error(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text(f'path,label\nphotos/a1.pgm,Ada\n"{"x" * 200_000}",Bob\n')
    settings = Settings(home=tmp_path / "home")
    error = refused(manifest, settings)
    assert error.code == "import.bad_manifest"
    assert "near line 3" in error.message
    assert error.details == {"line": 3}


def test_manifest_row_with_a_nul_byte_is_that_rows_problem(
    manifest_dir: Path, tmp_path: Path
) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text("path,label\nphotos/a1.pgm,Ada\nphotos/a\x002.pgm,Ada\n")
    settings = Settings(home=tmp_path / "home")
    report = fast_import(manifest, settings)
    assert problem_codes(report) == {"labels.csv:3": ["import.bad_manifest"]}
    assert report.added == 1


def test_manifest_that_is_not_utf8(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_bytes("path,label\nphotos/a1.pgm,Zoë\n".encode("utf-16"))
    settings = Settings(home=tmp_path / "home")
    error = refused(manifest, settings)
    assert error.code == "import.bad_manifest"
    assert "UTF-8" in error.message
