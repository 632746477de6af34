"""Keep the index in step with the disk: new, changed, moved, duplicate, deleted and bad files.

Rules (see ``docs/library.md``):

* unchanged (same size and mtime as indexed): nothing but the walk's ``stat``;
* same device+inode+size+mtime as an indexed file (a hard link, or a rename): no decode;
* otherwise decode and hash the pixels; a known hash is the same photo: a duplicate when the
  photo's other paths still exist, a move when one of them is gone (faces and names kept);
* an unknown hash is analysed (detect, align, embed) and stored with its faces assigned, one
  savepoint a photo in the scan's grouped transactions (Store.grouped), so an interrupted scan
  never leaves half a photo behind;
* paths that vanished (at the end of a complete scan, or as the watcher sees them go) or stop
  reading are **missing**, not deleted: a photo with no path left keeps its faces and every
  decision until the same pixels come back, at that path or another ("restored", "moved"), or
  the user forgets it (``facetags forget``);
* photos are keyed by their stored pixels, so a changed EXIF orientation is the same photo: its
  faces are turned with it ("reoriented") and keep their people and decisions;
* files that fail are recorded with their size and mtime and retried only once those change;
  a file that could not be read at all (no permission, an I/O error) is retried by every scan
  and by the watcher when its permissions change;
* each decode is noted first (``attempts``) and the note removed once the file is indexed or
  failed: a file whose attempts died with the process twice (killed for memory, a decoder
  crash) is recorded as failed instead of being decoded a third time.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facetags.db.connect import database_file
from facetags.db.records import GONE, REPLACED, FileRow, FileStat, NewFaceVector
from facetags.db.store import OldFace, Store
from facetags.errors import NotFoundError
from facetags.ingest.assign import Assigner
from facetags.ingest.parallel import PARALLEL_FROM, Analysers, Pending, PhotoPool, ScanStopped
from facetags.ingest.pipeline import Analysis, Pipeline, Processed, Seen
from facetags.ingest.rematch import match_faces
from facetags.ingest.scan import Entry, Walk, absolute, is_photo_name, printable, storable, walk
from facetags.orientation import reorient_box, reorient_point
from facetags.paths import existing_sidecars, on_disk
from facetags.text import plural

log = logging.getLogger(__name__)

#: progress(done, total, path): called after each file the scan had to look at.
Progress = Callable[[int, int, str], None]
#: A scan commits the photos it stored before it waits for a worker or decodes a photo itself,
#: and at least this often: one transaction a photo wrote ~3x the bytes (docs/scale.md). A scan
#: that never waits (its writer is the bottleneck) then leaves the library's lock free for
#: GAP_S, so that a write of another program (the TUI) waits at most about GROUP_S + GAP_S.
GROUP_S = 1.0
GAP_S = 0.11  # > SQLite's longest wait between two tries for a busy lock (100 ms)
#: Attempts at one file (same size and mtime) that may die with the process before it is skipped,
#: where a library was handed its models in this process (tests) ...
CRASH_LIMIT = 2
#: ... where a file whose attempt died is tried again in a process of its own (facetags.ingest.
#: parallel.analyse_alone): attempts that died with the scan all the same (an OOM killer that
#: ends a whole service, a power cut each time) before the file is skipped until it changes.
ALONE_LIMIT = 4
#: A photo's failure when the process analysing it on its own died of it.
CRASHED = "crashed the process analysing it"
#: ... how the failure of every photo that crashed facetags begins (this and the count of deaths)
CRASHED_PREFIX = "crashed "
#: ... and what is done about a photo that crashed facetags, and how to have it tried again.
SKIPPED = "skipped until it changes (scan --retry-failed tries it again)"
OUTCOMES = (
    "new",
    "changed",
    "moved",
    "restored",
    "reoriented",
    "duplicate",
    "touched",
    "unchanged",
    "deleted",
    "copy_gone",
    "vanished",
    "postponed",
    "failed",
    "known_bad",
    "linked",
)
#: Seconds after its file went within which a new file at the same path is the photo edited
#: (deleted, then written anew); later it is another photo (:meth:`Indexer._previous`).
EDITED_WITHIN_S = 60.0


#: A folder the walk could not list: its photos were not looked at (nor taken for gone).
UNREADABLE_FOLDER = "cannot read this folder: its photos were not looked at"


@dataclass
class ScanReport:
    counts: Counter[str] = field(default_factory=Counter)
    faces: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    reembedded: int = 0  # faces re-embedded first because the embedder had changed (Library.scan)
    workers: int = 1  # processes that analysed photos (facetags.ingest.parallel)
    cluster: str | None = None  # the scheduler whose workers did (facetags.ingest.cluster)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: self.counts.get(k, 0) for k in OUTCOMES}
        out.update(
            faces=self.faces,
            failures=[{"path": p, "error": e} for p, e in self.failures],
            seconds=round(self.seconds, 3),
            timings=self.timings,
            interrupted=self.interrupted,
            reembedded=self.reembedded,
            workers=self.workers,
            cluster=self.cluster,
        )
        return out

    def describe(self) -> str:
        """One line for people: '2 new, 0 changed, ...; 7 faces found in 1.2 s'."""
        c = self.counts
        parts = [
            f"{c['new']} new",
            f"{c['changed']} changed",
            f"{c['moved']} moved",
            plural(c["duplicate"], "duplicate"),
            f"{c['unchanged'] + c['touched']} unchanged",
            f"{c['deleted']} gone",
            f"{c['failed']} failed",
        ]
        for kind in ("restored", "reoriented"):
            if c[kind]:
                parts.insert(3, f"{c[kind]} {kind}")
        if c["copy_gone"]:  # a duplicate's path: the photo is still on disk at another
            copies = "1 copy" if c["copy_gone"] == 1 else f"{c['copy_gone']} copies"
            parts.append(f"{copies} gone (the photo is still at another path)")
        if c["vanished"]:  # new to the library and gone from disk before they were read
            were = "it was" if c["vanished"] == 1 else "they were"
            parts.append(f"{plural(c['vanished'], 'photo')} gone before {were} read")
        if c["postponed"]:  # its analysis was stopped with facetags: tried again next time
            parts.append(f"{c['postponed']} postponed")
        if c["known_bad"]:
            parts.append(f"{c['known_bad']} known bad skipped")
        if c["linked"]:  # the same files reached through a symbolic link: indexed once
            parts.append(f"{c['linked']} skipped (reached through a link; indexed at another path)")
        tail = " (interrupted)" if self.interrupted else ""
        if c["deleted"]:
            tail += "; gone photos keep their faces and names ('facetags status' lists them)"
        if self.reembedded:
            tail += f"; {plural(self.reembedded, 'face')} re-embedded (the embedder changed)"
        return f"{', '.join(parts)}; {plural(self.faces, 'face')} found in {self.seconds:.1f} s{tail}"


class _AnalyseHere(Exception):
    """A worker's result that did not come: the scanning process analyses the photo itself."""


class _Fetched:
    """A worker's result, fetched once: the scan looks at finished results ahead of their turn
    (:meth:`Indexer._prepare`) and commits them in order later."""

    def __init__(self, pending: Pending) -> None:
        self.pending = pending
        self.prepared = False
        self._fetched = False
        self._value: Processed | None = None
        self._error: Exception | None = None

    def done(self) -> bool:
        return self._fetched or self.pending.done()

    def result(self, stop: threading.Event | None = None) -> Processed:
        if not self._fetched:
            try:
                self._value = self.pending.result(stop)
            except ScanStopped:  # not the photo's outcome
                raise
            except Exception as exc:  # kept for the photo's turn (an interrupt is not kept)
                self._error = exc
            self._fetched = True
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class Indexer:
    def __init__(self, store: Store, pipeline: Pipeline, assigner_factory: Callable[[str], Assigner]) -> None:
        self.store = store
        self.pipeline = pipeline
        self._assigner_factory = assigner_factory
        self._assigners: dict[str, Assigner] = {}
        self.faces_added = 0
        self._pool_broken = False  # a worker died during this scan (logged once)
        self._stop: threading.Event | None = None  # the scan's: a wait for a worker looks at it
        # files a scan with retry_failed tries again that crashed facetags: analysed on their own
        self._crashed: set[str] = set()

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
        if storable(path) is None:  # the library stores paths as text: it cannot be recorded
            log.warning("%s: skipped: file name is not valid UTF-8; rename the file", printable(path))
            return "failed"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._gone(path)
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
        if row is None and self._indexed_through_another_path(path, fst):
            return "linked"
        return self.index_file(path, fst, row)

    def index_file(self, path: str, st: FileStat, row: FileRow | None) -> str:
        """Index ``path`` whose stat differs from the index (``row``: its current entry, if any)."""
        return self._index(path, st, row, lambda: self.pipeline.process(path, self._known))

    def _known(self, content_hash: str) -> bool:
        return self.store.photo_by_hash(content_hash) is not None

    def _index(
        self,
        path: str,
        st: FileStat,
        row: FileRow | None,
        process: Callable[[], Processed],
        remote: bool = False,
    ) -> str:
        """:meth:`index_file`, with the CPU half (decode, hash, analyse) done by ``process``: in
        this process, or (``remote``) a worker's result (facetags.ingest.parallel). Only a decode
        in this process is an attempt that could take the process down with it: a worker's crash
        is the worker's, and a scan killed while it waits is no crash of the photo's."""
        for other in self.store.files_by_inode(st):
            if other.path != path:
                return self._link(path, other.photo_id, st, row)
        if remote:
            try:
                processed = process()
            except _AnalyseHere:  # the worker is gone: analysed here, as an attempt
                pass
            else:
                if not (processed.unreachable and os.access(path, os.R_OK)):
                    return self.commit(path, st, row, processed)
                # a worker run by another user, or on a machine whose share refuses it
                log.warning(
                    "%s: a worker could not read it (%s): analysing here", printable(path), processed.error
                )
            process = functools.partial(self.pipeline.process, path, self._known)
        with self.store.write():
            died = self.store.begin_attempt(path, st)
        if path in self._crashed:  # retried: as if its last attempt had died (_analyse_alone)
            died = max(died, 1)
        self.store.commit_now()  # a crash while decoding must find the attempt in the library
        # models handed to this process (tests) cannot be sent to another: the older rule
        limit = CRASH_LIMIT if self.pipeline.own_models else ALONE_LIMIT
        if died and died < limit and not self.pipeline.own_models:  # a crash, or the scan killed?
            return self._analyse_alone(path, st, row)
        if died >= limit:  # every try took the scan down with it
            log.warning("%s: crashed facetags %d times; skipped until it changes", printable(path), died)
            return self._fail(path, st, f"crashed facetags {died} times while decoding; {SKIPPED}", row)
        try:
            processed = process()
        except BaseException:  # an error or an interrupt, not a crash: the file is not to blame
            self._end_attempt(path)
            raise
        return self.commit(path, st, row, processed)

    def _analyse_alone(self, path: str, st: FileStat, row: FileRow | None) -> str:
        """``path``'s last attempt died with its process: analysed again in a process of its
        own, where a crash is the photo's for certain (recorded: skipped until it changes) and a
        kill of this scan is no one's (the attempt stays for the next scan to try again)."""
        from facetags.ingest.parallel import AnalysisDied, AnalysisStopped, analyse_alone

        log.info("%s: an earlier attempt died with its process: analysing it on its own", printable(path))
        try:
            processed = analyse_alone(path, self.pipeline.settings, database_file(self.store.conn))
        except AnalysisStopped as exc:  # facetags is being stopped: the attempt stays for later
            log.info("%s: not analysed (%s); the next scan tries again", printable(path), exc)
            return "postponed"
        except AnalysisDied as exc:
            log.warning(
                "%s: crashed the process analysing it (%s); skipped until it changes", printable(path), exc
            )
            return self._fail(path, st, f"{CRASHED} ({exc}); {SKIPPED}", row)
        self.pipeline.add_timings(processed)
        return self.commit(path, st, row, processed)

    def _end_attempt(self, path: str) -> None:
        try:
            with self.store.write():
                self.store.end_attempts([path])
        except Exception:  # the library itself is failing: that error is the one to report
            log.debug("%s: could not clear the attempt", path, exc_info=True)

    def commit(self, path: str, st: FileStat, row: FileRow | None, processed: Processed) -> str:
        """The library half of indexing ``path``: store what :meth:`Pipeline.process` found."""
        photo = processed.photo
        if photo is None and not os.path.lexists(path):  # deleted or renamed since the walk
            if row is not None:
                return self._gone(path)
            with self.store.write():  # nothing left to do for it: out of the queue
                self._done(path)
            return "vanished"
        if photo is None:  # a file that could not be read at all is tried again by the next scan
            seen = None if processed.unreachable else st  # (its failure keeps no size and mtime)
            return self._fail(path, seen, processed.error or "cannot decode", row)
        photo_id = self.store.photo_by_hash(photo.content_hash)
        if photo_id is not None:  # (indexed at this path since the walk by another scan: _link)
            reoriented = self._reorient(path, photo_id, photo)
            if row is not None and row.photo_id == photo_id:
                with self.store.write():
                    self.store.touch_file(row.id, st)
                    self.store.xmp_unverified(photo_id)  # another program rewrote its metadata
                    self._done(path)
                return "reoriented" if reoriented else "touched"
            outcome = self._link(path, photo_id, st, row)
            return "reoriented" if reoriented and outcome == "restored" else outcome
        if processed.error is not None:
            return self._fail(path, st, processed.error, row)
        if processed.analysis is None:  # known when it was hashed, forgotten since: analyse it now
            self.store.commit_now()  # (the library is not held while it decodes)
            return self.commit(path, st, row, self.pipeline.process(path))
        return self._store(path, st, row, photo, processed.analysis)

    def _store(self, path: str, st: FileStat, row: FileRow | None, photo: Seen, analysis: Analysis) -> str:
        with self.pipeline.timings.stage("store"), self.store.write():
            existing = self.store.photo_by_hash(photo.content_hash)  # another process won the race
            if existing is None:
                photo_id = self.store.insert_photo(
                    photo.content_hash,
                    photo.width,
                    photo.height,
                    self.pipeline.detector_id,
                    photo.orientation,
                )
                before, was_missing = self._previous(path, row)
                replaced = None  # the photo the path showed, if what it shows now is another
                old, pairs = self._rematch(before, analysis) if before is not None else ([], {})
                if before is not None and old and not pairs:
                    # another picture at this path (a camera reusing a name once the photos
                    # were moved away): that photo is kept as missing, decisions and all
                    replaced = None if was_missing else before
                    before = None
                elif before is not None and was_missing:  # gone from this path moments ago
                    self.store.drop_missing_photo_at(path, before)
                vectors = []
                face_ids = []
                for idx, face in enumerate(analysis.faces):
                    face_id = self.store.insert_face(photo_id, idx, face)
                    face_ids.append(face_id)
                    if face.embedding is not None:
                        self.store.insert_embedding(face_id, analysis.model_id, face.embedding)
                        vectors.append(NewFaceVector(face_id, face.embedding))
                self.store.add_file(path, photo_id, st)
                if replaced is not None:  # (now that the path shows the new photo)
                    self.store.keep_missing(path, replaced, REPLACED)
                carried: set[int] = set()
                if before is not None and before != photo_id:
                    carried = self._carry(path, before, photo_id, face_ids, old, pairs)
                vectors = [v for v in vectors if v.face_id not in carried]
                if vectors:
                    assigner = self.assigner(analysis.model_id)
                    if carried:
                        assigner.invalidate()  # the carried faces are in people now
                    assigner.assign_photo(self.store, photo_id, vectors)
                if before is not None and before != photo_id:
                    self.store.delete_orphan_photos([before])
                self._done(path)
                self.faces_added += len(analysis.faces)
                return "changed" if before is not None else "new"
        return self._link(path, existing, st, row)

    def _carry(
        self,
        path: str,
        old_photo: int,
        photo_id: int,
        face_ids: list[int],
        old: list[OldFace],
        pairs: dict[int, int],
    ) -> set[int]:
        """``path`` showed ``old_photo`` and now shows new pixels (an edit, a crop, a re-export):
        the faces that are the same face keep their person, its source, "not a face" and their
        rejections, and what facetags wrote into the file for them (facetags.ingest.rematch
        says which is which; ``photo_id``: the new pixels' photo). A face the user had decided
        on that is gone from the new version (cropped out, or no longer detected) is logged and
        recorded as a ``face_lost`` decision, unless another path still shows the old version.
        ``old``, ``pairs``: :meth:`_rematch`'s. Returns the new face ids that were given a place."""
        # names of faces an earlier edit cut off stay with the file (even if it had no face left)
        self.store.carry_lost_xmp_names(path, old_photo, photo_id)
        if not old:
            return set()
        carried: set[int] = set()
        for i, j in pairs.items():
            self.store.carry_face(old[i], face_ids[j])
            if old[i].person_id is not None or old[i].not_face:
                carried.add(face_ids[j])
        self.store.carry_cannot_links({old[i].face_id: face_ids[j] for i, j in pairs.items()})
        # an editor keeps the XMP (most do): the names facetags wrote into the file are still its
        # own; the next ``xmp write`` looks (unverified)
        self.store.carry_xmp_names({old[i].face_id: face_ids[j] for i, j in pairs.items()}, path)
        if pairs:
            self.store.xmp_unverified(photo_id)
        self._lost(path, old_photo, photo_id, [f for i, f in enumerate(old) if i not in pairs])
        log.info("%s changed: %d of %d faces kept their place", path, len(pairs), len(old))
        return carried

    def _lost(self, path: str, old_photo: int, photo_id: int, faces: list[OldFace]) -> None:
        """``path`` no longer shows ``faces`` of ``old_photo`` (it shows ``photo_id``): the names
        facetags wrote into the file for any of them stay known as its own there (for ``xmp
        write`` to take out), and each the user had decided on is logged and recorded as a
        ``face_lost`` decision, unless another path still shows the old version."""
        for face in faces:  # what this file carries, whoever else shows the old version
            self.store.keep_lost_xmp_names(face.face_id, path, photo_id)
        if any(f.path != path for f in self.store.photo_files(old_photo)):
            return  # shown at another path
        if any(p != path for p in self.store.missing_paths(old_photo)):
            return  # kept as missing at another path: its faces stay with it
        for face in faces:
            if not face.decided:
                continue
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

    def _previous(self, path: str, row: FileRow | None) -> tuple[int | None, bool]:
        """The photo ``path`` showed before (indexed, or kept as missing there) that what it shows
        now may be a new version of, and whether it is kept as missing there (the caller drops
        that once it takes the new as its version). A photo kept as missing because it could
        not be read there (half written, truncated) was never away. One whose file went counts
        only if it went moments ago (an editor that deletes the file before it writes the new
        one, :data:`EDITED_WITHIN_S`): later, what appears at its path is another photo (a
        camera reusing a name once the photos were moved off), and the missing one stays
        missing, with its faces and decisions."""
        if row is not None:
            return row.photo_id, False
        last = self.store.last_missing_at(path)
        if last is None:
            return None, False
        photo_id, since, reason = last
        if reason == GONE and time.time() - since > EDITED_WITHIN_S:
            return None, False
        return photo_id, True

    def _rematch(self, old_photo: int, analysis: Analysis) -> tuple[list[OldFace], dict[int, int]]:
        """The faces of ``old_photo``, the photo the path showed, with what the user decided on
        them, and which of them are among the new pixels' faces (old index -> new index,
        facetags.ingest.rematch). New pixels are it edited (a crop, a retouch) if it had no
        face or one of its faces is among the new ones; else they are another picture saved
        under its name, and it is kept."""
        old = self.store.faces_to_carry(old_photo, analysis.model_id)
        if not old:
            return old, {}
        pairs = match_faces(
            [f.box for f in old],
            [f.box for f in analysis.faces],
            [f.vector for f in old],
            [f.embedding for f in analysis.faces],
        )
        return old, pairs

    def _reorient(self, path: str, photo_id: int, photo: Seen) -> bool:
        """The known photo ``photo_id`` is now shown under another EXIF orientation: turn its
        faces with it (same faces, people and decisions). Returns whether anything turned."""
        new = photo.orientation
        if self.store.photo_orientation(photo_id) == new:  # the common case: no write transaction
            return False
        with self.store.write():
            old = self.store.photo_orientation(photo_id)  # again, under the lock
            if old == new:
                return False
            turned = []
            for face_id, box, marks in self.store.face_geometry(photo_id):
                points = [reorient_point(float(x), float(y), old, new) for x, y in marks]
                turned.append((face_id, reorient_box(box, old, new), np.array(points, np.float32)))
            self.store.reorient_photo(photo_id, new, photo.width, photo.height, turned)
        log.info("%s: orientation %d -> %d, %d faces turned with it", printable(path), old, new, len(turned))
        return True

    def _link(self, path: str, photo_id: int, st: FileStat, row: FileRow | None) -> str:
        """``path`` shows a photo already indexed: record it as a move, a duplicate, a change, or
        a missing photo found again."""
        with self.store.write():
            now = self.store.file_by_path(path)  # indexed meanwhile by another process (a second
            if now is not None and now.photo_id == photo_id and st.same_file(now):  # scan), before
                self._done(path)  # this one looked the pixels up or while it analysed them
                return "unchanged"
            outcome = "duplicate"
            was_missing = self.store.photo_is_missing(photo_id)
            missing_here = was_missing and path in self.store.missing_paths(photo_id)
            before, kept_missing = self._previous(path, row)
            if kept_missing and before != photo_id:  # another photo went from this path: it
                before = None  # stays missing there, decisions and all (not an edit of this one)
            # A path that showed another photo (``before``) now shows this one, which the library
            # has: files renamed in a ring, a copy saved over a photo, a camera reusing a name.
            # ``before`` is kept (as missing, unless another path shows it), faces, names and all,
            # until its pixels turn up again, maybe later in this very scan, or it is forgotten.
            if was_missing:
                self.store.found_again(photo_id)
                self.store.add_file(path, photo_id, st)
                self.store.xmp_names_follow(photo_id, path)
                self.store.xmp_unverified(photo_id)  # back from a backup, maybe without our tags
                if before is not None and before != photo_id:  # the photo the path showed stays
                    self.store.keep_missing(path, before, REPLACED)
                outcome = "restored" if before == photo_id or missing_here else "moved"
                log.info("%s: a missing photo is back; its faces and decisions are kept", printable(path))
            elif before is not None:
                self.store.add_file(path, photo_id, st)  # repoint: the file's content changed
                self.store.keep_missing(path, before, REPLACED)
                self.store.xmp_names_follow(photo_id, path)
                self.store.xmp_unverified(photo_id)
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
                    self._sidecar_left(photo_id, gone.path)
                    outcome = "moved"
                else:  # a copy: it gets the names too (facetags.library_xmp), maybe has them
                    self.store.add_file(path, photo_id, st)
                    self.store.xmp_names_follow(photo_id, path)
                    self.store.xmp_unverified(photo_id)
            self._done(path)
        return outcome

    def _fail(self, path: str, st: FileStat | None, error: str, row: FileRow | None) -> str:
        log.info("%s: %s", printable(path), error)
        with self.store.write():
            self.store.record_failure(path, st, error)
            self.store.end_attempts([path])
            if row is not None:  # unreadable now (truncated, half written): kept as missing
                self.store.mark_missing([path], error)
            self.store.dequeue([path])
        return "failed"

    def _sidecar_left(self, photo_id: int, old_path: str) -> None:
        """A photo's file moved from ``old_path`` without its XMP sidecar (``mv`` moves one file):
        the names facetags wrote there did not follow it, so the photo counts as not written until
        the next ``xmp write`` looks (the sidecar left behind is the user's: it stays)."""
        if existing_sidecars(Path(old_path)):
            self.store.xmp_unverified(photo_id)

    def _done(self, path: str) -> None:
        self.store.clear_failures([path])
        self.store.end_attempts([path])
        self.store.dequeue([path])

    # -- removals and moves (the watcher's events) --------------------------------------------

    def _gone(self, path: str) -> str:
        """``path`` no longer exists: "deleted" (its photo is now missing), "copy_gone" (the photo
        is still at another path) or "unchanged" (it was not indexed)."""
        photo_ids = self._remove([path])
        if not photo_ids:
            return "unchanged"
        return "deleted" if self.store.photo_is_missing(photo_ids[0]) else "copy_gone"

    def _remove(self, paths: Iterable[str]) -> list[int]:
        """Forget the paths that no longer exist (not those that cannot be looked at); the photo
        id of each indexed one (a path that is not valid UTF-8 was never indexed)."""
        paths = [p for p in paths if storable(p) is not None and on_disk(p) is False]
        if not paths:
            return []
        with self.store.write():
            photo_ids = self.store.mark_missing(paths, GONE)
            self.store.clear_failures(paths)
            self.store.end_attempts(paths)
            self.store.dequeue(paths)
        return photo_ids

    def remove_paths(self, paths: Iterable[str]) -> int:
        """Forget paths that no longer exist. Returns how many indexed paths went."""
        return len(self._remove(paths))

    def move_path(self, src: str, dest: str) -> str:
        """A file was renamed from ``src`` to ``dest`` (both absolute)."""
        if not is_photo_name(dest):  # e.g. exiftool's photo.jpg_original, a new photo.jpg after
            return self._gone(src)
        if storable(src) is None:  # never indexed
            return self.index_path(dest)
        if storable(dest) is None:  # cannot be stored: skipped (said), and the photo went from src
            self.index_path(dest)
            return self._gone(src)
        row = self.store.file_by_path(src)
        if row is None or os.path.lexists(src):
            return self.index_path(dest)
        try:
            st = FileStat.of(os.stat(dest))
        except OSError:
            return self._gone(src)
        # Changed since it was indexed (edited, then renamed before the watcher looked; renamed
        # during a catch-up scan, which handles renames once it ends): the row moves with the
        # stat it was indexed with, so that the new path is indexed again as this photo edited.
        same = st.same_file(row)
        indexed = st if same else replace(st, size=row.size, mtime_ns=row.mtime_ns)
        with self.store.write():
            self.store.move_file(row.id, dest, indexed)
            self._sidecar_left(row.photo_id, src)
            self._done(dest)
        return "moved" if same else self.index_path(dest)

    def move_tree(self, src: str, dest: str) -> int:
        """The folder ``src`` was renamed ``dest``: the paths indexed under it follow. A name that
        is not valid UTF-8 holds nothing indexed (``src``) or cannot be stored (``dest``: its
        photos are missing where they were, as if the folder had gone)."""
        if storable(src) is None:
            return 0
        if storable(dest) is None:
            log.warning("%s: its photos skipped: folder name is not valid UTF-8; rename it", printable(dest))
            return self.remove_tree(src)
        with self.store.write():
            return self.store.move_tree(src, dest)

    def remove_tree(self, folder: str) -> int:
        """The folder is gone (a link to a folder that is gone too): its photos are missing. Not
        one that cannot be looked at (a folder above it without permissions)."""
        if os.path.isdir(folder) or storable(folder) is None or on_disk(folder) is None:
            return 0
        with self.store.write():
            return len(self.store.mark_missing_under(folder, GONE))

    # -- a whole scan -------------------------------------------------------------------------

    def scan(
        self,
        roots: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        between: Callable[[], None] | None = None,
        retry_failed: bool = False,
    ) -> ScanReport:
        """Index what changed under ``roots``. ``between`` is called in this thread after each
        photo is committed (the watcher handles files copied in meanwhile): it may index or move
        files itself, so each photo's entry is read again before it is committed, and a photo
        whose entry changed since the walk is left as it is (what was stored read the file
        after the walk; the walk's stat, and a worker's result, may be older). ``retry_failed``:
        the files recorded as failed are tried again though unchanged (a bad file, one skipped
        after its attempts died with the scan)."""
        start = time.perf_counter()
        folders = [absolute(r) for r in roots]
        for root in folders:
            if storable(root) is None:
                raise NotFoundError(f"{printable(root)}: the name is not valid UTF-8; rename it to scan it")
        report = ScanReport()
        indexed: dict[str, FileRow] = {}
        known_bad: dict[str, tuple[int | None, int | None]] = {}
        self._crashed = set()
        for root in folders:
            indexed.update(self.store.files_under(root))
            if not retry_failed:
                known_bad.update(self.store.failures_under(root))
            else:  # tried again, but a photo that crashed facetags not in the scan's own process
                self._crashed.update(self.store.failures_under(root, error_prefix=CRASHED_PREFIX))
        info = Walk()
        seen: set[str] = set()
        todo: list[tuple[str, FileStat]] = []
        walked: dict[tuple[int, int], list[str]] = {}  # (device, inode) -> the paths walked to it
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
            elif row is None and self._indexed_through_another_path(entry.path, entry.stat, walked):
                report.counts["linked"] += 1
            else:
                todo.append((entry.path, entry.stat))
            walked.setdefault((entry.stat.device, entry.stat.inode), []).append(entry.path)
        if todo:
            with self.store.write():
                self.store.enqueue(p for p, _ in todo)
        faces_before = self.faces_added
        pool = self._pool(len(todo), between is not None)
        self._pool_broken = False
        self._stop = stop
        report.workers = pool.workers if pool is not None else 1
        report.cluster = getattr(pool, "address", None)
        finished = False
        try:
            with self.store.grouped(GROUP_S, GAP_S, on_rollback=self.invalidate):
                faces_before += self._index_all(todo, pool, indexed, report, progress, between)
            finished = True
        finally:  # an exception (Ctrl-C again, an error) does not wait for the workers' photos
            if pool is not None:
                pool.close(at_once=not finished)
        if not report.interrupted:
            deleted, copies = self._forget_missing(indexed, seen, info, folders)
            report.counts["deleted"] += deleted
            report.counts["copy_gone"] += copies
        report.faces = self.faces_added - faces_before
        report.seconds = time.perf_counter() - start
        report.timings = self.pipeline.timings.to_json()
        self._crashed = set()
        return report

    def _index_all(
        self,
        todo: list[tuple[str, FileStat]],
        pool: Analysers | None,
        indexed: dict[str, FileRow],
        report: ScanReport,
        progress: Progress | None,
        between: Callable[[], None] | None,
    ) -> int:
        """:meth:`scan`'s files, indexed in turn, each photo's writes a savepoint of the scan's
        grouped transactions (:meth:`Store.grouped`). Returns the faces ``between`` added (not
        the scan's)."""
        theirs = 0
        for done, (path, st, process, remote) in enumerate(self._jobs(todo, pool), 1):
            if self._stop is not None and self._stop.is_set():
                report.interrupted = True
                break
            row = indexed.get(path)
            try:
                if between is not None and self.store.file_by_path(path) != row:
                    outcome = "unchanged"  # indexed since the walk, by ``between``
                else:
                    outcome = self._index(path, st, row, process, remote)
            except ScanStopped:  # stopped while a worker had this photo: nothing of it known
                report.interrupted = True
                break
            report.counts[outcome] += 1
            if outcome == "failed":
                failure = self.store.failure(path)
                report.failures.append((path, failure.error if failure else "failed"))
            if progress is not None:
                progress(done, len(todo), path)
            if between is not None:
                self.store.commit_now()  # the watcher's events may be slow to index
                faces_then = self.faces_added
                between()
                theirs += self.faces_added - faces_then
        return theirs

    def _pool(self, photos: int, between: bool = False) -> Analysers | None:
        """Where to analyse a scan's ``photos``: the cluster the settings name, worker processes,
        or None to analyse them here (one worker, few photos, or models handed to this process
        only). ``between``: the scan does other work between photos (smaller tasks)."""
        settings = self.pipeline.settings
        if self.pipeline.own_models or photos == 0:
            return None
        if settings.cluster:
            from facetags.ingest.cluster import ClusterPool

            return ClusterPool(settings, settings.cluster, database_file(self.store.conn), photos, between)
        workers = min(settings.workers, photos)
        if workers < 2 or photos < PARALLEL_FROM:
            return None
        return PhotoPool(settings, workers, database_file(self.store.conn), photos, between)

    def _jobs(
        self, todo: list[tuple[str, FileStat]], pool: Analysers | None
    ) -> Iterator[tuple[str, FileStat, Callable[[], Processed], bool]]:
        """Each file to index with how to get its CPU half: at once in this process, or the
        result of a worker (True), which runs at most ``pool.ahead`` files ahead of the commits."""
        if pool is None:
            for path, st in todo:
                yield path, st, functools.partial(self.pipeline.process, path, self._known), False
            return
        window: deque[tuple[str, FileStat, _Fetched | None]] = deque()
        pending = iter(todo)
        submitting = True
        for path, st in pending:
            window.append((path, st, self._submit(pool, path, st)))
            if len(window) >= pool.ahead:
                break
        else:
            submitting = False
            pool.flush()  # all submitted: the last few shared between the workers
        while window:
            path, st, future = window.popleft()
            if submitting:  # keep the workers busy while this one commits
                later = next(pending, None)
                if later is None:
                    submitting = False
                    pool.flush()
                else:
                    window.append((*later, self._submit(pool, *later)))
            if future is None:
                yield path, st, functools.partial(self.pipeline.process, path, self._known), False
            else:
                if not future.prepared:
                    self._prepare([future] + [f for _, _, f in window if f is not None])
                yield path, st, functools.partial(self._result, path, future, pool.lost), True

    def _prepare(self, futures: list[_Fetched]) -> None:
        """Hand the faces of every finished, not yet prepared result to the clustering at once
        (``Assigner.prepare``): with a large library, placing faces is the slower half of a scan,
        and results wait; their faces are then compared with the library in one pass."""
        faces: dict[str, list[np.ndarray]] = {}
        for future in futures:
            if future.prepared or not future.done():
                continue
            future.prepared = True
            try:
                analysis = future.result().analysis
            except Exception:  # its turn will say what went wrong
                continue
            if analysis is not None:
                vectors = [f.embedding for f in analysis.faces if f.embedding is not None]
                faces.setdefault(analysis.model_id, []).extend(vectors)
        if any(faces.values()):
            self.store.commit_now()  # a pass over the library's faces: not while holding it
        for model_id, vectors in faces.items():
            if vectors:
                self.assigner(model_id).prepare(self.store, vectors)

    def _submit(self, pool: Analysers, path: str, st: FileStat) -> _Fetched | None:
        if any(other.path != path for other in self.store.files_by_inode(st)):
            return None  # a hard link or rename of an indexed file: no decode needed
        return _Fetched(pool.submit(path))  # workers gone: its result says so (_result)

    def _result(self, path: str, future: Pending, lost: tuple[type[BaseException], ...]) -> Processed:
        if not future.done():  # the library is not held while the scan waits
            self.store.commit_now()
        try:
            processed = future.result(self._stop)
        except lost as exc:  # a worker died (killed, out of memory) or the engine is gone: go on here
            if not isinstance(exc, FileNotFoundError):  # else the photo went, not the worker
                self._workers_lost(path, exc)
            raise _AnalyseHere from None
        self.pipeline.add_timings(processed)
        return processed

    def _workers_lost(self, path: str, exc: BaseException) -> None:
        if not self._pool_broken:
            from concurrent.futures.process import BrokenProcessPool

            # the executor's own words ("terminated abruptly while the future was running or
            # pending") say nothing to a user
            why = "it was killed, or ran out of memory" if isinstance(exc, BrokenProcessPool) else str(exc)
            log.warning("%s: a worker process stopped (%s); analysing here", printable(path), why)
        self._pool_broken = True

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

    def _indexed_through_another_path(
        self, path: str, st: FileStat, walked: Mapping[tuple[int, int], list[str]] | None = None
    ) -> bool:
        """Whether ``path`` is a file already indexed at another path that leads to it through a
        symbolic link (a folder scanned again through a link to it, or the other way round), or
        reached by this scan at such a path already (``walked``: a folder and a link to it in one
        scan): the same file, not a copy, so it is indexed once. A hard link is another name of
        its own, and a copy another file: both are indexed (duplicates)."""
        here = os.path.realpath(path)
        others = [other.path for other in self.store.files_by_inode(st)]
        others += (walked or {}).get((st.device, st.inode), [])
        return any(
            other != path and os.path.lexists(other) and os.path.realpath(other) == here for other in others
        )

    def _forget_missing(
        self, indexed: dict[str, FileRow], seen: set[str], info: Walk, roots: list[str]
    ) -> tuple[int, int]:
        """Record the indexed paths the walk did not see. Returns (photos now missing, paths of
        photos still on disk at another path)."""
        blocked = [u.rstrip(os.sep) + os.sep for u in info.unreadable]
        missing = [p for p in indexed if p not in seen and not any(p.startswith(b) for b in blocked)]
        gone_bad = [p for root in roots for p in self.store.failures_under(root) if p not in seen]
        with self.store.write():
            photo_ids = self.store.mark_missing(missing, GONE)
            now_missing = {p for p in photo_ids if self.store.photo_is_missing(p)}
            self.store.clear_failures(gone_bad)
            for folder in info.unreadable:  # listed by status until a scan can read it
                if storable(folder) is not None:
                    self.store.record_failure(folder, None, UNREADABLE_FOLDER)
            for root in roots:
                self.store.dequeue(q for q in self.store.queued_under(root) if q not in seen)
        if now_missing:
            log.info("%d photos no longer on disk: kept as missing (facetags status)", len(now_missing))
        return len(now_missing), sum(1 for p in photo_ids if p not in now_missing)


__all__ = ["Indexer", "Progress", "ScanReport", "printable"]
