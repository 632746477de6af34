"""The library's clustering: incremental assignment, batch re-clustering, suggestions, model change.

:class:`ClusterAssigner` implements :class:`facetags.ingest.assign.Assigner` (what the indexer
calls for each new photo) with :class:`~facetags.people.incremental.FaceIndex`, and adds
:meth:`~ClusterAssigner.recluster`, which re-clusters every face with
:func:`~facetags.people.cluster.graph_average` under the user's decisions:

* anchors (fixed faces): faces the user placed (``assigned_by = 'user'``), and every face of a
  person the user named, hid, or merged into: naming a cluster is a decision about its faces,
  so neither a re-cluster nor a model change takes a face out of a named person;
* rejections and ``cannot_link`` splits are hard constraints; two faces of one photo never meet;
* new clusters take over the id of the unnamed cluster they overlap most, so ids stay stable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from facetags.db.records import NewFaceVector
from facetags.db.store import Store
from facetags.people.cluster import FREE, Constraints, graph_average
from facetags.people.incremental import FaceIndex, Suggestion
from facetags.text import plural

log = logging.getLogger(__name__)

#: meta key: the embedder (versioned id) whose vectors the people were last grouped with; another
#: one now (the setting changed back to an embedder whose vectors every face still has) regroups.
CLUSTERED_WITH_KEY = "clustered_with"


@dataclass(frozen=True)
class ReclusterReport:
    faces: int
    moved: int
    clusters: int  # distinct people and clusters afterwards
    anchored: int  # faces held in place by the user's decisions

    def to_json(self) -> dict[str, int]:
        return {
            "faces": self.faces,
            "moved": self.moved,
            "clusters": self.clusters,
            "anchored": self.anchored,
        }

    def describe(self) -> str:
        """'120 faces in 14 people and clusters, 3 moved, 40 held by your decisions'."""
        return (
            f"{plural(self.faces, 'face')} in {self.clusters} people and clusters, {self.moved} moved, "
            f"{self.anchored} held by your decisions"
        )


@dataclass(frozen=True)
class ReclusterPlan:
    inputs: tuple[object, ...]  # what it was computed from (faces, people flags, decisions)
    moves: list[tuple[int, int]]  # (face id, cluster label) for every face that changes person
    ids: dict[int, int]  # cluster label -> existing person id (labels missing: new people)
    report: ReclusterReport


class ClusterAssigner:
    def __init__(self, model_id: str, threshold: float, k: int = 12, calibrated: bool = True) -> None:
        self.model_id = model_id
        self.threshold = float(threshold)
        #: False: ``threshold`` is a guess for a model nobody calibrated. A model change then keeps
        #: every face where it is (re-embedded, not re-grouped) rather than re-group on a guess.
        self.calibrated = calibrated
        self.k = int(k)
        self._index: FaceIndex | None = None
        self._version: int | None = None

    # -- the Assigner protocol ------------------------------------------------------------------

    def invalidate(self) -> None:
        self._index = None

    def index(self, store: Store) -> FaceIndex:
        version = store.data_version()
        if self._index is None or version != self._version:
            index = None
            for part in store.embeddings(self.model_id):
                if index is None:
                    index = FaceIndex(
                        part.vectors.shape[1], self.threshold, self.k, capacity=2 * len(part.face_ids)
                    )
                index.add(part.face_ids, part.vectors, part.person_ids, part.photo_ids)
            self._index = index if index is not None else FaceIndex(0, self.threshold, self.k)
            self._version = version
        return self._index

    def _ready(self, store: Store, dim: int) -> FaceIndex:
        index = self.index(store)
        if index.dim != dim:  # an empty library learns its dimension from the first face
            index = self._index = FaceIndex(dim, self.threshold, self.k)
        return index

    def prepare(self, store: Store, vectors: Sequence[np.ndarray]) -> None:
        """Faces of photos about to be stored: compared with the library in one pass for all
        (:meth:`FaceIndex.prepare`), so that placing them one photo at a time is quicker."""
        if vectors:
            self._ready(store, len(vectors[0])).prepare(vectors)

    def assign_photo(self, store: Store, photo_id: int, faces: Sequence[NewFaceVector]) -> dict[int, int]:
        if not faces:
            return {}
        vectors = np.stack([np.asarray(f.vector, np.float32) for f in faces])
        index = self._ready(store, vectors.shape[1])
        rejected = [store.rejected_people(f.face_id) for f in faces]
        chosen = index.assign_photo(vectors, photo_id, rejected, taken=store.people_in_photo(photo_id))
        result: dict[int, int] = {}
        for face, person in zip(faces, chosen, strict=True):
            pid = store.new_person() if person is None else person
            store.assign(face.face_id, pid, "auto")
            result[face.face_id] = pid
        index.add(
            [f.face_id for f in faces], vectors, [result[f.face_id] for f in faces], [photo_id] * len(faces)
        )
        return result

    def reassign(self, store: Store, face_id: int) -> int:
        self.invalidate()
        photo_id = store.face_photo(face_id)
        vector = store.face_embedding(face_id, self.model_id)
        person: int | None = None
        if photo_id is not None and vector is not None:
            index = self._ready(store, vector.shape[0])
            banned = store.people_in_photo(photo_id, exclude_face=face_id) | store.rejected_people(face_id)
            ranked = sorted(index.scores(vector, exclude_face=face_id).items(), key=lambda kv: -kv[1])
            person = next((p for p, _ in ranked if p not in banned), None)
        if person is None:
            person = store.new_person()
        store.assign(face_id, person, "auto")
        self.invalidate()
        return person

    # -- suggestions ----------------------------------------------------------------------------

    def suggest(self, store: Store, person_id: int, limit: int = 20) -> list[Suggestion]:
        """Faces in unnamed, visible clusters most like ``person_id``, best first."""
        flags = store.people_flags()
        unnamed = [
            p for p, (named, hidden, _) in flags.items() if not named and not hidden and p != person_id
        ]
        rejected: dict[int, set[int]] = {}
        for f, p in store.all_rejections():
            rejected.setdefault(f, set()).add(p)
        return self.index(store).suggest(person_id, unnamed, rejected, limit=limit)

    # -- batch ----------------------------------------------------------------------------------

    def plan(self, store: Store, model_change: bool = False) -> ReclusterPlan:
        """Compute a re-cluster from what the store holds now (reads only: run it outside the
        write transaction, then :meth:`apply` it inside one)."""
        rows = store.clustering_rows(self.model_id)
        flags = store.people_flags()
        rejections = sorted(store.all_rejections())
        cannot_links = sorted(store.all_cannot_links())
        inputs = (tuple(rows), tuple(sorted(flags.items())), tuple(rejections), tuple(cannot_links))
        if not rows:
            return ReclusterPlan(inputs, [], {}, ReclusterReport(0, 0, 0, 0))
        x = store.embedding_matrix(self.model_id)
        face_ids = np.array([r[0] for r in rows], np.int64)
        photo = np.array([r[1] for r in rows], np.int64)
        person = np.array([FREE if r[2] is None else r[2] for r in rows], np.int64)
        by_user = np.array([r[3] == "user" for r in rows])
        touched = {p for p, (named, hidden, merged) in flags.items() if named or hidden or merged}
        fixed = np.full(len(rows), FREE, np.int64)
        fixed[by_user & (person != FREE)] = person[by_user & (person != FREE)]
        for p in touched:
            fixed[person == p] = p
        if model_change and not self.calibrated:
            log.warning("%s is not calibrated: a model change keeps every face where it is", self.model_id)
            fixed[person != FREE] = person[person != FREE]
        row_of = {int(f): i for i, f in enumerate(face_ids)}
        rejected: dict[int, set[int]] = {}
        cannot = [(row_of[a], row_of[b]) for a, b in cannot_links if a in row_of and b in row_of]
        for f, p in rejections:
            if f not in row_of:
                continue
            rejected.setdefault(row_of[f], set()).add(p)
            if p not in fixed:  # an unnamed cluster: "not like these faces" (its members now)
                cannot.extend((row_of[f], int(j)) for j in np.flatnonzero(person == p) if j != row_of[f])
        c = Constraints(photo=photo, fixed=fixed, rejected=rejected, cannot=cannot, named=frozenset(touched))
        labels = graph_average(x, self.threshold, c, k=self.k)
        new_ids = _stable_ids(labels, person, fixed, set(flags) - touched)
        moves: list[tuple[int, int]] = []  # (face id, label); a label without an id gets a new person
        for i in range(len(rows)):
            target = new_ids.get(int(labels[i]))
            if fixed[i] == FREE and target != person[i]:
                moves.append((int(face_ids[i]), int(labels[i])))
        report = ReclusterReport(len(rows), len(moves), len(set(labels.tolist())), int((fixed != FREE).sum()))
        return ReclusterPlan(inputs, moves, new_ids, report)

    def apply(self, store: Store, plan: ReclusterPlan) -> bool:
        """Write a plan (caller's transaction) if nothing it was computed from has changed since;
        returns False, writing nothing, if something has."""
        rows = store.clustering_rows(self.model_id)
        flags = store.people_flags()
        now = (tuple(rows), tuple(sorted(flags.items())), tuple(sorted(store.all_rejections())),
               tuple(sorted(store.all_cannot_links())))  # fmt: skip
        if now != plan.inputs:
            return False
        ids = dict(plan.ids)
        assignments = []
        for face_id, label in plan.moves:
            if label not in ids:
                ids[label] = store.new_person()
            assignments.append((face_id, ids[label]))
        store.assign_many(assignments, "auto")
        store.set_meta(self._meta_key, str(len(rows)))
        store.set_meta(CLUSTERED_WITH_KEY, self.model_id)
        self.invalidate()
        log.info("re-clustered: %s", plan.report.describe())
        return True

    def recluster(self, store: Store, model_change: bool = False) -> ReclusterReport:
        """Re-cluster every face of this model under the user's decisions (caller's transaction)."""
        plan = self.plan(store, model_change)
        applied = self.apply(store, plan)
        assert applied, "the store changed inside one transaction"
        return plan.report

    def recluster_due(self, store: Store, small: int = 20000, growth: float = 0.1) -> bool:
        """After a scan: is a re-cluster due? Yes while the library is small (cheap), or once it
        has grown by ``growth`` since the last one, so that the order photos arrived in stops
        mattering."""
        n = len(store.clustering_rows(self.model_id))
        last = int(store.get_meta(self._meta_key) or 0)
        return n != last and (n <= small or n - last >= growth * max(last, 1))

    @property
    def _meta_key(self) -> str:
        return f"reclustered_faces:{self.model_id}"

    def reembed(
        self,
        store: Store,
        embedder: object,
        write: Callable[[], AbstractContextManager[object]] | None = None,
        batch: int = 256,
    ) -> int:
        """Embed (with ``embedder``, which must be this assigner's model) every face that has no
        vector of this model yet, from its stored aligned thumbnail. Returns how many.

        With ``write`` (e.g. ``store.write``), each batch's vectors are stored in a transaction of
        their own, opened only once the batch is embedded: other processes wait milliseconds,
        not the whole re-embedding, and a stopped run resumes where it was (the faces done have
        their vectors). Without it, the caller's transaction holds everything."""
        from io import BytesIO

        from PIL import Image

        todo = store.faces_without_embedding(self.model_id)
        done = 0
        for start in range(0, len(todo), batch):
            part = [(f, t) for f, t in todo[start : start + batch] if t]
            if not part:
                continue
            crops = np.stack([np.asarray(Image.open(BytesIO(t)).convert("RGB")) for _, t in part])
            vecs = embedder.embed(crops)  # type: ignore[attr-defined]
            with write() if write is not None else nullcontext():
                for (f, _), v in zip(part, vecs, strict=True):
                    store.insert_embedding(f, self.model_id, np.asarray(v, np.float32))
            done += len(part)
            log.info("re-embedded %d of %d faces", done, len(todo))
        self.invalidate()
        return done


def _stable_ids(labels: np.ndarray, old: np.ndarray, fixed: np.ndarray, reusable: set[int]) -> dict[int, int]:
    """Cluster label -> person id: people keep theirs; a new cluster takes the unnamed cluster id
    it shares most faces with (each id used once); the rest get new rows (missing from the map)."""
    out: dict[int, int] = {int(p): int(p) for p in np.unique(fixed[fixed != FREE])}
    overlap: dict[tuple[int, int], int] = {}
    for lab, o in zip(labels.tolist(), old.tolist(), strict=True):
        if lab in out or o not in reusable:
            continue
        overlap[(lab, o)] = overlap.get((lab, o), 0) + 1
    used: set[int] = set(out.values())
    for (lab, o), _count in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if lab in out or o in used:
            continue
        out[lab] = o
        used.add(o)
    return out
