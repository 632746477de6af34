"""The user's decisions, a part of the :class:`facetags.library.Library` facade: naming, merging,
splitting, moving and rejecting faces, hiding people, and undo.

Each change is one write transaction, logged as a decision and made on the person as it is now
(merges followed); the clustering then reloads what it knows (``indexer.invalidate``). Undo
reverts steps of them (:mod:`facetags.db.journal`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from facetags.db.records import FaceRecord, Person
from facetags.errors import FacetagsError, LibraryError, NameTaken, NotFoundError
from facetags.names import clean_name, name_key, same_name
from facetags.text import plural

if TYPE_CHECKING:
    from facetags.db.store import Store
    from facetags.ingest.indexer import Indexer
    from facetags.ingest.pipeline import Pipeline


class Decisions:
    """The decision methods of :class:`facetags.library.Library` (mixed into it)."""

    # what they use of the library (set or defined by Library)
    store: Store
    indexer: Indexer
    pipeline: Pipeline
    _lock: threading.RLock
    face: Callable[[int], FaceRecord]

    # -- the person an id is now --------------------------------------------------------------

    def _resolve(self, person_id: int) -> int:
        """The active person ``person_id`` is now (following merges)."""
        seen = set()
        current = person_id
        while True:
            row = self.store.person_row(current)
            if row is None:
                raise NotFoundError(f"no person or cluster {person_id}")
            if row[3] is None:
                return current
            if current in seen:
                raise LibraryError(f"person {person_id}: merge loop")
            seen.add(current)
            current = int(row[3])

    def _person(self, person_id: int) -> Person:
        person = self.store.person(self._resolve(person_id))
        if person is None:
            raise NotFoundError(f"no person or cluster {person_id}")
        return person

    # -- the user's decisions -----------------------------------------------------------------

    def name(self, person_id: int, name: str, *, merge: bool = True) -> Person:
        """Name a person or cluster. A name another person already has merges the two (the person
        keeps the spelling given first: "zoe" joins "Zoë", and renaming Zoë is how to respell
        it), or, with ``merge`` False, is refused (NameTaken saying who has it)."""
        text = clean_name(name)
        key = name_key(text)
        with self._lock, self.store.write():
            target = self._resolve(person_id)
            now = self.store.person(target)
            if now is not None and now.name is None and now.faces == 0:  # left empty by a re-cluster
                raise NotFoundError(
                    f"cluster {person_id} has no faces now (re-clustering moved them):"
                    " `facetags people` lists the current ones"
                )
            same = [p for p in self.store.people_by_key(key) if p != target]
            if not same:  # the same words, punctuation aside ("John D. Ashcroft", "john d ashcroft")
                same = [p for p, _n, k in self.store.named_people() if p != target and same_name(k, key)]
            if same and not merge:
                other = self._person(same[0])
                faces = plural(other.faces, "face")
                raise NameTaken(f"{other.name} is person {other.id} already ({faces})", other.id)
            if same:
                survivor = same[0]
                self.store.merge_person(target, survivor)
                self.store.log_decision("merge", person_id=survivor, other_id=target, reason="same name")
                target = survivor
            else:
                self.store.set_name(target, text, key)
                self.store.log_decision("name", person_id=target, name=text)
        self.indexer.invalidate()
        return self._person(target)

    def unname(self, person_id: int) -> Person:
        with self._lock, self.store.write():
            target = self._resolve(person_id)
            self.store.set_name(target, None, None)
            self.store.log_decision("name", person_id=target, name=None)
        return self._person(target)

    def merge(self, ids: Sequence[int]) -> Person:
        """Merge people into the first of ``ids``. The survivor keeps its name, or takes the one
        name among the others; people with different names are not merged (rename first)."""
        if len(ids) < 2:
            raise FacetagsError("merge needs at least two ids")
        with self._lock, self.store.write():
            resolved = list(dict.fromkeys(self._resolve(i) for i in ids))
            if len(resolved) < 2:  # the same id twice, or ids merged into one already
                raise FacetagsError(f"{' and '.join(map(str, ids))} are one person already ({resolved[0]})")
            target, others = resolved[0], resolved[1:]
            rows = {p: self.store.person_row(p) for p in resolved}
            names: dict[str, str] = {}
            for r in rows.values():  # the survivor's spelling first: a name given stays as given
                if r is not None and r[1]:
                    names.setdefault(name_key(r[1]), r[1])
            if len(names) > 1:
                listed = ", ".join(sorted(names.values()))
                raise FacetagsError(f"these are different named people ({listed}); rename one first")
            for other in others:
                self.store.merge_person(other, target)
                self.store.log_decision("merge", person_id=target, other_id=other)
            if names:
                ((key, text),) = names.items()
                self.store.set_name(target, text, key)
        self.indexer.invalidate()
        return self._person(target)

    def more_than_once(self, person_id: int) -> dict[str, list[int]]:
        """The photos (path) where the person has more than one face, with those faces' ids: one
        of them is someone else's. The clustering never does this; a merge or move by the user
        can (the front ends say so, for a rejection to take the wrong face out)."""
        with self._lock:
            faces = self.store.faces_of_person(self._resolve(person_id))
        by_photo: dict[str, list[int]] = {}
        for face in faces:
            by_photo.setdefault(face.path, []).append(face.face_id)
        return {path: ids for path, ids in by_photo.items() if len(ids) > 1}

    def set_assignment(self, face_id: int, person_id: int | None, source: str = "user") -> int:
        """Put a face into a person (None: a new cluster of its own). Returns the person id."""
        if source not in ("user", "auto"):
            raise ValueError(f"source is 'user' or 'auto', not {source!r}")
        self.face(face_id)
        with self._lock, self.store.write():
            target = self.store.new_person() if person_id is None else self._resolve(person_id)
            self.store.assign(face_id, target, source)
            self.store.log_decision("assign", face_id=face_id, person_id=target, source=source)
        self.indexer.invalidate()
        return target

    def reject(self, face_id: int, person_id: int) -> int:
        """The face is not this person: never put it there again, and find it a new place now.
        Returns the face's person afterwards. On a library whose embedder changed and whose
        faces wait to be re-embedded, the face goes to a cluster of its own until the re-embed
        (the next scan) places it: a decision never waits for a library-wide job."""
        record = self.face(face_id)
        with self._lock, self.store.write():
            target = self._resolve(person_id)
            self.store.add_rejection(face_id, target)
            self.store.log_decision("reject", face_id=face_id, person_id=target)
            placed = record.person_id
            if placed is not None and self._resolve(placed) == target:
                placed = self.indexer.assigner(self.pipeline.model_id).reassign(self.store, face_id)
        self.indexer.invalidate()
        return int(placed) if placed is not None else 0

    def hide(self, person_id: int, hidden: bool = True) -> Person:
        """Hide (or show again) a person or cluster, e.g. strangers in the background."""
        with self._lock, self.store.write():
            target = self._resolve(person_id)
            self.store.set_hidden(target, hidden)
            self.store.log_decision("hide", person_id=target, hidden=hidden)
        return self._person(target)

    def not_a_face(self, face_id: int) -> None:
        """The detector was wrong: the face leaves its person and every listing."""
        self.face(face_id)
        with self._lock, self.store.write():
            self.store.set_not_face(face_id)
            self.store.log_decision("not_face", face_id=face_id)
        self.indexer.invalidate()

    # -- reading what was decided -------------------------------------------------------------

    def rejected_people(self, face_id: int) -> set[int]:
        """The people (as they are now, after merges) the user said this face is not."""
        out: set[int] = set()
        for person_id in self.store.rejected_people(face_id):
            try:
                out.add(self._resolve(person_id))
            except NotFoundError:
                continue
        return out

    # -- groups of decisions, undo (facetags.db.journal) -------------------------------------

    def move_faces(self, face_ids: Sequence[int], person_id: int) -> Person:
        """The user puts these faces into ``person_id`` (one transaction)."""
        for face_id in face_ids:
            self.face(face_id)
        with self._lock, self.store.write():
            target = self._resolve(person_id)
            for face_id in face_ids:
                self.store.assign(face_id, target, "user")
                self.store.log_decision("assign", face_id=face_id, person_id=target, source="user")
        self.indexer.invalidate()
        return self._person(target)

    def take_cluster(self, person_id: int, cluster_id: int) -> tuple[list[int], list[int]]:
        """Yes to a whole suggested cluster: its faces join ``person_id`` as the user's decision,
        except faces the user rejected from that person and faces in a photo the person is
        already in (nobody appears twice in one photo); those stay where they are.
        Returns (the faces moved, the faces left)."""
        target, cluster = self._resolve(person_id), self._resolve(cluster_id)
        if target == cluster:
            return [], []
        with self._lock:
            photos = {f.photo_id for f in self.store.faces_of_person(target)}
            moved: list[int] = []
            left: list[int] = []
            for face in self.store.faces_of_person(cluster):
                if face.photo_id in photos or target in self.rejected_people(face.face_id):
                    left.append(face.face_id)
                else:
                    moved.append(face.face_id)
                    photos.add(face.photo_id)
            if moved:
                self.move_faces(moved, target)
        return moved, left

    def reject_cluster(self, person_id: int, cluster_id: int) -> list[int]:
        """No to a whole suggested cluster: none of its faces is ``person_id``. Each is rejected
        from that person (never suggested or put there again) and stays in its cluster.
        Returns the faces rejected."""
        target, cluster = self._resolve(person_id), self._resolve(cluster_id)
        if target == cluster:
            return []
        with self._lock, self.store.write():
            faces = [f.face_id for f in self.store.faces_of_person(cluster)]
            for face_id in faces:
                self.store.add_rejection(face_id, target)
                self.store.log_decision("reject", face_id=face_id, person_id=target)
        self.indexer.invalidate()
        return faces

    def split(self, person_id: int, face_ids: Sequence[int]) -> Person:
        """Split ``face_ids`` off ``person_id`` into a new cluster of their own, as the user's decision."""
        if not face_ids:
            raise FacetagsError("split needs at least one face")
        with self._lock, self.store.write():
            source = self._resolve(person_id)
            for face_id in face_ids:
                placed = self.face(face_id).person_id
                if placed is None or self._resolve(placed) != source:
                    raise FacetagsError(f"face {face_id} is not in person {person_id}")
            target = self.store.new_person()
            for face_id in face_ids:
                self.store.assign(face_id, target, "user")
            self.store.log_decision("split", person_id=target, other_id=source, faces=list(face_ids))
        self.indexer.invalidate()
        return self._person(target)

    @contextmanager
    def undoable(self, label: str) -> Iterator[None]:
        """Every change made inside is one step that :meth:`undo` reverts (in this session).

        with lib.undoable("move 3 faces to Ada"):
            for face in faces:
                lib.set_assignment(face, ada)
        """
        from facetags.db import journal

        with self._lock:
            step = journal.begin(self.store.conn, label)
            try:
                yield
            finally:
                journal.end(self.store.conn, step)

    def undo_steps(self) -> list[str]:
        """What :meth:`undo` can revert, latest first."""
        from facetags.db import journal

        with self._lock:
            return journal.steps(self.store.conn)

    def undo(self) -> str:
        """Revert the latest :meth:`undoable` step; returns its label."""
        from facetags.db import journal

        with self._lock, self.store.write():
            label = journal.undo(self.store.conn)
        if label is None:
            raise FacetagsError("nothing to undo")
        self.indexer.invalidate()
        return label
