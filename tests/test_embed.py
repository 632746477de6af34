"""The shipped embedders through onnxruntime, and the opt-in insightface path (our own ONNX)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from facetags.config import Settings
from facetags.errors import ModelError
from facetags.vision.embed import OnnxEmbedder, load_embedder, preprocess
from facetags.vision.specs import get_spec, verified_path

MODEL_ID = Settings().embedder  # the default
#: facetags' own shipped models: the default and the earlier default it replaced.
OWN_MODELS = ("facetags-mobilenet-v1", "facetags-mobilenet-v2")


@pytest.fixture(scope="module")
def devtest_crops(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of 5 LFW DevTest people (never trained on) x 3 photos, with labels."""
    from facetags.config import Settings
    from facetags.evaluate.verification import central_face
    from facetags.image.decode import decode
    from facetags.train.data import read_people
    from facetags.vision.align import align_face
    from facetags.vision.detect import Detector

    people = read_people(shared_data / "lfw/protocol/peopleDevTest.txt")
    chosen = sorted(n for n, c in people.items() if c >= 3)[:5]
    detector = Detector(Settings())
    crops, labels = [], []
    for label, name in enumerate(chosen):
        for path in sorted((shared_data / "lfw/images" / name).glob("*.jpg"))[:3]:
            image = decode(path).image
            face = central_face(detector.detect(image), image.shape[1], image.shape[0])
            assert face is not None, path
            crops.append(align_face(image, face.landmarks, size=112))
            labels.append(label)
    return np.stack(crops), np.asarray(labels)


@pytest.mark.parametrize("model_id", OWN_MODELS)
def test_shipped_model_matches_its_spec(model_id: str) -> None:
    spec = get_spec(model_id)
    path = verified_path(spec)
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert spec.dim == 128 and spec.input_size == 112
    # what the model cards say of the input, and the licence
    assert (spec.layout, spec.channel_order) == ("NCHW", "RGB")
    assert spec.mean == spec.std == (127.5, 127.5, 127.5) and spec.licence == "MIT"


@pytest.mark.parametrize("model_id", OWN_MODELS)
def test_output_is_unit_length_and_batching_is_consistent(devtest_crops, model_id: str) -> None:
    crops, _ = devtest_crops
    embedder = load_embedder(model_id)
    all_at_once = embedder.embed(crops)
    assert all_at_once.shape == (len(crops), 128) and all_at_once.dtype == np.float32
    assert np.allclose(np.linalg.norm(all_at_once, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert np.max(np.abs(all_at_once - one_by_one)) <= 1e-4
    assert embedder.embed(crops[:0]).shape == (0, 128)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_sessions_side_by_side_give_the_vectors_of_one_session(devtest_crops, threads: int) -> None:
    """A batch split across sessions run side by side (one per core, up to four) gives each face
    the vector one single-threaded session gives it, whatever the split; uneven batches too."""
    crops, _ = devtest_crops
    batch = np.concatenate([crops, crops[::-1], crops])[:37]  # a batch of 32, then one of 5
    spec = get_spec(MODEL_ID)
    alone = OnnxEmbedder(spec, threads=1).embed(batch)
    before = set(threading.enumerate())
    together = OnnxEmbedder(spec, threads=threads).embed(batch)
    assert together.shape == (37, 128)
    assert np.max(np.abs(together - alone)) <= 1e-6
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []  # none outlives it


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocess_is_the_specs_normalisation(layout: str, order: str) -> None:
    """The table lookup gives exactly ``(value - mean) / std`` per channel in float32, in the
    spec's channel order and layout."""
    normalisation = {"mean": [0.0, 127.5, 255.0], "std": [1.0, 128.0, 64.0]}
    spec = dataclasses.replace(get_spec(MODEL_ID), **normalisation, layout=layout, channel_order=order)
    crops = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    x = crops.astype(np.float32)
    if order == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    got = preprocess(crops, spec)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, x)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(crops.astype(np.float32), spec)
    # into a caller's buffer: its first N images, the same values
    buffer = np.full((8, *got.shape[1:]), np.nan, np.float32)
    into = preprocess(crops, spec, out=buffer)
    assert np.shares_memory(into, buffer) and into.shape == got.shape and np.array_equal(into, x)
    assert np.isnan(buffer[5:]).all()
    with pytest.raises(ValueError, match="buffer"):
        preprocess(crops, spec, out=buffer[:4])


def test_reused_input_buffers_keep_calls_apart(devtest_crops) -> None:
    """The embedder keeps its input buffers from call to call: a smaller batch after a larger one
    and calls from several threads at once get the vectors a fresh embedder gives them."""
    crops, _ = devtest_crops
    spec = get_spec(MODEL_ID)
    small, large = crops[:3], np.concatenate([crops, crops[::-1]])[:32]
    want_small = OnnxEmbedder(spec, threads=2).embed(small)
    want_large = OnnxEmbedder(spec, threads=2).embed(large)
    embedder = OnnxEmbedder(spec, threads=2)
    assert np.array_equal(embedder.embed(large), want_large)
    assert np.array_equal(embedder.embed(small), want_small)
    wrong: list[int] = []

    def work(i: int) -> None:
        for _ in range(5):
            got = embedder.embed(large if i % 2 else small)
            if not np.array_equal(got, want_large if i % 2 else want_small):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


@pytest.mark.parametrize("model_id", OWN_MODELS)
def test_shipped_model_is_int8_with_the_flip_pass(devtest_crops, model_id: str) -> None:
    """The shipped file is the quantized one with the flip pass inside: integer convolutions, and
    a crop and its mirror image get the same vector."""
    import onnx
    from onnx import TensorProto

    spec = get_spec(model_id)
    assert spec.extra["flip_tta"] is True and spec.extra["int8"]["weights"].startswith("int8")
    graph = onnx.load(str(verified_path(spec))).graph
    assert sum(init.data_type == TensorProto.INT8 for init in graph.initializer) >= 40  # the conv weights
    crops, _ = devtest_crops
    embedder = load_embedder(model_id)
    mirrored = embedder.embed(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.max(np.abs(embedder.embed(crops) - mirrored)) <= 1e-5


@pytest.mark.parametrize("model_id", OWN_MODELS)
def test_same_person_is_closer_than_different_people(devtest_crops, model_id: str) -> None:
    crops, labels = devtest_crops
    v = load_embedder(model_id).embed(crops)
    sims = v @ v.T
    same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
    different = labels[:, None] != labels[None, :]
    assert sims[same].mean() > sims[different].mean() + 0.1


def test_sha256_mismatch_is_a_model_error() -> None:
    spec = get_spec(MODEL_ID)
    bad = dataclasses.replace(spec, file=str(verified_path(spec)), sha256="0" * 64)
    with pytest.raises(ModelError, match="sha256"):
        OnnxEmbedder(bad)


def test_wrong_crop_size_is_refused() -> None:
    with pytest.raises(ValueError):
        load_embedder(MODEL_ID).embed(np.zeros((1, 100, 100, 3), np.uint8))


def test_insightface_model_zoo_runs_our_onnx_identically(devtest_crops) -> None:
    """What v1's card promises: insightface's model zoo runs the file unchanged (v2's card does
    not: its int8 file moves one-ulp input differences further, to a cosine of 0.9948)."""
    pytest.importorskip("insightface")
    from facetags.vision.insightface_embed import InsightfaceEmbedder

    crops, _ = devtest_crops
    model = "facetags-mobilenet-v1"
    spec = get_spec(model)
    ours = load_embedder(model).embed(crops)
    theirs = InsightfaceEmbedder(str(verified_path(spec))).embed(crops)
    assert theirs.shape == ours.shape
    same_input = spec.layout == "NCHW" and spec.mean == (127.5,) * 3 and spec.std == (127.5,) * 3
    if same_input and "int8" in spec.extra:
        # insightface feeds (pixel - 127.5) * (1 / 127.5) (OpenCV's blob), ours (pixel - 127.5) / 127.5:
        # one-ulp differences, which an int8 file's quantizers round to the neighbouring integer
        # here and there (the float file of the same weights agreed to 1e-4)
        assert np.min(np.sum(theirs * ours, axis=1)) >= 0.995
    elif same_input:
        # insightface feeds (pixel - 127.5) / 127.5, RGB, NCHW: exactly what the spec asks for
        assert np.max(np.abs(theirs - ours)) <= 1e-4
    else:  # a model normalised differently still runs, nearly identically
        assert np.min(np.sum(theirs * ours, axis=1)) >= 0.999


def test_missing_insightface_pack_is_a_model_error_not_a_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INSIGHTFACE_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="never downloads"):
        load_embedder("insightface:buffalo_l")


def test_dlib_embedder_on_aligned_crops(devtest_crops) -> None:
    """The opt-in dlib embedder works from facetags' aligned crops (what a library stores): it
    separates people it never saw, and its id names the exact model file, known without dlib."""
    pytest.importorskip("dlib")
    from facetags.vision.dlib_teacher import MODEL_ID as DLIB
    from facetags.vision.embed import model_version

    crops, labels = devtest_crops
    embedder = load_embedder(DLIB)
    assert embedder.model_id == model_version(DLIB)
    base, _, version = embedder.model_id.partition("@")
    assert base == DLIB and len(version) == 12
    vectors = embedder.embed(crops)
    assert vectors.shape == (len(crops), 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    # every same-person pair is closer than every pair of different people
    assert sims[same & off].min() > sims[~same].max()
    # deterministic, and a mirrored face is still the same person
    assert np.allclose(embedder.embed(crops[:2]), vectors[:2], atol=1e-5)
    mirrored = embedder.embed(np.ascontiguousarray(crops[:, :, ::-1]))
    assert np.min(np.sum(mirrored * vectors, axis=1)) > sims[~same].max()
    with pytest.raises(ValueError):
        embedder.embed(np.zeros((1, 100, 100, 3), np.uint8))
