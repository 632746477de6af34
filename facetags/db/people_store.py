"""The people half of facetags' SQL: people, the user's decisions on them, and what the batch
re-cluster reads and writes. :class:`facetags.db.store.Store` inherits it; the same rules hold
(nothing outside ``facetags.db`` builds SQL, no method commits on its own).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable

import numpy as np

from facetags.db import vectors
from facetags.db.records import LostFace, Person


class PeopleStore:
    conn: sqlite3.Connection

    # -- people -------------------------------------------------------------------------------

    def new_person(self, name: str | None = None, name_key: str | None = None) -> int:
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO people (name, name_key, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (name, name_key, now, now),
        )
        return int(cur.lastrowid or 0)

    def assign(self, face_id: int, person_id: int, by: str) -> None:
        self.conn.execute(
            "UPDATE faces SET person_id = ?, assigned_by = ?, assigned_at = ? WHERE id = ?",
            (person_id, by, time.time(), face_id),
        )

    def person_row(self, person_id: int) -> tuple[int, str | None, bool, int | None] | None:
        """(id, name, hidden, merged_into) of a person row, merged or not."""
        row = self.conn.execute(
            "SELECT id, name, hidden, merged_into FROM people WHERE id = ?", (person_id,)
        ).fetchone()
        return None if row is None else (int(row[0]), row[1], bool(row[2]), row[3])

    def people(self, include_empty_named: bool = True) -> list[Person]:
        """Active (not merged) people with their face and photo counts: named first by name, then
        clusters by size. Unnamed clusters without faces are left out."""
        rows = self.conn.execute(
            "SELECT p.id, p.name, p.hidden, COUNT(f.id), COUNT(DISTINCT f.photo_id) FROM people p"
            " LEFT JOIN faces f ON f.person_id = p.id AND f.not_face = 0"
            " WHERE p.merged_into IS NULL GROUP BY p.id"
            " HAVING COUNT(f.id) > 0 OR (p.name IS NOT NULL AND ?)"
            " ORDER BY p.name IS NULL, p.name_key, COUNT(f.id) DESC, p.id",
            (int(include_empty_named),),
        )
        return [Person(int(r[0]), r[1], int(r[3]), int(r[4]), bool(r[2])) for r in rows]

    def person(self, person_id: int) -> Person | None:
        row = self.conn.execute(
            "SELECT p.id, p.name, p.hidden, COUNT(f.id), COUNT(DISTINCT f.photo_id) FROM people p"
            " LEFT JOIN faces f ON f.person_id = p.id AND f.not_face = 0 WHERE p.id = ? GROUP BY p.id",
            (person_id,),
        ).fetchone()
        return None if row is None else Person(int(row[0]), row[1], int(row[3]), int(row[4]), bool(row[2]))

    def people_by_key(self, name_key: str) -> list[int]:
        rows = self.conn.execute(
            "SELECT id FROM people WHERE name_key = ? AND merged_into IS NULL ORDER BY id", (name_key,)
        )
        return [int(r[0]) for r in rows]

    def named_people(self) -> list[tuple[int, str, str]]:
        rows = self.conn.execute(
            "SELECT id, name, name_key FROM people WHERE name IS NOT NULL AND merged_into IS NULL"
            " ORDER BY name_key"
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def set_name(self, person_id: int, name: str | None, name_key: str | None) -> None:
        self.conn.execute(
            "UPDATE people SET name = ?, name_key = ?, updated_at = ? WHERE id = ?",
            (name, name_key, time.time(), person_id),
        )

    def set_hidden(self, person_id: int, hidden: bool) -> None:
        self.conn.execute(
            "UPDATE people SET hidden = ?, updated_at = ? WHERE id = ?", (int(hidden), time.time(), person_id)
        )

    def merge_person(self, source: int, target: int) -> None:
        """Move every face and rejection of ``source`` to ``target`` and remember the merge."""
        now = time.time()
        self.conn.execute("UPDATE faces SET person_id = ? WHERE person_id = ?", (target, source))
        self.conn.execute(
            "INSERT OR IGNORE INTO rejections (face_id, person_id, created_at)"
            " SELECT face_id, ?, created_at FROM rejections WHERE person_id = ?",
            (target, source),
        )
        self.conn.execute("UPDATE people SET merged_into = ? WHERE merged_into = ?", (target, source))
        self.conn.execute(
            "UPDATE people SET merged_into = ?, updated_at = ? WHERE id = ?", (target, now, source)
        )

    def people_in_photo(self, photo_id: int, exclude_face: int | None = None) -> set[int]:
        rows = self.conn.execute(
            "SELECT DISTINCT person_id FROM faces WHERE photo_id = ? AND person_id IS NOT NULL AND"
            " id IS NOT ?",
            (photo_id, exclude_face),
        )
        return {int(r[0]) for r in rows}

    def add_rejection(self, face_id: int, person_id: int) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO rejections (face_id, person_id, created_at) VALUES (?, ?, ?)",
            (face_id, person_id, time.time()),
        )

    def rejected_people(self, face_id: int) -> set[int]:
        rows = self.conn.execute("SELECT person_id FROM rejections WHERE face_id = ?", (face_id,))
        return {int(r[0]) for r in rows}

    def log_decision(
        self,
        kind: str,
        face_id: int | None = None,
        person_id: int | None = None,
        other_id: int | None = None,
        **detail: object,
    ) -> None:
        self.conn.execute(
            "INSERT INTO decisions (at, kind, face_id, person_id, other_id, detail) VALUES (?, ?, ?,"
            " ?, ?, ?)",
            (time.time(), kind, face_id, person_id, other_id, json.dumps(detail) if detail else None),
        )

    def lost_faces(self, after_id: int = 0) -> list[LostFace]:
        """The ``face_lost`` decisions (oldest first), those after decision ``after_id`` only,
        each with its person's name now, leaving out a face that is back: the photo at that
        path shows a face at that place again with the same decision (the edit undone)."""
        rows = self.conn.execute(
            "SELECT d.id, d.at, d.person_id, d.detail, p.name FROM decisions d"
            " LEFT JOIN people p ON p.id = d.person_id WHERE d.kind = 'face_lost' AND d.id > ? ORDER BY d.id",
            (after_id,),
        )
        out = []
        for decision_id, at, person_id, detail, name in rows.fetchall():
            d = json.loads(detail) if detail else {}
            lost = LostFace(
                int(decision_id),
                float(at),
                str(d.get("path", "")),
                name or d.get("name") or None,
                None if person_id is None else int(person_id),
                bool(d.get("not_face")),
            )
            box = d.get("box")
            if not (box and len(box) == 4 and self._face_back(lost, tuple(float(v) for v in box))):
                out.append(lost)
        return out

    def _face_back(self, lost: LostFace, box: tuple[float, ...]) -> bool:
        """Whether the photo at ``lost.path`` shows a face at ``box`` (half of them overlapping,
        or more) with the decision that was lost: in the same person, or marked not a face."""
        params: tuple[object, ...] = (lost.path,)
        if lost.not_face:
            decided = "f.not_face = 1"
        elif lost.person_id is not None:
            decided, params = "f.person_id = ?", (lost.path, lost.person_id)
        else:
            return False
        rows = self.conn.execute(
            "SELECT f.x, f.y, f.w, f.h FROM files fl JOIN faces f ON f.photo_id = fl.photo_id"
            f" WHERE fl.path = ? AND {decided}",
            params,
        )
        return any(_overlap(box, tuple(float(v) for v in r)) >= 0.5 for r in rows)

    # -- batch clustering (facetags.people.assigner) ------------------------------------------

    def clustering_rows(self, model_id: str) -> list[tuple[int, int, int | None, str | None]]:
        """(face id, photo id, person id, assigned_by) of every real face embedded by
        ``model_id``, in face id order (the order of :meth:`embedding_matrix`)."""
        rows = self.conn.execute(
            "SELECT f.id, f.photo_id, f.person_id, f.assigned_by FROM embeddings e"
            " JOIN faces f ON f.id = e.face_id WHERE e.model_id = ? AND f.not_face = 0 ORDER BY f.id",
            (model_id,),
        )
        return [(int(r[0]), int(r[1]), r[2], r[3]) for r in rows]

    def embedding_matrix(self, model_id: str) -> np.ndarray:
        """The vectors of :meth:`clustering_rows`, stacked (N, dim)."""
        rows = self.conn.execute(
            "SELECT e.dim, e.vector FROM embeddings e JOIN faces f ON f.id = e.face_id"
            " WHERE e.model_id = ? AND f.not_face = 0 ORDER BY f.id",
            (model_id,),
        ).fetchall()
        return vectors.stack([r[1] for r in rows], int(rows[0][0]) if rows else 0)

    def people_flags(self) -> dict[int, tuple[bool, bool, bool]]:
        """Active person id -> (named, hidden, has absorbed a merge)."""
        rows = self.conn.execute(
            "SELECT p.id, p.name IS NOT NULL, p.hidden,"
            " EXISTS (SELECT 1 FROM people m WHERE m.merged_into = p.id)"
            " FROM people p WHERE p.merged_into IS NULL"
        )
        return {int(r[0]): (bool(r[1]), bool(r[2]), bool(r[3])) for r in rows}

    def all_rejections(self) -> list[tuple[int, int]]:
        rows = self.conn.execute("SELECT face_id, person_id FROM rejections")
        return [(int(r[0]), int(r[1])) for r in rows]

    def all_cannot_links(self) -> list[tuple[int, int]]:
        rows = self.conn.execute("SELECT face_a, face_b FROM cannot_link")
        return [(int(r[0]), int(r[1])) for r in rows]

    def faces_without_embedding(self, model_id: str) -> list[tuple[int, bytes | None]]:
        """(face id, thumbnail) of real faces not yet embedded by ``model_id``."""
        rows = self.conn.execute(
            "SELECT f.id, f.thumb FROM faces f WHERE f.not_face = 0 AND NOT EXISTS"
            " (SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.model_id = ?) ORDER BY f.id",
            (model_id,),
        )
        return [(int(r[0]), r[1]) for r in rows]

    def count_stale_faces(self, model_id: str) -> int:
        """Real faces with a thumbnail (so they can be re-embedded) but no vector of ``model_id``."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM faces f WHERE f.not_face = 0 AND f.thumb IS NOT NULL AND NOT EXISTS"
            " (SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.model_id = ?)",
            (model_id,),
        ).fetchone()
        return int(row[0])

    def embedding_models(self) -> dict[str, int]:
        """Model id -> how many vectors of it the library holds."""
        rows = self.conn.execute("SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id")
        return {str(r[0]): int(r[1]) for r in rows}

    def delete_embeddings(self, model_ids: Iterable[str]) -> int:
        """Drop every vector of these models (older versions of a re-embedded model)."""
        ids = list(model_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        cur = self.conn.execute(f"DELETE FROM embeddings WHERE model_id IN ({marks})", ids)
        return int(cur.rowcount)

    def assign_many(self, pairs: Iterable[tuple[int, int]], by: str) -> None:
        """Assign (face id, person id) pairs, all by the same source."""
        now = time.time()
        self.conn.executemany(
            "UPDATE faces SET person_id = ?, assigned_by = ?, assigned_at = ? WHERE id = ?",
            [(p, by, now, f) for f, p in pairs],
        )


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
