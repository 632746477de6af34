"""Consistent-teaching views (facetags/train/views.py): the student's crop and the teacher's chip
of a view are the same blend of the same two faces with the same photometric change, the teacher's
vector is its answer for that very chip, held-out people never appear, and a build resumes.

Real photos (LFW DevTrain people from ../shared/data), our detector and aligner, dlib's teacher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.train.views import Look, mix


def test_plain_look_and_full_weight_return_the_first_face() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    plain = Look(False, 1.0, 1.0, 1.0, False, 0)
    assert np.array_equal(mix(a, b, 1.0, plain), a)
    assert np.array_equal(mix(a, b, 0.0, plain), b)
    half = mix(a, b, 0.5, plain).astype(int)
    assert np.abs(half - (a.astype(int) + b.astype(int)) / 2).max() <= 1
    mirrored = mix(a, b, 1.0, Look(True, 1.0, 1.0, 1.0, False, 0))
    assert np.array_equal(mirrored, a[:, ::-1])


def test_a_look_is_the_same_change_at_both_resolutions() -> None:
    """Colour changes commute with resizing: the student's 112 crop and the teacher's 150 chip of
    one face change alike (what makes the teacher's answer the right target for the crop)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for _ in range(20):
        look = Look.draw(rng)
        look = Look(look.flip, look.gain, look.contrast, look.saturation, look.grey, 0)
        coarse = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)  # a smooth picture, like a face
        big = np.asarray(Image.fromarray(coarse).resize((150, 150), Image.Resampling.BICUBIC))
        small = np.asarray(Image.fromarray(big).resize((112, 112), Image.Resampling.BILINEAR))
        changed_big = look.apply(big.astype(np.float32))
        shrunk = np.asarray(Image.fromarray(changed_big).resize((112, 112), Image.Resampling.BILINEAR))
        changed_small = look.apply(small.astype(np.float32))
        # equal up to rounding and clipping at 0/255
        assert np.mean(np.abs(shrunk.astype(int) - changed_small.astype(int)) <= 2) > 0.95
        assert Look.from_row(np.asarray(look.as_row())) == look


@pytest.fixture(scope="module")
def tiny_cache(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A crop cache of 3 DevTrain people x 3 photos (detector, aligner, dlib teacher)."""
    pytest.importorskip("dlib")
    from facetags.train.data import build_cache, read_people, training_items

    people = read_people(shared_data / "lfw/protocol/peopleDevTrain.txt")
    chosen = sorted(n for n, c in people.items() if c >= 3)[:3]
    items = [i for i in training_items(shared_data, ("lfw",)) if i.identity in chosen]
    by: dict[str, list] = {}
    for i in items:
        by.setdefault(i.identity or "", []).append(i)
    items = [i for name in chosen for i in by[name][:3]]
    cache = tmp_path_factory.mktemp("cache")
    build_cache(shared_data, cache, items, workers=1)
    return cache, chosen


@pytest.mark.slow
def test_views_are_what_the_teacher_says_of_the_same_blend(
    shared_data: Path, tiny_cache: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from facetags.train.data import load_rgb
    from facetags.train.views import build_views, load_faces, load_views, view_shards
    from facetags.vision.dlib_teacher import DlibTeacher

    cache, people = tiny_cache
    out = tmp_path / "views"
    build_views(shared_data, cache, out, count=12, exclude={people[0]}, seed=3, workers=1, per_shard=6)
    assert view_shards(out) == [0, 1]
    faces = load_faces(cache)
    teacher = DlibTeacher()
    crops, vecs, numbers = load_views(out)
    assert numbers == [0, 1] and crops.shape == (12, 112, 112, 3) and vecs.shape == (12, 128)
    with np.load(out / "views_00000.npz") as z:
        pairs, lam, looks = z["pairs"], z["lam"], z["looks"]
    # the held-out person is never drawn into a view
    assert all(faces.items[int(k)].identity != people[0] for k in pairs.ravel())
    for v in range(6):
        a, b = (int(k) for k in pairs[v])
        look = Look.from_row(looks[v])
        assert np.array_equal(crops[v], mix(faces.crops[a], faces.crops[b], float(lam[v]), look))
        chips = [
            teacher.chip(load_rgb(shared_data / faces.items[k].path), tuple(faces.boxes[k])) for k in (a, b)
        ]
        expected = teacher.describe_chips([mix(chips[0], chips[1], float(lam[v]), look)])[0]
        assert float(expected @ vecs[v]) > 0.9999
    # resumes: a second call builds nothing new, a call with another held-out list is refused
    stamp = (out / "views_00000.npz").stat().st_mtime_ns
    build_views(shared_data, cache, out, count=18, exclude={people[0]}, seed=3, workers=1, per_shard=6)
    assert view_shards(out) == [0, 1, 2]
    assert (out / "views_00000.npz").stat().st_mtime_ns == stamp
    with pytest.raises(RuntimeError, match="another cache"):
        build_views(shared_data, cache, out, count=18, exclude=set(), seed=3, workers=1, per_shard=6)
    assert json.loads((out / "views.json").read_text())["exclude"] == [people[0]]


@pytest.mark.slow
def test_the_feeder_adds_views_unchanged_and_without_identity(tiny_cache: tuple[Path, list[str]]) -> None:
    pytest.importorskip("tensorflow")
    from facetags.train.data import PKSampler, load_cache
    from facetags.train.fit import BatchFeeder, normalise

    cache, _ = tiny_cache
    data = load_cache(cache)
    rng = np.random.default_rng(0)
    views = (
        rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8),
        rng.normal(size=(5, 128)).astype(np.float32),
    )
    sampler = PKSampler(data.labels, p=2, k=2, u=1, seed=0)
    feeder = BatchFeeder(data, sampler, strength=1.0, seed=0, views=views, view_batch=4)
    try:
        x, teacher, labels = feeder.get()
    finally:
        feeder.close()
    assert x.shape == (9, 112, 112, 3) and teacher.shape == (9, 128) and labels.shape == (9,)
    assert (labels[4:] == -1).all() and (labels[:4] >= 0).all()
    for row in range(5, 9):
        k = int(np.argmin(np.abs(views[1] - teacher[row]).sum(axis=1)))
        assert np.array_equal(teacher[row], views[1][k])
        assert np.allclose(x[row], normalise(views[0][k : k + 1])[0])


def _online_batches(cache: Path, count: int, **feeder: Any) -> tuple[Any, np.ndarray, Any, list[Any]]:
    """(crop set, teacher mean, OnlineViews, ``count`` batches) of a feeder with online teaching."""
    from facetags.train.data import PKSampler, load_cache
    from facetags.train.fit import BatchFeeder
    from facetags.train.views import OnlineViews

    data = load_cache(cache)
    mean = data.teacher.mean(axis=0)
    online = OnlineViews(data.crops, mean)
    sampler = PKSampler(data.labels, p=2, k=2, u=1, seed=0)
    running = BatchFeeder(data, sampler, strength=1.0, seed=0, online=online, **feeder)
    try:
        batches = [running.get() for _ in range(count)]
    finally:
        running.close()
    return data, mean, online, batches


def _pixels(x: np.ndarray) -> np.ndarray:
    """The uint8 crops a normalised batch was made from."""
    from facetags.train.fit import MEAN, STD

    return np.clip(np.round(x * STD + MEAN), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_online_views_carry_the_teachers_answer_for_the_view(tiny_cache: tuple[Path, list[str]]) -> None:
    """``fit --online-views N``: each batch gets N fresh mixups of training crops, with dlib's
    vector for exactly those pixels (through the crop path of the opt-in embedder), centred like
    the stored teacher vectors, and no identity."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    from facetags.vision.dlib_embed import DlibCropEmbedder

    _, mean, _, (first, second) = _online_batches(tiny_cache[0], 2, online_batch=3)
    x, teacher, labels = first
    assert x.shape == (8, 112, 112, 3) and teacher.shape == (8, 128)
    assert (labels[5:] == -1).all() and (labels[:4] >= 0).all()
    expected = DlibCropEmbedder().embed(_pixels(x[5:])) - mean
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.min(np.sum(expected * teacher[5:], axis=1)) > 0.999
    # fresh views each batch, not blends of nothing: they differ from batch to batch
    assert not np.allclose(second[0][5:], x[5:])
    assert np.all(np.linalg.norm(teacher[5:], axis=1) > 0.99)


@pytest.mark.slow
def test_consistent_teacher_describes_the_augmented_crops(tiny_cache: tuple[Path, list[str]]) -> None:
    """``fit --consistent-teacher``: the teacher rows of the ordinary crops are dlib's answer for
    the augmented crop the student gets, not the cached vector of the clean face."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("dlib")
    data, mean, online, ((x, teacher, labels),) = _online_batches(tiny_cache[0], 1, consistent=True)
    assert x.shape == (5, 112, 112, 3) and (labels[:4] >= 0).all()
    assert np.min(np.sum(online.describe(_pixels(x)) * teacher, axis=1)) > 0.999
    cached = data.teacher - mean
    cached /= np.linalg.norm(cached, axis=1, keepdims=True)
    # not simply the clean faces' vectors: augmentation changes what the teacher says
    nearest = np.max(teacher @ cached.T, axis=1)
    assert np.min(nearest) < 0.999
