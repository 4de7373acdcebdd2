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
from lookalike.errors import ModelUnavailable, NotFound
from lookalike.scoring.heads import ClassAggregator, Head, restore_head
from lookalike.scoring.resemblance import DEFAULT_TIE_Z, Resemblance
from lookalike.versioned import VersionedDirs, version_pattern
from lookalike.vision.backbones import Backbone, create_backbone
from lookalike.vision.finetuned import NETWORK_FILE, finetuned_backbone

ARTIFACT_FORMAT = 1
PREFIX = "m"
VERSION_PATTERN = version_pattern(PREFIX)


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


def load_model(home: Path, version: str | None) -> TrainedModel:
    """Load and verify a model version (None: there is no model yet)."""
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
        raw = json.loads((path / "model.json").read_text())
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
