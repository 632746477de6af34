"""Post-training int8 quantization of an exported embedder, optionally with the flip pass.

onnxruntime's static quantizer (QDQ format: weights int8 per output channel, activations uint8,
ranges from the min/max over calibration crops) turns each convolution and matrix product into
integer arithmetic (``QLinearConv`` on x86's VNNI instructions): about 1.7x faster than the float
file on the two-core CPU, the same accuracy on the held-out pairs (the model card). The
calibration crops come from the cache's sources without identities (FairFace, UTKFace), so no
held-out or LFW DevTest person shapes the ranges.

``add_flip`` wraps a file so that it returns the L2-normalised sum of the embeddings of the crop
and of its mirror image (one batch of 2N through the network), as ``train export --flip-tta``
does for a float export; on a quantized file it is what makes the flip pass affordable.

No TensorFlow here: this works on any exported ONNX file and its spec.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facetags.train.data import CropSet
from facetags.train.specfile import write_spec
from facetags.vision.embed import BATCH, OnnxEmbedder, l2_normalise, preprocess
from facetags.vision.specs import ModelSpec

if TYPE_CHECKING:
    from onnx import ModelProto

log = logging.getLogger(__name__)

CALIBRATION_SOURCES = ("fairface", "utkface")


def calibration_crops(data: CropSet, count: int, seed: int = 0) -> np.ndarray:
    """``count`` crops (uint8 NHWC) drawn evenly from the sources without identities."""
    rng = np.random.default_rng(seed)
    per = -(-count // len(CALIBRATION_SOURCES))
    picks = []
    for source in CALIBRATION_SOURCES:
        idx = np.flatnonzero([item.source == source for item in data.items])
        if len(idx):
            picks.append(rng.choice(idx, size=min(per, len(idx)), replace=False))
    if not picks:
        raise ValueError(f"no {' or '.join(CALIBRATION_SOURCES)} crops in the cache to calibrate on")
    chosen = np.sort(np.concatenate(picks))[:count]
    return np.asarray(data.crops[chosen])


def float32_weights(model: ModelProto) -> ModelProto:
    """The model with float16-stored weights (``train export --fp16-weights``: each initializer
    followed by a Cast to float32) turned back into float32 initializers, Casts removed: the
    quantizer wants the float weights it quantizes in place."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    folded: dict[str, str] = {}
    for node in graph.node:
        if (
            node.op_type == "Cast"
            and node.input[0] in inits
            and any(a.name == "to" and a.i == TensorProto.FLOAT for a in node.attribute)
        ):
            folded[node.output[0]] = node.input[0]
    if not folded:
        return model
    keep = [init for init in graph.initializer if init.name not in folded.values()]
    for out, src in folded.items():
        keep.append(numpy_helper.from_array(numpy_helper.to_array(inits[src]).astype(np.float32), out))
    nodes = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in folded)]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def add_flip(model: ModelProto, layout: str) -> ModelProto:
    """Wrap ``model`` (input NCHW or NHWC, its spec's ``layout``; output (N, D) unit vectors) so that it
    returns the normalised sum of its embeddings of each crop and of the crop's mirror image."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inp, out = graph.input[0].name, graph.output[0].name
    width_axis = 3 if layout.upper() == "NCHW" else 2
    for node in graph.node:
        node.input[:] = ["flip_both" if n == inp else n for n in node.input]
        node.output[:] = ["flip_embeddings" if n == out else n for n in node.output]
    dim = graph.output[0].type.tensor_type.shape.dim[1].dim_value or -1
    consts = {
        # the columns in reverse: a Slice with step -1 (a Gather of reversed indices gives the
        # same tensor at twice the cost, 0.1 ms a face on two cores)
        "flip_starts": [-1],
        "flip_ends": [np.iinfo(np.int64).min],
        "flip_axes": [width_axis],
        "flip_steps": [-1],
        "flip_pairs": [2, -1, dim],
        "flip_axis0": [0],
    }
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items())
    before = [
        helper.make_node(
            "Slice", [inp, "flip_starts", "flip_ends", "flip_axes", "flip_steps"], ["flip_mirror"]
        ),
        helper.make_node("Concat", [inp, "flip_mirror"], ["flip_both"], axis=0),
    ]
    after = [
        helper.make_node("Reshape", ["flip_embeddings", "flip_pairs"], ["flip_pair"]),
        helper.make_node("ReduceSum", ["flip_pair", "flip_axis0"], ["flip_sum"], keepdims=0),
        helper.make_node("ReduceL2", ["flip_sum"], ["flip_norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["flip_sum", "flip_norm"], [out]),
    ]
    nodes = before + list(graph.node) + after
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def quantize(
    src: Path, out_dir: Path, crops: np.ndarray, model_id: str | None = None, flip: bool = False
) -> ModelSpec:
    """Quantize the exported file ``src`` (its spec json beside it) into
    ``out_dir/<model_id>.onnx`` + spec, calibrated on ``crops`` (uint8 RGB NHWC)."""
    import onnx

    from facetags.vision.runtime import disable_telemetry

    disable_telemetry()  # before onnxruntime loads (facetags.vision.runtime)
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = ModelSpec.from_json(src.with_suffix(".json"))
    model_id = model_id or source.id
    x = preprocess(crops, source)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.start >= len(x):
                return None
            batch = x[self.start : self.start + BATCH]
            self.start += BATCH
            return {input_name: batch}

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model_id}.onnx"
    if path.resolve() == src.resolve():
        raise ValueError(f"{src}: quantize into another folder (the float file is read again afterwards)")
    float_model = float32_weights(onnx.load(str(src)))
    input_name = float_model.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        plain, ready = Path(tmp) / "float32.onnx", Path(tmp) / "ready.onnx"
        onnx.save(float_model, str(plain))
        # the quantizer's own preparation: shape inference and onnxruntime's basic graph
        # optimisations (BatchNorm and activations folded into the convolutions), without which
        # the int8 graph keeps float steps between its integer ones and runs slower than float
        quant_pre_process(str(plain), str(ready))
        quantize_static(
            str(ready),
            str(path),
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    model = onnx.load(str(path))
    if flip:
        model = add_flip(model, source.layout)
    model.producer_name = "facetags"
    path.write_bytes(model.SerializeToString())
    size = path.stat().st_size
    extra = {
        **source.extra,
        "flip_tta": bool(flip or source.extra.get("flip_tta")),
        "fp16_weights": False,
        "int8": {
            "format": "QDQ",
            "weights": "int8, per output channel",
            "activations": "uint8",
            "calibration": f"min/max over {len(crops)} crops of {' and '.join(CALIBRATION_SOURCES)}",
            "float_sha256": source.sha256,
        },
    }
    spec = write_spec(path, replace(source, id=model_id), extra)
    log.info("quantized %s -> %s (%.2f MB, sha256 %s)", src, path, size / 1e6, spec.sha256[:12])
    return spec


def agreement(float_path: Path, quant_path: Path, crops: np.ndarray) -> dict[str, float]:
    """Cosine between the float file's and the quantized file's embeddings of ``crops`` (the
    float file's flip pass computed here when the quantized file has it and the float one not)."""
    reference = OnnxEmbedder(ModelSpec.from_json(float_path.with_suffix(".json")), path=float_path)
    quantized = OnnxEmbedder(ModelSpec.from_json(quant_path.with_suffix(".json")), path=quant_path)
    ref = reference.embed(crops)
    if quantized.spec.extra.get("flip_tta") and not reference.spec.extra.get("flip_tta"):
        ref = l2_normalise(ref + reference.embed(np.ascontiguousarray(crops[:, :, ::-1])))
    cos = np.sum(ref * quantized.embed(crops), axis=1)
    return {"min_cosine": round(float(cos.min()), 4), "mean_cosine": round(float(cos.mean()), 4)}
