"""FaceIndex places faces exactly as the rule written out over every face does
(:func:`~facetags.people.incremental.exhaustive_scores`), while scoring only the faces its filter
lets through: on a large synthetic library (clustered like face embeddings: one dominant
direction, people of very different sizes, look-alikes), and on real faces scanned by the library
with worker processes (../shared/data LFW photos).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pytest

import facetags.people.incremental as incremental
from facetags.people.cluster import unit
from facetags.people.incremental import FaceIndex, exhaustive_scores

THRESHOLD = 0.85


def _library(n: int, people: int = 2000, dim: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors of ``people``: a direction all faces share (as real embeddings do),
    people on 24 latent directions, ten pairs of look-alikes, people's sizes from a few faces to
    thousands, each face at its own distance from its person."""
    rng = np.random.default_rng(seed)
    common = unit(rng.normal(size=(1, dim)))[0]
    mix = rng.normal(size=(24, dim)) / np.sqrt(24)
    identity = unit(rng.normal(size=(people, 24)))
    identity[1:20:2] = unit(identity[0:20:2] + 0.25 * rng.normal(size=(10, 24)))  # look-alikes
    centre = unit(1.15 * common + identity @ mix)
    popularity = 1.0 / np.arange(1, people + 1) ** 0.8
    who = rng.choice(people, n, p=popularity / popularity.sum())
    spread = rng.uniform(0.2, 0.6, (n, 1))
    x = unit(centre[who] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim))
    return x.astype(np.float32), who.astype(np.int64)


def _same(got: dict[int, float], want: dict[int, float]) -> None:
    assert got.keys() == want.keys()
    for person, score in want.items():
        assert got[person] == pytest.approx(score, abs=1e-6)


@pytest.fixture(params=[incremental.BLOCK_SHIFT, 12], ids=["one block", "blocks of 4096"])
def block_shift(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The stored vectors in one block, or (as in libraries of millions) in many."""
    monkeypatch.setattr(incremental, "BLOCK_SHIFT", request.param)
    monkeypatch.setattr(incremental, "BLOCK_ROWS", 1 << request.param)
    return int(request.param)


def test_scores_are_the_exhaustive_rule_on_a_large_library(block_shift: int) -> None:
    x, who = _library(20_400)
    stored, new = x[:20_000], x[20_000:]
    index = FaceIndex(128, THRESHOLD)
    for start in range(0, 20_000, 6_000):  # in parts, as a library is read
        part = slice(start, start + 6_000)
        index.add(np.arange(20_000)[part], stored[part], who[:20_000][part], np.arange(20_000)[part] // 2)
    assert index.filtering
    assert len(index._vectors.blocks) == (5 if block_shift == 12 else 1)
    index.exact_scored = 0
    truncated = 0
    for v in new:
        want = exhaustive_scores(stored, who[:20_000], v, THRESHOLD)
        _same(index.scores(v), want)
        truncated += int((stored @ v >= THRESHOLD).sum() > 48)
    assert truncated >= 20  # faces of big people: only the 48 nearest faces name candidates
    assert index.exact_scored < 0.05 * len(new) * len(stored)  # the filter let few through
    for face in range(0, 20_000, 397):  # a face placed again, leaving itself out
        want = exhaustive_scores(stored, who[:20_000], stored[face], THRESHOLD, skip=face)
        _same(index.scores(stored[face], exclude_face=face), want)


def _place(
    vectors: np.ndarray,
    people: np.ndarray,
    new: np.ndarray,
    rejected: Sequence[Collection[int]],
    next_id: int,
) -> list[int]:
    """One photo's faces placed by the rule over every face (the reference for assign_photo)."""
    candidates = []
    for i, v in enumerate(new):
        for p, s in exhaustive_scores(vectors, people, v, THRESHOLD).items():
            if p not in rejected[i]:
                candidates.append((s, -i, p))
    result: list[int | None] = [None] * len(new)
    taken: set[int] = set()
    for _s, neg_i, p in sorted(candidates, reverse=True):
        if result[-neg_i] is None and p not in taken:
            result[-neg_i] = p
            taken.add(p)
    out = []
    for r in result:
        out.append(next_id if r is None else r)
        next_id += r is None
    return out


def test_photos_placed_in_batches_get_the_people_of_the_exhaustive_rule(block_shift: int) -> None:
    """The faces of 16 photos are prepared in one pass; each photo is then placed in turn, after
    the faces of the photos before it were added: the same people as placing every photo by the
    rule over every face, user rejections included."""
    x, who = _library(23_000, seed=1)
    base = 20_000
    rng = np.random.default_rng(2)
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(base), x[:base], who[:base], np.arange(base))
    ref_vectors, ref_people = x[:base].copy(), who[:base].copy()
    sizes = rng.integers(1, 5, 1200)
    photos = np.split(np.arange(base, base + int(sizes.sum())), np.cumsum(sizes)[:-1])
    photos = [p for p in photos if p[-1] < len(x)]
    next_id = 10_000
    placed = joined = 0
    for batch in range(0, len(photos), 16):
        group = photos[batch : batch + 16]
        index.prepare(x[np.concatenate(group)])
        for k, rows in enumerate(group):
            photo_id = base + batch + k
            rejected = [set(rng.choice(2000, 3).tolist()) if rng.random() < 0.2 else set() for _ in rows]
            want = _place(ref_vectors, ref_people, x[rows], rejected, next_id)
            got = index.assign_photo(x[rows], photo_id, rejected)
            got_ids = []
            for g in got:
                got_ids.append(next_id if g is None else g)
                next_id += g is None
            assert got_ids == want, (batch, k)
            index.add(rows, x[rows], got_ids, [photo_id] * len(rows))
            ref_vectors = np.concatenate([ref_vectors, x[rows]])
            ref_people = np.concatenate([ref_people, np.asarray(got_ids)])
            placed += len(rows)
            joined += sum(g is not None for g in got)
    assert placed > 2_500 and joined > placed // 2  # most faces joined someone


def test_faces_in_the_same_batch_see_each_other() -> None:
    """A face's twin, in an earlier photo of the same prepared batch, is found: the batch's
    pass over the library ran before the twin was stored."""
    x, who = _library(6_000, seed=3)
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(5_000), x[:5_000], who[:5_000], np.arange(5_000))
    stranger = unit(np.random.default_rng(4).normal(size=(1, 128))).astype(np.float32)[0]
    twin = unit((stranger + 0.05 * np.random.default_rng(5).normal(size=128))[None]).astype(np.float32)[0]
    index.prepare(np.stack([stranger, twin]))
    assert index.assign_photo(stranger[None], 1_000_000) == [None]
    index.add([9_000], stranger[None], [77_777], [1_000_000])
    assert index.assign_photo(twin[None], 1_000_001) == [77_777]


def test_a_face_stored_again_replaces_its_old_vector() -> None:
    x, who = _library(8_000, seed=6)
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(8_000), x, who, np.arange(8_000))
    index.prepare(x[:50])
    index.add([10], x[20:21], [who[20]], [10])  # face 10 again, now looking like face 20
    vectors, people = x.copy(), who.copy()
    vectors[10], people[10] = 0.0, incremental.DEAD
    vectors = np.concatenate([vectors, x[20:21]])
    people = np.concatenate([people, who[20:21]])
    assert len(index) == 8_000
    for v in x[:50]:
        _same(index.scores(v), exhaustive_scores(vectors, people, v, THRESHOLD))


def test_the_filter_misses_no_face_at_the_threshold() -> None:
    """Queries a hair either side of a high threshold from a stored face, moved from it only
    along the filter's own directions: the filter's bound is then exact (what the directions
    miss of the two vectors is the same), so only its margin keeps a face just above the
    threshold from being filtered out. Each face is a person of its own, so a face missed
    would be a person missing from the scores."""
    x, _ = _library(6_000, seed=8)
    who = np.arange(6_000)
    threshold = 0.99
    index = FaceIndex(128, threshold)
    index.add(np.arange(6_000), x, who, np.arange(6_000))
    assert index.filtering and index._basis is not None
    basis = index._basis.astype(np.float64)
    rng = np.random.default_rng(9)
    found = 0
    for face in range(0, 6_000, 60):
        f = x[face].astype(np.float64)
        along = basis @ rng.normal(size=basis.shape[1])  # in the directions' span
        along -= (along @ f) * f
        along /= np.linalg.norm(along)
        target = rng.uniform(threshold - 3e-6, threshold + 3e-6)
        v = (target * f + np.sqrt(1 - target**2) * along).astype(np.float32)
        want = exhaustive_scores(x, who, v, threshold)
        _same(index.scores(v), want)
        found += face in want
    assert 20 <= found <= 80


def test_people_already_in_a_photo_are_found_whatever_order_photos_came_in() -> None:
    """Photo ids usually arrive in increasing order (a binary search finds a photo's faces); a
    photo stored out of order still has its people found. Each probe is a stored face that is a
    person of its own: it joins that person, except from a photo the person is already in."""
    x, who = _library(3_000, seed=10)
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(1_000), x[:1_000], who[:1_000], np.arange(1_000) + 500)
    index.add([1_000], x[1_000:1_001], [90_000], [2_000])
    index.add([1_001], x[1_001:1_002], [90_001], [7])  # photo 7 after photos 500..2000
    index.add([1_002], x[1_002:1_003], [90_002], [2_001])
    for face, person, photo in ((1_000, 90_000, 2_000), (1_001, 90_001, 7), (1_002, 90_002, 2_001)):
        assert index.assign_photo(x[face : face + 1], 10**6) == [person]
        assert index.assign_photo(x[face : face + 1], photo) != [person]


def test_vectors_without_dominant_directions_are_scored_exactly() -> None:
    """Random directions: the filter could not filter, so every face is scored."""
    rng = np.random.default_rng(7)
    x = unit(rng.normal(size=(10_000, 64))).astype(np.float32)
    who = rng.integers(0, 2_000, 10_000)
    index = FaceIndex(64, 0.3)
    index.add(np.arange(10_000), x, who, np.arange(10_000))
    assert not index.filtering
    for v in unit(x[:40] + 0.5 * rng.normal(size=(40, 64))).astype(np.float32):
        _same(index.scores(v), exhaustive_scores(x, who, v, 0.3))


# -- real faces, through the library ------------------------------------------------------------


def _lfw_photos(shared: Path, folder: Path, count: int) -> Path:
    from tests.library_support import link_or_copy

    labels = (Path(__file__).parent / "data" / "labels" / "lfw_devtest.csv").read_text().splitlines()[1:]
    folder.mkdir()
    for line in labels[:count]:
        name = line.split(",")[0]
        link_or_copy(shared / "lfw" / "images" / name, folder / name.replace("/", "-"))
    return folder


def _placements(db: Path) -> tuple[list[tuple[int, list[int]]], np.ndarray, dict[int, int]]:
    """Photos in the order their faces were stored, with their face ids; each face's vector (by
    face id) and person."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT f.id, f.photo_id, f.person_id, e.vector FROM faces f JOIN embeddings e ON e.face_id = f.id"
        " ORDER BY f.id"
    ).fetchall()
    conn.close()
    photos: dict[int, list[int]] = {}
    for face, photo, _, _ in rows:
        photos.setdefault(photo, []).append(face)
    vectors = np.stack([np.frombuffer(r[3], "<f4") for r in rows])
    return list(photos.items()), vectors, {r[0]: r[2] for r in rows}


@pytest.mark.shared_data
def test_a_scan_with_workers_places_real_faces_by_the_exhaustive_rule(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LFW photos scanned with two worker processes (finished results prepared in batches) and
    with none: the same people, and the people the rule over every face gives, replayed photo by
    photo. The filter's thresholds are lowered so that it works on a few hundred faces."""
    from facetags.config import Settings
    from facetags.library import Library

    monkeypatch.setattr(incremental, "PROJECT_FROM", 96)
    monkeypatch.setattr(incremental, "FILTER_FROM", 48)
    monkeypatch.setattr(incremental, "BLOCK", 16)
    prepared: list[int] = []
    real_prepare = FaceIndex.prepare

    def counting_prepare(self: FaceIndex, vectors: np.ndarray) -> None:
        prepared.append(len(vectors))
        real_prepare(self, vectors)

    monkeypatch.setattr(FaceIndex, "prepare", counting_prepare)
    folder = _lfw_photos(shared_data, tmp_path / "photos", 260)
    people = []
    for workers in (2, 1):
        db = tmp_path / f"workers{workers}.db"
        with Library.open(db, Settings(library=db, workers=workers)) as lib:
            lib.ensure_model()
            lib.indexer.scan([folder])  # the scan's placements (a re-cluster would redo them)
            threshold, filtering = lib.clustering().threshold, lib.clustering().index(lib.store).filtering
        assert filtering
        photos, vectors, person = _placements(db)
        people.append({frozenset(f for f in person if person[f] == p) for p in person.values()})
    assert people[0] == people[1]
    assert sum(prepared) > 0  # results were prepared ahead of their turn

    # replay the serial library's photos by the rule over every face
    row = {face: i for i, face in enumerate(f for _, faces in photos for f in faces)}
    stored = np.zeros((0, vectors.shape[1]), np.float32)
    ref: list[int] = []
    for _, faces in photos:
        new = vectors[[row[f] for f in faces]]
        candidates = []
        for i, v in enumerate(new):
            for p, s in exhaustive_scores(stored, np.asarray(ref, np.int64), v, threshold).items():
                candidates.append((s, -i, p))
        chosen: list[int | None] = [None] * len(new)
        for _s, neg_i, p in sorted(candidates, reverse=True):
            if chosen[-neg_i] is None and p not in chosen:
                chosen[-neg_i] = p
        ref.extend(row[f] if c is None else c for f, c in zip(faces, chosen, strict=True))
        stored = np.concatenate([stored, new])
    replayed = {}
    for face, label in zip((f for _, faces in photos for f in faces), ref, strict=True):
        replayed.setdefault(label, set()).add(face)
    assert {frozenset(s) for s in replayed.values()} == people[1]
    assert len(people[1]) < len(row)  # faces were put together


def test_preparing_many_faces_of_a_big_person_holds_a_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library where one person owns most faces (a family library): nearly all of them pass the
    filter for that person's new faces, and what passed is held until scored. Prepared together,
    queries go in groups of at most GROUP_PAIRS (queries x faces), so that memory stays bounded
    (about 20 bytes a pair), and the groups find what one pass finds."""
    import tracemalloc

    rng = np.random.default_rng(5)
    x, who = _library(30_000, people=300, seed=4)
    big = unit(x[who == 0].mean(0, keepdims=True))[0]
    owned = rng.random(len(x)) < 0.6  # person 0 owns 60% of the library
    x[owned] = unit(big + 0.02 * rng.normal(size=(int(owned.sum()), 128)))
    who[owned] = 0
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(len(x)), x, who, np.arange(len(x)))
    queries = unit(big + 0.02 * rng.normal(size=(400, 128))).astype(np.float32)
    whole = index._near(queries[:40])  # one pass (40 x 30k pairs: under the default)
    monkeypatch.setattr(incremental, "GROUP_PAIRS", 1 << 19)  # groups of 17 queries
    grouped = index._near(queries[:40])
    for (r1, s1), (r2, s2) in zip(whole, grouped, strict=True):
        assert np.array_equal(r1, r2) and np.allclose(s1, s2, atol=1e-6)
    tracemalloc.start()
    index.prepare(queries)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 400 queries x 18k passing faces in one pass: ~140 MB; groups of 17: ~6 MB held at once
    assert peak < 40 << 20, peak


def test_ties_among_the_most_similar_faces_go_to_the_first_rows_as_in_the_rule() -> None:
    """60 faces with the very same vector (a photo kept twice, re-encoded alike), each in its own
    person, and more than the 48 most similar faces at that similarity: the index and the rule
    pick the same 48 (the first rows), whether the filter is on or not."""
    x, who = _library(8_000, seed=6)
    twin = x[0].copy()
    rng = np.random.default_rng(7)
    rows = rng.choice(np.arange(1, len(x)), 660, replace=False)
    x[rows[:60]] = twin
    who[rows[:60]] = 50_000 + np.arange(60)
    # and 600 faces a little less alike: found by both, scored by the index only in part
    x[rows[60:]] = unit(twin + 0.03 * rng.normal(size=(600, 128)))
    index = FaceIndex(128, THRESHOLD)
    index.add(np.arange(len(x)), x, who, np.arange(len(x)))
    want = exhaustive_scores(x, who, twin, THRESHOLD, skip=0)
    assert len(want) >= 48 and set(range(50_000, 50_060)) - set(want)  # some twins left out
    _same(index.scores(twin, exclude_face=0), want)
