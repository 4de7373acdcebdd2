"""Name generator artifacts: one directory per version, written atomically.

    names/n0001/model.json    corpus (name, SHA-256, size, source), vocabulary, architecture,
                              hyper-parameters, metrics (validation loss and perplexity, the
                              bigram baseline, epochs, training seconds), file digests
    names/n0001/weights.npz   the GRU's weights (numpy arrays, float32)
    names/n0001/corpus.txt    the training names, one per line (generated names must be new)

A version directory is built under a temporary name inside ``names/`` and renamed into place
(``lookalike.versioned``, as the face models are), so a reader sees a whole version or none.
Loading checks every file's digest and refuses a damaged artifact with ``ModelUnavailable``
(``names.corrupt``).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.datadir import DataDir
from lookalike.errors import ModelUnavailable, NotFound
from lookalike.kinds import ModelKind
from lookalike.names.model import CharGRU, Vocabulary
from lookalike.versioned import VersionedDirs, version_pattern

ARTIFACT_FORMAT = 1
KIND = ModelKind.NAMES
PREFIX = "n"
VERSION_PATTERN = version_pattern(PREFIX)
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
CORPUS_FILE = "corpus.txt"


@dataclass
class NamesInfo:
    version: str
    created_at: str
    created_by: str
    corpus: dict[str, Any]  # name, sha256, names, source
    vocab: str
    architecture: dict[str, Any]  # cell, embedding, hidden, vocab_size
    hyper_parameters: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    format: int = ARTIFACT_FORMAT
    kind: str = KIND

    @property
    def corpus_name(self) -> str:
        return str(self.corpus.get("name", ""))

    @property
    def corpus_sha256(self) -> str:
        return str(self.corpus.get("sha256", ""))

    @property
    def val_perplexity(self) -> float:
        return float(self.metrics.get("val_perplexity", float("inf")))


@dataclass
class NamesModel:
    info: NamesInfo
    net: CharGRU
    corpus: frozenset[str]  # normalised training names

    @property
    def version(self) -> str:
        return self.info.version


def names_dir(home: Path) -> Path:
    return DataDir(home).names


def artifact_path(version: str) -> str:
    """Where a version lives, relative to the data dir (what the registry records)."""
    return f"names/{version}"


def _versions(home: Path) -> VersionedDirs:
    return VersionedDirs(names_dir(home), PREFIX)


def list_versions(home: Path) -> list[str]:
    return _versions(home).versions()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_names_model(
    home: Path,
    net: CharGRU,
    corpus_names: list[str],
    *,
    corpus: dict[str, Any],
    hyper_parameters: dict[str, Any],
    metrics: dict[str, Any],
    created_by: str,
) -> tuple[NamesInfo, str]:
    """Write a new version directory atomically; returns its info and the SHA-256 of its
    ``model.json`` (which lists the digests of the other files: the artifact's digest)."""
    buf = io.BytesIO()
    np.savez(buf, **net.arrays())  # type: ignore[arg-type]
    weights = buf.getvalue()
    corpus_text = ("\n".join(corpus_names) + "\n").encode("utf-8")
    info = NamesInfo(
        version="",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=created_by,
        corpus=corpus,
        vocab=net.vocab.chars,
        architecture={
            "cell": "gru",
            "layers": 1,
            "embedding": int(net.embedding.shape[1]),
            "hidden": net.hidden_size,
            "vocab_size": net.vocab.size,
        },
        hyper_parameters=hyper_parameters,
        metrics=metrics,
        files={WEIGHTS_FILE: _sha256(weights), CORPUS_FILE: _sha256(corpus_text)},
    )
    written: dict[str, bytes] = {}

    def manifest(version: str) -> dict[str, bytes]:
        info.version = version
        written[MODEL_FILE] = json.dumps(asdict(info), indent=1, ensure_ascii=False).encode()
        return {MODEL_FILE: written[MODEL_FILE]}

    _versions(home).write({WEIGHTS_FILE: weights, CORPUS_FILE: corpus_text}, manifest)
    return info, _sha256(written[MODEL_FILE])


def _version_dir(home: Path, version: str) -> Path:
    path = names_dir(home) / version
    # A version names a directory under names/: refuse "../x", ".building-*".
    if not VERSION_PATTERN.fullmatch(version) or not path.is_dir():
        known = ", ".join(list_versions(home)) or "none"
        raise NotFound(
            f"Name generator version {version!r} does not exist (known: {known}).",
            code="names.not_found",
            details={"version": version},
        )
    return path


def _damaged(version: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"Name generator {version} is damaged and cannot be loaded ({exc}). Train a new one"
        " with `lookalike names train`.",
        code="names.corrupt",
        details={"version": version},
    )


def load_names_info(home: Path, version: str) -> NamesInfo:
    """The ``model.json`` of a version (not its weights)."""
    path = _version_dir(home, version)
    try:
        info = NamesInfo(**json.loads((path / MODEL_FILE).read_text(encoding="utf-8")))
        if info.version != version or info.kind != KIND:
            raise ValueError(f"model.json describes {info.kind} {info.version}")
        return info
    except (OSError, ValueError, TypeError) as exc:
        raise _damaged(version, exc) from exc


def load_names_model(home: Path, version: str) -> NamesModel:
    """Load and verify a version: every file must match the digest in its model.json."""
    info = load_names_info(home, version)
    path = names_dir(home) / version
    try:
        blobs = {}
        for name in (WEIGHTS_FILE, CORPUS_FILE):
            data = (path / name).read_bytes()
            if _sha256(data) != info.files.get(name):
                raise ValueError(f"{name} does not match its recorded SHA-256")
            blobs[name] = data
        with np.load(io.BytesIO(blobs[WEIGHTS_FILE]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        net = CharGRU.from_arrays(Vocabulary(info.vocab), arrays)
        corpus = frozenset(blobs[CORPUS_FILE].decode("utf-8").splitlines())
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise _damaged(version, exc) from exc
    return NamesModel(info=info, net=net, corpus=corpus)
