"""facetags.vision.onnxgraph writes the same ONNX bytes onnx.helper does, and the run-time path
(detector and embedders) never imports ``onnx``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.vision import onnxgraph as og

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402  (after the skip)

ROOT = Path(__file__).resolve().parents[1]


def _reference() -> types.SimpleNamespace:
    """The same API as onnxgraph, built with onnx.helper and ``SerializeToString()``."""
    from onnx import GraphProto, NodeProto, TensorProto, ValueInfoProto

    def graph(
        nodes: Sequence[bytes],
        name: str,
        inputs: Sequence[bytes],
        outputs: Sequence[bytes],
        initializer: Sequence[bytes] = (),
    ) -> bytes:
        return bytes(
            helper.make_graph(
                [NodeProto.FromString(n) for n in nodes],
                name,
                [ValueInfoProto.FromString(v) for v in inputs],
                [ValueInfoProto.FromString(v) for v in outputs],
                initializer=[TensorProto.FromString(t) for t in initializer],
            ).SerializeToString()
        )

    def model(graph: bytes, *, opset: int, ir_version: int, producer_name: str) -> bytes:
        proto = helper.make_model(
            GraphProto.FromString(graph),
            producer_name=producer_name,
            opset_imports=[helper.make_opsetid("", opset)],
        )
        proto.ir_version = ir_version
        return bytes(proto.SerializeToString())

    return types.SimpleNamespace(
        **{
            name: getattr(og, name)
            for name in ("FLOAT", "INT64", "Node", "Tensor", "ValueInfo", "AttributeValue")
        },
        node=lambda op, inputs, outputs, **attrs: helper.make_node(
            op, inputs, outputs, **attrs
        ).SerializeToString(),
        tensor=lambda name, array: numpy_helper.from_array(array, name).SerializeToString(),
        value_info=lambda name, elem, shape: helper.make_tensor_value_info(
            name, elem, shape
        ).SerializeToString(),
        graph=graph,
        model=model,
    )


def _check(data: bytes) -> None:
    onnx.checker.check_model(onnx.load_model_from_string(data), full_check=True)


# --- each message, edge cases included, byte for byte ---


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"axis": 1},
        {"axis": -1},  # a negative int64: ten bytes of two's complement
        {"big": 2**40, "zero": 0},
        {"alpha": 0.2},
        {"alpha": -1.5e-7},
        {"auto_pad": "SAME_UPPER"},
        {"mode": "naïve"},  # UTF-8
        {"perm": [0, 3, 1, 2]},
        {"pads": [-1, 0, 300, 2**33]},
        {"scales": [1.0, 0.5, 2.25]},
        {"mixed": [1, 2.5]},  # ints and floats: floats, as onnx.helper decides
        {"perm": (0, 2, 1), "kernel_shape": [3, 3], "auto_pad": "VALID", "axis": 2, "epsilon": 1e-5},
    ],
)
def test_nodes_equal_onnx_helpers(attrs: dict[str, og.AttributeValue]) -> None:
    ours = og.node("Op", ["a", "b"], ["c"], **attrs)
    assert ours == helper.make_node("Op", ["a", "b"], ["c"], **attrs).SerializeToString()


def test_attributes_it_cannot_write_are_refused() -> None:
    for bad in ([], [True, False], ["a", "b"], True, None):
        with pytest.raises(TypeError):
            og.node("Op", [], [], bad=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5,
        np.asarray(1 / 256, np.float32),  # 0-d: no dims
        np.zeros((1,), np.float32),
        np.asarray([0, 0, 0, 0, 0, 1, 1, -3], np.int64),
        np.arange(6, dtype=">f4").reshape(3, 2),  # big-endian in, little-endian raw_data out
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    ],
)
def test_tensors_equal_numpy_helpers(array: np.ndarray) -> None:
    ours = og.tensor("t", array)
    native = array.astype(array.dtype.newbyteorder("="))  # numpy_helper takes native order only
    assert ours == numpy_helper.from_array(native, "t").SerializeToString()
    back = numpy_helper.to_array(onnx.TensorProto.FromString(ours))
    assert back.shape == array.shape and np.array_equal(back, array)


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(TypeError, match="float64"):
        og.tensor("t", np.zeros(3))


@pytest.mark.parametrize("shape", [["n", 3, "h", "w"], [1, 150, 150, 3], ["batch"], []])
def test_value_infos_equal_onnx_helpers(shape: list[int | str]) -> None:
    for elem in (og.FLOAT, og.INT64):
        ours = og.value_info("x", elem, shape)
        assert ours == helper.make_tensor_value_info("x", elem, shape).SerializeToString()


def test_a_small_model_equals_onnx_helpers_and_runs() -> None:
    ref = _reference()

    def build(api: Any) -> bytes:
        nodes = [
            api.node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            api.node("Mul", ["t", "w"], ["m"]),
            api.node("Pad", ["m", "pads"], ["p"]),
            api.node("Softmax", ["p"], ["y"], axis=-1),
        ]
        inits = [
            api.tensor("w", np.asarray([[1.0], [2.0], [-0.5]], np.float32)),
            api.tensor("pads", np.asarray([0, 0, 0, 0, 0, 1], np.int64)),
        ]
        graph = api.graph(
            nodes,
            "tiny",
            [api.value_info("x", api.FLOAT, ["n", 2, 3])],
            [api.value_info("y", api.FLOAT, ["n", 3, 3])],
            inits,
        )
        return bytes(api.model(graph, opset=17, ir_version=8, producer_name="facetags"))

    ours = build(og)
    assert ours == build(ref)
    _check(ours)

    from facetags.vision.mtcnn import open_graph

    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3) / 10
    (y,) = open_graph(ours).run(["y"], {"x": x})
    t = x.transpose(0, 2, 1) * np.asarray([[1.0], [2.0], [-0.5]], np.float32)
    t = np.concatenate([t, np.zeros((2, 3, 1), np.float32)], axis=2)
    expected = np.exp(t) / np.exp(t).sum(axis=-1, keepdims=True)
    assert y.shape == (2, 3, 3) and np.allclose(y, expected, atol=1e-6)


# --- the real graphs: the same bytes as onnx.helper's, valid, the same outputs on a real photo ---


def _dlib_model_file() -> Path:
    from facetags.errors import ModelError
    from facetags.vision.dlib_teacher import MODEL_FILE, models_folder

    try:
        return models_folder() / MODEL_FILE
    except ModelError as exc:
        pytest.skip(str(exc))


def test_mtcnn_graphs_equal_onnx_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    from facetags.vision import mtcnn

    for name in ("pnet", "rnet", "onet"):
        ours = mtcnn.build_graph(name)
        _check(ours)
        with monkeypatch.context() as m:
            m.setattr(mtcnn, "og", _reference())
            assert ours == mtcnn.build_graph(name), name


def test_dlib_graphs_equal_onnx_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    from facetags.vision import dlib_onnx

    path = _dlib_model_file()
    for taps in (False, True):
        ours = dlib_onnx.build_graph(path, taps)
        _check(ours)
        parsed = onnx.load_model_from_string(ours)
        assert [o.name for o in parsed.graph.output][:2] == ["descriptor", *(["tap0"] if taps else [])]
        with monkeypatch.context() as m:
            m.setattr(dlib_onnx, "og", _reference())
            assert ours == dlib_onnx.build_graph(path, taps), taps


def _run(model: bytes, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    from facetags.vision.mtcnn import open_graph

    return list(open_graph(model).run(None, feed))


def test_mtcnn_sessions_give_onnx_helpers_outputs_on_a_real_photo(
    t1_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from facetags.vision import mtcnn
    from facetags.vision.detect import Detector

    photo = Image.open(t1_path).convert("RGB")
    pixels = np.asarray(photo.resize((photo.width // 2, photo.height // 2)), np.float32)[None]
    # RNet's and ONet's inputs: the photo's faces (as the detector finds them) and background
    faces = [
        (round(x), round(y), round(x + w), round(y + h))
        for x, y, w, h in (f.box for f in Detector().detect(np.asarray(photo)))
    ]
    assert len(faces) == 6
    boxes = [*faces, *((x, 600, x + 96, 696) for x in range(0, 1100, 100))]
    crops = {
        s: np.stack([np.asarray(photo.crop(b).resize((s, s)), np.float32) for b in boxes]) for s in (24, 48)
    }
    feeds = {"pnet": pixels, "rnet": crops[24], "onet": crops[48]}
    ours = {name: _run(mtcnn.build_graph(name), {"input": x}) for name, x in feeds.items()}
    with monkeypatch.context() as m:
        m.setattr(mtcnn, "og", _reference())
        theirs = {name: _run(mtcnn.build_graph(name), {"input": x}) for name, x in feeds.items()}
    for name in feeds:
        assert len(ours[name]) == len(theirs[name]) >= 2
        for a, b in zip(ours[name], theirs[name], strict=True):
            assert a.shape == b.shape and np.array_equal(a, b), name
    # the faces score as faces (RNet's probability: output 1, column 1)
    assert np.all(ours["rnet"][1][: len(faces), 1] > 0.5), ours["rnet"][1][:, 1]


def test_dlib_session_gives_onnx_helpers_outputs_on_a_real_photo(
    t1_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from facetags.vision import dlib_onnx

    path = _dlib_model_file()
    photo = Image.open(t1_path).convert("RGB")
    chips = np.stack(
        [
            np.asarray(photo.crop((x, 0, x + 200, 200)).resize((150, 150)), np.float32)
            for x in range(0, 600, 150)
        ]
    )
    ours = _run(dlib_onnx.build_graph(path, True), {"chips": chips})
    with monkeypatch.context() as m:
        m.setattr(dlib_onnx, "og", _reference())
        theirs = _run(dlib_onnx.build_graph(path, True), {"chips": chips})
    assert len(ours) == len(theirs) > 2 and ours[0].shape == (4, 128)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)


# --- no onnx at run time ---

_NO_ONNX = """
import json, sys
from facetags.config import Settings
from facetags.ingest.pipeline import Pipeline
from facetags.vision import dlib_teacher

done = Pipeline(Settings()).process(sys.argv[1], None)
dlib = dlib_teacher.available()
if dlib:  # the opt-in dlib embedder's network, built the same way
    dlib_teacher.load_net(dlib_teacher.models_folder() / dlib_teacher.MODEL_FILE)
print(json.dumps({
    "faces": len(done.analysis.faces) if done.analysis else -1,
    "error": done.error,
    "dlib": dlib,
    "loaded": sorted(m for m in ("onnx", "ml_dtypes", "onnxruntime") if m in sys.modules),
}))
"""


def test_detecting_a_real_photo_does_not_import_onnx(t1_path: Path) -> None:
    """A fresh interpreter that scans a photo (decode, detect, embed) and builds dlib's network
    has loaded onnxruntime but never ``onnx`` (0.7 s of CPU to import)."""
    done = subprocess.run(
        [sys.executable, "-c", _NO_ONNX, str(t1_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["error"] is None and result["faces"] == 6, result
    assert result["loaded"] == ["onnxruntime"], result
