"""The MobileFaceNet plan of the blockwise student (``train blocks --teacher mobilefacenet``).

The teacher is the opt-in ``mobilefacenet-v1`` file (MobileFaceNet, 192-D, built by
:mod:`facetags.train.mobilefacenet`) run by onnxruntime with its trunk's activations as extra
outputs: the stem's (conv 3x3/2, depthwise 3x3, linear 1x1: 56x56x64), each of its 15
bottlenecks' (linear projections, with the shortcut added where the shape allows: 5 at
28x28x64, 7 at 14x14x128, 3 at 7x7x128) and the 512-channel map before its global depthwise
convolution (taken before the PReLU, so a student with another activation can match it). It takes
the 112x112 crop itself, as the student does: no chip resampling.

The converted graph's tensor names are digests (:func:`facetags.train.mobilefacenet.canonical`),
so the taps are found by structure (:func:`tap_names`): every 1x1 convolution without an
activation after it is the stem's last step or a bottleneck's projection (the Add that takes it
and the previous tap, where there is one, is the block's output), and the input of the 7x7
depthwise convolution is the 512-channel map; the plan read from the shapes must be
MobileFaceNet's (:data:`PLAN`).

The student (:class:`MfnStudent`) has one inverted residual (1x1 expansion, 3x3 depthwise, linear
1x1 projection, BatchNorm, ReLU) per bottleneck at the teacher's resolutions and widths, with the
shortcut where the shape allows, a 1x1 convolution to 512 channels, and MobileFaceNet's head
(global depthwise 7x7 convolution, BatchNorm, Dense, L2). ReLU, not PReLU: onnxruntime's int8
convolutions take a ReLU into their output range, while a PReLU stays a float step between two
integer ones (the same untrained student, int8 with the flip pass: 2.2–2.5 ms CPU time a face
with ReLU, 7.5–9.0 with PReLU). The expansions and the stem's width are the speed's knobs
(:data:`DEFAULT_EXPAND`; the measurements are in docs/models.md, Training).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from facetags.errors import ModelError
from facetags.train.plan import BlockPlan, BlockStudent

if TYPE_CHECKING:
    from onnx import ModelProto

keras: Any = tf.keras
log = logging.getLogger(__name__)

MODEL_ID = "mobilefacenet-v1"
CROP = 112
#: the teacher's input is (pixel - 127.5) / 128; the student's (pixel - 127.5) / 127.5
TEACHER_STD = 128.0
#: MobileFaceNet's taps (height, width, channels): the stem, the 15 bottlenecks, the 512 map
PLAN: tuple[tuple[int, int, int], ...] = (
    ((56, 56, 64),) + ((28, 28, 64),) * 5 + ((14, 14, 128),) * 7 + ((7, 7, 128),) * 3 + ((7, 7, 512),)
)
#: expansion of each run of blocks (:func:`block_runs`): the 56->28 block, the four 28x28 blocks,
#: the 28->14 block, the six 14x14 blocks, the 14->7 block, the two 7x7 blocks. MobileFaceNet's
#: own are 2,2,4,2,4,2; the student's default keeps them where the resolution is low and drops
#: the expansion of the two blocks that read a 56x56 or 28x28 map and halve it
DEFAULT_EXPAND = (1, 2, 1, 2, 4, 2)
MFN_EXPAND = (2, 2, 4, 2, 4, 2)
DEFAULT_STEM_WIDTH = 32


# --------------------------------------------------------------------------- the teacher


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def tap_names(model: ModelProto) -> list[str]:
    """The tensors of MobileFaceNet's trunk, in order: the stem's output, each bottleneck's
    output, the 512-channel map before its activation (see the module's docstring)."""
    graph = model.graph
    consumers: dict[str, list[Any]] = {}
    producer: dict[str, Any] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    activations = {"Relu", "Abs", "PRelu", "LeakyRelu", "Sigmoid", "Clip"}
    taps: list[str] = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        kernel = list(_attr(node, "kernel_shape") or [])
        out = node.output[0]
        if kernel == [7, 7]:  # the global depthwise convolution: its input is the 512 map
            act = producer.get(node.input[0])
            relu = next(
                (
                    producer[i]
                    for i in (act.input if act is not None else [])
                    if producer.get(i) is not None and producer[i].op_type == "Relu"
                ),
                None,
            )
            if relu is None:
                raise ModelError("the 512-channel map before the 7x7 convolution is not a PReLU's output")
            taps.append(relu.input[0])
            return taps
        if kernel != [1, 1] or any(c.op_type in activations for c in consumers.get(out, [])):
            continue
        add = next(
            (c for c in consumers.get(out, []) if c.op_type == "Add" and taps and taps[-1] in c.input),
            None,
        )
        taps.append(add.output[0] if add is not None else out)
    raise ModelError("no 7x7 global depthwise convolution: not MobileFaceNet's graph")


def with_taps(model: ModelProto) -> tuple[ModelProto, int]:
    """The model with each tap of :func:`tap_names` as an extra output ``tapK``, NHWC (a
    Transpose in the graph). Returns the model and the number of taps."""
    from onnx import TensorProto, helper

    names = tap_names(model)
    graph = model.graph
    for k, name in enumerate(names):
        graph.node.append(helper.make_node("Transpose", [name], [f"tap{k}"], perm=[0, 2, 3, 1]))
        graph.output.append(helper.make_tensor_value_info(f"tap{k}", TensorProto.FLOAT, None))
    return model, len(names)


def teacher_file() -> Path:
    """The shipped ``mobilefacenet-v1.onnx``, checked against its spec."""
    from facetags.vision.specs import get_spec, verified_path

    return verified_path(get_spec(MODEL_ID))


class MobileFaceNetTeacher:
    """MobileFaceNet with its taps, in onnxruntime; answers for normalised crops (the student's
    scaling, (pixel - 127.5) / 127.5) with unit vectors (N, 192) and NHWC taps."""

    name = "mobilefacenet"
    #: the student's input is the crop itself
    size = CROP

    def __init__(self, path: Path | None = None, threads: int = 0) -> None:
        import onnx

        from facetags.vision.mtcnn import open_graph

        model, count = with_taps(onnx.load(str(path or teacher_file())))
        self.session = open_graph(model.SerializeToString(), threads)
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.embedding = self.outputs[0]
        self.lock = threading.Lock()
        self.count = count
        self.dim = int(self.vectors(np.zeros((1, CROP, CROP, 3), np.float32)).shape[1])

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The student's body input for normalised crops: the crops themselves."""
        return x

    def _run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        feed = np.ascontiguousarray(x * (127.5 / TEACHER_STD), dtype=np.float32)
        with self.lock:
            return list(self.session.run(names, {self.input: feed}))

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(unit vectors (N, 192), NHWC taps) for normalised crops (N, 112, 112, 3)."""
        out = self._run(x, self.outputs)
        return _unit(out[0]), out[1:]

    def vectors(self, x: np.ndarray, batch: int = 64) -> np.ndarray:
        """Unit vectors (N, 192) only."""
        rows = [self._run(x[i : i + batch], [self.embedding])[0] for i in range(0, len(x), batch)]
        return _unit(np.concatenate(rows)) if rows else np.zeros((0, 192), np.float32)

    def plan(self) -> BlockPlan:
        """The shapes of the teacher's taps (one blank crop through the network), checked
        against MobileFaceNet's."""
        _, taps = self(np.zeros((1, CROP, CROP, 3), np.float32))
        shapes = tuple((t.shape[1], t.shape[2], t.shape[3]) for t in taps)
        if shapes != PLAN:
            raise ModelError(f"the teacher's taps {shapes} are not MobileFaceNet's plan {PLAN}")
        return BlockPlan(shapes)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- the student


def _bn(momentum: float) -> Any:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)


def block_runs(plan: BlockPlan) -> list[int]:
    """The run (an index into the expansions) of each inverted residual of ``plan``, the blocks
    between the stem and the 512 map: a block that changes the shape is a run of its own, and
    the blocks after it that keep the shape are the next run (MobileFaceNet: 0, 1, 1, 1, 1, 2,
    3, 3, 3, 3, 3, 4, 5, 5)."""
    runs: list[int] = []
    run, same = -1, False
    for src, dst in zip(plan.shapes[:-2], plan.shapes[1:-1], strict=True):
        if src != dst or not same:
            run += 1
        same = src == dst
        runs.append(run)
    return runs


def make_stem(out: tuple[int, int, int], width: int, momentum: float) -> Any:
    """MobileFaceNet's stem at ``width`` channels: conv 3x3/2, depthwise 3x3 (BatchNorm, ReLU
    each), then a linear 1x1 convolution to the teacher's stem width."""
    x = keras.Input((CROP, CROP, 3))
    y = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
    y = keras.layers.ReLU()(_bn(momentum)(y))
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = keras.layers.ReLU()(_bn(momentum)(y))
    y = _bn(momentum)(keras.layers.Conv2D(out[2], 1, use_bias=False)(y))
    if tuple(y.shape[1:]) != tuple(out):
        raise ModelError(f"the stem gives {tuple(y.shape[1:])}, the teacher's {out}")
    return keras.Model(x, y, name="stem")


def make_block(
    index: int, src: tuple[int, int, int], dst: tuple[int, int, int], expand: int, momentum: float
) -> Any:
    """One inverted residual standing for MobileFaceNet's bottleneck ``index`` (``src`` ->
    ``dst``): 1x1 expansion (none for ``expand`` 1), 3x3 depthwise (stride 2 where the resolution
    halves), linear 1x1 projection; the shortcut where the shape stays."""
    h, w, c = src
    th, tw, tc = dst
    if (th, tw) not in ((h, w), (-(-h // 2), -(-w // 2))):
        raise ModelError(f"block {index}: {src} -> {dst} neither keeps nor halves the resolution")
    x = keras.Input(src)
    y = x
    if expand > 1:
        y = keras.layers.ReLU()(_bn(momentum)(keras.layers.Conv2D(c * expand, 1, use_bias=False)(y)))
    stride = 1 if (th, tw) == (h, w) else 2
    y = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(y)
    y = keras.layers.ReLU()(_bn(momentum)(y))
    y = _bn(momentum)(keras.layers.Conv2D(tc, 1, use_bias=False)(y))
    if src == dst:
        y = keras.layers.Add()([y, x])
    return keras.Model(x, y, name=f"block{index}")


def make_top(index: int, src: tuple[int, int, int], dst: tuple[int, int, int], momentum: float) -> Any:
    """The 1x1 convolution to the 512-channel map (BatchNorm; the activation is the head's, as
    the teacher's tap is taken before it)."""
    x = keras.Input(src)
    y = _bn(momentum)(keras.layers.Conv2D(dst[2], 1, use_bias=False)(x))
    return keras.Model(x, y, name=f"block{index}")


def make_head(src: tuple[int, int, int], dim: int, momentum: float) -> Any:
    """ReLU, MobileFaceNet's global depthwise convolution over the whole map, BatchNorm,
    Dense(dim), L2."""
    x = keras.Input(src)
    y = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D((src[0], src[1]), padding="valid", use_bias=False)(y)
    y = keras.layers.Flatten()(_bn(momentum)(y))
    y = keras.layers.Dense(dim, use_bias=False)(y)
    y = keras.layers.UnitNormalization(axis=1)(y)
    return keras.Model(x, y, name="head")


@dataclass(frozen=True)
class MfnStudentConfig:
    expand: tuple[int, ...] = DEFAULT_EXPAND  # one per run of blocks (block_runs)
    stem_width: int = DEFAULT_STEM_WIDTH
    dim: int = 128
    bn_momentum: float = 0.99


class MfnStudent(BlockStudent):
    """The stem, the blocks (the last one: the 1x1 convolution to the 512 map) and the head as
    separate Keras models, and the chained whole; the same parts as the dlib plan's student
    (:class:`facetags.train.blockwise.Student`), on the 112x112 crop."""

    def __init__(self, plan: BlockPlan, cfg: MfnStudentConfig) -> None:
        self.plan, self.cfg = plan, cfg
        runs = block_runs(plan)
        if len(cfg.expand) != max(runs) + 1:
            raise ModelError(
                f"the MobileFaceNet plan has {max(runs) + 1} runs of blocks: give as many expansions, "
                f"not {len(cfg.expand)} ({','.join(map(str, cfg.expand))})"
            )
        m = cfg.bn_momentum
        self.stem = make_stem(plan.shapes[0], cfg.stem_width, m)
        self.blocks = [
            make_block(i, plan.shapes[i - 1], plan.shapes[i], cfg.expand[runs[i - 1]], m)
            for i in range(1, len(plan.shapes) - 1)
        ]
        n = len(plan.shapes) - 1
        self.blocks.append(make_top(n, plan.shapes[n - 1], plan.shapes[n], m))
        self.head = make_head(plan.shapes[-1], cfg.dim, m)
        crop = keras.Input((CROP, CROP, 3))
        y = self.stem(crop)
        for block in self.blocks:
            y = block(y)
        self.body = keras.Model(crop, self.head(y), name="student_body")
        self.model = keras.Model(crop, self.body(crop), name="student")
