"""A fine-tuned network as a backbone: the base backbone's detection and alignment, the
embedding from the model's own ONNX network (``training/finetune.py`` exported it: input
``input`` (N, 3, S, S) RGB 0-255 float, output ``embedding``, unit vectors).

Run by onnxruntime like every other backbone: serving a fine-tuned model needs no torch.
The key names the network's digest (and the base backbone's version and settings), so
embeddings of two fine-tunings, or of the base network, never share a cache entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import ModelUnavailable
from lookalike.vision.backbones import Backbone, l2_normalize
from lookalike.vision.efficientnet import MAX_BATCH, ImageBackbone, stretch
from lookalike.vision.faces import YUNET_FILE, FaceBackbone
from lookalike.vision.onnx_fold import fold_yunet

NETWORK_FILE = "network.onnx"  # its name in a model's directory
OUTPUT = "embedding"


class FinetunedMixin(Backbone):
    """What both fine-tuned backbones share: the network file, its session, the key."""

    network_path = Path()
    network_sha256 = ""
    _session: Any

    @property
    def key(self) -> str:
        # The base's key (its version: detection and alignment; its settings) with the
        # network's digest in front of the version.
        name, _, rest = super().key.partition("@")
        return f"{name}@{self.network_sha256[:12]}+{rest}"

    def _network_session(self) -> Any:
        """A session on the network file, refused when its bytes are not the recorded ones."""
        try:
            data = self.network_path.read_bytes()
        except OSError as exc:
            raise ModelUnavailable(
                f"The fine-tuned network {self.network_path.name} is missing ({exc}).",
                code="model.corrupt",
            ) from exc
        if hashlib.sha256(data).hexdigest() != self.network_sha256:
            raise ModelUnavailable(
                f"The fine-tuned network {self.network_path.name} does not match its recorded"
                " SHA-256; retrain the model.",
                code="model.corrupt",
            )
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run([OUTPUT], {"input": np.ascontiguousarray(batch, np.float32)})
        return l2_normalize(out[0])


class FinetunedFaceBackbone(FinetunedMixin, FaceBackbone):
    """YuNet + alignment as in ``face``; the fine-tuned SFace embeds the crop."""

    id = "face-ft"

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            # The base's detector file (named by the base's version, shared with it).
            self._detector = self._cached_session(
                self.detector_path, fold_yunet, YUNET_FILE, spin=False
            )
            self._session = self._network_session()

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Like ``face``: the mirror image averaged in when ``flip_tta`` is on."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        batch = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2)
        if not self.settings.flip_tta:
            return self._run(batch)
        out = self._run(np.concatenate([batch, batch[:, :, :, ::-1]]))
        return l2_normalize(out[: len(crops)] + out[len(crops) :])


class FinetunedImageBackbone(FinetunedMixin, ImageBackbone):
    """The whole image stretched as in ``image``; the network normalises it itself."""

    id = "image-ft"

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._session = self._network_session()

    def embed_batch(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        out = []
        for start in range(0, len(images), MAX_BATCH):
            batch = np.stack([stretch(im) for im in images[start : start + MAX_BATCH]])
            out.append(self._run(batch.astype(np.float32).transpose(0, 3, 1, 2)))
        return np.concatenate(out)


FINETUNED: dict[str, type[FinetunedMixin]] = {
    "face": FinetunedFaceBackbone,
    "image": FinetunedImageBackbone,
}


def finetuned_backbone(base: Backbone, network: Path, sha256: str) -> Backbone:
    """``base`` (configured as the model recorded it) embedding with ``network`` instead."""
    if base.id not in FINETUNED:
        raise ModelUnavailable(
            f"Backbone {base.id!r} cannot be fine-tuned.", code="model.backbone_mismatch"
        )
    backbone = FINETUNED[base.id](base.settings)
    backbone.threads = base.threads
    backbone.network_path = network
    backbone.network_sha256 = sha256
    return backbone
