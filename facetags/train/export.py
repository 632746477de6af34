"""Export a trained student to ONNX (via tf2onnx) with its ModelSpec json and sha256."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from facetags.train.model import INPUT_SIZE, MEAN, STD
from facetags.train.specfile import write_spec
from facetags.vision.specs import ModelSpec

log = logging.getLogger(__name__)

OPSET = 17


def embedding_fn(model: tf.keras.Model, flip: bool = False) -> Any:
    """What the exported graph computes for a normalised NHWC batch: the model's embedding, or
    with ``flip`` the L2-normalised sum of the embeddings of the crop and its mirror image
    (test-time augmentation inside the file: one batch of 2N through the network)."""

    def run(x: tf.Tensor) -> tf.Tensor:
        if not flip:
            return model(x, training=False)
        both = model(tf.concat([x, tf.reverse(x, axis=[2])], axis=0), training=False)
        plain, mirrored = tf.split(both, 2, axis=0)
        return tf.math.l2_normalize(plain + mirrored, axis=1)

    return run


def export_onnx(model: tf.keras.Model, path: Path, nchw: bool = True, flip: bool = False) -> Path:
    """Write ``model`` as ONNX: float32 input (N, 3, 112, 112) if ``nchw`` else NHWC, normalised;
    ``flip``: with flip test-time augmentation in the graph (:func:`embedding_fn`)."""
    import tf2onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    spec = (tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32, name="input"),)
    run = embedding_fn(model, flip)

    @tf.function(input_signature=spec)
    def infer(x: tf.Tensor) -> tf.Tensor:
        return tf.identity(run(x), name="embedding")

    model_proto, _ = tf2onnx.convert.from_function(
        infer,
        input_signature=spec,
        opset=OPSET,
        inputs_as_nchw=["input:0"] if nchw else None,
        output_path=None,
    )
    # stable, readable names: the input is "input", the output "embedding"
    graph = model_proto.graph
    rename = {graph.input[0].name: "input", graph.output[0].name: "embedding"}
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    graph.input[0].name = "input"
    graph.output[0].name = "embedding"
    model_proto.producer_name = "facetags"
    path.write_bytes(model_proto.SerializeToString())
    return path


def spec_of(model_id: str, nchw: bool, dim: int = 128) -> ModelSpec:
    """What a trained MobileNet's spec says before its file is known (see :func:`write_spec`)."""
    return ModelSpec(
        id=model_id,
        file="",
        sha256="",
        dim=dim,
        input_size=INPUT_SIZE,
        mean=(MEAN, MEAN, MEAN),
        std=(STD, STD, STD),
        channel_order="RGB",
        layout="NCHW" if nchw else "NHWC",
        licence="MIT",
    )


def max_abs_diff(
    model: tf.keras.Model, onnx_path: Path, crops: np.ndarray, nchw: bool = True, flip: bool = False
) -> float:
    """Largest |onnxruntime - TensorFlow| over the embeddings of ``crops`` (uint8 NHWC)."""
    from facetags.vision.runtime import onnxruntime

    ort = onnxruntime()
    x = (crops.astype(np.float32) - MEAN) / STD
    tf_out = embedding_fn(model, flip)(tf.constant(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = x.transpose(0, 3, 1, 2) if nchw else x
    (ort_out,) = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(feed)})
    return float(np.max(np.abs(ort_out - tf_out)))


def halve_weights(path: Path, min_size: int = 1024) -> int:
    """Store the file's large float32 weights as float16, each followed by a Cast back to
    float32 (onnxruntime folds the casts when it opens the file: float32 arithmetic, half the
    bytes). Returns how many weight tensors were halved."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            kept.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return len(casts)


def export(
    model: tf.keras.Model,
    out_dir: Path,
    model_id: str,
    extra: dict[str, object] | None = None,
    nchw: bool = True,
    flip: bool = False,
    fp16_weights: bool = False,
) -> ModelSpec:
    """Export ``model`` as ``out_dir/<model_id>.onnx`` with its spec json. ``fp16_weights``:
    weights stored as float16 (:func:`halve_weights`; the arithmetic stays float32)."""
    path = export_onnx(model, out_dir / f"{model_id}.onnx", nchw=nchw, flip=flip)
    if fp16_weights:
        halve_weights(path)
    extra = {**(extra or {}), "flip_tta": flip, "fp16_weights": fp16_weights}
    spec = write_spec(path, spec_of(model_id, nchw, int(model.output_shape[-1])), extra)
    log.info("exported %s (%.2f MB, sha256 %s)", path, path.stat().st_size / 1e6, spec.sha256[:12])
    return spec


def read_spec_extra(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text())["extra"])


def exported_embedder(folder: Path, spec: ModelSpec) -> Any:
    """The exported file in ``folder`` as the product loads it (``OnnxEmbedder``)."""
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    return OnnxEmbedder(get_spec(spec.id, root=folder), path=folder / spec.file)
