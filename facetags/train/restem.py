"""A cheaper stem for the blockwise student, taught the student's own stem (``train restem``).

The blockwise student begins as its teacher does: the 112x112 crop resampled to dlib's 150x150
chip (two matrix products), a 7x7 convolution at stride 2 (72x72x32) and a 3x3 max-pool at
stride 2 (35x35x32). That front end is a quarter of the int8 file's time, the convolution alone
a sixth: 24 M multiply-adds a face, more than any block, on a chip that is the crop upsampled
1.5x (the chip spans 98.75 crop pixels).

The new stem computes the same 35x35x32 tensor from a coarser resampling: the crop sampled on a
grid of ``102 + kernel - 2 * pad`` points a side at 4/3 of the chip's pixel pitch (0.88 crop
pixels: no finer than the crop itself), placed so that window ``i`` of a ``kernel`` x ``kernel``
convolution at stride 3 is centred where the old stem's output ``i`` is; then ReLU, a 1x1
convolution to the old width and ReLU (the old stem's output is a max of ReLUs, so it is never
negative). ``kernel`` 9, ``width`` 48: 14 M multiply-adds a face on a 109x109 grid instead of
24 M on the 150x150 chip, and no max-pool. The grid's columns are symmetric about the crop's
centre, so the mirror image's grid is the grid of the mirrored crop: the flip pass
(``train quantize --flip-tta``) stays the crop's mirror image.

Training is self-distillation on the stem alone: the float file's own stem output for each
(augmented) crop is the target, squared error over its mean square; the blocks after it are
untouched. Any face crop teaches it (no identities used): the training cache without the
held-out people.

Finding the old stem in the file and splicing the new one in is ONNX graph work, in
``stemgraph.py``; this module trains the stem (Keras) and writes the new file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facetags.errors import ConfigError
from facetags.train.blockwise import CHIP, CHIP_CENTRE, CHIP_SIDE, CROP, bilinear_weights
from facetags.train.data import CropSet, augment_batch
from facetags.train.quantize import float32_weights
from facetags.train.specfile import write_spec
from facetags.train.stemgraph import (
    NewStem,
    OldStem,
    find_stem,
    following_blocks,
    splice_stem,
    stem_weights,
    subgraph,
)
from facetags.vision.embed import preprocess
from facetags.vision.specs import ModelSpec, sha256_file

if TYPE_CHECKING:
    from onnx import ModelProto

log = logging.getLogger(__name__)

STRIDE = 3
#: the old stem: chip pixel ``4 * i + 5`` is the centre of its output ``i`` (7x7 convolution at
#: stride 2, centre ``2 r + 3``; 3x3 max-pool at stride 2, centre ``r = 2 i + 1``)
OLD_PITCH, OLD_FIRST = 4, 5
OUT = 35


@dataclass(frozen=True)
class StemPlan:
    kernel: int = 9
    width: int = 48
    pad: int = 1
    steps: int = 6000
    batch: int = 32
    lr: float = 2e-3
    seed: int = 0
    validation: int = 512
    #: also match the output of this many blocks after the stem (run frozen, as in the file):
    #: the stem's error weighed by what the blocks make of it. 0: the stem's output only
    blocks: int = 0

    @property
    def grid(self) -> int:
        """Grid points a side: ``(grid + 2 pad - kernel) / 3 + 1 = 35`` outputs."""
        return STRIDE * (OUT - 1) + self.kernel - 2 * self.pad

    def check(self) -> None:
        if self.kernel < STRIDE or not 0 <= self.pad < self.kernel:
            raise ConfigError(
                f"stem kernel {self.kernel} / pad {self.pad}: need kernel >= 3, 0 <= pad < kernel"
            )
        if self.width < 1 or self.steps < 1 or self.batch < 2 or self.blocks < 0:
            raise ConfigError("stem width and steps must be positive, batch >= 2, blocks >= 0")


def frozen_blocks(model: ModelProto, start: str, nodes: list[Any]) -> Any:
    """A TensorFlow function running ``nodes`` (from :func:`following_blocks`) on NHWC tensors
    with the file's weights, untrainable: ``start``'s value in, the last node's out."""
    import tensorflow as tf
    from onnx import helper, numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    steps: list[tuple[Any, ...]] = []
    for node in nodes:
        if node.op_type in ("Add", "Mul") and any(i in consts for i in node.input):
            other, const = sorted(node.input, key=lambda i: i in consts)
            value = consts[const]
            if value.ndim == 4 and value.shape[0] == value.shape[2] == value.shape[3] == 1:
                value = value.reshape(-1)  # NCHW (1, C, 1, 1) -> NHWC (C,)
            elif value.size != 1:
                raise ConfigError(f"{node.name}: a constant of shape {value.shape}")
            steps.append((node.op_type + "Const", [other], node.output[0], tf.constant(value)))
            continue
        if node.op_type != "Conv":
            steps.append((node.op_type, list(node.input), node.output[0]))
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        w = consts[node.input[1]]
        group = int(a.get("group", 1))
        kernel = w.transpose(2, 3, 0, 1) if group > 1 else w.transpose(2, 3, 1, 0)  # OIHW -> H W . .
        bias = (
            consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(len(w), np.float32)
        )
        t, left, b, r = a.get("pads", [0, 0, 0, 0])
        stride = list(a.get("strides", [1, 1]))
        steps.append(
            (
                "Conv",
                [node.input[0]],
                node.output[0],
                tf.constant(kernel),
                tf.constant(bias),
                group,
                [[0, 0], [t, b], [left, r], [0, 0]],
                stride,
            )
        )

    def run(x: Any) -> Any:
        env = {start: x}
        for op, inputs, out, *conv in steps:
            if op == "Relu":
                env[out] = tf.nn.relu(env[inputs[0]])
            elif op == "AddConst":
                env[out] = env[inputs[0]] + conv[0]
            elif op == "MulConst":
                env[out] = env[inputs[0]] * conv[0]
            elif op == "Add":
                env[out] = env[inputs[0]] + env[inputs[1]]
            else:
                kernel, bias, group, pads, stride = conv
                h = tf.pad(env[inputs[0]], pads)
                if group > 1:
                    h = tf.nn.depthwise_conv2d(h, kernel, [1, *stride, 1], "VALID")
                else:
                    h = tf.nn.conv2d(h, kernel, [1, *stride, 1], "VALID")
                env[out] = h + bias
        return env[steps[-1][2]]

    return run


def grid_matrices(plan: StemPlan) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns), each (grid, 112): bilinear weights of the crop's rows / columns at the
    new grid's points (crop pixels outside the crop count as 0, as for the chip). Rows: window
    ``i``'s centre on the old stem's output ``i``; columns: the same pitch, the grid symmetric
    about the crop's centre (1/5 of a crop pixel from the old centres)."""
    scale = CHIP_SIDE / CHIP  # crop pixels per chip pixel
    pitch = OLD_PITCH * scale / STRIDE  # crop pixels per grid point
    n = plan.grid
    offset = (plan.kernel - 1) / 2 - plan.pad  # grid index of window 0's centre
    steps = np.arange(n) * pitch
    old_centre_y = CHIP_CENTRE[1] + (OLD_FIRST - CHIP / 2) * scale
    rows = bilinear_weights(old_centre_y - offset * pitch + steps)
    return rows, bilinear_weights((CROP - 1) / 2 - (n - 1) / 2 * pitch + steps)


def build_stem(plan: StemPlan, channels: int) -> Any:
    """The new stem in Keras: (grid, grid, 3) NHWC -> (35, 35, channels)."""
    import tensorflow as tf

    keras = tf.keras
    x = inp = keras.Input((plan.grid, plan.grid, 3))
    if plan.pad:
        x = keras.layers.ZeroPadding2D(plan.pad)(x)
    x = keras.layers.Conv2D(plan.width, plan.kernel, strides=STRIDE, activation="relu", name="stem_conv")(x)
    x = keras.layers.Conv2D(channels, 1, activation="relu", name="stem_mix")(x)
    return keras.Model(inp, x, name="restem")


def _session(model: ModelProto) -> Any:
    from facetags.vision.runtime import onnxruntime

    ort = onnxruntime()

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _grid(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Normalised NCHW crops -> the new stem's input, the grid (NHWC float32)."""
    return np.einsum("uy,ncyx,vx->nuvc", rows, x, cols, optimize=True).astype(np.float32)


class _Targets:
    """Crops -> (the new stem's input, NHWC; the old stem's output, NHWC)."""

    def __init__(
        self, model: ModelProto, old: OldStem, spec: ModelSpec, plan: StemPlan, block_out: str | None = None
    ) -> None:
        sub = subgraph(model, old.output, *([block_out] if block_out else []))
        self.session = _session(sub)
        self.input = sub.graph.input[0].name
        self.spec = spec
        self.rows, self.cols = grid_matrices(plan)

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, ...]:
        """(grid, the old stem's output, [the blocks' output]): NHWC float32."""
        x = preprocess(crops, self.spec)  # NCHW, normalised as the file expects
        ys = [
            np.ascontiguousarray(np.asarray(y).transpose(0, 2, 3, 1), np.float32)
            for y in self.session.run(None, {self.input: x})
        ]
        return (_grid(x, self.rows, self.cols), *ys)


def train_stem(
    model: ModelProto, spec: ModelSpec, data: CropSet, plan: StemPlan, init: list[np.ndarray] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Teach a new stem (:func:`build_stem`; starting from ``init``, :func:`stem_weights`, when
    given) the float file's own stem output on ``data``'s crops. Returns the Keras stem and a
    summary (validation error by step, relative to the targets' mean square)."""
    import tensorflow as tf

    from facetags.train.fit import set_seeds

    plan.check()
    if spec.layout.upper() != "NCHW":
        raise ConfigError(f"{spec.id}: restem works on NCHW files (this one is {spec.layout})")
    old = find_stem(model)
    set_seeds(plan.seed)
    rng = np.random.default_rng(plan.seed)
    deep = following_blocks(model, old.output, plan.blocks) if plan.blocks else []
    blocks = frozen_blocks(model, old.output, deep) if deep else None
    targets = _Targets(model, old, spec, plan, deep[-1].output[0] if deep else None)
    order = rng.permutation(len(data))
    held = order[: min(plan.validation, len(data) // 4)]
    train = order[len(held) :]
    val_crops = np.asarray(data.crops[held])
    val_crops[1::2] = val_crops[1::2, :, ::-1]  # half mirrored: the flip pass's other image
    vx, vy, *vz = targets(val_crops)
    scale = float(np.mean(vy**2)) or 1.0
    deep_scale = (float(np.mean(vz[0] ** 2)) or 1.0) if vz else 1.0
    stem = build_stem(plan, old.channels)
    if init is not None:
        try:
            stem.set_weights(init)
        except ValueError as exc:
            raise ConfigError(
                f"the starting stem does not fit kernel/width {plan.kernel}/{plan.width}: {exc}"
            ) from exc
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(plan.lr, plan.steps))

    @tf.function
    def step(x: Any, y: Any, *z: Any) -> Any:
        with tf.GradientTape() as tape:
            out = stem(x, training=True)
            loss = tf.reduce_mean(tf.square(out - y)) / scale
            if blocks is not None:
                loss += tf.reduce_mean(tf.square(blocks(out) - z[0])) / deep_scale
        variables = stem.trainable_variables
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    def validate() -> dict[str, float]:
        out = stem.predict(vx, batch_size=64, verbose=0)
        errors = {"val": round(float(np.mean((out - vy) ** 2) / scale), 5)}
        if blocks is not None:
            deep_out = np.concatenate(
                [blocks(tf.constant(out[i : i + 64])).numpy() for i in range(0, len(out), 64)]
            )
            errors["val_blocks"] = round(float(np.mean((deep_out - vz[0]) ** 2) / deep_scale), 5)
        return errors

    history = [{"step": 0, **validate()}]
    log.info("restem: %d training crops, %d validation; start %.4f", len(train), len(held), history[0]["val"])
    start = time.time()
    for s in range(1, plan.steps + 1):
        batch = np.asarray(data.crops[np.sort(rng.choice(train, plan.batch, replace=False))])
        loss = float(step(*targets(augment_batch(batch, rng))))
        if s % 500 == 0 or s == plan.steps:
            history.append({"step": s, "loss": round(loss, 5), **validate()})
            log.info(
                "restem step %d: loss %.4f, validation %s (%.0f s)", s, loss, history[-1], time.time() - start
            )
    return stem, {"history": history, "train_crops": len(train), "validation_crops": len(held)}


def splice(model: ModelProto, stem: Any, plan: StemPlan) -> ModelProto:
    """``model`` with its resampling, stem convolution and max-pool replaced by the new grid and
    ``stem``'s (the trained Keras stem's) two convolutions."""
    rows, cols = grid_matrices(plan)
    weights = [*stem.get_layer("stem_conv").get_weights(), *stem.get_layer("stem_mix").get_weights()]
    return splice_stem(model, rows, cols, weights, NewStem(plan.kernel, STRIDE, plan.pad))


def restem(
    src: Path,
    out_dir: Path,
    data: CropSet,
    plan: StemPlan,
    model_id: str | None = None,
    init: Path | None = None,
) -> tuple[ModelSpec, dict[str, Any]]:
    """Train a new stem for the float file ``src`` (spec json beside it) and write the file with
    it as ``out_dir/<model_id>.onnx`` + spec (float32 weights). Checks that the written file's
    stem output is the Keras stem's (max abs diff <= 1e-4)."""
    import onnx

    source = ModelSpec.from_json(src.with_suffix(".json"))
    model_id = model_id or source.id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model_id}.onnx"
    if path.resolve() == src.resolve():
        raise ValueError(f"{src}: write the new file into another folder")
    model = float32_weights(onnx.load(str(src)))
    start = stem_weights(onnx.load(str(init))) if init else None
    stem, summary = train_stem(model, source, data, plan, start)
    old = find_stem(model)
    spliced = splice(model, stem, plan)
    path.write_bytes(spliced.SerializeToString())
    # the written graph's stem against Keras', on crops it trained on
    check = preprocess(np.asarray(data.crops[: min(16, len(data))]), source)
    sub = subgraph(spliced, old.output)
    got = np.asarray(_session(sub).run(None, {sub.graph.input[0].name: check})[0])
    want = stem.predict(_grid(check, *grid_matrices(plan)), verbose=0).transpose(0, 3, 1, 2)
    diff = float(np.max(np.abs(got - want)))
    if diff > 1e-4:
        raise RuntimeError(f"the written stem differs from the trained one by {diff:.2e}")
    resampling = {"restem_rows", "restem_columns"}
    weights = sum(
        int(np.prod(i.dims))
        for i in spliced.graph.initializer
        if i.name not in resampling and i.data_type == 1 and len(i.dims)
    )
    extra = {
        **source.extra,
        # the inference graph's weights (BatchNorm folded into the convolutions; the fixed
        # resampling matrices not counted): the source's count was Keras', BatchNorm included
        "parameters": weights,
        "fp16_weights": False,
        "restem": {
            **asdict(plan),
            "grid": plan.grid,
            "from_sha256": source.sha256,
            "source_parameters": source.extra.get("parameters"),
            **({"init_sha256": sha256_file(init)} if init else {}),
            "validation_error": summary["history"][-1]["val"],
            **({"validation_error_blocks": summary["history"][-1]["val_blocks"]} if plan.blocks else {}),
            "onnx_max_abs_diff": diff,
        },
    }
    spec = write_spec(path, replace(source, id=model_id), extra)
    log.info("restem: %s -> %s (sha256 %s)", src, path, spec.sha256[:12])
    return spec, summary
