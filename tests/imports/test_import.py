"""Importing labelled images: folders, zips and manifests of real photos, with per-file problems.

The real ``face`` backbone runs where faces matter (one backbone, loaded once per module); the
fast ``test`` backbone where only the plumbing is under test.
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.config import Settings
from lookalike.data.cache import EmbeddingCache
from lookalike.data.importers import ImportReport, import_images
from lookalike.data.store import Catalog, DatasetStore
from lookalike.errors import InvalidInput
from lookalike.vision.backbones import Analysis, Backbone, TestBackbone, create_backbone
from lookalike.vision.embed import Embedder
from lookalike.vision.images import read_image

# --- helpers ---------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def face(tmp_path_factory: pytest.TempPathFactory) -> Backbone:
    """The real face backbone, loaded once (it folds its model into its own data dir)."""
    backbone = create_backbone("face", Settings(home=tmp_path_factory.mktemp("face-backbone")))
    backbone.load()
    return backbone


# --- a clean folder-per-class import (shared, read-only) -------------------------------------

ZOE_NFD = unicodedata.normalize("NFD", "Zoë O'Neil")  # as macOS writes folder names


@dataclass
class Imported:
    settings: Settings
    src: Path
    report: ImportReport
    catalog: Catalog
    progress: list[tuple[int, int]]


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
        for photo in orl[person][:3]:
            put(src / person / f"{photo.stem}.png", png_bytes(photo))
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
    report = import_images(tmp_path / "src", settings, backbone=TestBackbone(settings))
    assert problem_codes(report) == {"A/big.pgm": ["image.too_many_bytes"]}
    assert report.added == 0


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
    report = import_images(archive, settings, backbone=TestBackbone(settings))
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
    report = import_images(archive, settings, backbone=TestBackbone(settings))
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
    report = import_images(archive, settings, backbone=TestBackbone(settings))
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
    report = import_images(archive, settings, backbone=TestBackbone(settings))
    assert problem_codes(report) == {"Ada/1.pgm": ["import.unreadable"]}
    assert report.added == 2


def test_not_a_zip(tmp_path: Path, settings: Settings) -> None:
    fake = put(tmp_path / "people.zip", b"this is not a zip archive")
    with pytest.raises(InvalidInput) as info:
        import_images(fake, settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.bad_zip"
    assert "people.zip" in info.value.message


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
    report = import_images(manifest, settings, backbone=TestBackbone(settings))
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
    report = import_images(manifest, settings, backbone=TestBackbone(settings))
    assert report.problems == []
    assert DatasetStore(settings).load().counts() == {"Ada Lovelace": 1, "Bob": 1}


@pytest.mark.parametrize("content", ["file,name\nphotos/a1.pgm,Ada\n", "", "photos/a1.pgm\n"])
def test_manifest_without_path_and_label_columns(
    manifest_dir: Path, tmp_path: Path, content: str
) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text(content)
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(InvalidInput) as info:
        import_images(manifest, settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.bad_manifest"
    assert "path" in info.value.message and "label" in info.value.message
    assert not DatasetStore(settings).catalog_path.exists()


def test_malformed_manifest_is_an_input_error(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text(f'path,label\nphotos/a1.pgm,Ada\n"{"x" * 200_000}",Bob\n')
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(InvalidInput) as info:
        import_images(manifest, settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.bad_manifest"
    assert "near line 3" in info.value.message
    assert info.value.details == {"line": 3}


def test_manifest_row_with_a_nul_byte_is_that_rows_problem(
    manifest_dir: Path, tmp_path: Path
) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_text("path,label\nphotos/a1.pgm,Ada\nphotos/a\x002.pgm,Ada\n")
    settings = Settings(home=tmp_path / "home")
    report = import_images(manifest, settings, backbone=TestBackbone(settings))
    assert problem_codes(report) == {"labels.csv:3": ["import.bad_manifest"]}
    assert report.added == 1


def test_manifest_that_is_not_utf8(manifest_dir: Path, tmp_path: Path) -> None:
    manifest = manifest_dir / "labels.csv"
    manifest.write_bytes("path,label\nphotos/a1.pgm,Zoë\n".encode("utf-16"))
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(InvalidInput) as info:
        import_images(manifest, settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.bad_manifest"
    assert "UTF-8" in info.value.message


# --- sources that cannot be imported at all --------------------------------------------------


def test_nonexistent_source(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(InvalidInput) as info:
        import_images(tmp_path / "nope", settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.not_found"
    message = info.value.message
    assert "does not exist" in message
    assert "folder" in message and ".zip" in message and "CSV" in message
    assert not settings.home.joinpath("dataset.json").exists()


def test_unsupported_source(tmp_path: Path, settings: Settings) -> None:
    tarball = put(tmp_path / "people.tar.gz", b"\x1f\x8b not really")
    with pytest.raises(InvalidInput) as info:
        import_images(tarball, settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.unsupported_source"
    assert "people.tar.gz" in info.value.message
    assert ".zip" in info.value.message and "folder" in info.value.message


def test_too_many_files(tmp_path: Path, orl: dict[str, list[Path]]) -> None:
    for photo in orl["s1"][:3]:
        put(tmp_path / "src" / "A" / photo.name, photo.read_bytes())
    settings = Settings(home=tmp_path / "home", max_import_files=2)
    with pytest.raises(InvalidInput) as info:
        import_images(tmp_path / "src", settings, backbone=TestBackbone(settings))
    assert info.value.code == "import.too_many_files"
    assert "max_import_files" in info.value.message


# --- nothing half-imported -------------------------------------------------------------------


class CrashingBackbone(TestBackbone):
    """A test double for a crash (out of memory, a killed worker) on the n-th image."""

    def __init__(self, settings: Settings, crash_on: int) -> None:
        super().__init__(settings)
        self.calls = 0
        self.crash_on = crash_on

    def analyze(self, rgb: np.ndarray, face_index: int | None = None) -> Analysis:
        self.calls += 1
        if self.calls == self.crash_on:
            raise RuntimeError("simulated crash")
        return super().analyze(rgb, face_index)


def all_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()}


def test_a_crash_midway_leaves_the_dataset_as_it_was(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    settings = Settings(home=tmp_path / "home")
    src = tmp_path / "src"
    for photo in orl["s1"][:3]:
        put(src / "Ada" / f"{photo.stem}.png", png_bytes(photo))
    first = import_images(src, settings, backbone=TestBackbone(settings))
    assert first.added == 3
    store = DatasetStore(settings)
    catalog_before = store.catalog_path.read_bytes()
    blobs_before = blob_files(settings.home)
    files_before = all_files(settings.home)

    # Ada is already there (no analysis); Bob's 3rd photo crashes after two were stored.
    for person, label in (("s2", "Bob"), ("s3", "Cy")):
        for photo in orl[person][:3]:
            put(src / label / f"{photo.stem}.png", png_bytes(photo))
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
    again = import_images(src, settings, backbone=TestBackbone(settings))
    assert (again.added, again.already_present) == (6, 3)
    assert store.load().counts() == {"Ada": 3, "Bob": 3, "Cy": 3}
    assert len(blob_files(settings.home)) == 9


def test_an_interrupt_midway_leaves_the_dataset_as_it_was(
    tmp_path: Path, orl: dict[str, list[Path]]
) -> None:
    """Ctrl-C (here raised from the progress callback) is cleaned up like a crash."""
    settings = Settings(home=tmp_path / "home")
    src = tmp_path / "src"
    for photo in orl["s4"][:4]:
        put(src / "Dee" / f"{photo.stem}.png", png_bytes(photo))

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_images(src, settings, backbone=TestBackbone(settings), progress=interrupt)
    assert not DatasetStore(settings).catalog_path.exists()
    assert blob_files(settings.home) == {}


def test_hidden_and_system_files_are_ignored(imported: Imported) -> None:
    sources = [r.source for r in imported.catalog.images.values()]
    assert len(sources) == 16
    assert not any(".thumbnails" in s or "DS_Store" in s or "Thumbs" in s for s in sources)
    assert imported.report.problems == []


# --- parallel import ------------------------------------------------------------------------


def test_parallel_import_matches_one_stream(
    tmp_path: Path, orl: dict[str, list[Path]], face: Backbone
) -> None:
    """Two workers (each with its own face backbone) give the same dataset and embeddings,
    the same per-file report order, as one stream."""
    src = tmp_path / "src"
    for person in ("s3", "s4", "s5"):
        for photo in orl[person][:4]:
            put(src / person / f"{photo.stem}.png", png_bytes(photo))
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


class CrashOnThird(TestBackbone):
    """Registered test double: every instance crashes on its third image (a worker dying)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.calls = 0

    def analyze(self, rgb: np.ndarray, face_index: int | None = None) -> Analysis:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated worker crash")
        return super().analyze(rgb, face_index)


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
        for photo in orl[person][:5]:
            put(src / person / f"{photo.stem}.png", png_bytes(photo))
    with pytest.raises(RuntimeError, match="simulated worker crash"):
        import_images(src, settings, backbone_name="crash-on-third")
    assert DatasetStore(settings).catalog_path.read_bytes() == catalog_before
    assert blob_files(settings.home) == blobs_before
