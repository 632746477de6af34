"""The library's clustering against a real store: incremental assignment, re-cluster under the
user's decisions, suggestions, and a model change that keeps every decision.

Faces: the Big Bang Theory group photos (22 faces of 7 people + 1 stranger), with dlib's
reference descriptors computed here; the "second model" for the model-change test is a real
different embedding of the same faces (dlib descriptors of 10 px-shifted boxes, randomly rotated),
so vectors, similarities and hence automatic assignments all change while identities do not.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.db.connect import connect
from facetags.db.migrate import migrate
from facetags.db.records import NewFaceVector
from facetags.db.store import NewFace, Store
from facetags.evaluate.clustering import score_clustering
from facetags.evaluate.labels import DetectedFace, match_labels, read_labels
from facetags.people.assigner import ClusterAssigner
from facetags.people.cluster import unit

LABELS = Path(__file__).parent / "data" / "labels"
THRESHOLD = 0.924  # dlib descriptors, L2-normalised (docs/clustering.md)
MODEL_A, MODEL_B = "dlib-resnet-v1", "dlib-shifted-rotated"


@pytest.fixture(scope="module")
def faces(shared_data: Path) -> dict[str, Any]:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    from PIL import Image

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(128, 128)))[0].astype(np.float32)
    out: dict[str, Any] = {"photo": [], "box": [], "a": [], "b": [], "thumb": []}
    for path in sorted((shared_data / "bbt" / "groups").glob("*.jpg")):
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        for r in det(img, 1):
            shifted = dlib.rectangle(r.left() + 10, r.top() + 10, r.right() + 10, r.bottom() + 10)
            out["photo"].append(path.name)
            x0, y0 = max(r.left(), 0), max(r.top(), 0)
            out["box"].append((x0 / w, y0 / h, (r.right() - x0) / w, (r.bottom() - y0) / h))
            out["a"].append(np.asarray(net.compute_face_descriptor(img, sp(img, r)), np.float32))
            out["b"].append(np.asarray(net.compute_face_descriptor(img, sp(img, shifted)), np.float32) @ rot)
            buf = io.BytesIO()
            Image.fromarray(img[y0 : r.bottom(), x0 : r.right()]).resize((112, 112)).save(buf, "JPEG")
            out["thumb"].append(buf.getvalue())
    det_faces = [DetectedFace(i, p, b) for i, (p, b) in enumerate(zip(out["photo"], out["box"], strict=True))]
    m = match_labels(read_labels(LABELS / "bbt_groups.csv"), det_faces)
    out["truth"] = dict(zip(m.face_ids, m.identities, strict=True))
    out["a"], out["b"] = unit(np.asarray(out["a"])), unit(np.asarray(out["b"]))
    return out


@pytest.fixture
def store(tmp_path: Path, faces: dict[str, Any]) -> Store:
    """A library holding the faces, assigned incrementally photo by photo as the indexer does."""
    conn = connect(tmp_path / "lib.db")
    migrate(conn)
    s = Store(conn)
    assigner = ClusterAssigner(MODEL_A, THRESHOLD)
    photo_ids: dict[str, int] = {}
    with s.write():
        for name in dict.fromkeys(faces["photo"]):
            pid = photo_ids[name] = s.insert_photo(f"hash:{name}", 100, 100, "test")
            new = []
            for i in (i for i, p in enumerate(faces["photo"]) if p == name):
                nf = NewFace(faces["box"][i], np.zeros((5, 2)), 0.99, faces["thumb"][i], faces["a"][i])
                fid = s.insert_face(pid, i, nf)
                assert fid == i + 1  # face id = index + 1 below
                s.insert_embedding(fid, MODEL_A, faces["a"][i])
                s.insert_embedding(fid, MODEL_B, faces["b"][i])
                new.append(NewFaceVector(fid, faces["a"][i]))
            assigner.assign_photo(s, pid, new)
    return s


def _people(s: Store) -> dict[int, int]:
    return {r.face_id: r.person_id for r in s.all_faces() if r.person_id is not None}


def _scores(s: Store, faces: dict[str, Any]) -> Any:
    people = _people(s)
    ids = sorted(faces["truth"])
    return score_clustering([faces["truth"][i] for i in ids], [people[i + 1] for i in ids])


def _one_per_photo(s: Store, allow: frozenset[int] = frozenset()) -> None:
    """No person twice in a photo, except people the user made so (``allow``)."""
    seen = set()
    for r in s.all_faces():
        assert (r.photo_id, r.person_id) not in seen or r.person_id in allow
        seen.add((r.photo_id, r.person_id))


def test_incremental_then_recluster(store: Store, faces: dict[str, Any]) -> None:
    assert len(_people(store)) == len(faces["photo"])
    _one_per_photo(store)
    incremental = _scores(store, faces)
    assert incremental.bcubed_precision == 1.0
    with store.write():
        report = ClusterAssigner(MODEL_A, THRESHOLD).recluster(store)
    assert report.faces == len(faces["photo"]) and report.anchored == 0
    s = _scores(store, faces)
    assert s.bcubed_precision == 1.0 and s.bcubed_f >= 0.95
    _one_per_photo(store)


def _decide(store: Store, faces: dict[str, Any]) -> dict[str, Any]:
    """Name Sheldon's cluster, move a Raj face out to its own person, reject a Penny face from
    Penny, merge Howard's cluster into Leonard's (a wrong but deliberate merge), hide the stranger."""
    people = _people(store)
    by_name: dict[str, list[int]] = {}
    for i, who in faces["truth"].items():
        by_name.setdefault(who, []).append(i + 1)
    sheldon = people[by_name["sheldon"][0]]
    store.set_name(sheldon, "Sheldon", "sheldon")
    raj_face = by_name["raj"][0]
    loner = store.new_person()
    store.assign(raj_face, loner, "user")
    penny_face = by_name["penny"][0]
    penny = people[penny_face]
    store.add_rejection(penny_face, penny)
    leonard, howard = people[by_name["leonard"][0]], people[by_name["howard"][0]]
    store.merge_person(howard, leonard)
    stranger = [i + 1 for i, p in enumerate(faces["photo"]) if i not in faces["truth"]]
    for f in stranger:
        store.set_hidden(people[f], True)
    return {"sheldon": sheldon, "raj_face": raj_face, "loner": loner, "penny_face": penny_face,
            "penny": penny, "leonard": leonard, "merged": by_name["leonard"] + by_name["howard"],
            "sheldon_faces": by_name["sheldon"], "stranger": stranger}  # fmt: skip


def _check_decisions(store: Store, d: dict[str, Any]) -> None:
    people = _people(store)
    assert all(people[f] == d["sheldon"] for f in d["sheldon_faces"])
    assert store.person(d["sheldon"]) is not None and store.person(d["sheldon"]).name == "Sheldon"  # type: ignore[union-attr]
    assert people[d["raj_face"]] == d["loner"]
    assert people[d["penny_face"]] != d["penny"]
    assert {people[f] for f in d["merged"]} == {d["leonard"]}
    for f in d["stranger"]:
        assert store.people_flags()[people[f]][1]  # still hidden
    _one_per_photo(store, allow=frozenset({d["leonard"]}))  # Howard and Leonard share photos


def test_recluster_keeps_every_decision(store: Store, faces: dict[str, Any]) -> None:
    with store.write():
        ClusterAssigner(MODEL_A, THRESHOLD).recluster(store)
        d = _decide(store, faces)
        ClusterAssigner(MODEL_A, THRESHOLD).recluster(store)
    _check_decisions(store, d)


def test_model_change_keeps_every_decision(store: Store, faces: dict[str, Any]) -> None:
    with store.write():
        ClusterAssigner(MODEL_A, THRESHOLD).recluster(store)
        d = _decide(store, faces)
        before = _people(store)
        ClusterAssigner(MODEL_B, THRESHOLD).recluster(store, model_change=True)
    _check_decisions(store, d)
    after = _people(store)
    assert sum(before[f] != after[f] for f in before) <= 3  # same identities: little should move


def test_suggestions_and_answers(store: Store, faces: dict[str, Any]) -> None:
    assigner = ClusterAssigner(MODEL_A, THRESHOLD)
    sheldon_faces = [i + 1 for i, who in faces["truth"].items() if who == "sheldon"]
    with store.write():
        # Split Sheldon: his first face named alone, the others left in an unnamed cluster.
        named = store.new_person("Sheldon", "sheldon")
        store.assign(sheldon_faces[0], named, "user")
    suggestions = assigner.suggest(store, named, limit=5)
    assert suggestions and suggestions[0].face_id in sheldon_faces[1:]
    top = suggestions[0]
    with store.write():  # "no": a rejection; it is never suggested again
        store.add_rejection(top.face_id, named)
    again = assigner.suggest(store, named, limit=5)
    assert top.face_id not in {s.face_id for s in again}


class Tiny:
    """A real, crude embedder: the 8x8 grey thumbnail, centred and normalised."""

    model_id, dim = "tiny", 64

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("stopped mid-way")
        small = crops.reshape(len(crops), 8, 14, 8, 14, 3).mean(axis=(2, 4, 5)).reshape(len(crops), 64)
        return unit(small - small.mean(axis=1, keepdims=True))


def test_reembed_from_thumbnails(store: Store) -> None:
    assigner = ClusterAssigner("tiny", 0.9)
    with store.write():
        n = assigner.reembed(store, Tiny())
        assert n == len(store.all_faces())
        report = assigner.recluster(store, model_change=True)
    assert report.faces == n
    _one_per_photo(store)


def test_reembedding_in_batches_lets_others_write_and_resumes(store: Store, tmp_path: Path) -> None:
    """A model change re-embeds in short transactions: between batches another process can
    write; stopped half-way, what was done is kept and the next run does only the rest."""
    other = Store(connect(tmp_path / "lib.db"))
    total = len(store.all_faces())
    assigner = ClusterAssigner("tiny", 0.9)
    seen_between: list[int] = []

    def write() -> Any:
        with other.write():  # the other process gets the lock between two batches
            other.set_meta("other_process", str(len(seen_between)))
        seen_between.append(total - len(store.faces_without_embedding("tiny")))
        return store.write()

    with pytest.raises(KeyboardInterrupt):
        assigner.reembed(store, Tiny(fail_after=2), write=write, batch=3)
    assert seen_between == [0, 3]
    assert len(store.faces_without_embedding("tiny")) == total - 6  # two batches kept
    assert other.get_meta("other_process") == "1"
    resumed = Tiny()
    assert assigner.reembed(store, resumed, write=store.write, batch=3) == total - 6
    assert resumed.calls == -(-(total - 6) // 3)
    assert store.faces_without_embedding("tiny") == []
    other.conn.close()


def test_a_plan_is_not_written_over_newer_decisions(store: Store) -> None:
    assigner = ClusterAssigner(MODEL_A, THRESHOLD)
    plan = assigner.plan(store)  # computed outside a transaction, as Library.recluster does
    with store.write():
        store.add_rejection(1, _people(store)[1])  # meanwhile another process decides something
    before = _people(store)
    with store.write():
        assert not assigner.apply(store, plan)
    assert _people(store) == before
    with store.write():
        assert assigner.apply(store, assigner.plan(store))
    assert not assigner.recluster_due(store)  # the re-cluster was recorded
