"""ONNX graph surgery for ``train restem``: find the blockwise student's stem in an exported
file, cut out the part of the graph that computes given tensors, list the blocks after the stem,
and splice a new stem in (onnx only; the Keras training of the new stem is in restem.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from facetags.errors import ConfigError

if TYPE_CHECKING:
    from onnx import ModelProto


@dataclass(frozen=True)
class OldStem:
    """The float file's front end: node names, and the tensor the first block reads."""

    nodes: tuple[str, ...]  # rows product, column product, convolution, ReLU, max-pool
    output: str
    channels: int


def find_stem(model: ModelProto) -> OldStem:
    """The resampling + 7x7/2 convolution + ReLU + 3x3/2 max-pool the blockwise student begins
    with; ConfigError when the graph does not begin so."""
    from onnx import helper

    graph = model.graph
    consts = {init.name: init for init in graph.initializer}

    def only_consumer(name: str, op: str) -> Any:
        users = [n for n in graph.node if name in n.input]
        if len(users) != 1 or users[0].op_type != op:
            raise ConfigError(f"expected one {op} after {name!r}, found {[n.op_type for n in users]}")
        return users[0]

    # the resampling: rows (a constant) @ input, then @ columns (a constant 2-D matrix)
    rows = only_consumer(graph.input[0].name, "MatMul")
    cols = only_consumer(rows.output[0], "MatMul")
    if (
        rows.input[0] not in consts
        or list(rows.input[1:]) != [graph.input[0].name]
        or list(cols.input) != [rows.output[0], cols.input[1]]
        or cols.input[1] not in consts
        or len(consts[cols.input[1]].dims) != 2
    ):
        raise ConfigError("the file does not begin with the chip resampling (not a blockwise student?)")

    def attrs(node: Any) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    conv = only_consumer(cols.output[0], "Conv")
    relu = only_consumer(conv.output[0], "Relu")
    pool = only_consumer(relu.output[0], "MaxPool")
    ca, pa = attrs(conv), attrs(pool)
    if (
        ca.get("kernel_shape") != [7, 7]
        or ca.get("strides") != [2, 2]
        or any(ca.get("pads", [0]))
        or pa.get("kernel_shape") != [3, 3]
        or pa.get("strides") != [2, 2]
        or any(pa.get("pads", [0]))
    ):
        raise ConfigError(f"unexpected stem: conv {ca}, pool {pa}")
    return OldStem(
        (rows.name, cols.name, conv.name, relu.name, pool.name),
        pool.output[0],
        int(consts[conv.input[1]].dims[0]),
    )


def subgraph(model: ModelProto, *outputs: str) -> ModelProto:
    """The part of ``model`` that computes ``outputs`` from the input, its only outputs."""
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    need, keep = list(outputs), set()
    while need:
        name = need.pop()
        node = producer.get(name)
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        need.extend(node.input)
    nodes = [n for n in graph.node if id(n) in keep]
    used = {i for n in nodes for i in n.input}
    sub = helper.make_graph(
        nodes,
        "stem",
        list(graph.input),
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [i for i in graph.initializer if i.name in used],
    )
    return helper.make_model(sub, opset_imports=list(model.opset_import))


def following_blocks(model: ModelProto, start: str, count: int) -> list[Any]:
    """The nodes of the ``count`` blocks that read ``start`` (a block ends with the ReLU of the
    Add of two tensors: the shortcut's), in order; ConfigError when they hold anything but
    convolutions, ReLUs, Adds and Muls (a Mul, an Add of a constant: BatchNorm left unfolded)."""
    graph = model.graph
    consts = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    known, nodes, ends = {start}, [], 0
    for node in graph.node:
        if ends == count:
            break
        if not any(i in known for i in node.input):
            continue
        if node.op_type not in ("Conv", "Relu", "Add", "Mul"):
            raise ConfigError(
                f"block {ends + 1} after the stem holds a {node.op_type}: only Conv, Relu, Add, Mul"
            )
        nodes.append(node)
        known.update(node.output)
        source = producer.get(node.input[0])
        if (
            node.op_type == "Relu"
            and source is not None
            and source.op_type == "Add"
            and not any(i in consts for i in source.input)
        ):
            ends += 1
    if ends < count:
        raise ConfigError(f"only {ends} blocks of Conv, Relu, Add and Mul after the stem")
    return nodes


@dataclass(frozen=True)
class NewStem:
    """The new stem's convolution: its size, stride and zero padding."""

    kernel: int
    stride: int
    pad: int


def stem_weights(model: ModelProto) -> list[np.ndarray]:
    """A restemmed file's stem weights, in Keras' order and layout (to start another run from)."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    try:
        return [
            consts["restem_conv_w"].transpose(2, 3, 1, 0),
            consts["restem_conv_b"],
            consts["restem_mix_w"].transpose(2, 3, 1, 0),
            consts["restem_mix_b"],
        ]
    except KeyError as exc:
        raise ConfigError(f"not a restemmed file (no {exc})") from exc


def splice_stem(
    model: ModelProto, rows: np.ndarray, cols: np.ndarray, weights: list[np.ndarray], new: NewStem
) -> ModelProto:
    """``model`` with its resampling, stem convolution and max-pool replaced by the grid
    ``rows @ crop @ cols.T`` and two convolutions (``weights``: the first's kernel and bias, the
    1x1 mix's kernel and bias, in Keras' HWIO layout), each followed by a ReLU; every later node
    reads the same tensor as before."""
    import onnx
    from onnx import helper, numpy_helper

    old = find_stem(model)
    graph = model.graph
    conv_w, conv_b, mix_w, mix_b = weights
    consts = {
        "restem_rows": rows,
        "restem_columns": np.ascontiguousarray(cols.T),
        "restem_conv_w": conv_w.transpose(3, 2, 0, 1),  # HWIO -> OIHW
        "restem_conv_b": conv_b,
        "restem_mix_w": mix_w.transpose(3, 2, 0, 1),
        "restem_mix_b": mix_b,
    }
    inp = graph.input[0].name
    front = [
        helper.make_node("MatMul", ["restem_rows", inp], ["restem_r"], name="restem/rows"),
        helper.make_node("MatMul", ["restem_r", "restem_columns"], ["restem_grid"], name="restem/columns"),
        helper.make_node(
            "Conv",
            ["restem_grid", "restem_conv_w", "restem_conv_b"],
            ["restem_c"],
            name="restem/conv",
            kernel_shape=[new.kernel] * 2,
            strides=[new.stride] * 2,
            pads=[new.pad] * 4,
        ),
        helper.make_node("Relu", ["restem_c"], ["restem_a"], name="restem/relu"),
        helper.make_node(
            "Conv", ["restem_a", "restem_mix_w", "restem_mix_b"], ["restem_m"], name="restem/mix"
        ),
        helper.make_node("Relu", ["restem_m"], [old.output], name="restem/relu_mix"),
    ]
    rest = [n for n in graph.node if n.name not in old.nodes]
    del graph.node[:]
    graph.node.extend(front + rest)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items())
    onnx.checker.check_model(model)
    return model
