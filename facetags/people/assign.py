"""Incremental assignment: each new face joins the closest person or cluster, or starts its own.

A deliberately simple, honest rule (issue 5 deepens clustering behind the same interface):

* a person's similarity to a face is the mean of the ``k`` highest cosine similarities between
  the face and that person's faces (embedded by the same model);
* the face joins the most similar person when that similarity reaches ``threshold``;
  otherwise it becomes a cluster of one;
* never two faces of one photo in the same person; never a person the user rejected the face
  from; faces the user placed are never moved by the machine.

The :class:`Assigner` protocol is what the library calls; :class:`NearestCluster` is this rule.
It keeps the embeddings in memory and reloads them when another process has written to the
library (``PRAGMA data_version``) or when told to (:meth:`invalidate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facetags.db.store import EmbeddingSet, Store

log = logging.getLogger(__name__)

#: Default cosine similarity a face needs to join a cluster, for models whose spec gives none.
DEFAULT_THRESHOLD = 0.5
TOP_K = 3


@dataclass(frozen=True)
class NewFaceVector:
    face_id: int
    vector: np.ndarray  # (dim,) unit length


class Assigner(Protocol):
    def assign_photo(self, store: Store, photo_id: int, faces: Sequence[NewFaceVector]) -> dict[int, int]:
        """Put each face of one photo into a person (creating clusters as needed), inside the
        caller's write transaction. Returns face id -> person id."""
        ...

    def reassign(self, store: Store, face_id: int) -> int:
        """Find a new place for one face the user rejected from its person. Returns the person id."""
        ...

    def invalidate(self) -> None:
        """Forget anything cached: people changed through this connection."""
        ...


class NearestCluster:
    def __init__(self, model_id: str, threshold: float = DEFAULT_THRESHOLD, k: int = TOP_K) -> None:
        self.model_id = model_id
        self.threshold = float(threshold)
        self.k = int(k)
        self._cache: EmbeddingSet | None = None
        self._version: int | None = None

    def invalidate(self) -> None:
        self._cache = None

    def _current(self, store: Store) -> EmbeddingSet:
        version = store.data_version()
        if self._cache is None or version != self._version:
            self._cache = store.embeddings(self.model_id)
            self._version = version
            log.debug("loaded %d embeddings of %s", len(self._cache.face_ids), self.model_id)
        return self._cache

    def _append(self, face_id: int, person_id: int, photo_id: int, vector: np.ndarray) -> None:
        cache = self._cache
        if cache is None:
            return
        dim = vector.shape[0]
        vectors = cache.vectors if cache.vectors.shape[1] == dim else np.zeros((0, dim), np.float32)
        self._cache = EmbeddingSet(
            face_ids=np.append(cache.face_ids, face_id),
            person_ids=np.append(cache.person_ids, person_id),
            photo_ids=np.append(cache.photo_ids, photo_id),
            vectors=np.vstack([vectors, vector[None, :].astype(np.float32)]),
        )

    def scores(self, cache: EmbeddingSet, vector: np.ndarray) -> dict[int, float]:
        """Person id -> mean of the top-k similarities, for the people nearest ``vector``."""
        if len(cache.face_ids) == 0 or cache.vectors.shape[1] != vector.shape[0]:
            return {}
        sims = cache.vectors @ vector.astype(np.float32)
        keep = min(len(sims), 64 * self.k)
        top = np.argpartition(-sims, keep - 1)[:keep]
        top = top[np.argsort(-sims[top])]
        best: dict[int, list[float]] = {}
        for i in top:
            found = best.setdefault(int(cache.person_ids[i]), [])
            if len(found) < self.k:
                found.append(float(sims[i]))
        return {person: float(np.mean(values)) for person, values in best.items()}

    def assign_photo(self, store: Store, photo_id: int, faces: Sequence[NewFaceVector]) -> dict[int, int]:
        cache = self._current(store)
        taken = store.people_in_photo(photo_id)
        candidates: list[tuple[float, int, int]] = []
        for face in faces:
            rejected = store.rejected_people(face.face_id)
            for person, score in self.scores(cache, face.vector).items():
                if score >= self.threshold and person not in rejected:
                    candidates.append((score, face.face_id, person))
        result: dict[int, int] = {}
        for _score, face_id, person in sorted(candidates, reverse=True):
            if face_id in result or person in taken:
                continue
            result[face_id] = person
            taken.add(person)
        for face in faces:
            if face.face_id not in result:
                result[face.face_id] = store.new_person()
            store.assign(face.face_id, result[face.face_id], "auto")
            self._append(face.face_id, result[face.face_id], photo_id, face.vector)
        return result

    def reassign(self, store: Store, face_id: int) -> int:
        self.invalidate()
        photo_id = store.face_photo(face_id)
        vector = store.face_embedding(face_id, self.model_id)
        if photo_id is None or vector is None:
            person = store.new_person()
            store.assign(face_id, person, "auto")
            return person
        cache = self._current(store)
        mask = cache.face_ids != face_id
        others = EmbeddingSet(
            cache.face_ids[mask], cache.person_ids[mask], cache.photo_ids[mask], cache.vectors[mask]
        )
        self._cache = others
        taken = store.people_in_photo(photo_id, exclude_face=face_id) | store.rejected_people(face_id)
        ranked = sorted(self.scores(others, vector).items(), key=lambda kv: -kv[1])
        found = next((p for p, s in ranked if s >= self.threshold and p not in taken), None)
        person = store.new_person() if found is None else found
        store.assign(face_id, person, "auto")
        self._append(face_id, person, photo_id, vector)
        return person
