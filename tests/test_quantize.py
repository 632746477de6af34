"""The graph edits ``train quantize`` makes before quantizing (no TensorFlow: small ONNX graphs
built here, run by onnxruntime)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from facetags.train.quantize import (  # noqa: E402
    add_flip,
    drop_identity_slices,
    mirror_at_warp,
    warp_pair,
)

SIDE, CHIP, DIM = 12, 9, 6


def _run(model: Any, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def _graph(warp: bool, rng: np.random.Generator) -> Any:
    """input (N, 3, 12, 12) -> [rows @ x @ columns: (N, 3, 9, 9)] -> Conv 3x3 -> Slice that keeps
    everything -> Mul (a BatchNorm's scale) -> Slice of two rows -> Relu -> global average pool
    -> Dense(DIM): an embedding-shaped graph with the pieces the edits look for."""
    side = CHIP if warp else SIDE
    consts = {
        "rows": rng.random((CHIP, SIDE), np.float32),
        "cols": rng.random((SIDE, CHIP), np.float32),
        "w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "scale": rng.random((1, 8, 1, 1)).astype(np.float32) + 0.5,
        "dense": rng.standard_normal((8, DIM)).astype(np.float32),
        "all_starts": np.zeros(4, np.int64),
        "all_ends": np.full(4, np.iinfo(np.int64).max, np.int64),
        "all_axes": np.array([0, 2, 3, 1], np.int64),
        "cut_starts": np.array([1], np.int64),
        "cut_ends": np.array([side - 3], np.int64),
        "cut_axes": np.array([2], np.int64),
        "flat": np.array([-1, 8], np.int64),
    }
    nodes = []
    first = "input"
    if warp:
        nodes += [
            helper.make_node("MatMul", ["rows", "input"], ["r"]),
            helper.make_node("MatMul", ["r", "cols"], ["chip"]),
        ]
        first = "chip"
    nodes += [
        helper.make_node("Conv", [first, "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["c", "all_starts", "all_ends", "all_axes"], ["kept"]),
        helper.make_node("Mul", ["kept", "scale"], ["bn"]),
        helper.make_node("Slice", ["bn", "cut_starts", "cut_ends", "cut_axes"], ["cut"]),
        helper.make_node("Relu", ["cut"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["p"]),
        helper.make_node("Reshape", ["p", "flat"], ["f"]),
        helper.make_node("MatMul", ["f", "dense"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, DIM])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _copy(model: Any) -> Any:
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    return twin


def test_identity_slices_are_dropped_and_nothing_else_changes() -> None:
    rng = np.random.default_rng(0)
    model = _graph(warp=True, rng=rng)
    x = rng.standard_normal((4, 3, SIDE, SIDE)).astype(np.float32)
    before = _run(model, x)
    edited = drop_identity_slices(_copy(model))
    slices = [n for n in edited.graph.node if n.op_type == "Slice"]
    assert [n.output[0] for n in slices] == ["cut"]  # the one that cuts stays
    assert [n.input[0] for n in edited.graph.node if n.op_type == "Mul"] == ["c"]
    assert np.array_equal(_run(edited, x), before)


def test_flip_at_the_warp_is_the_flip_of_the_input() -> None:
    """The mirror image's chip made by the column product equals the chip of the mirrored crop:
    the same vectors as the input-Slice flip pass, one row product instead of two; and a graph
    without the resampling is left to the input-Slice flip."""
    rng = np.random.default_rng(1)
    model = _graph(warp=True, rng=rng)
    x = rng.standard_normal((5, 3, SIDE, SIDE)).astype(np.float32)
    assert warp_pair(model) is not None
    at_input = add_flip(_copy(model), "NCHW")
    at_warp = _copy(model)
    assert mirror_at_warp(at_warp) is True
    assert sum(n.op_type == "MatMul" for n in at_warp.graph.node) == 4  # rows, columns x2, dense
    assert not any(n.op_type == "Slice" and n.input[0] == "input" for n in at_warp.graph.node)
    want, got = _run(at_input, x), _run(at_warp, x)
    assert got.shape == (5, DIM)
    assert np.allclose(got, want, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    plain = _run(model, x)
    direct = plain + _run(model, np.ascontiguousarray(x[..., ::-1]))
    assert np.allclose(got, direct / np.linalg.norm(direct, axis=1, keepdims=True), atol=1e-5)
    assert np.allclose(_run(at_warp, np.ascontiguousarray(x[..., ::-1])), got, atol=1e-5)

    bare = _graph(warp=False, rng=rng)
    assert warp_pair(bare) is None
    assert mirror_at_warp(bare) is False
    assert bare.graph.node[0].op_type == "Conv"  # untouched
