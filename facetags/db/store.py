"""All of facetags' SQL. Callers hold a :class:`Store` and wrap writes in :meth:`Store.write`.
The people, decisions and re-cluster queries live in :mod:`facetags.db.people_store`.

Nothing outside this module builds SQL. Methods are small and named for what they mean to
the library; none commits on its own (the caller's transaction decides).
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass

import numpy as np

from facetags.db import vectors
from facetags.db.connect import GroupedWrites, stop_process, transaction
from facetags.db.people_store import PeopleStore
from facetags.db.records import REPLACED, FaceRecord, Failure, FileRow, FileStat, MissingPhoto

_FILE_COLS = "id, path, photo_id, size, mtime_ns, device, inode"
#: Ids at most in one ``IN (...)`` list (SQLite allows 32,766 parameters).
_FEW = 900
#: Tables whose rows name a file by path and follow it when it moves.
XMP_PATH_TABLES = ("xmp_names", "xmp_lost_names")


class _RolledBack(Exception):
    """Raised inside a transaction to roll it back on purpose."""


def _prefix_range(root: str) -> tuple[str, str]:
    """Bounds so that ``lo < path < hi`` selects exactly the paths inside folder ``root``."""
    base = root.rstrip(os.sep) + os.sep
    return base, base[:-1] + chr(ord(os.sep) + 1)


def _file(row: sqlite3.Row | tuple[int, str, int, int, int, int, int]) -> FileRow:
    return FileRow(*row)


@dataclass(frozen=True)
class NewFace:
    """A face ready to store: geometry normalised to the upright photo."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2) normalised
    score: float
    thumb: bytes | None
    embedding: np.ndarray | None


@dataclass(frozen=True)
class OldFace:
    """A face of a photo's previous version and the decisions on it (see Store.faces_to_carry)."""

    face_id: int
    box: tuple[float, float, float, float]
    person_id: int | None
    assigned_by: str | None
    not_face: bool
    person_name: str | None
    rejections: int
    vector: np.ndarray | None

    @property
    def decided(self) -> bool:
        """Something the user said concerns this face (its person's name included)."""
        return self.assigned_by == "user" or self.not_face or self.rejections > 0 or bool(self.person_name)


@dataclass(frozen=True)
class EmbeddingSet:
    """Every assigned, real face embedded by one model: what incremental assignment compares to."""

    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    photo_ids: np.ndarray  # (N,) int64
    vectors: np.ndarray  # (N, dim) float32


class Store(PeopleStore):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._group: GroupedWrites | None = None

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction; inside :meth:`grouped`, a savepoint of the group's."""
        if self._group is not None:
            return self._group.write()
        return transaction(self.conn)

    @contextmanager
    def grouped(
        self, max_s: float, gap_s: float = 0.0, on_rollback: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """The writes made inside share transactions (:class:`GroupedWrites`), committed at
        :meth:`commit_now`, after ``max_s`` open (then the lock is left free ``gap_s``), and at
        the end, an exception's too (what went through whole is kept)."""
        if self._group is not None:
            raise RuntimeError("writes are grouped already")
        group = self._group = GroupedWrites(self.conn, max_s, gap_s, on_rollback)
        try:
            yield
        finally:
            self._group = None
            group.commit()

    def suspend(self) -> None:
        """Ctrl-Z (SIGTSTP), from a signal handler: stop this process, after committing the
        grouped writes open (:meth:`GroupedWrites.suspend`) so that it holds no lock meanwhile."""
        if self._group is not None:
            self._group.suspend()
        else:
            stop_process()

    def commit_now(self) -> None:
        """Inside :meth:`grouped`: commit what the group wrote so far (before something slow, or
        that must find it in the library if this process dies). Outside: nothing to do."""
        if self._group is not None:
            self._group.commit()

    def data_version(self) -> int:
        """Changes whenever another connection commits (not on this connection's own commits)."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # -- meta ---------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise the library's write error (a LibraryError saying what to do) now if it cannot
        be written: one real write, rolled back."""
        with suppress(_RolledBack), self.write():
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_check', '')")
            raise _RolledBack

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value ="
            " excluded.value",
            (key, value),
        )

    # -- files --------------------------------------------------------------------------------

    def files_under(self, root: str) -> dict[str, FileRow]:
        lo, hi = _prefix_range(root)
        rows = self.conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE path = ? OR (path > ? AND path < ?)", (root, lo, hi)
        )
        return {r[1]: _file(r) for r in rows}

    def file_by_path(self, path: str) -> FileRow | None:
        row = self.conn.execute(f"SELECT {_FILE_COLS} FROM files WHERE path = ?", (path,)).fetchone()
        return None if row is None else _file(row)

    def files_by_inode(self, st: FileStat) -> list[FileRow]:
        rows = self.conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE inode = ? AND device = ? AND size = ? AND mtime_ns = ?",
            (st.inode, st.device, st.size, st.mtime_ns),
        )
        return [_file(r) for r in rows]

    def photo_files(self, photo_id: int) -> list[FileRow]:
        rows = self.conn.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE photo_id = ? ORDER BY id", (photo_id,)
        )
        return [_file(r) for r in rows]

    def add_file(self, path: str, photo_id: int, st: FileStat) -> int:
        cur = self.conn.execute(
            "INSERT INTO files (path, photo_id, size, mtime_ns, device, inode, seen_at) VALUES (?,"
            " ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET photo_id = excluded.photo_id, size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, device = excluded.device, inode = excluded.inode,"
            " seen_at = excluded.seen_at",
            (path, photo_id, st.size, st.mtime_ns, st.device, st.inode, time.time()),
        )
        return int(cur.lastrowid or 0)

    def move_file(self, file_id: int, new_path: str, st: FileStat) -> None:
        """The file ``file_id`` was renamed to ``new_path``. A photo indexed there before (the
        rename replaced its file) is kept as missing there, unless another path shows it."""
        replaced = self.conn.execute(
            "DELETE FROM files WHERE path = ? AND id != ? RETURNING photo_id", (new_path, file_id)
        ).fetchall()
        old = self.conn.execute("SELECT path FROM files WHERE id = ?", (file_id,)).fetchone()
        if old is not None and old[0] != new_path:  # what facetags wrote into the file moves with it,
            for table in XMP_PATH_TABLES:  # over what was there
                self.conn.execute(f"DELETE FROM {table} WHERE path = ?", (new_path,))
                self.conn.execute(f"UPDATE {table} SET path = ? WHERE path = ?", (new_path, old[0]))
        self.conn.execute(
            "UPDATE files SET path = ?, size = ?, mtime_ns = ?, device = ?, inode = ?, seen_at = ?"
            " WHERE id = ?",
            (new_path, st.size, st.mtime_ns, st.device, st.inode, time.time(), file_id),
        )
        for (photo_id,) in replaced:
            self.keep_missing(new_path, int(photo_id), REPLACED)

    def touch_file(self, file_id: int, st: FileStat) -> None:
        """Same content, new stat (e.g. metadata written into the file)."""
        self.conn.execute(
            "UPDATE files SET size = ?, mtime_ns = ?, device = ?, inode = ?, seen_at = ? WHERE id = ?",
            (st.size, st.mtime_ns, st.device, st.inode, time.time(), file_id),
        )

    def move_tree(self, src: str, dest: str) -> int:
        """A folder was renamed: rewrite every indexed path under ``src`` to lie under ``dest``.
        The photos indexed under ``dest`` before (a folder replaced by the renamed one) are kept
        as missing where they were, unless another path shows them."""
        s_lo, s_hi = _prefix_range(src)
        d_lo, d_hi = _prefix_range(dest)
        replaced = self.conn.execute(
            "DELETE FROM files WHERE path > ? AND path < ? RETURNING path, photo_id", (d_lo, d_hi)
        ).fetchall()
        cur = self.conn.execute(
            "UPDATE files SET path = ? || substr(path, ?) WHERE path > ? AND path < ?",
            (d_lo, len(s_lo) + 1, s_lo, s_hi),
        )
        # what facetags wrote into the files moves with them, over what was there
        for table in (*XMP_PATH_TABLES, "failures", "queue"):
            self.conn.execute(f"DELETE FROM {table} WHERE path > ? AND path < ?", (d_lo, d_hi))
            self.conn.execute(
                f"UPDATE {table} SET path = ? || substr(path, ?) WHERE path > ? AND path < ?",
                (d_lo, len(s_lo) + 1, s_lo, s_hi),
            )
        moved = cur.rowcount
        for path, photo_id in replaced:
            self.keep_missing(str(path), int(photo_id), REPLACED)
        return moved

    def delete_orphan_photos(self, photo_ids: Iterable[int]) -> int:
        """Delete the photos among ``photo_ids`` that no path points to any more and that are
        not missing (a missing photo keeps its faces until it comes back or is forgotten)."""
        gone = 0
        for photo_id in photo_ids:
            cur = self.conn.execute(
                "DELETE FROM photos WHERE id = ? AND NOT EXISTS (SELECT 1 FROM files WHERE photo_id = ?)"
                " AND NOT EXISTS (SELECT 1 FROM missing WHERE photo_id = ?)",
                (photo_id, photo_id, photo_id),
            )
            gone += cur.rowcount
        return gone

    # -- missing photos -----------------------------------------------------------------------

    def mark_missing(self, paths: Iterable[str], reason: str) -> list[int]:
        """These indexed paths no longer show their photo (gone, or unreadable): the path leaves
        ``files``; a photo left with no other path is kept as missing, with its faces and every
        decision. Returns the photo id of each path that was indexed."""
        photo_ids: list[int] = []
        for path in paths:
            row = self.conn.execute("DELETE FROM files WHERE path = ? RETURNING photo_id", (path,)).fetchone()
            if row is not None:
                photo_ids.append(int(row[0]))
                self.keep_missing(path, int(row[0]), reason)
        return photo_ids

    def mark_missing_under(self, folder: str, reason: str) -> list[int]:
        """:meth:`mark_missing` for every indexed path inside ``folder`` (its failures and queue
        entries go)."""
        lo, hi = _prefix_range(folder)
        rows = self.conn.execute(
            "DELETE FROM files WHERE path > ? AND path < ? RETURNING path, photo_id", (lo, hi)
        ).fetchall()
        for path, photo_id in rows:
            self.keep_missing(path, int(photo_id), reason)
        for table in ("failures", "queue"):
            self.conn.execute(f"DELETE FROM {table} WHERE path > ? AND path < ?", (lo, hi))
        return [int(r[1]) for r in rows]

    def missing_paths(self, photo_id: int) -> list[str]:
        """The paths the photo is kept as missing at (where it was last seen)."""
        rows = self.conn.execute("SELECT path FROM missing WHERE photo_id = ?", (photo_id,))
        return [str(r[0]) for r in rows]

    def keep_missing(self, path: str, photo_id: int, reason: str) -> None:
        """``path`` no longer shows ``photo_id``: kept as missing there, unless another path
        still shows it."""
        if self.conn.execute("SELECT 1 FROM files WHERE photo_id = ? LIMIT 1", (photo_id,)).fetchone():
            return  # another path still shows it: nothing is missing
        self.conn.execute(  # (another photo kept missing at the same path keeps its row)
            "INSERT INTO missing (path, photo_id, since, reason) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (path, photo_id) DO UPDATE SET reason = excluded.reason",
            (path, photo_id, time.time(), reason),
        )

    def last_missing_at(self, path: str) -> tuple[int, float, str] | None:
        """(photo id, since, reason) of the photo that went missing at ``path`` last, if any."""
        row = self.conn.execute(
            "SELECT photo_id, since, reason FROM missing WHERE path = ?"
            " ORDER BY since DESC, rowid DESC LIMIT 1",
            (path,),
        ).fetchone()
        return None if row is None else (int(row[0]), float(row[1]), str(row[2]))

    def photo_is_missing(self, photo_id: int) -> bool:
        row = self.conn.execute("SELECT 1 FROM missing WHERE photo_id = ?", (photo_id,)).fetchone()
        return row is not None

    def found_again(self, photo_id: int) -> int:
        """The photo's pixels are on disk again: it is missing no more. Returns the rows cleared."""
        return self.conn.execute("DELETE FROM missing WHERE photo_id = ?", (photo_id,)).rowcount

    def drop_missing(self, paths: Iterable[str]) -> list[int]:
        """Forget that these paths are missing (their photos are not deleted here). Returns the
        photo ids they named."""
        found: list[int] = []
        for path in paths:
            rows = self.conn.execute("DELETE FROM missing WHERE path = ? RETURNING photo_id", (path,))
            found += [int(r[0]) for r in rows.fetchall()]
        return found

    def drop_missing_photo_at(self, path: str, photo_id: int) -> None:
        """``photo_id`` no longer counts as missing at ``path`` (others missing there still do)."""
        self.conn.execute("DELETE FROM missing WHERE path = ? AND photo_id = ?", (path, photo_id))

    def missing(self, under: str | None = None) -> list[MissingPhoto]:
        """Missing photos (inside folder ``under``, if given), oldest first, with their faces."""
        where = ""
        params: tuple[str, ...] = ()
        if under is not None:
            lo, hi = _prefix_range(under)
            where, params = "WHERE m.path = ? OR (m.path > ? AND m.path < ?)", (under, lo, hi)
        rows = self.conn.execute(
            "SELECT m.path, m.photo_id, m.since, m.reason,"
            " (SELECT COUNT(*) FROM faces f WHERE f.photo_id = m.photo_id AND f.not_face = 0),"
            " (SELECT COUNT(*) FROM faces f JOIN people p ON p.id = f.person_id"
            "   WHERE f.photo_id = m.photo_id AND f.not_face = 0 AND p.name IS NOT NULL)"
            f" FROM missing m {where} ORDER BY m.since, m.path",
            params,
        )
        return [MissingPhoto(r[0], int(r[1]), float(r[2]), r[3], int(r[4]), int(r[5])) for r in rows]

    # -- orientation --------------------------------------------------------------------------

    def photo_orientation(self, photo_id: int) -> int:
        row = self.conn.execute("SELECT orientation FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return 1 if row is None else int(row[0])

    def reorient_photo(
        self,
        photo_id: int,
        orientation: int,
        width: int,
        height: int,
        faces: Sequence[tuple[int, tuple[float, float, float, float], np.ndarray]],
    ) -> None:
        """The photo is now shown under ``orientation`` (its upright size ``width`` x ``height``);
        ``faces``: (face id, box, landmarks) already turned into the new upright frame."""
        self.conn.execute(
            "UPDATE photos SET orientation = ?, width = ?, height = ? WHERE id = ?",
            (orientation, width, height, photo_id),
        )
        for face_id, (x, y, w, h), marks in faces:
            self.conn.execute(
                "UPDATE faces SET x = ?, y = ?, w = ?, h = ?, landmarks = ? WHERE id = ?",
                (x, y, w, h, vectors.landmarks_to_blob(marks), face_id),
            )

    def face_geometry(self, photo_id: int) -> list[tuple[int, tuple[float, float, float, float], np.ndarray]]:
        rows = self.conn.execute(
            "SELECT id, x, y, w, h, landmarks FROM faces WHERE photo_id = ? ORDER BY idx", (photo_id,)
        )
        out = []
        for r in rows:
            box = (float(r[1]), float(r[2]), float(r[3]), float(r[4]))
            out.append((int(r[0]), box, vectors.landmarks_from_blob(r[5])))
        return out

    # -- failures and queue -------------------------------------------------------------------

    def failures_under(self, root: str, error_prefix: str = "") -> dict[str, tuple[int | None, int | None]]:
        """The failed files at or under ``root`` (those whose error starts with ``error_prefix``),
        with the size and mtime they failed at."""
        lo, hi = _prefix_range(root)
        rows = self.conn.execute(
            "SELECT path, size, mtime_ns FROM failures WHERE (path = ? OR (path > ? AND path < ?))"
            " AND (? = '' OR substr(error, 1, ?) = ?)",
            (root, lo, hi, error_prefix, len(error_prefix), error_prefix),
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def record_failure(self, path: str, st: FileStat | None, error: str) -> None:
        self.conn.execute(
            "INSERT INTO failures (path, size, mtime_ns, error, attempts, failed_at) VALUES (?, ?,"
            " ?, ?, 1, ?)"
            " ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " error = excluded.error, attempts = attempts + 1, failed_at = excluded.failed_at",
            (path, st.size if st else None, st.mtime_ns if st else None, error, time.time()),
        )

    def clear_failures(self, paths: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM failures WHERE path = ?", ((p,) for p in paths))

    def failures(self) -> list[Failure]:
        rows = self.conn.execute("SELECT path, error, attempts FROM failures ORDER BY path")
        return [Failure(r[0], r[1], int(r[2])) for r in rows]

    def failure(self, path: str) -> Failure | None:
        row = self.conn.execute(
            "SELECT path, error, attempts FROM failures WHERE path = ?", (path,)
        ).fetchone()
        return None if row is None else Failure(row[0], row[1], int(row[2]))

    def failure_stat(self, path: str) -> tuple[int | None, int | None] | None:
        row = self.conn.execute("SELECT size, mtime_ns FROM failures WHERE path = ?", (path,)).fetchone()
        return None if row is None else (row[0], row[1])

    def begin_attempt(self, path: str, st: FileStat) -> int:
        """Note that ``path`` is about to be decoded and analysed. Returns how many earlier
        attempts at the same size and mtime died with their process (never ended)."""
        row = self.conn.execute(
            "SELECT size, mtime_ns, died FROM attempts WHERE path = ?", (path,)
        ).fetchone()
        died = int(row[2]) + 1 if row is not None and (row[0], row[1]) == (st.size, st.mtime_ns) else 0
        self.conn.execute(
            "INSERT INTO attempts (path, size, mtime_ns, died, started_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " died = excluded.died, started_at = excluded.started_at",
            (path, st.size, st.mtime_ns, died, time.time()),
        )
        return died

    def end_attempts(self, paths: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM attempts WHERE path = ?", ((p,) for p in paths))

    def enqueue(self, paths: Iterable[str]) -> None:
        now = time.time()
        self.conn.executemany(
            "INSERT OR IGNORE INTO queue (path, enqueued_at) VALUES (?, ?)", ((p, now) for p in paths)
        )

    def dequeue(self, paths: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM queue WHERE path = ?", ((p,) for p in paths))

    def queued_under(self, root: str) -> list[str]:
        lo, hi = _prefix_range(root)
        rows = self.conn.execute(
            "SELECT path FROM queue WHERE path = ? OR (path > ? AND path < ?) ORDER BY path", (root, lo, hi)
        )
        return [r[0] for r in rows]

    # -- photos, faces, embeddings ------------------------------------------------------------

    def photo_by_hash(self, content_hash: str) -> int | None:
        row = self.conn.execute("SELECT id FROM photos WHERE content_hash = ?", (content_hash,)).fetchone()
        return None if row is None else int(row[0])

    def photo_hash(self, photo_id: int) -> str | None:
        row = self.conn.execute("SELECT content_hash FROM photos WHERE id = ?", (photo_id,)).fetchone()
        return None if row is None else str(row[0])

    def insert_photo(
        self, content_hash: str, width: int, height: int, detector: str, orientation: int = 1
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO photos (content_hash, width, height, detector, created_at, orientation)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (content_hash, width, height, detector, time.time(), orientation),
        )
        return int(cur.lastrowid or 0)

    def insert_face(self, photo_id: int, idx: int, face: NewFace) -> int:
        x, y, w, h = (float(v) for v in face.box)
        cur = self.conn.execute(
            "INSERT INTO faces (photo_id, idx, x, y, w, h, landmarks, score, thumb)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                photo_id,
                idx,
                x,
                y,
                w,
                h,
                vectors.landmarks_to_blob(face.landmarks),
                float(face.score),
                face.thumb,
            ),
        )
        return int(cur.lastrowid or 0)

    def insert_embedding(self, face_id: int, model_id: str, vector: np.ndarray) -> None:
        """Store a face's vector; nothing when the face is gone (another process may delete a
        photo while a re-embedding writes its batches)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO embeddings (face_id, model_id, dim, vector)"
            " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)",
            (face_id, model_id, int(vector.shape[0]), vectors.to_blob(vector), face_id),
        )

    def embeddings(self, model_id: str, chunk: int = 65536) -> Iterator[EmbeddingSet]:
        """Every assigned, real face of ``model_id``, in face id order, ``chunk`` faces at a time
        (so reading a library of millions never holds all its rows as Python objects)."""
        cursor = self.conn.execute(
            "SELECT f.id, f.person_id, f.photo_id, e.dim, e.vector FROM embeddings e"
            " JOIN faces f ON f.id = e.face_id"
            " WHERE e.model_id = ? AND f.person_id IS NOT NULL AND f.not_face = 0 ORDER BY f.id",
            (model_id,),
        )
        while rows := cursor.fetchmany(chunk):
            yield EmbeddingSet(
                face_ids=np.array([r[0] for r in rows], np.int64),
                person_ids=np.array([r[1] for r in rows], np.int64),
                photo_ids=np.array([r[2] for r in rows], np.int64),
                vectors=vectors.stack([r[4] for r in rows], int(rows[0][3])),
            )

    def face_embedding(self, face_id: int, model_id: str) -> np.ndarray | None:
        row = self.conn.execute(
            "SELECT dim, vector FROM embeddings WHERE face_id = ? AND model_id = ?", (face_id, model_id)
        ).fetchone()
        return None if row is None else vectors.from_blob(row[1], int(row[0]))

    def face_photo(self, face_id: int) -> int | None:
        row = self.conn.execute("SELECT photo_id FROM faces WHERE id = ?", (face_id,)).fetchone()
        return None if row is None else int(row[0])

    def face_thumb(self, face_id: int) -> bytes | None:
        row = self.conn.execute("SELECT thumb FROM faces WHERE id = ?", (face_id,)).fetchone()
        return None if row is None else row[0]

    def _face_records(self, where: str, params: Sequence[object], real_only: bool = True) -> list[FaceRecord]:
        """Face records; with ``real_only=False`` also "not a face" ones, as faces of nobody."""
        rows = self.conn.execute(
            "SELECT f.id, f.photo_id, (SELECT path FROM files WHERE photo_id = f.photo_id ORDER BY id"
            " LIMIT 1),"
            " f.x, f.y, f.w, f.h, f.score,"
            " CASE WHEN f.not_face THEN NULL ELSE f.person_id END,"
            " CASE WHEN f.not_face THEN NULL ELSE p.name END, f.assigned_by, f.landmarks,"
            " ph.width, ph.height, (SELECT x.name FROM xmp_names x WHERE x.face_id = f.id AND x.path ="
            " COALESCE((SELECT path FROM files WHERE photo_id = f.photo_id ORDER BY id LIMIT 1),"
            " (SELECT path FROM missing WHERE photo_id = f.photo_id LIMIT 1))"
            " ORDER BY x.written_at DESC LIMIT 1),"
            " (SELECT path FROM missing WHERE photo_id = f.photo_id LIMIT 1)"
            " FROM faces f JOIN photos ph ON ph.id = f.photo_id LEFT JOIN people p ON p.id = f.person_id"
            f" WHERE {'f.not_face = 0' if real_only else '1'} {where} ORDER BY f.photo_id, f.idx",
            params,
        )
        return [
            FaceRecord(
                face_id=r[0],
                photo_id=r[1],
                path=r[2] if r[2] is not None else (r[15] or ""),  # not on disk: where last seen
                box=(r[3], r[4], r[5], r[6]),
                score=r[7],
                person_id=r[8],
                person_name=r[9],
                assigned_by=r[10],
                landmarks=tuple((float(x), float(y)) for x, y in vectors.landmarks_from_blob(r[11])),
                width=r[12],
                height=r[13],
                xmp_name=r[14],
                missing=r[2] is None,
            )
            for r in rows
        ]

    def face_files(self, records: Iterable[FaceRecord]) -> list[FaceRecord]:
        """Each record once for every file its photo is in (copies: the same pixels in several
        places), first indexed first, with the names of facetags' that file may carry for the
        face (``xmp_written``; ``xmp_name``: the last written); a missing photo's record as it
        is (nothing is written to, or read from, a photo not on disk)."""
        wanted = {r.face_id: r for r in records}
        if not wanted:
            return []
        where = ""
        params: tuple[int, ...] = ()
        if len(wanted) <= _FEW:  # one person's: by id; the whole library: one pass
            where, params = f"WHERE f.id IN ({', '.join('?' * len(wanted))})", tuple(wanted)
        rows = self.conn.execute(
            "SELECT f.id, fl.path, x.name FROM faces f JOIN files fl ON fl.photo_id = f.photo_id"
            f" LEFT JOIN xmp_names x ON x.face_id = f.id AND x.path = fl.path {where}"
            " ORDER BY f.id, fl.id, x.written_at",
            params,
        )
        names: dict[tuple[int, str], list[str]] = {}  # (face, path) -> names, the last written last
        for face_id, path, name in rows:
            if int(face_id) in wanted:
                names.setdefault((int(face_id), str(path)), [])
                if name is not None:
                    names[(int(face_id), str(path))].append(str(name))
        out = [
            dataclasses.replace(
                wanted[face], path=path, xmp_name=said[-1] if said else None, xmp_written=tuple(said)
            )
            for (face, path), said in names.items()
        ]
        shown = {face for face, _path in names}
        return out + [r for r in wanted.values() if r.face_id not in shown]  # missing: no file

    def stale_xmp_files(self) -> list[tuple[int, int, str, str]]:
        """(photo id, face id, path, name) of each file on disk that carries a name facetags
        wrote for a face that no longer has it (renamed, moved, rejected, unnamed, "not a
        face"): what the next ``xmp write`` takes back."""
        rows = self.conn.execute(
            "SELECT f.photo_id, f.id, x.path, x.name, CASE WHEN f.not_face THEN NULL ELSE p.name END"
            " FROM xmp_names x JOIN faces f ON f.id = x.face_id"
            " JOIN files fl ON fl.path = x.path AND fl.photo_id = f.photo_id"
            " LEFT JOIN people p ON p.id = f.person_id"
        )
        return [
            (int(photo), int(face), str(path), str(name))
            for photo, face, path, name, now in rows
            if now != str(name)  # a respelt name too: "alice" to "Alice" is written again
        ]

    def faces_with_stale_xmp(self) -> list[FaceRecord]:
        """:meth:`stale_xmp_files` as face records, one for each such file (``path``,
        ``xmp_name``)."""
        stale = self.stale_xmp_files()
        if not stale:
            return []
        faces = sorted({face for _photo, face, _path, _name in stale})
        found: list[FaceRecord] = []
        for start in range(0, len(faces), _FEW):
            chunk = faces[start : start + _FEW]
            marks = ", ".join("?" * len(chunk))
            found += self._face_records(f"AND f.id IN ({marks})", chunk, real_only=False)
        files = {(face, path) for _photo, face, path, _name in stale}
        return [r for r in self.face_files(found) if (r.face_id, r.path) in files]

    def photos_with_unwritten_names(self) -> int:
        """Photos on disk with a named face whose name facetags has never written into one of
        the photo's files (a missing photo cannot be written to: it waits until it is back)."""
        row = self.conn.execute(
            "SELECT COUNT(DISTINCT f.photo_id) FROM faces f JOIN people p ON p.id = f.person_id"
            " JOIN files fl ON fl.photo_id = f.photo_id"
            " LEFT JOIN xmp_names x ON x.face_id = f.id AND x.path = fl.path"
            " WHERE f.not_face = 0 AND p.name IS NOT NULL"
            " AND (x.name IS NULL OR EXISTS (SELECT 1 FROM xmp_unverified u WHERE u.photo_id = f.photo_id))"
            " AND NOT EXISTS (SELECT 1 FROM missing m WHERE m.photo_id = f.photo_id)"
        ).fetchone()
        return int(row[0])

    def xmp_unverified(self, photo_id: int) -> None:
        """A file of the photo may not carry the names facetags wrote into it (it came back from
        elsewhere, a copy appeared, another program rewrote its metadata): only if it was
        written to."""
        self.conn.execute(
            "INSERT OR IGNORE INTO xmp_unverified (photo_id, since) SELECT ?, ?"
            " WHERE EXISTS (SELECT 1 FROM xmp_names x JOIN faces f ON f.id = x.face_id WHERE f.photo_id = ?)",
            (photo_id, time.time(), photo_id),
        )

    def unverified_photos(self) -> set[int]:
        """The photos a file of which may not carry what ``xmp_names`` says (:meth:`xmp_unverified`)."""
        return {int(r[0]) for r in self.conn.execute("SELECT photo_id FROM xmp_unverified")}

    def xmp_verified(self, photo_id: int) -> None:
        """An ``xmp write`` found (or made) each file of the photo carry what is recorded."""
        self.conn.execute("DELETE FROM xmp_unverified WHERE photo_id = ?", (photo_id,))

    def set_xmp_names(
        self, path: str, names: dict[int, str | None], still: dict[int, tuple[str, ...]] | None = None
    ) -> None:
        """Remember what facetags' XMP in the file at ``path`` now says of each face (None: no
        name of ours any more), and ``still``, names of facetags' it still carries for a face in
        XMP the write left alone (older: the name written stays the last)."""
        now = time.time()
        for face_id, name in names.items():
            self.conn.execute("DELETE FROM xmp_names WHERE face_id = ? AND path = ?", (face_id, path))
            older = [(n, now - 1e-3) for n in (still or {}).get(face_id, ()) if n != name]
            for carried, at in [*older, *([(name, now)] if name is not None else [])]:
                self.conn.execute(
                    "INSERT OR IGNORE INTO xmp_names (face_id, path, name, written_at) SELECT ?, ?, ?, ?"
                    " WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)",
                    (face_id, path, carried, at, face_id),
                )

    def claim_xmp_names(self, path: str, names: dict[int, str], unverified: bool = True) -> None:
        """The file at ``path`` may carry these names of facetags' from now on (face id -> name),
        besides those it may carry already: a write is about to replace it (``unverified``:
        until a write is seen through, the photo counts as not written), or an import found
        them there."""
        now = time.time()
        for face_id, name in names.items():
            self.conn.execute(
                "INSERT OR IGNORE INTO xmp_names (face_id, path, name, written_at) SELECT ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)",
                (face_id, path, name, now, face_id),
            )
        photo = self.face_photo(next(iter(names))) if unverified and names else None
        if photo is not None:  # (the faces of one file are one photo's)
            self.xmp_unverified(photo)

    def unclaim_xmp_names(self, path: str, names: dict[int, str]) -> None:
        """A write that claimed these names (:meth:`claim_xmp_names`) failed: the file does not
        carry them."""
        for face_id, name in names.items():
            self.conn.execute(
                "DELETE FROM xmp_names WHERE face_id = ? AND path = ? AND name = ?", (face_id, path, name)
            )

    def xmp_names_follow(self, photo_id: int, path: str) -> None:
        """``path`` is a new file of the photo (a copy, or the photo back from elsewhere): it may
        carry any name facetags wrote into one of the photo's files, at any path it was ever
        seen at (a copy made before a rename carries the older name), so each is known as
        facetags' own there (the photo is unverified: the next ``xmp write`` looks)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO xmp_names (face_id, path, name, written_at)"
            " SELECT x.face_id, ?, x.name, MAX(x.written_at) FROM xmp_names x"
            " JOIN faces f ON f.id = x.face_id WHERE f.photo_id = ? AND x.path != ?"
            " GROUP BY x.face_id, x.name",
            (path, photo_id, path),
        )
        self.conn.execute(  # and the names of faces an edit cut off (xmp_lost_names)
            "INSERT OR IGNORE INTO xmp_lost_names (path, photo_id, name, written_at)"
            " SELECT ?, photo_id, name, MAX(written_at) FROM xmp_lost_names WHERE photo_id = ? AND path != ?"
            " GROUP BY name",
            (path, photo_id, path),
        )

    def all_faces(self) -> list[FaceRecord]:
        return self._face_records("", ())

    def faces_of_photo(self, photo_id: int) -> list[FaceRecord]:
        return self._face_records("AND f.photo_id = ?", (photo_id,))

    def faces_of_person(self, person_id: int) -> list[FaceRecord]:
        return self._face_records("AND f.person_id = ?", (person_id,))

    def face_record(self, face_id: int) -> FaceRecord | None:
        found = self._face_records("AND f.id = ?", (face_id,))
        return found[0] if found else None

    def faces_to_carry(self, photo_id: int, model_id: str) -> list[OldFace]:
        """Every face of a photo (real or not) with what the user decided about it, for carrying
        those decisions to the faces of the photo's new version."""
        rows = self.conn.execute(
            "SELECT f.id, f.x, f.y, f.w, f.h, f.person_id, f.assigned_by, f.not_face, p.name,"
            " (SELECT COUNT(*) FROM rejections r WHERE r.face_id = f.id), e.dim, e.vector"
            " FROM faces f LEFT JOIN people p ON p.id = f.person_id"
            " LEFT JOIN embeddings e ON e.face_id = f.id AND e.model_id = ?"
            " WHERE f.photo_id = ? ORDER BY f.idx",
            (model_id, photo_id),
        )
        return [
            OldFace(
                face_id=int(r[0]),
                box=(float(r[1]), float(r[2]), float(r[3]), float(r[4])),
                person_id=r[5],
                assigned_by=r[6],
                not_face=bool(r[7]),
                person_name=r[8],
                rejections=int(r[9]),
                vector=None if r[11] is None else vectors.from_blob(r[11], int(r[10])),
            )
            for r in rows
        ]

    def carry_face(self, old: OldFace, new_face_id: int) -> None:
        """Give face ``new_face_id`` the place, source, "not a face" mark and rejections of
        ``old`` (the same face in the photo's previous version)."""
        self.conn.execute(
            "UPDATE faces SET person_id = ?, assigned_by = ?, assigned_at = ?, not_face = ? WHERE id = ?",
            (old.person_id, old.assigned_by, time.time(), int(old.not_face), new_face_id),
        )
        self.conn.execute(
            "INSERT OR IGNORE INTO rejections (face_id, person_id, created_at)"
            " SELECT ?, person_id, created_at FROM rejections WHERE face_id = ?",
            (new_face_id, old.face_id),
        )

    def carry_xmp_names(self, mapping: dict[int, int], path: str) -> None:
        """What facetags wrote into the file at ``path`` for old faces is what it carries for
        their new faces (old id -> new id): an edit keeps the XMP, in most editors."""
        for old, new in mapping.items():
            self.conn.execute(
                "INSERT OR IGNORE INTO xmp_names (face_id, path, name, written_at)"
                " SELECT ?, path, name, written_at FROM xmp_names WHERE face_id = ? AND path = ?",
                (new, old, path),
            )

    def keep_lost_xmp_names(self, face_id: int, path: str, photo_id: int) -> None:
        """The file at ``path`` now shows ``photo_id``, an edit of the picture that cut off face
        ``face_id``: the names facetags wrote into the file for that face stay known as its own
        there (``xmp_lost_names``), for ``xmp write`` to take out, before the face goes."""
        self.conn.execute(
            "INSERT INTO xmp_lost_names (path, photo_id, name, written_at)"
            " SELECT path, ?, name, written_at FROM xmp_names WHERE face_id = ? AND path = ?"
            " ON CONFLICT (path, name) DO UPDATE SET photo_id = excluded.photo_id,"
            " written_at = MAX(written_at, excluded.written_at)",
            (photo_id, face_id, path),
        )

    def carry_lost_xmp_names(self, path: str, old_photo: int, photo_id: int) -> None:
        """``path`` showed ``old_photo`` and now shows ``photo_id``, a further edit of it: the
        names of cut-off faces the file carried still are."""
        self.conn.execute(
            "UPDATE xmp_lost_names SET photo_id = ? WHERE path = ? AND photo_id = ?",
            (photo_id, path, old_photo),
        )

    def lost_xmp_files(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """Path -> (photo id, names) of each file on disk that may carry names facetags wrote for
        faces an edit of its picture cut off (:meth:`keep_lost_xmp_names`)."""
        rows = self.conn.execute(
            "SELECT x.path, x.photo_id, x.name FROM xmp_lost_names x"
            " JOIN files fl ON fl.path = x.path AND fl.photo_id = x.photo_id ORDER BY x.path, x.written_at"
        )
        names: dict[str, list[str]] = {}
        photos: dict[str, int] = {}
        for path, photo_id, name in rows:
            names.setdefault(path, []).append(name)
            photos[path] = int(photo_id)
        return {path: (photos[path], tuple(found)) for path, found in names.items()}

    def set_lost_xmp_names(self, path: str, left: Iterable[str]) -> None:
        """After a write: of the cut-off faces' names recorded for the file at ``path``, it
        still carries ``left``; the others are gone from it."""
        keep = sorted(set(left))
        marks = ", ".join("?" * len(keep))
        self.conn.execute(
            f"DELETE FROM xmp_lost_names WHERE path = ? AND name NOT IN ({marks})", (path, *keep)
        )

    def carry_cannot_links(self, mapping: dict[int, int]) -> None:
        """Copy the "different people" pairs of old faces to their new faces (old id -> new id)."""
        if not mapping:
            return
        marks = ", ".join("?" for _ in mapping)
        rows = self.conn.execute(
            f"SELECT face_a, face_b, created_at FROM cannot_link WHERE face_a IN ({marks})"
            f" OR face_b IN ({marks})",
            [*mapping, *mapping],
        ).fetchall()
        for a, b, at in rows:
            na, nb = mapping.get(int(a), int(a)), mapping.get(int(b), int(b))
            if na != nb:
                self.conn.execute(
                    "INSERT OR IGNORE INTO cannot_link (face_a, face_b, created_at) VALUES (?, ?, ?)",
                    (min(na, nb), max(na, nb), at),
                )

    def set_not_face(self, face_id: int) -> None:
        self.conn.execute(
            "UPDATE faces SET not_face = 1, person_id = NULL, assigned_by = 'user', assigned_at = ?"
            " WHERE id = ?",
            (time.time(), face_id),
        )

    # -- search and status --------------------------------------------------------------------

    def photo_paths_with_all(self, person_sets: Sequence[Sequence[int]]) -> list[str]:
        """Paths of the photos that show, for every set, at least one person of that set."""
        if not person_sets:
            return []
        clauses = []
        params: list[object] = []
        for ids in person_sets:
            marks = ", ".join("?" for _ in ids)
            clauses.append(
                "EXISTS (SELECT 1 FROM faces f WHERE f.photo_id = fi.photo_id AND f.not_face = 0"
                f" AND f.person_id IN ({marks}))"
            )
            params.extend(ids)
        rows = self.conn.execute(
            f"SELECT fi.path FROM files fi WHERE {' AND '.join(clauses)} ORDER BY fi.path", params
        )
        return [r[0] for r in rows]

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT (SELECT COUNT(DISTINCT photo_id) FROM files), (SELECT COUNT(*) FROM files),"
            " (SELECT COUNT(*) FROM faces WHERE not_face = 0),"
            " (SELECT COUNT(*) FROM people WHERE merged_into IS NULL AND name IS NOT NULL),"
            " (SELECT COUNT(*) FROM people p WHERE merged_into IS NULL AND name IS NULL"
            "   AND EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)),"
            " (SELECT COUNT(*) FROM queue), (SELECT COUNT(*) FROM failures)"
        ).fetchone()
        keys = ("photos", "files", "faces", "people", "clusters", "queue", "failures")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    def schema(self) -> dict[str, list[str]]:
        """Every table of the schema and its columns (for the docs drift check)."""
        tables = [
            r[0]
            for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        return {t: [c[1] for c in self.conn.execute(f"PRAGMA table_info({t})")] for t in tables}

    def iter_paths(self) -> Iterator[str]:
        for row in self.conn.execute("SELECT path FROM files ORDER BY path"):
            yield row[0]
