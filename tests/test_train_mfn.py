"""The blockwise student on MobileFaceNet's plan (``train blocks --teacher mobilefacenet``): the
teacher's taps, the student built from them, a few real training steps, the target's projection,
and export -> int8 -> facetags' embedder.

The teacher is the shipped ``mobilefacenet-v1`` file; real crops are LFW DevTrain people from
../shared/data cut by facetags' own detector and aligner (skipped where the data is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.train_support import six_people_crops, tiny_blocks_run

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def crops(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of 6 DevTrain people x 4 photos, and their labels."""
    images, _, labels = six_people_crops(shared_data, describe=False)
    return images, labels


@pytest.fixture(scope="module")
def teacher():
    from facetags.train.mfnplan import MobileFaceNetTeacher

    return MobileFaceNetTeacher()


def test_the_teachers_taps_follow_mobilefacenets_plan_and_leave_its_vector(teacher, crops) -> None:
    """17 taps (the stem, 15 bottlenecks, the 512 map) at MobileFaceNet's resolutions and
    widths, NHWC; the tapped graph's vector is the shipped file's, as facetags' embedder gives it."""
    from facetags.train.mfnplan import PLAN, block_runs
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    x = (crops[0][:8].astype(np.float32) - 127.5) / 127.5
    vectors, taps = teacher(x)
    assert [t.shape[1:] for t in taps] == list(PLAN)
    assert teacher.plan().shapes == PLAN and teacher.dim == 192
    assert block_runs(teacher.plan()) == [0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 4, 5, 5]
    shipped = OnnxEmbedder(get_spec("mobilefacenet-v1")).embed(crops[0][:8])
    assert np.min(np.sum(vectors * shipped, axis=1)) > 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # each tap describes the face: two different people differ at every depth
    for tap in taps:
        assert np.abs(tap[0] - tap[4]).mean() > 0.05 * np.abs(tap).mean()
    # the 512 map is taken before the PReLU (a ReLU student matches it, then applies its own)
    assert (taps[-1] < 0).mean() > 0.2


def test_target_projection_keeps_the_cosines_of_a_teacher_that_spans_fewer_dimensions() -> None:
    """MobileFaceNet's 192-D vectors span fewer than 128 dimensions: projecting them on their
    leading principal directions keeps every cosine; with more spread than the student's
    dimensions it keeps the directions of most length. The fraction of the mean comes off first."""
    from facetags.train.blockwise import Target
    from facetags.train.data import centre

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(192, 72)))[0]
    v = rng.normal(size=(500, 72)) @ basis.T + 0.3 * basis[:, 0]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    target = Target.fit(v.astype(np.float32), 0.5, 128)
    assert target.projection is not None and target.projection.shape == (192, 128)
    assert np.allclose(target.projection.T @ target.projection, np.eye(128), atol=1e-4)
    assert np.allclose(target.mean, 0.5 * v.mean(axis=0), atol=1e-6)
    u, t = centre(v, target.mean), target(v)
    assert t.shape == (500, 128) and np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t @ t.T, u @ u.T, atol=1e-4)
    # 3 strong directions and weak noise: a 3-D target keeps the strong ones
    strong = rng.normal(size=(400, 3)) * 5
    w = np.concatenate([strong, rng.normal(size=(400, 5)) * 0.01], axis=1).astype(np.float32)
    small = Target.fit(w, 0.0, 3)
    assert small.projection is not None
    assert np.allclose(np.abs(small.projection[3:]), 0, atol=0.01)
    # a student as wide as the teacher: no projection, the centred vectors themselves
    same = Target.fit(v.astype(np.float32), 1.0, 192)
    assert same.projection is None and np.allclose(same(v), centre(v, v.mean(axis=0)), atol=1e-5)


@pytest.fixture(scope="module")
def mfn_run(crops, tmp_path_factory: pytest.TempPathFactory):
    """A small blockwise run on the MobileFaceNet teacher: 6 people (2 held out), P x K = 4 x 4,
    phase 1 then phase 2."""
    from facetags.train.blockwise import fit_blockwise

    images, labels = crops
    cfg, data = tiny_blocks_run(
        images,
        np.zeros((len(images), 128), np.float32),
        labels,
        tmp_path_factory.mktemp("mfn"),
        teacher="mobilefacenet",
        blockwise_steps=24,
        chained_steps=8,
        steps_per_epoch=8,
        lr=3e-3,
    )
    return fit_blockwise(cfg, data=data), Path(cfg.out)


@pytest.mark.slow
def test_the_student_follows_the_teachers_plan_and_learns(mfn_run, teacher, crops) -> None:
    """Each student block's output has the shape of MobileFaceNet's at the same place, the taps
    loss falls in phase 1, the run keeps its target (192 -> 128) and reloads."""
    from facetags.train.blockwise import TARGET_FILE, Target, load_blockwise
    from facetags.train.fit import embed

    summary, run = mfn_run
    student, history = summary["student"], summary["history"]
    x = (crops[0][:4].astype(np.float32) - 127.5) / 127.5
    _, taps = teacher(x)
    acts, emb = student.chained(x, training=False)
    assert [tuple(a.shape) for a in acts] == [t.shape for t in taps]
    assert emb.shape == (4, 128)
    assert history[2]["taps"] < history[0]["taps"]  # phase 1: 3 epochs of 8 steps
    assert history[2]["distill"] < history[0]["distill"]
    assert summary["parameters"] < 1_100_000
    target = Target.load(run / TARGET_FILE)
    assert target.projection is not None and target.projection.shape == (192, 128)
    config = json.loads((run / "config.json").read_text())
    assert config["teacher"] == "mobilefacenet" and config["expand"] == [1, 2, 1, 2, 4, 2]
    again, _ = load_blockwise(run, "last")
    np.testing.assert_allclose(embed(again.model, crops[0]), embed(student.model, crops[0]), atol=1e-5)


@pytest.mark.slow
def test_the_student_exports_to_int8_and_runs_in_facetags_embedder(mfn_run, crops, tmp_path: Path) -> None:
    """export -> quantize with the flip pass: the file takes the 112 crop like every embedder
    and gives mirror-invariant unit vectors of the spec's dimension, close to the float file's."""
    from facetags.train.export import export, max_abs_diff
    from facetags.train.fit import recalibrate_bn
    from facetags.train.quantize import agreement, quantize
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    summary, _ = mfn_run
    model, images = summary["student"].model, crops[0]
    recalibrate_bn(model, images, batches=4, batch=24)
    source = export(model, tmp_path / "float", "test-mfn")
    src = tmp_path / "float" / source.file
    assert source.dim == 128 and max_abs_diff(model, src, images) <= 1e-4
    spec = quantize(src, tmp_path / "int8", images[:16], flip=True)
    path = tmp_path / "int8" / spec.file
    runtime = OnnxEmbedder(get_spec("test-mfn", root=tmp_path / "int8"), path=path)
    got = runtime.embed(images)
    assert got.shape == (len(images), spec.dim) and spec.dim == 128
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.max(np.abs(got - got[:1])) > 0.05  # not one vector for every face
    assert np.max(np.abs(got - runtime.embed(np.ascontiguousarray(images[:, :, ::-1])))) <= 1e-5
    close = agreement(src, path, images[16:])  # crops it was not calibrated on
    assert close["min_cosine"] > 0.95, close
