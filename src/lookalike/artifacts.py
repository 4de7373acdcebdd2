"""Model artifacts: one directory per model version, written atomically.

    models/m0001/model.json   labels, backbone id + version + preprocessing, head kind and
                              parameters, open-set threshold, metrics, dataset revision and
                              the frozen test-set version it was evaluated on, file digests
    models/m0001/arrays.npz   head arrays + the reference gallery (vectors, labels, hashes)
                              + the resemblance calibration (centre, centroids, strangers)
    models/m0001/network.onnx only for a fine-tuned model: its embedding network

A version directory is built under a temporary name and renamed into place
(``lookalike.versioned``), so a reader sees a whole model or none. Loading checks the
digests and refuses a damaged artifact.

With a remote object store (``storage_url``: S3) the data dir is a cache: the registry
publishes a version's files to ``models/<version>/<file>`` before it registers the
version (:func:`publish_artifact`), and a process on another machine that lacks a version
fetches it into its own data dir (:func:`fetch_artifact`, from :func:`load_model` given the
settings), every file checked against the digest its ``model.json`` records.
Which version answers (the champion) is the registry's business (``lookalike.registry``).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.datadir import DataDir
from lookalike.errors import InvalidInput, ModelUnavailable, NotFound
from lookalike.scoring.heads import (
    NEAR_CANDIDATES,
    ClassAggregator,
    GalleryHead,
    Head,
    in_blocks,
    restore_head,
)
from lookalike.scoring.index import VectorIndex, faiss_available, index_of
from lookalike.scoring.resemblance import DEFAULT_TIE_Z, Resemblance
from lookalike.storage import remote_store
from lookalike.versioned import VersionedDirs, version_pattern
from lookalike.vision.backbones import Backbone, create_backbone
from lookalike.vision.finetuned import NETWORK_FILE, finetuned_backbone

ARTIFACT_FORMAT = 1
PREFIX = "m"
VERSION_PATTERN = version_pattern(PREFIX)
MANIFEST = "model.json"  # every versioned artifact's (models/, names/): its files' digests
MODELS_FOLDER = DataDir(Path()).models.name  # "models": in the data dir and the object store


@dataclass
class ModelInfo:
    version: str
    created_at: str
    backbone: str  # registry id
    backbone_key: str  # id@version: embeddings are only comparable within one key
    preprocessing: dict[str, Any]
    head: str
    head_params: dict[str, Any]
    labels: list[str]
    threshold: float  # open set: match score below this -> "no strong match"
    open_set: dict[str, Any]
    top_k: int
    dataset_revision: int
    test_version: int
    counts: dict[str, dict[str, int]]  # subset -> class -> images
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    # Personal photos the head was trained on ("visitor:<prediction id>", a contributor's
    # "contribution:<id>"; see data/personal.py): once one is deleted this model never
    # serves again, and one trained without it replaces it (registry, training/compare.py).
    personal_sources: list[str] = field(default_factory=list)
    # Contributors' classes: label -> contribution id (hidden from answers once deleted).
    contributors: dict[str, str] = field(default_factory=dict)
    # The resemblance calibration's figures (noise, tie rule); its arrays are in the npz.
    # Empty in models saved before it existed: computed from the gallery when loaded.
    resemblance: dict[str, Any] = field(default_factory=dict)
    format: int = ARTIFACT_FORMAT


@dataclass(frozen=True)
class Near:
    """One query against a model: class probabilities and match scores, and the gallery
    photos nearest to it (rows and similarities, nearest first)."""

    proba: np.ndarray  # (C,)
    match: np.ndarray  # (C,)
    rows: np.ndarray
    sims: np.ndarray


@dataclass
class TrainedModel:
    info: ModelInfo
    head: Head
    gallery: np.ndarray  # (n, dim) reference embeddings
    gallery_labels: np.ndarray  # (n,) class index
    gallery_hashes: np.ndarray  # (n,) image sha256 (str)
    gallery_exts: np.ndarray  # (n,) blob file extension (str)
    _resemblance: Resemblance | None = None
    _agg: ClassAggregator | None = None
    _search: VectorIndex | None = None  # over the gallery, when large (``index_gallery``)

    @property
    def aggregator(self) -> ClassAggregator:
        if self._agg is None:
            self._agg = ClassAggregator(self.gallery_labels, len(self.info.labels), self.info.top_k)
        return self._agg

    @property
    def resemblance(self) -> Resemblance:
        """Lookalike scoring and its calibration (fitted here for models saved without it)."""
        if self._resemblance is None:
            self._resemblance = Resemblance.fit(
                self.gallery,
                self.gallery_labels,
                len(self.info.labels),
                float(self.info.resemblance.get("tie_z", DEFAULT_TIE_Z)),
            )
            self.info.resemblance = self._resemblance.params()
        return self._resemblance

    def classify(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Embeddings (n, dim) -> (probabilities (n, C), gallery similarities (n, gallery),
        class match scores (n, C)); the open-set rule reads the match score of the winner."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        sims = x @ self.gallery.T
        return self.head.predict_proba(x), sims, self.aggregator.scores(sims)

    def index_gallery(self, min_size: int) -> bool:
        """Search the gallery (and a gallery head's photos) with a faiss index when it holds
        at least ``min_size`` photos (0: never), for :meth:`near`; True when it does."""
        if not min_size or len(self.gallery) < min_size or not faiss_available():
            return False
        self._search = index_of(self.gallery, min_size)
        if isinstance(self.head, GalleryHead):
            self.head.index_vectors(min_size)
        return True

    def near(self, query: np.ndarray) -> Near:
        """One query (a unit embedding): its probabilities, match scores and nearest gallery
        photos; every photo compared in a small gallery, the index's candidates in a large
        one (``index_gallery``)."""
        q = np.asarray(query, np.float32).reshape(-1)
        if self._search is None:
            proba, sims, match = self.classify(q)
            rows = np.arange(sims.shape[1])
            if len(rows) > NEAR_CANDIDATES:  # the nearest, without sorting every photo
                rows = np.argpartition(-sims[0], NEAR_CANDIDATES - 1)[:NEAR_CANDIDATES]
            rows = rows[np.argsort(-sims[0][rows], kind="stable")]
            return Near(proba[0], match[0], rows, sims[0][rows])
        match, rows, sims = self.aggregator.near_scores(
            q, self.gallery, self._search, NEAR_CANDIDATES
        )
        return Near(self.head.predict_proba(q[None])[0], match, rows, sims)

    def closest_in_class(self, query: np.ndarray, label: int) -> tuple[int, float] | None:
        """The gallery photo of class ``label`` most similar to ``query`` (row, similarity);
        None for a class without gallery photos. Only that class's photos are compared."""
        rows = self.aggregator.index[label]
        rows = rows[rows >= 0]
        if not len(rows):
            return None
        sims = self.gallery[rows] @ np.asarray(query, np.float32).reshape(-1)
        best = int(np.argmax(sims))
        return int(rows[best]), float(sims[best])

    def score(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Many embeddings (a test set) -> (probabilities (n, C), class match scores (n, C)),
        a block of rows at a time: their similarities to the gallery are never held whole."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        proba = in_blocks(x, self.head.predict_proba)
        match = in_blocks(x, lambda rows: self.aggregator.scores(rows @ self.gallery.T))
        return proba, match


def backbone_for(info: ModelInfo, settings: Settings) -> Backbone:
    """The backbone a model was trained with, configured as it was (e.g. flip TTA); for a
    fine-tuned model, that backbone embedding with the model's own network."""
    backbone = create_backbone(info.backbone, settings)
    recorded = {
        k: info.preprocessing[k] for k in backbone.embedding_settings if k in info.preprocessing
    }
    if recorded:
        backbone = create_backbone(info.backbone, settings.model_copy(update=recorded))
    if NETWORK_FILE in info.files:
        fetch_artifact(settings, artifact_name(info.version))  # trained on another machine
        network = models_dir(settings.home) / info.version / NETWORK_FILE
        backbone = finetuned_backbone(backbone, network, info.files[NETWORK_FILE])
    if backbone.key != info.backbone_key:
        raise ModelUnavailable(
            f"Model {info.version} was trained with backbone {info.backbone_key}, but the"
            f" installed one is {backbone.key}; retrain the model.",
            code="model.backbone_mismatch",
        )
    return backbone


def models_dir(home: Path) -> Path:
    return DataDir(home).models


def _versions(home: Path) -> VersionedDirs:
    return VersionedDirs(models_dir(home), PREFIX)


def list_versions(home: Path) -> list[str]:
    return _versions(home).versions()  # numeric: m10000 comes after m9999


def save_model(
    home: Path,
    model: TrainedModel,
    reserved: Collection[str] = (),
    files: Mapping[str, bytes] | None = None,
) -> str:
    """Write a new version directory atomically; returns its version id (the next number
    after every existing directory and every ``reserved`` name). ``files``: more files of
    the model (a fine-tuned network), their digests recorded beside the npz's."""
    extra = dict(files or {})
    if {"model.json", "arrays.npz"} & set(extra):
        raise ValueError("model.json and arrays.npz are written by save_model itself")
    arrays = {f"head_{k}": v for k, v in model.head.state().items()}
    arrays.update({f"resemblance_{k}": v for k, v in model.resemblance.state().items()})
    arrays.update(
        gallery=model.gallery.astype(np.float32),
        gallery_labels=model.gallery_labels.astype(np.int64),
        gallery_hashes=model.gallery_hashes.astype(str),
        gallery_exts=model.gallery_exts.astype(str),
    )
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    npz = buf.getvalue()

    def manifest(version: str) -> dict[str, bytes]:
        model.info.version = version
        model.info.files = {
            name: hashlib.sha256(data).hexdigest()
            for name, data in {"arrays.npz": npz, **extra}.items()
        }
        return {"model.json": json.dumps(asdict(model.info), indent=1).encode()}

    return _versions(home).write({"arrays.npz": npz, **extra}, manifest, reserved)


def artifact_name(version: str) -> str:
    """A model version's artifact as the registry names it (relative to the data dir)."""
    return f"{MODELS_FOLDER}/{version}"


# -- sharing artifacts through a remote object store ------------------------------------


def _damaged_remote(artifact: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"The artifact {artifact} in the object store is missing or damaged ({exc}); it"
        " cannot serve. Train a new one or switch to another version.",
        code="model.corrupt",
        details={"artifact": artifact},
    )


def _listed_files(manifest: bytes) -> dict[str, str]:
    """A ``model.json``'s file digests (plain file names only: they become paths)."""
    files = json.loads(manifest)["files"]
    if not isinstance(files, dict):
        raise ValueError("model.json lists no files")
    for name, digest in files.items():
        if not isinstance(name, str) or name in ("", ".", "..", MANIFEST) or "/" in name:
            raise ValueError(f"model.json lists a bad file name {name!r}")
        if not isinstance(digest, str):
            raise ValueError(f"model.json lists no digest for {name}")
    return dict(files)


def publish_artifact(settings: Settings, artifact: str) -> None:
    """Copy the artifact directory ``artifact`` (``models/m0001``, ``names/n0001``: as the
    registry names it) to the remote object store under the same keys, its ``model.json``
    last, so that whoever finds the manifest finds every file it lists. Does nothing
    without a remote store. Refused (``model.exists``) when the store holds another
    artifact under that name: a version is written once."""
    store = remote_store(settings)
    if store is None:
        return
    path = DataDir(settings.home).artifact(artifact)
    manifest = (path / MANIFEST).read_bytes()
    key = f"{artifact}/{MANIFEST}"
    try:
        published = store.get(key)
    except NotFound:
        published = None
    if published is not None and published != manifest:
        raise InvalidInput(
            f"The object store already holds another artifact named {artifact}.",
            code="model.exists",
            details={"artifact": artifact},
        )
    for name in _listed_files(manifest):
        store.put(f"{artifact}/{name}", (path / name).read_bytes())
    store.put(key, manifest, "application/json")


def fetch_artifact(settings: Settings, artifact: str) -> bool:
    """Copy ``artifact`` from the remote object store into the data dir when the data dir
    lacks it (trained on another machine): every file checked against the digest the
    artifact's ``model.json`` records, then the directory renamed into place whole. False
    when there is no remote store, the data dir has it, or the store has no such artifact;
    ``ModelUnavailable`` (``model.corrupt``) when the store's copy is damaged or incomplete,
    ``StorageUnavailable`` when the store cannot be reached (nothing written either way)."""
    path = DataDir(settings.home).artifact(artifact)
    store = None if path.is_dir() else remote_store(settings)
    if store is None:
        return False
    try:
        manifest = store.get(f"{artifact}/{MANIFEST}")
    except NotFound:
        return False
    try:
        files = {MANIFEST: manifest}
        for name, expected in _listed_files(manifest).items():
            data = store.get(f"{artifact}/{name}")
            if hashlib.sha256(data).hexdigest() != expected:
                raise ValueError(f"{name} does not match its recorded SHA-256")
            files[name] = data
    except (NotFound, ValueError, KeyError, TypeError) as exc:
        raise _damaged_remote(artifact, exc) from exc
    VersionedDirs(path.parent, path.name.rstrip("0123456789")).place(path.name, files)
    return True


def remove_remote(settings: Settings, artifacts: Collection[str]) -> list[str]:
    """Delete the remote copies of ``artifacts`` (``models/m0009``); the ones that had any."""
    store = remote_store(settings)
    if store is None:
        return []
    removed = []
    for artifact in artifacts:
        manifest = f"{artifact}/{MANIFEST}"
        keys = sorted(store.iter_keys(f"{artifact}/"), key=lambda k: k != manifest)
        for key in keys:  # the manifest first: nobody fetches a version half gone
            store.delete(key)
        if keys:
            removed.append(artifact)
    return removed


def remote_versions(settings: Settings) -> set[str]:
    """The model versions the remote object store holds files of (none without one)."""
    store = remote_store(settings)
    if store is None:
        return set()
    found = {key.split("/")[1] for key in store.iter_keys(f"{MODELS_FOLDER}/")}
    return {v for v in found if VERSION_PATTERN.fullmatch(v)}


def load_model(home: Path | Settings, version: str | None) -> TrainedModel:
    """Load and verify a model version (None: there is no model yet). ``home``: a data
    dir, or the settings, when a version the data dir lacks is fetched from the remote
    object store first (:func:`fetch_artifact`)."""
    if isinstance(home, Settings):
        settings, home = home, Path(home.home)
        if version is not None and VERSION_PATTERN.fullmatch(version):
            fetch_artifact(settings, artifact_name(version))
    if version is None:
        raise ModelUnavailable(
            "No model has been trained yet. Import images (lookalike import DIR) and train"
            " (lookalike train) first.",
            code="model.none",
        )
    path = models_dir(home) / version
    # A version names a directory under models/: refuse "../x", ".building-*", "current".
    if not VERSION_PATTERN.fullmatch(version) or not path.is_dir():
        known = list_versions(home)
        raise NotFound(
            f"Model version {version!r} does not exist. Known: {', '.join(known)}."
            if known
            else f"Model version {version!r} does not exist: there is no model yet. Import"
            " images (lookalike import DIR) and train one (lookalike train) first.",
            code="model.not_found",
            details={"version": version[:64], "known": known[-20:]},
        )
    try:
        raw = json.loads((path / MANIFEST).read_text())
        if "visitor_sources" in raw:  # its name before contributors trained too
            raw["personal_sources"] = raw.pop("visitor_sources")
        info = ModelInfo(**raw)
        data = (path / "arrays.npz").read_bytes()
        if hashlib.sha256(data).hexdigest() != info.files.get("arrays.npz"):
            raise ValueError("arrays.npz does not match its recorded SHA-256")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        head_state = {k[5:]: v for k, v in arrays.items() if k.startswith("head_")}
        head = restore_head(info.head, head_state, info.head_params)
        prefix = "resemblance_"
        res_state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        return TrainedModel(
            info=info,
            head=head,
            gallery=arrays["gallery"],
            gallery_labels=arrays["gallery_labels"],
            gallery_hashes=arrays["gallery_hashes"],
            gallery_exts=arrays["gallery_exts"],
            _resemblance=Resemblance.restore(res_state, info.resemblance) if res_state else None,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(
            f"Model {version} is damaged and cannot be loaded ({exc}). Train a new one or"
            " switch to another version.",
            code="model.corrupt",
            details={"version": version},
        ) from exc
