"""MTCNN's three networks (PNet, RNet, ONet) as ONNX graphs that facetags builds itself.

The weights come from the installed ``mtcnn`` wheel (MIT licence): ``mtcnn/assets/weights/*.lz4``
are joblib dumps (lz4-compressed) of the Keras ``get_weights()`` lists. We only read those files;
importing the ``mtcnn`` package would import TensorFlow, so we locate its folder with
``importlib.util.find_spec`` and never import it.

Layer layout (from ``mtcnn/network/*.py``, Keras NHWC; the graphs here are NCHW):

* PNet: conv3x3(10) PReLU maxpool2x2/2 'same' | conv3x3(16) PReLU | conv3x3(32) PReLU |
  conv1x1(4) -> box regression, conv1x1(2) softmax -> face probability. Fully convolutional.
  (Here that softmax is one sigmoid channel: PNet's "prob" output is (n, 1, h, w).)
* RNet (24x24): conv3x3(28) PReLU maxpool3x3/2 'same' | conv3x3(48) PReLU maxpool3x3/2 'valid' |
  conv2x2(64) PReLU | permute to (W, H, C) + flatten | dense(128) PReLU | dense(4), dense(2) softmax.
* ONet (48x48): conv3x3(32) PReLU maxpool3x3/2 'same' | conv3x3(64) PReLU maxpool3x3/2 'valid' |
  conv3x3(64) PReLU maxpool2x2/2 'same' | conv2x2(128) PReLU | permute + flatten | dense(256) PReLU |
  dense(4) box, dense(10) landmarks (x1..x5, y1..y5), dense(2) softmax.

Every output is float32. The graphs take raw RGB pixel values (0..255, float32) in NHWC
layout: the reference's ``(pixel - 127.5) / 128`` and the layout change are part of the graph.
:mod:`facetags.vision.onnxgraph` writes the graphs' bytes: the ``onnx`` package is not imported.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetags.errors import ModelError
from facetags.vision import onnxgraph as og

log = logging.getLogger(__name__)

OPSET = 17
IR_VERSION = 8

# Keras layer specs, in the order their weights appear in ``get_weights()``.
# ("conv", kernel, pool) where pool is None or (size, stride, "same"|"valid").
_Layer = tuple[str, int, tuple[int, int, str] | None]
_ARCH: dict[str, list[_Layer]] = {
    "pnet": [("conv", 3, (2, 2, "same")), ("conv", 3, None), ("conv", 3, None)],
    "rnet": [("conv", 3, (3, 2, "same")), ("conv", 3, (3, 2, "valid")), ("conv", 2, None)],
    "onet": [
        ("conv", 3, (3, 2, "same")),
        ("conv", 3, (3, 2, "valid")),
        ("conv", 3, (2, 2, "same")),
        ("conv", 2, None),
    ],
}
_HEADS: dict[str, list[tuple[str, bool]]] = {  # (output name, softmax?)
    "pnet": [("box", False), ("prob", True)],
    "rnet": [("box", False), ("prob", True)],
    "onet": [("box", False), ("landmarks", False), ("prob", True)],
}
INPUT_SIZE = {"rnet": 24, "onet": 48}


def weights_dir() -> Path:
    """The ``assets/weights`` folder of the installed ``mtcnn`` wheel (without importing it)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the 'mtcnn' package (MIT, weights for face detection) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"
    if not folder.is_dir():
        raise ModelError(f"mtcnn weights folder not found: {folder}")
    return folder


def load_weights(name: str) -> list[np.ndarray]:
    """The Keras weight list of ``name`` ("pnet", "rnet" or "onet") as float32 arrays."""
    import joblib

    path = weights_dir() / f"{name}.lz4"
    try:
        weights = joblib.load(path)
    except Exception as exc:  # joblib raises many kinds on a corrupt file
        raise ModelError(f"{path}: cannot load MTCNN weights: {exc}") from exc
    return [np.asarray(w, dtype=np.float32) for w in weights]


def build_graph(name: str) -> bytes:
    """The serialised ONNX model of one MTCNN network, built from the wheel's weights."""
    weights = iter(load_weights(name))
    inits: list[og.Tensor] = []
    nodes: list[og.Node] = []

    def const(tag: str, value: np.ndarray) -> str:
        inits.append(og.tensor(tag, np.ascontiguousarray(value, dtype=np.float32)))
        return tag

    # Input: raw pixels, NHWC. The reference normalises (x - 127.5) / 128 first; conv1 has no
    # padding, so that is folded exactly into conv1's weights and bias.
    nodes.append(og.node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))
    const("zero", np.zeros(1, dtype=np.float32))
    x = "nchw"
    for i, (_, kernel, pool) in enumerate(_ARCH[name], start=1):
        w, b, alpha = next(weights), next(weights), next(weights)
        assert w.shape[0] == kernel
        if i == 1:
            b = b - (127.5 / 128.0) * w.sum(axis=(0, 1, 2))
            w = w / 128.0
        # Keras HWIO -> ONNX OIHW; PReLU alpha (1, 1, C) -> (C, 1, 1) for NCHW.
        wn = const(f"conv{i}.w", w.transpose(3, 2, 0, 1))
        bn = const(f"conv{i}.b", b)
        an = const(f"prelu{i}.alpha_minus_1", alpha.reshape(-1, 1, 1) - 1.0)
        nodes.append(og.node("Conv", [x, wn, bn], [f"conv{i}"], kernel_shape=[kernel] * 2))
        nodes += _prelu(f"conv{i}", an, f"prelu{i}")
        x = f"prelu{i}"
        if pool is not None:
            size, stride, padding = pool
            nodes.append(
                og.node(
                    "MaxPool",
                    [x],
                    [f"pool{i}"],
                    kernel_shape=[size] * 2,
                    strides=[stride] * 2,
                    # TF 'same' pads the extra row/column at the end, as SAME_UPPER does.
                    auto_pad="SAME_UPPER" if padding == "same" else "VALID",
                )
            )
            x = f"pool{i}"

    outputs: list[og.ValueInfo] = []
    if name == "pnet":
        for head, softmax in _HEADS[name]:
            w, b = next(weights), next(weights)
            if softmax:
                # A two-way softmax's second output is sigmoid(l1 - l0): one channel, not two.
                w = w[..., 1:] - w[..., :1]
                b = b[1:] - b[:1]
            wn, bn = const(f"{head}.w", w.transpose(3, 2, 0, 1)), const(f"{head}.b", b)
            out = f"{head}_logits" if softmax else head
            nodes.append(og.node("Conv", [x, wn, bn], [out], kernel_shape=[1, 1]))
            if softmax:
                nodes.append(og.node("Sigmoid", [out], [head]))
            outputs.append(og.value_info(head, og.FLOAT, ["n", w.shape[-1], "h", "w"]))
    else:
        # Keras permutes NHWC to (N, W, H, C) before flattening; from NCHW that is perm (0, 3, 2, 1).
        nodes.append(og.node("Transpose", [x], ["permuted"], perm=[0, 3, 2, 1]))
        nodes.append(og.node("Flatten", ["permuted"], ["flat"], axis=1))
        w, b, alpha = next(weights), next(weights), next(weights)
        nodes.append(og.node("Gemm", ["flat", const("fc.w", w), const("fc.b", b)], ["fc"]))
        nodes += _prelu("fc", const("fc.alpha_minus_1", alpha - 1.0), "fc_act")
        for head, softmax in _HEADS[name]:
            w, b = next(weights), next(weights)
            out = f"{head}_logits" if softmax else head
            nodes.append(og.node("Gemm", ["fc_act", const(f"{head}.w", w), const(f"{head}.b", b)], [out]))
            if softmax:
                nodes.append(og.node("Softmax", [out], [head], axis=1))
            outputs.append(og.value_info(head, og.FLOAT, ["n", w.shape[1]]))
    if next(weights, None) is not None:
        raise ModelError(f"{name}: unexpected extra weights in the mtcnn wheel")

    side = INPUT_SIZE.get(name)
    dims: list[int | str] = ["n", side or "h", side or "w", 3]
    body = og.graph(
        nodes, f"facetags-mtcnn-{name}", [og.value_info("input", og.FLOAT, dims)], outputs, initializer=inits
    )
    return og.model(body, opset=OPSET, ir_version=IR_VERSION, producer_name="facetags")


def _prelu(x: str, alpha_minus_1: str, out: str) -> list[og.Node]:
    """PReLU as ``x + (alpha - 1) * min(x, 0)``. onnxruntime's PRelu kernel with per-channel
    slopes was measured 5x slower than these three element-wise ops on PNet's large maps."""
    return [
        og.node("Min", [x, "zero"], [f"{out}.neg"]),
        og.node("Mul", [f"{out}.neg", alpha_minus_1], [f"{out}.scaled"]),
        og.node("Add", [x, f"{out}.scaled"], [out]),
    ]


@dataclass
class Net:
    """One network ready to run: ``run(x)`` returns its outputs in ``outputs`` order."""

    name: str
    session: Any
    outputs: list[str]
    lock: threading.Lock

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        with self.lock:  # an InferenceSession may be shared; keep runs on one net serial
            result: list[np.ndarray] = self.session.run(self.outputs, {"input": x})
        return result


def open_graph(model: bytes, threads: int = 0) -> Any:
    """An onnxruntime CPU session for a serialised ONNX model built in memory (MTCNN's networks,
    dlib's, :mod:`facetags.vision.dlib_onnx`): full graph optimisation, ``threads`` intra-op
    threads (the ``threads`` setting; 0: automatic, :func:`facetags.vision.runtime.session_threads`)."""
    from facetags.vision.runtime import onnxruntime, session_threads

    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = session_threads(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Busy-waiting worker threads steal the CPU from numpy and from other processes on a
    # small machine; measured faster without it on 2 shared cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@functools.cache
def load_net(name: str, threads: int = 0) -> Net:
    """Build (once per process and thread count) and open one MTCNN network with onnxruntime,
    ``threads`` as for :func:`open_graph`."""
    session = open_graph(build_graph(name), threads)
    log.debug("built MTCNN %s", name)
    return Net(name, session, [o.name for o in session.get_outputs()], threading.Lock())
