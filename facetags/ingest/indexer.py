"""Keep the index in step with the disk: new, changed, moved, duplicate, deleted and bad files.

Rules (see ``docs/library.md``):

* unchanged (same size and mtime as indexed): nothing but the walk's ``stat``;
* same device+inode+size+mtime as an indexed file (a hard link, or a rename): no decode;
* otherwise decode and hash the pixels; a known hash is the same photo: a duplicate when the
  photo's other paths still exist, a move when one of them is gone (faces and names kept);
* an unknown hash is analysed (detect, align, embed) and stored with its faces assigned, in one
  transaction per photo, so an interrupted scan never leaves half a photo behind;
* paths that vanished are forgotten at the end of a complete scan; a photo with no paths left
  is deleted with its faces (people stay);
* files that fail are recorded with their size and mtime and retried only once those change;
* each decode is noted first (``attempts``) and the note removed once the file is indexed or
  failed: a file whose attempts died with the process twice (killed for memory, a decoder
  crash) is recorded as failed instead of being decoded a third time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from facetags.db.records import FileRow, FileStat
from facetags.db.store import Store
from facetags.errors import DecodeError, ModelError
from facetags.ingest.pipeline import Analysis, Decoded1, Pipeline
from facetags.ingest.rematch import match_faces
from facetags.ingest.scan import Entry, Walk, absolute, is_photo_name, printable, walk
from facetags.people.assign import Assigner, NewFaceVector

log = logging.getLogger(__name__)

#: progress(done, total, path): called after each file the scan had to look at.
Progress = Callable[[int, int, str], None]
#: Attempts at one file (same size and mtime) that may die with the process before it is skipped.
CRASH_LIMIT = 2
OUTCOMES = ("new", "changed", "moved", "duplicate", "touched", "unchanged", "deleted", "failed", "known_bad")


@dataclass
class ScanReport:
    counts: Counter[str] = field(default_factory=Counter)
    faces: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    reembedded: int = 0  # faces re-embedded first because the embedder had changed (Library.scan)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: self.counts.get(k, 0) for k in OUTCOMES}
        out.update(
            faces=self.faces,
            failures=[{"path": p, "error": e} for p, e in self.failures],
            seconds=round(self.seconds, 3),
            timings=self.timings,
            interrupted=self.interrupted,
            reembedded=self.reembedded,
        )
        return out


class Indexer:
    def __init__(self, store: Store, pipeline: Pipeline, assigner_factory: Callable[[str], Assigner]) -> None:
        self.store = store
        self.pipeline = pipeline
        self._assigner_factory = assigner_factory
        self._assigners: dict[str, Assigner] = {}
        self.faces_added = 0

    def assigner(self, model_id: str) -> Assigner:
        if model_id not in self._assigners:
            self._assigners[model_id] = self._assigner_factory(model_id)
        return self._assigners[model_id]

    def invalidate(self) -> None:
        for assigner in self._assigners.values():
            assigner.invalidate()

    # -- one file -----------------------------------------------------------------------------

    def index_path(self, path: str) -> str:
        """Bring one path up to date (it may be new, changed, gone or bad). Returns the outcome."""
        path = absolute(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return "deleted" if self.remove_paths([path]) else "unchanged"
        except OSError as exc:
            return self._fail(path, None, exc.strerror or "cannot stat", self.store.file_by_path(path))
        if not os.path.isfile(path):
            return self._fail(path, FileStat.of(st), "not a regular file", self.store.file_by_path(path))
        fst = FileStat.of(st)
        row = self.store.file_by_path(path)
        if row is not None and fst.same_file(row):
            return "unchanged"
        if self.store.failure_stat(path) == (fst.size, fst.mtime_ns):
            return "known_bad"
        return self.index_file(path, fst, row)

    def index_file(self, path: str, st: FileStat, row: FileRow | None) -> str:
        """Index ``path`` whose stat differs from the index (``row``: its current entry, if any)."""
        for other in self.store.files_by_inode(st):
            if other.path != path:
                return self._link(path, other.photo_id, st, row)
        with self.store.write():
            died = self.store.begin_attempt(path, st)
        if died >= CRASH_LIMIT:
            log.warning("%s: crashed facetags %d times; skipped until it changes", path, died)
            return self._fail(
                path, st, f"crashed facetags {died} times while decoding; skipped until it changes", row
            )
        try:
            return self._analyse(path, st, row)
        except BaseException:  # an error or an interrupt, not a crash: the file is not to blame
            self._end_attempt(path)
            raise

    def _end_attempt(self, path: str) -> None:
        try:
            with self.store.write():
                self.store.end_attempts([path])
        except Exception:  # the library itself is failing: that error is the one to report
            log.debug("%s: could not clear the attempt", path, exc_info=True)

    def _analyse(self, path: str, st: FileStat, row: FileRow | None) -> str:
        """Decode, hash and (for unknown pixels) analyse and store ``path``."""
        try:
            decoded = self.pipeline.decode(path)
        except DecodeError as exc:
            return self._fail(path, st, exc.reason, row)
        photo_id = self.store.photo_by_hash(decoded.content_hash)
        if photo_id is not None:
            if row is not None and row.photo_id == photo_id:
                with self.store.write():
                    self.store.touch_file(row.id, st)
                    self._done(path)
                return "touched"
            return self._link(path, photo_id, st, row)
        try:
            analysis = self.pipeline.analyse(decoded.decoded)
        except ModelError:  # the model cannot run at all (not installed, damaged, a pack not on
            raise  # disk): no photo can be analysed, so stop rather than record each as failed
        except Exception as exc:  # one photo the models choke on must not stop a scan
            log.warning("%s: analysis failed", path, exc_info=True)
            return self._fail(path, st, f"analysis failed ({type(exc).__name__}: {exc})", row)
        return self._store(path, st, row, decoded, analysis)

    def _store(
        self, path: str, st: FileStat, row: FileRow | None, decoded: Decoded1, analysis: Analysis
    ) -> str:
        with self.pipeline.timings.stage("store"), self.store.write():
            existing = self.store.photo_by_hash(decoded.content_hash)  # another process won the race
            if existing is None:
                d = decoded.decoded
                photo_id = self.store.insert_photo(
                    decoded.content_hash, d.width, d.height, self.pipeline.detector_id
                )
                vectors = []
                face_ids = []
                for idx, face in enumerate(analysis.faces):
                    face_id = self.store.insert_face(photo_id, idx, face)
                    face_ids.append(face_id)
                    if face.embedding is not None:
                        self.store.insert_embedding(face_id, analysis.model_id, face.embedding)
                        vectors.append(NewFaceVector(face_id, face.embedding))
                self.store.add_file(path, photo_id, st)
                carried: set[int] = set()
                if row is not None and row.photo_id != photo_id:
                    carried = self._carry(path, row.photo_id, face_ids, analysis)
                vectors = [v for v in vectors if v.face_id not in carried]
                if vectors:
                    assigner = self.assigner(analysis.model_id)
                    if carried:
                        assigner.invalidate()  # the carried faces are in people now
                    assigner.assign_photo(self.store, photo_id, vectors)
                if row is not None and row.photo_id != photo_id:
                    self.store.delete_orphan_photos([row.photo_id])
                self._done(path)
                self.faces_added += len(analysis.faces)
                return "changed" if row is not None else "new"
        return self._link(path, existing, st, row)

    def _carry(self, path: str, old_photo: int, face_ids: list[int], analysis: Analysis) -> set[int]:
        """``path`` showed ``old_photo`` and now shows new pixels (an edit, a crop, a re-export):
        the faces that are the same face keep their person, its source, "not a face" and their
        rejections (facetags.ingest.rematch says which is which). A face the user had decided
        on that is gone from the new version (cropped out, or no longer detected) is logged and
        recorded as a ``face_lost`` decision, unless another path still shows the old version.
        Returns the new face ids that were given a place."""
        old = self.store.faces_to_carry(old_photo, analysis.model_id)
        if not old:
            return set()
        pairs = match_faces(
            [f.box for f in old],
            [f.box for f in analysis.faces],
            [f.vector for f in old],
            [f.embedding for f in analysis.faces],
        )
        carried: set[int] = set()
        for i, j in pairs.items():
            self.store.carry_face(old[i], face_ids[j])
            if old[i].person_id is not None or old[i].not_face:
                carried.add(face_ids[j])
        self.store.carry_cannot_links({old[i].face_id: face_ids[j] for i, j in pairs.items()})
        still_shown = any(f.path != path for f in self.store.photo_files(old_photo))
        lost = [f for i, f in enumerate(old) if i not in pairs and f.decided and not still_shown]
        for face in lost:
            log.warning(
                "%s: the changed photo no longer shows face %d (%s); its decisions are recorded",
                path,
                face.face_id,
                face.person_name or ("not a face" if face.not_face else f"person {face.person_id}"),
            )
            self.store.log_decision(
                "face_lost",
                face_id=face.face_id,
                person_id=face.person_id,
                path=path,
                box=list(face.box),
                name=face.person_name,
                assigned_by=face.assigned_by,
                not_face=face.not_face,
            )
        log.info("%s changed: %d of %d faces kept their place", path, len(pairs), len(old))
        return carried

    def _link(self, path: str, photo_id: int, st: FileStat, row: FileRow | None) -> str:
        """``path`` shows a photo already indexed: record it as a move, a duplicate or a change."""
        with self.store.write():
            outcome = "duplicate"
            if row is not None:
                self.store.add_file(path, photo_id, st)  # repoint: the file's content changed
                self.store.delete_orphan_photos([row.photo_id])
                outcome = "changed"
            else:
                gone = next(
                    (
                        f
                        for f in self.store.photo_files(photo_id)
                        if f.path != path and not os.path.lexists(f.path)
                    ),
                    None,
                )
                if gone is not None:
                    self.store.move_file(gone.id, path, st)
                    outcome = "moved"
                else:
                    self.store.add_file(path, photo_id, st)
            self._done(path)
        return outcome

    def _fail(self, path: str, st: FileStat | None, error: str, row: FileRow | None) -> str:
        log.info("%s: %s", path, error)
        with self.store.write():
            self.store.record_failure(path, st, error)
            self.store.end_attempts([path])
            if row is not None:
                self.store.delete_orphan_photos(self.store.remove_files([path]))
            self.store.dequeue([path])
        return "failed"

    def _done(self, path: str) -> None:
        self.store.clear_failures([path])
        self.store.end_attempts([path])
        self.store.dequeue([path])

    # -- removals and moves (the watcher's events) --------------------------------------------

    def remove_paths(self, paths: Iterable[str]) -> int:
        """Forget paths that no longer exist. Returns how many indexed paths went."""
        paths = [p for p in paths if not os.path.lexists(p)]
        if not paths:
            return 0
        with self.store.write():
            photo_ids = self.store.remove_files(paths)
            removed = len(photo_ids)
            self.store.delete_orphan_photos(set(photo_ids))
            self.store.clear_failures(paths)
            self.store.end_attempts(paths)
            self.store.dequeue(paths)
        return removed

    def move_path(self, src: str, dest: str) -> str:
        """A file was renamed from ``src`` to ``dest`` (both absolute)."""
        if not is_photo_name(dest):
            self.remove_paths([src])
            return "deleted"
        row = self.store.file_by_path(src)
        if row is None or os.path.lexists(src):
            return self.index_path(dest)
        try:
            st = FileStat.of(os.stat(dest))
        except OSError:
            self.remove_paths([src])
            return "deleted"
        with self.store.write():
            self.store.move_file(row.id, dest, st)
            self._done(dest)
        return "moved" if st.same_file(row) else self.index_path(dest)

    def move_tree(self, src: str, dest: str) -> int:
        with self.store.write():
            return self.store.move_tree(src, dest)

    def remove_tree(self, folder: str) -> int:
        if os.path.lexists(folder):
            return 0
        with self.store.write():
            photo_ids = self.store.remove_under(folder)
            self.store.delete_orphan_photos(set(photo_ids))
        return len(photo_ids)

    # -- a whole scan -------------------------------------------------------------------------

    def scan(
        self,
        roots: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> ScanReport:
        start = time.perf_counter()
        folders = [absolute(r) for r in roots]
        report = ScanReport()
        indexed: dict[str, FileRow] = {}
        known_bad: dict[str, tuple[int | None, int | None]] = {}
        for root in folders:
            indexed.update(self.store.files_under(root))
            known_bad.update(self.store.failures_under(root))
        info = Walk()
        seen: set[str] = set()
        todo: list[tuple[str, FileStat]] = []
        for entry in walk(folders, info):
            seen.add(entry.path)
            if entry.error is not None or entry.stat is None:
                self._walk_failure(entry, known_bad, report)
                continue
            row = indexed.get(entry.path)
            if row is not None and entry.stat.same_file(row):
                report.counts["unchanged"] += 1
            elif known_bad.get(entry.path) == (entry.stat.size, entry.stat.mtime_ns):
                report.counts["known_bad"] += 1
            else:
                todo.append((entry.path, entry.stat))
        if todo:
            with self.store.write():
                self.store.enqueue(p for p, _ in todo)
        faces_before = self.faces_added
        for done, (path, st) in enumerate(todo, 1):
            if stop is not None and stop.is_set():
                report.interrupted = True
                break
            outcome = self.index_file(path, st, indexed.get(path))
            report.counts[outcome] += 1
            if outcome == "failed":
                failure = self.store.failure(path)
                report.failures.append((path, failure.error if failure else "failed"))
            if progress is not None:
                progress(done, len(todo), path)
        if not report.interrupted:
            report.counts["deleted"] += self._forget_missing(indexed, seen, info, folders)
        report.faces = self.faces_added - faces_before
        report.seconds = time.perf_counter() - start
        report.timings = self.pipeline.timings.to_json()
        return report

    def _walk_failure(
        self, entry: Entry, known_bad: dict[str, tuple[int | None, int | None]], report: ScanReport
    ) -> None:
        st = entry.stat
        key = (st.size, st.mtime_ns) if st else (None, None)
        if entry.path in known_bad and known_bad[entry.path] == key:
            report.counts["known_bad"] += 1
            return
        self._fail(entry.path, st, entry.error or "error", self.store.file_by_path(entry.path))
        report.counts["failed"] += 1
        report.failures.append((entry.path, entry.error or "error"))

    def _forget_missing(
        self, indexed: dict[str, FileRow], seen: set[str], info: Walk, roots: list[str]
    ) -> int:
        blocked = [u.rstrip(os.sep) + os.sep for u in info.unreadable]
        missing = [p for p in indexed if p not in seen and not any(p.startswith(b) for b in blocked)]
        gone_bad = [p for root in roots for p in self.store.failures_under(root) if p not in seen]
        with self.store.write():
            photo_ids = self.store.remove_files(missing)
            self.store.delete_orphan_photos(set(photo_ids))
            self.store.clear_failures(gone_bad)
            for root in roots:
                self.store.dequeue(q for q in self.store.queued_under(root) if q not in seen)
        if missing:
            log.info("forgot %d paths that no longer exist", len(photo_ids))
        return len(photo_ids)


__all__ = ["Indexer", "Progress", "ScanReport", "printable"]
