"""Import labelled images: a folder per class, a .zip of the same, or a CSV manifest.

Every file is decoded, hashed, deduplicated, checked (``checks.py``) and embedded (so the
first training run finds its embeddings cached). The catalog is written once, at the end,
under the dataset lock: an import that fails midway leaves the dataset as it was and removes
the image files it had already stored.
"""

from __future__ import annotations

import csv
import io
import threading
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from lookalike.config import Settings
from lookalike.data.cache import EmbeddingCache, embedding_cache
from lookalike.data.checks import ImageFacts, Problem, run_checks
from lookalike.data.embed import analysis_meta
from lookalike.data.store import DatasetStore, ImageRecord
from lookalike.errors import InvalidImage, InvalidInput, LookalikeError
from lookalike.fsutil import file_lock
from lookalike.vision.backbones import Analysis, Backbone, create_backbone
from lookalike.vision.images import DecodedImage, decode_image
from lookalike.vision.quality import measure

IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
MAX_LABEL_LENGTH = 100

Progress = Callable[[int, int], None]


@dataclass
class SourceItem:
    """One file to import, wherever it lives (folder, zip member, manifest row)."""

    source: str
    label: str
    read: Callable[[], bytes]


@dataclass
class FileProblem:
    source: str
    code: str
    severity: str
    message: str


@dataclass
class ImportReport:
    added: int = 0
    already_present: int = 0
    problems: list[FileProblem] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)  # images added per class
    seen: int = 0

    @property
    def rejected(self) -> int:
        return len({p.source for p in self.problems if p.severity == "error"})


def clean_label(raw: str) -> str:
    """A display name from a folder name or CSV cell; refuses empty or absurd ones."""
    label = " ".join(unicodedata.normalize("NFC", raw).split())
    if not label or label.startswith("."):
        raise InvalidInput(
            f"Class name {raw!r} is empty or hidden. Expected a folder or label such as"
            " 'Marge Simpson'.",
            code="import.bad_label",
        )
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            f"Class name is {len(label)} characters long; at most {MAX_LABEL_LENGTH} allowed.",
            code="import.bad_label",
        )
    return label


def _bounded_read(path: Path, limit: int) -> bytes:
    size = path.stat().st_size
    if size > limit:
        raise InvalidImage(
            f"{path.name} is {size / 1e6:.1f} MB; at most {limit / 1e6:.1f} MB is accepted"
            " (setting max_image_bytes).",
            code="image.too_many_bytes",
            details={"bytes": size, "limit": limit},
        )
    with open(path, "rb") as f:
        return f.read(limit + 1)


def _is_ignored(name: str) -> bool:
    return name.lower() in IGNORED_NAMES or name.startswith(".")


def iter_folder(root: Path, settings: Settings) -> Iterator[SourceItem | FileProblem]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not _is_ignored(p.name))
    for stray in sorted(p for p in root.iterdir() if p.is_file() and not _is_ignored(p.name)):
        yield FileProblem(
            stray.name,
            "import.not_in_class_folder",
            "error",
            "file is not inside a class folder; expected DIR/<class name>/<image>",
        )
    for class_dir in class_dirs:
        try:
            label = clean_label(class_dir.name)
        except InvalidInput as exc:
            yield FileProblem(class_dir.name + "/", exc.code, "error", exc.message)
            continue
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and not any(_is_ignored(p) for p in path.relative_to(root).parts):
                yield SourceItem(
                    str(path.relative_to(root)),
                    label,
                    lambda p=path: _bounded_read(p, settings.max_image_bytes),  # type: ignore[misc]
                )


def iter_zip(path: Path, settings: Settings) -> Iterator[SourceItem | FileProblem]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(
            f"{path.name} is not a readable .zip file ({exc}). Expected a zip of class folders.",
            code="import.bad_zip",
        ) from exc
    members = [
        m
        for m in archive.infolist()
        if not m.is_dir()
        and "__MACOSX" not in m.filename
        and not any(_is_ignored(p) for p in PurePosixPath(m.filename).parts)
    ]
    # A zip of a folder usually wraps everything in that folder: look one level down.
    tops = {PurePosixPath(m.filename).parts[0] for m in members}
    strip = (
        1
        if len(tops) == 1 and all(len(PurePosixPath(m.filename).parts) >= 3 for m in members)
        else 0
    )
    for member in members:
        parts = PurePosixPath(member.filename).parts[strip:]
        if len(parts) < 2:
            yield FileProblem(
                member.filename,
                "import.not_in_class_folder",
                "error",
                "file is not inside a class folder; expected <class name>/<image> in the zip",
            )
            continue
        try:
            label = clean_label(parts[0])
        except InvalidInput as exc:
            yield FileProblem(member.filename, exc.code, "error", exc.message)
            continue
        if member.file_size > settings.max_image_bytes:  # never inflate a zip bomb
            yield FileProblem(
                member.filename,
                "image.too_many_bytes",
                "error",
                f"{member.file_size / 1e6:.1f} MB uncompressed; at most"
                f" {settings.max_image_bytes / 1e6:.1f} MB is accepted (setting max_image_bytes)",
            )
            continue
        yield SourceItem(
            member.filename,
            label,
            lambda m=member: _read_member(archive, m),  # type: ignore[misc]
        )


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """One member's bytes; a damaged, encrypted or exotic member is that file's problem only."""
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        raise InvalidInput(
            f"cannot read this member of the zip ({exc}); re-create the archive",
            code="import.unreadable",
        ) from exc


def iter_manifest(path: Path, settings: Settings) -> Iterator[SourceItem | FileProblem]:
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            f"Cannot read manifest {path.name} as UTF-8 text ({exc}).", code="import.bad_manifest"
        ) from exc
    tsv = path.suffix.lower() == ".tsv"
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if tsv else ",")
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise _bad_csv(path, reader, exc) from exc
    fields = [f.strip().lower() for f in header or []]
    if "path" not in fields or "label" not in fields:
        raise InvalidInput(
            f"Manifest {path.name} must have a header row with columns path and label"
            f" ({'tab' if tsv else 'comma'}-separated);"
            f" found {reader.fieldnames or 'no header'}.",
            code="import.bad_manifest",
            details={"columns": reader.fieldnames},
        )
    reader.fieldnames = fields
    for row in _manifest_rows(path, reader):
        rel, raw_label = (row.get("path") or "").strip(), row.get("label") or ""
        where = f"{path.name}:{reader.line_num}"  # physical line: blank lines are skipped
        if not rel:
            yield FileProblem(where, "import.bad_manifest", "error", "empty path")
            continue
        try:
            file = (path.parent / rel).resolve()
        except (ValueError, OSError, RuntimeError) as exc:  # a NUL byte, a symlink loop
            yield FileProblem(where, "import.bad_manifest", "error", f"invalid path ({exc})")
            continue
        try:
            label = clean_label(raw_label)
        except InvalidInput as exc:
            yield FileProblem(where, exc.code, "error", exc.message)
            continue
        if not file.is_file():
            yield FileProblem(
                where,
                "import.missing_file",
                "error",
                f"{rel} does not exist (paths are relative to the manifest)",
            )
            continue
        yield SourceItem(
            rel,
            label,
            lambda f=file: _bounded_read(f, settings.max_image_bytes),  # type: ignore[misc]
        )


def _manifest_rows(path: Path, reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a cell over csv.field_size_limit()
        raise _bad_csv(path, reader, exc) from exc


def _bad_csv(path: Path, reader: csv.DictReader[str], exc: csv.Error) -> InvalidInput:
    return InvalidInput(
        f"Manifest {path.name} is not valid CSV near line {reader.line_num + 1} ({exc}).",
        code="import.bad_manifest",
        details={"line": reader.line_num + 1},
    )


def iter_sources(source: Path, settings: Settings) -> Iterator[SourceItem | FileProblem]:
    if not source.exists():
        raise InvalidInput(
            f"{source} does not exist. Expected a folder with one sub-folder per class, a .zip"
            " of such folders, or a CSV manifest with columns path,label.",
            code="import.not_found",
        )
    if source.is_dir():
        return iter_folder(source, settings)
    suffix = source.suffix.lower()
    if suffix == ".zip":
        return iter_zip(source, settings)
    if suffix in (".csv", ".tsv", ".txt"):
        return iter_manifest(source, settings)
    raise InvalidInput(
        f"Cannot import {source.name}: expected a folder, a .zip or a .csv manifest.",
        code="import.unsupported_source",
    )


def import_images(
    source: Path,
    settings: Settings,
    *,
    backbone: Backbone | None = None,
    backbone_name: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``source`` into the dataset under ``settings.home``. Idempotent.

    With ``backbone`` the caller's instance analyses every image, one at a time. Otherwise
    ``settings.embed_workers`` threads each get their own ``backbone_name`` backbone with one
    inference thread: decoding, detection and embedding then overlap on every core (about
    1.4x the photos/s of one stream on 2 cores).
    """
    source = Path(source)
    items = list(iter_sources(source, settings))
    if len(items) > settings.max_import_files:
        raise InvalidInput(
            f"{source} holds {len(items)} files; one import reads at most"
            f" {settings.max_import_files} (setting max_import_files). Split it into parts.",
            code="import.too_many_files",
        )
    return import_items(
        items, settings, backbone=backbone, backbone_name=backbone_name, progress=progress
    )


def import_items(
    items: list[SourceItem | FileProblem],
    settings: Settings,
    *,
    backbone: Backbone | None = None,
    backbone_name: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import already-listed items (see ``import_images``): decode, analyse, check, store,
    then one catalog write for all of them."""
    store = DatasetStore(settings)
    cache = embedding_cache(settings.data_dir)
    workers = 1 if backbone is not None else settings.resolved_embed_workers
    name = backbone_name or settings.backbone
    main_backbone = backbone or create_backbone(name, settings, threads=1 if workers > 1 else None)
    local = threading.local()

    def analyze(item: SourceItem) -> _Outcome:
        bb = getattr(local, "backbone", None)
        if bb is None:
            bb = main_backbone if workers == 1 else create_backbone(name, settings, threads=1)
            local.backbone = bb
        return _analyze(item, bb, settings, existing)

    report = ImportReport()
    existing = store.load().images
    new_records: dict[str, ImageRecord] = {}
    written: list[Path] = []
    files = [i for i in items if isinstance(i, SourceItem)]
    report.problems.extend(i for i in items if isinstance(i, FileProblem))
    report.seen = len(files)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        done = len(items) - len(files)
        for start in range(0, len(files), IMPORT_CHUNK):  # bounded: bytes held per chunk
            chunk = files[start : start + IMPORT_CHUNK]
            outcomes = pool.map(analyze, chunk) if pool else map(analyze, chunk)
            for outcome in outcomes:
                _commit(
                    outcome, main_backbone, store, cache, existing, new_records, written, report
                )
                done += 1
                if progress:
                    progress(done, len(items))
        with file_lock(store.lock_path):
            catalog = store.load()  # re-read: another import may have landed meanwhile
            for sha, rec in new_records.items():
                catalog.images.setdefault(sha, rec)
            if new_records:
                store.save(catalog)
    except BaseException:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
        referenced = store.load().images
        for path in written:
            if path.stem not in referenced:
                path.unlink(missing_ok=True)
        raise
    finally:
        if pool:
            pool.shutdown(wait=True)
    return report


IMPORT_CHUNK = 64


@dataclass
class _Outcome:
    """What a worker learned about one file; committed in order by the importing thread."""

    item: SourceItem
    problems: list[FileProblem] = field(default_factory=list)
    data: bytes = b""
    image: DecodedImage | None = None
    analysis: Analysis | None = None
    known: bool = False  # already in the dataset before this import (decided by the main thread)
    warnings: list[str] = field(default_factory=list)
    quality: dict[str, float] | None = None
    ok: bool = False


def face_measures(analysis: Analysis) -> dict[str, float] | None:
    """What the dataset checks judge a photo's face by: its quality (``vision.quality``), the
    detector's confidence, and how much a second face looks like a second person (its
    confidence times the square root of its size relative to the used face's)."""
    face = analysis.face
    if face is None or analysis.crop is None:
        return None
    measured: dict[str, float] = {
        k: float(v) for k, v in asdict(measure(analysis.crop, face)).items()
    }
    measured["face_score"] = float(face.score)
    others = [f for i, f in enumerate(analysis.faces) if i != analysis.face_index]
    if others:
        second = max(others, key=lambda f: f.score * min(1.0, f.area / face.area) ** 0.5)
        measured["second_face"] = second.score * min(1.0, second.area / face.area) ** 0.5
    return {k: round(v, 5) for k, v in measured.items()}


def _analyze(
    item: SourceItem, backbone: Backbone, settings: Settings, existing: dict[str, ImageRecord]
) -> _Outcome:
    """Read, decode, analyse and check one file. Thread-safe: touches no shared state."""
    out = _Outcome(item)

    def problem(p: Problem | LookalikeError) -> None:
        severity = "error" if isinstance(p, LookalikeError) else p.severity
        out.problems.append(FileProblem(item.source, p.code, severity, p.message))

    try:
        out.data = item.read()
        out.image = decode_image(out.data, settings, name=item.source)
    except LookalikeError as exc:
        problem(exc)
        return out
    except OSError as exc:
        problem(
            InvalidInput(f"cannot read the file ({exc.strerror or exc})", code="import.unreadable")
        )
        return out
    if out.image.sha256 in existing:  # re-import: no need to analyse it again
        out.known = True
        return out
    error: LookalikeError | None = None
    try:
        out.analysis = backbone.analyze(out.image.rgb)
    except LookalikeError as exc:
        error = exc
    problems = run_checks(ImageFacts(out.image, backbone, out.analysis, error), settings)
    for p in problems:
        problem(p)
    out.warnings = [p.code for p in problems if p.severity == "warning"]
    out.ok = out.analysis is not None and not any(p.severity == "error" for p in problems)
    if out.ok and out.analysis is not None and out.analysis.crop is not None:
        out.quality = face_measures(out.analysis)
    return out


def _commit(
    out: _Outcome,
    backbone: Backbone,
    store: DatasetStore,
    cache: EmbeddingCache,
    existing: dict[str, ImageRecord],
    new_records: dict[str, ImageRecord],
    written: list[Path],
    report: ImportReport,
) -> None:
    """Dedupe, cache, store and record one analysed file (importing thread only)."""
    item, image, analysis = out.item, out.image, out.analysis
    if image is not None:
        known = existing.get(image.sha256) or new_records.get(image.sha256)
        if known is not None:
            if known.label == item.label:
                report.already_present += 1
            else:
                report.problems.append(
                    FileProblem(
                        item.source,
                        "conflicting_label",
                        "error",
                        f"the same image is already in class {known.label!r} (from"
                        f" {known.source}); one image can only belong to one class",
                    )
                )
            return
    report.problems.extend(out.problems)
    if not out.ok or image is None or analysis is None:
        return
    sha = image.sha256
    cache.put(backbone.key, sha, analysis.vector, analysis_meta(analysis))
    ext = image.format.lower().replace("jpeg", "jpg")
    if store.write_blob(sha, ext, out.data):
        written.append(store.blob_path(sha, ext))
    face = analysis.face
    new_records[sha] = ImageRecord(
        sha256=sha,
        label=item.label,
        ext=ext,
        source=item.source,
        width=image.width,
        height=image.height,
        faces_found=len(analysis.faces) if backbone.uses_faces else None,
        face_index=analysis.face_index,
        face_box=[round(v, 1) for v in face.box] if face else None,
        warnings=out.warnings,
        quality=out.quality,
    )
    report.added += 1
    report.classes[item.label] += 1
