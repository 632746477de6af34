"""Incremental assignment and suggestions over an in-memory matrix of every face.

:class:`FaceIndex` keeps all embeddings of one model in a growing float32 matrix (100,000
128-D faces are 51 MB) beside each face's person (cluster) id and photo id. A new face is
scored against all of them with one matrix-vector product, which is what makes assigning a face
take a few milliseconds at 100k faces without any approximate index.

The rule is the incremental form of average linkage (:func:`facetags.people.cluster.graph_average`):
a person's score is the face's mean cosine similarity to all of that person's faces; only people
with a face at least ``threshold`` similar are candidates (one product and a threshold test). The
face joins the best-scoring person whose score reaches ``threshold`` and that it may join (no other
face of its photo is in it; the face was never rejected from it), else it starts a cluster of its
own (``None``). The faces of one photo are placed jointly, best pairs first.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

NONE = -1
DEAD = -2


_controller: Any = None


def _one_blas_thread() -> AbstractContextManager[Any]:
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, run as is
        return nullcontext()


@dataclass(frozen=True)
class Suggestion:
    face_id: int
    person_id: int  # the (unnamed) cluster the face is in now
    score: float  # similarity to the named person (mean of its best matches)


class FaceIndex:
    def __init__(self, dim: int, threshold: float, k: int = 12, capacity: int = 1024) -> None:
        self.dim = int(dim)
        self.threshold = float(threshold)
        self.k = int(k)
        self._vectors = np.zeros((capacity, dim), np.float32)
        self._person = np.full(capacity, DEAD, np.int64)
        self._photo = np.full(capacity, NONE, np.int64)
        self._face = np.full(capacity, NONE, np.int64)
        self._row: dict[int, int] = {}
        self._photo_rows: dict[int, set[int]] = {}
        self._n = 0

    # -- contents -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row)

    def _grow(self, need: int) -> None:
        cap = len(self._person)
        if self._n + need <= cap:
            return
        new = max(cap * 2, self._n + need)
        self._vectors = np.concatenate([self._vectors, np.zeros((new - cap, self.dim), np.float32)])
        self._person = np.concatenate([self._person, np.full(new - cap, DEAD, np.int64)])
        self._photo = np.concatenate([self._photo, np.full(new - cap, NONE, np.int64)])
        self._face = np.concatenate([self._face, np.full(new - cap, NONE, np.int64)])

    def add(
        self,
        face_ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        person_ids: Sequence[int] | np.ndarray,
        photo_ids: Sequence[int] | np.ndarray,
    ) -> None:
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        m = len(vectors)
        self._grow(m)
        rows = slice(self._n, self._n + m)
        self._vectors[rows] = vectors
        self._person[rows] = np.asarray(person_ids, np.int64)
        self._photo[rows] = np.asarray(photo_ids, np.int64)
        self._face[rows] = np.asarray(face_ids, np.int64)
        for i, f in enumerate(np.asarray(face_ids, np.int64).tolist()):
            old = self._row.get(f)
            if old is not None:
                self._person[old] = DEAD
                self._vectors[old] = 0.0
            self._row[f] = self._n + i
        for i, ph in enumerate(np.asarray(photo_ids, np.int64).reshape(-1).tolist()):
            self._photo_rows.setdefault(ph, set()).add(self._n + i)
        self._n += m

    def remove(self, face_id: int) -> None:
        row = self._row.pop(face_id, None)
        if row is not None:
            self._person[row] = DEAD
            self._vectors[row] = 0.0
            self._photo_rows.get(int(self._photo[row]), set()).discard(row)

    def move(self, face_id: int, person_id: int) -> None:
        self._person[self._row[face_id]] = person_id

    def merge(self, into: int, others: Collection[int]) -> None:
        self._person[np.isin(self._person, list(others))] = into

    def person_of(self, face_id: int) -> int:
        return int(self._person[self._row[face_id]])

    def faces_of(self, person_id: int) -> np.ndarray:
        return self._face[: self._n][self._person[: self._n] == person_id]

    # -- assignment -----------------------------------------------------------------------------

    def scores(self, vector: np.ndarray, exclude_face: int | None = None) -> dict[int, float]:
        """Person id -> mean similarity of the face to all of that person's faces (the average
        linkage the batch re-cluster uses), for the people it may join: mean >= threshold."""
        n = self._n
        if n == 0:
            return {}
        with _one_blas_thread():  # a matrix-vector product: threads only add jitter under load
            sims = self._vectors[:n] @ np.asarray(vector, np.float32)  # dead rows are zero vectors
        person = self._person[:n]
        skip = self._row.get(exclude_face, -1) if exclude_face is not None else -1
        if skip >= 0:
            sims[skip] = -np.inf
        near = np.flatnonzero(sims >= self.threshold)  # only these people can average >= threshold
        if len(near) > 4 * self.k:
            near = near[np.argpartition(-sims[near], 4 * self.k - 1)[: 4 * self.k]]
        candidates = np.unique(person[near])
        if len(candidates) == 0:
            return {}
        rows = np.flatnonzero(np.isin(person, candidates))
        if skip >= 0:
            rows = rows[rows != skip]
        who, inverse = np.unique(person[rows], return_inverse=True)
        mean = np.bincount(inverse, weights=sims[rows]) / np.bincount(inverse)
        return {int(p): float(m) for p, m in zip(who, mean, strict=True) if m >= self.threshold and p != DEAD}

    def assign_photo(
        self,
        vectors: np.ndarray,
        photo_id: int,
        rejected: Sequence[Collection[int]] | None = None,
        taken: Collection[int] = (),
    ) -> list[int | None]:
        """Best allowed person for each face of one photo, or None (a cluster of its own).

        ``taken``: people already in this photo (faces indexed earlier); ``rejected[i]``: the
        people face ``i`` was rejected from. Nothing is added to the index; call :meth:`add`.
        """
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        in_photo = set(int(p) for p in taken)
        in_photo.update(int(self._person[r]) for r in self._photo_rows.get(int(photo_id), ()))
        candidates = []
        for i, v in enumerate(vectors):
            banned = set(rejected[i]) if rejected is not None else set()
            for p, s in self.scores(v).items():
                if p not in banned and p not in in_photo:
                    candidates.append((s, -i, p))
        result: list[int | None] = [None] * len(vectors)
        for _s, neg_i, p in sorted(candidates, reverse=True):
            i = -neg_i
            if result[i] is None and p not in in_photo:
                result[i] = p
                in_photo.add(p)
        return result

    # -- suggestions ----------------------------------------------------------------------------

    def suggest(
        self,
        person_id: int,
        candidates: Collection[int] | None = None,
        rejected: Mapping[int, Collection[int]] | None = None,
        limit: int = 20,
        floor: float | None = None,
    ) -> list[Suggestion]:
        """Faces outside ``person_id`` most like it, best first, for a yes/no review.

        ``candidates``: the person ids whose faces may be suggested (the unnamed clusters;
        default: everyone else). Faces in a photo that already shows the person, and faces
        rejected from it, are skipped. Score: mean of a face's 3 best similarities to the
        person's faces. ``floor`` (default: threshold minus 0.15) drops hopeless ones.
        """
        n = self._n
        own = np.flatnonzero(self._person[:n] == person_id)
        if len(own) == 0:
            return []
        floor = self.threshold - 0.15 if floor is None else floor
        alive = self._person[:n] != DEAD
        pool = alive & (self._person[:n] != person_id)
        if candidates is not None:
            pool &= np.isin(self._person[:n], list(candidates))
        pool &= ~np.isin(self._photo[:n], self._photo[own])
        idx = np.flatnonzero(pool)
        if len(idx) == 0:
            return []
        # Shortlist by similarity to the person's centroid, then score against its faces.
        cent = self._vectors[own].sum(axis=0)
        cent /= max(float(np.linalg.norm(cent)), 1e-12)
        short = idx[np.argsort(-(self._vectors[idx] @ cent))[: max(limit * 10, 200)]]
        sims = self._vectors[short] @ self._vectors[own].T
        top = np.sort(sims, axis=1)[:, -min(3, sims.shape[1]) :]
        score = top.mean(axis=1)
        out = []
        rejected = rejected or {}
        for j in np.argsort(-score).tolist():
            face = int(self._face[short[j]])
            if score[j] < floor:
                break
            if person_id in rejected.get(face, ()):
                continue
            out.append(Suggestion(face, int(self._person[short[j]]), float(score[j])))
            if len(out) >= limit:
                break
        return out
