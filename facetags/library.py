"""The facade every front end uses: open a library, index photos, work with people, search.

    with Library.open("~/photos.db") as lib:
        report = lib.scan(["~/Pictures"])
        for person in lib.people(): ...
        lib.name(3, "Ada")
        paths = lib.find(["Ada", "Grace"])

Front ends (CLI, watcher, TUI, XMP) call only this class; none runs SQL or loads a model.
Models are loaded on the first photo that needs analysing, so reading commands stay fast.
Opening, scanning, clustering and reading are here; the user's decisions
(:mod:`facetags.library_decisions`) and XMP (:mod:`facetags.library_xmp`) are written in
modules of their own and mixed into :class:`Library`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from facetags.config import Settings, load_settings
from facetags.db.connect import connect
from facetags.db.connect import scan_first as scan_first
from facetags.db.migrate import current_version, migrate
from facetags.db.records import FaceRecord, LostFace, MissingPhoto, Person, Status, SuggestedFace
from facetags.db.store import Store
from facetags.errors import FacetagsError, NotFoundError
from facetags.ingest.assign import Assigner
from facetags.ingest.indexer import Indexer, Progress, ScanReport
from facetags.ingest.pipeline import Pipeline
from facetags.ingest.scan import storable
from facetags.library_decisions import Decisions
from facetags.library_xmp import WriteTally as WriteTally
from facetags.library_xmp import XmpSync
from facetags.names import close_matches, name_key, name_words
from facetags.paths import on_disk as on_disk
from facetags.people.assigner import CLUSTERED_WITH_KEY, ClusterAssigner, ReclusterReport
from facetags.people.incremental import Suggestion

if TYPE_CHECKING:
    from facetags.vision.detect import Detection
    from facetags.xmp.sync import PhotoImport as PhotoImport
    from facetags.xmp.write import WriteResult as WriteResult

log = logging.getLogger(__name__)

#: meta key: the last ``face_lost`` decision a front end has shown (Library.lost_faces_to_show).
LOST_SHOWN_KEY = "lost_faces_shown"
#: meta key: the last ``face_lost`` decision the user has put aside (Library.forget_lost_faces).
LOST_FORGOTTEN_KEY = "lost_faces_forgotten"


def _calibrated(model_id: str) -> float | None:
    """The model's calibrated clustering threshold (its spec's, else facetags.people.calibrate's
    table), None when nobody calibrated it. ``model_id`` is versioned (``id@<sha256 prefix>``)
    or, for older libraries, bare."""
    from facetags.people.calibrate import calibrated_threshold

    try:
        from facetags.vision.specs import get_spec

        spec = get_spec(model_id)
    except FacetagsError:
        return calibrated_threshold(model_id)
    return calibrated_threshold(model_id, spec.extra, spec.sha256)


def _threshold(model_id: str) -> float:
    """:func:`_calibrated`, else the conservative fallback (with a warning)."""
    from facetags.people.calibrate import or_fallback

    return or_fallback(_calibrated(model_id), model_id)


class Library(Decisions, XmpSync):
    """One open library: its file, settings, index (``store``) and models (``pipeline``)."""

    def __init__(self, path: Path, settings: Settings, store: Store, pipeline: Pipeline) -> None:
        self.path = path
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.indexer = Indexer(store, pipeline, self._make_assigner)
        self._lock = threading.RLock()
        self._model_checked: str | None = None  # the model version no face is known to lack
        self.created = False  # Library.open made the file (a new library)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        *,
        create: bool = True,
        detector: Any = None,
        embedder: Any = None,
    ) -> Library:
        """Open (creating and migrating as needed) the library at ``path`` or ``settings.library``."""
        settings = settings or load_settings()
        where = Path(path).expanduser() if path is not None else Path(settings.library).expanduser()
        created = not where.exists() or (where.is_file() and where.stat().st_size == 0)  # empty: made one
        conn = connect(where, create=create)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        library = cls(where, settings, Store(conn), Pipeline(settings, detector=detector, embedder=embedder))
        library.created = created
        return library

    @property
    def read_only(self) -> bool:
        """Whether this process may not change the library: its file is marked read-only
        (``chmod a-w``: then not even root does) or not writable here, or its folder is not."""
        from facetags.db.diagnose import marked_read_only

        path = self.path
        return marked_read_only(path) or not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK)

    def close(self) -> None:
        self.store.conn.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _make_assigner(self, model_id: str) -> Assigner:
        from facetags.people.calibrate import or_fallback

        found = _calibrated(model_id)  # looked up once: the threshold, and whether it is a guess
        return ClusterAssigner(model_id, threshold=or_fallback(found, model_id), calibrated=found is not None)

    def clustering(self) -> ClusterAssigner:
        """The current model's clustering (incremental index, thresholds, batch re-cluster)."""
        assigner = self.indexer.assigner(self.pipeline.model_id)
        assert isinstance(assigner, ClusterAssigner)
        return assigner

    # -- clustering (facetags.people.assigner) ------------------------------------------------

    def recluster(self, model_change: bool = False) -> ReclusterReport:
        """Re-cluster every face under the user's decisions (names, merges, rejections, splits)."""
        self.ensure_model()
        clustering = self.clustering()
        for _attempt in range(3):  # computed outside the write transaction (other processes keep
            with self._lock:  # writing), written if nothing it read has changed meanwhile
                plan = clustering.plan(self.store, model_change=model_change)
            with self._lock, self.store.write():
                if clustering.apply(self.store, plan):
                    self.indexer.invalidate()
                    return plan.report
        with self._lock, self.store.write():  # a busy library: compute while holding it
            report = clustering.recluster(self.store, model_change=model_change)
        self.indexer.invalidate()
        return report

    def suggest(self, person_id: int, limit: int = 20) -> list[Suggestion]:
        """Faces in unnamed clusters that look most like ``person_id``, best first. Answer yes with
        ``set_assignment(face, person)`` and no with ``reject(face, person)``."""
        with self._lock:
            return self.clustering().suggest(self.store, self._resolve(person_id), limit)

    def suggested_faces(self, person_id: int, limit: int = 20) -> list[SuggestedFace]:
        """:meth:`suggest` with what a reviewer is shown: each face's photo and the size of the
        cluster it is in (what answering for the whole cluster would move)."""
        with self._lock:
            found = self.suggest(person_id, limit)
            sizes = {c: self.person(c).faces for c in {s.person_id for s in found}}
            return [
                SuggestedFace(
                    s.face_id, s.person_id, sizes[s.person_id], float(s.score), self.face(s.face_id).path
                )
                for s in found
            ]

    def change_model(self) -> ReclusterReport:
        """After the embedder changed: embed every face with the current model (from the stored
        aligned thumbnails) and redo the automatic assignments, anchored on the user's faces.
        Vectors of older versions of the same model id are dropped. Scans do this by themselves
        (:meth:`ensure_model`)."""
        return self._change_model()[1]

    def _change_model(self) -> tuple[int, ReclusterReport]:
        from facetags.vision.specs import split_version

        with self._lock:
            assigner = self.clustering()
            model = assigner.model_id
            # batch by batch, each in a short transaction of its own: other processes (the
            # watcher, the TUI) are not held up for minutes, and a stopped run resumes
            done = assigner.reembed(self.store, self.pipeline.embedder, write=self.store.write)
            with self.store.write():
                done += assigner.reembed(self.store, self.pipeline.embedder)  # added meanwhile
                base = split_version(model)[0]
                models = self.store.embedding_models()
                older = [m for m in models if m != model and split_version(m)[0] == base]
                dropped = self.store.delete_embeddings(older)
                report = assigner.recluster(self.store, model_change=True)
        self.indexer.invalidate()
        log.info(
            "model %s: re-embedded %d faces, dropped %d vectors of %s; %s",
            model, done, dropped, ", ".join(older) or "no older version", report.describe(),
        )  # fmt: skip
        return done, report

    def lost_faces_to_show(self, mark: bool = True) -> list[LostFace]:
        """Faces the user had decided on that edited photos no longer show, recorded since a
        front end last showed them (``mark``: they count as shown from now on)."""
        lost = self.store.lost_faces(
            after_id=max(self._meta_id(LOST_SHOWN_KEY), self._meta_id(LOST_FORGOTTEN_KEY))
        )
        if lost and mark:
            with self.store.write():
                self.store.set_meta(LOST_SHOWN_KEY, str(lost[-1].decision_id))
        return lost

    def lost_faces(self) -> list[LostFace]:
        """The decided faces edited photos no longer show, but those put aside by
        :meth:`forget_lost_faces` (``status`` lists these)."""
        return self.store.lost_faces(after_id=self._meta_id(LOST_FORGOTTEN_KEY))

    def forget_lost_faces(self) -> list[LostFace]:
        """Put aside the lost faces :meth:`lost_faces` gives: ``status`` and the TUI stop telling
        of them; the decision log keeps them. Returns those put aside."""
        with self._lock, self.store.write():
            lost = self.lost_faces()
            if lost:
                self.store.set_meta(LOST_FORGOTTEN_KEY, str(lost[-1].decision_id))
        return lost

    def _meta_id(self, key: str) -> int:
        value = self.store.get_meta(key)
        return int(value) if value and value.isdigit() else 0

    def stale_faces(self) -> int:
        """Faces with no vector of the current model version (made by another model or an older
        file of the same id, or by a library from before versioned ids)."""
        return self.store.count_stale_faces(self.pipeline.model_id)

    def ensure_model(self) -> int:
        """Before assigning faces: if any face lacks a vector of the current model version,
        re-embed and re-cluster (:meth:`change_model`) once; if every face has one but the
        people were grouped with another model (the setting changed back), re-cluster. Returns
        how many faces were re-embedded (0 when none was stale). Checked once per library object
        and model."""
        with self._lock:
            model = self.pipeline.model_id
            if self._model_checked == model:
                return 0
            stale = self.store.count_stale_faces(model)
            grouped_with = self.store.get_meta(CLUSTERED_WITH_KEY)
            done = 0
            if stale:
                log.info("%d faces have no vector of %s (the embedder changed): re-embedding", stale, model)
                done = self._change_model()[0]
            elif grouped_with not in (None, model):
                log.info("the people were grouped with %s: grouping them again with %s", grouped_with, model)
                self._change_model()
            self._model_checked = model
            return done

    # -- indexing -----------------------------------------------------------------------------

    def scan(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: Progress | None = None,
        stop: threading.Event | None = None,
        between: Callable[[], None] | None = None,
        grouping: Callable[[], None] | None = None,
        retry_failed: bool = False,
    ) -> ScanReport:
        """Bring the index in step with the photos under ``paths`` (folders or files); then
        re-cluster when due (facetags.people.assigner), so scan order does not matter.
        ``between``: called after each photo, in this thread, holding the library (the
        watcher indexes photos copied in during its catch-up scan). ``grouping()``: called before
        the re-cluster, which takes a while in a large library. The report's seconds
        count the re-cluster too. ``retry_failed``: files recorded as failed are tried again."""
        with self._lock:
            reembedded = self.ensure_model()
            report = self.indexer.scan(
                paths, progress=progress, stop=stop, between=between, retry_failed=retry_failed
            )
            report.reembedded = reembedded
            due = report.faces > 0 and not report.interrupted
            due = due and self.clustering().recluster_due(self.store)
        if due:
            if grouping is not None:
                grouping()
            start = time.perf_counter()
            self.recluster()
            report.seconds += time.perf_counter() - start
        return report

    def index_photo(self, path: str | os.PathLike[str]) -> str:
        """Index or refresh one file; returns what happened (new, unchanged, moved, failed, ...)."""
        with self._lock:
            self.ensure_model()
            return self.indexer.index_path(os.fspath(path))

    def gone(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """These paths no longer exist on disk: a photo left with no path is kept as missing
        (faces and decisions stay until it is back or :meth:`forget` drops it)."""
        with self._lock:
            return self.indexer.remove_paths([os.path.abspath(p) for p in paths])

    def missing(self) -> list[MissingPhoto]:
        """Photos that are no longer on disk (or not readable), kept with their faces."""
        return self.store.missing()

    def drop_gone(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Record as gone the indexed paths at or under ``paths`` that are no longer on disk, as a
        scan of their folder would (a card or disk scanned once and since removed is never
        scanned again). A photo still at another path loses that path only; one left
        with none is missing. Returns how many indexed paths went."""
        went = 0
        with self._lock:
            for path in paths:
                where = os.path.abspath(path)
                if on_disk(where) is False:  # one that cannot be looked at may still be there
                    went += self.indexer.remove_paths([where]) + self.indexer.remove_tree(where)
        return went

    def forget(self, paths: Iterable[str | os.PathLike[str]] | None = None) -> list[MissingPhoto]:
        """Forget the missing photos at or under ``paths`` (every missing photo with ``None``):
        their faces go, and with them the decisions on those faces. Photos on disk are never
        forgotten. Returns the photos forgotten."""
        with self._lock, self.store.write():
            if paths is None:
                found = self.store.missing()
            else:
                wanted = [os.path.abspath(p) for p in paths]  # (a name not valid UTF-8 holds none)
                found = [m for p in wanted if storable(p) is not None for m in self.store.missing(under=p)]
            ids = self.store.drop_missing(dict.fromkeys(m.path for m in found))
            self.store.delete_orphan_photos(set(ids))
        self.indexer.invalidate()
        return found

    def moved(self, src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> str:
        """A file was renamed: keep its faces and names under the new path."""
        with self._lock:
            self.ensure_model()
            return self.indexer.move_path(os.path.abspath(src), os.path.abspath(dest))

    def folder_moved(self, src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> int:
        with self._lock:
            return self.indexer.move_tree(os.path.abspath(src), os.path.abspath(dest))

    def folder_deleted(self, folder: str | os.PathLike[str]) -> int:
        with self._lock:
            return self.indexer.remove_tree(os.path.abspath(folder))

    # -- reading ------------------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Every person and unnamed cluster with faces (and named people without any)."""
        return self.store.people()

    def person(self, person_id: int) -> Person:
        return self._person(person_id)

    def faces(self, person_id: int | None = None) -> list[FaceRecord]:
        """Every face (of one person, if given) with its photo's path and its person."""
        if person_id is not None:
            return self.store.faces_of_person(self._resolve(person_id))
        return self.store.all_faces()

    def face(self, face_id: int) -> FaceRecord:
        record = self.store.face_record(face_id)
        if record is None:
            raise NotFoundError(f"no face {face_id}")
        return record

    def photo_faces(self, path: str | os.PathLike[str], face_id: int | None = None) -> list[FaceRecord]:
        """The faces of the photo at ``path``, or of the photo last kept as missing there, or
        (``face_id``) of that face's photo, on disk or missing (empty if it has none;
        NotFoundError if none of these)."""
        record = self.store.face_record(face_id) if face_id is not None else None
        if record is not None:
            return self.store.faces_of_photo(record.photo_id)
        row = self.store.file_by_path(os.path.abspath(path))
        if row is not None:
            return self.store.faces_of_photo(row.photo_id)
        missing = self.store.last_missing_at(os.path.abspath(path))
        if missing is None:
            raise NotFoundError(f"{path}: not in the library")
        return self.store.faces_of_photo(missing[0])

    def missing_photo(self, path: str | os.PathLike[str], face_id: int | None = None) -> MissingPhoto | None:
        """The photo kept as missing that ``face_id`` is in, or (without it) the last that went
        missing at ``path`` while no indexed file is there; None if it is on disk."""
        record = self.store.face_record(face_id) if face_id is not None else None
        if record is not None:
            return next((m for m in self.store.missing() if m.photo_id == record.photo_id), None)
        where = os.path.abspath(path)
        if self.store.file_by_path(where) is not None:
            return None
        return next((m for m in reversed(self.store.missing(under=where)) if m.path == where), None)

    def thumbnail(self, face_id: int) -> bytes:
        """The face's aligned 112x112 crop as JPEG bytes."""
        thumb = self.store.face_thumb(face_id)
        if thumb is None:
            raise NotFoundError(f"no thumbnail for face {face_id}")
        return thumb

    def find(self, names: Sequence[str]) -> list[str]:
        """Absolute paths of the photos that show every one of ``names`` (case and accents ignored).
        A name may be part of one person's name, whole words ("sheldon" for Sheldon Cooper).

        Raises NotFoundError naming close matches when a name is unknown, and the people it
        could mean when it is part of several names."""
        if not names:
            raise FacetagsError("name at least one person")
        return self.store.photo_paths_with_all([self._ids_named(name, by_words=True) for name in names])

    def _ids_named(self, name: str, *, by_words: bool = False) -> list[int]:
        """The people called ``name``; ``by_words``: else the one whose name holds its words."""
        key = name_key(name)
        ids = self.store.people_by_key(key)
        if ids:
            return ids
        named = self.store.named_people()
        wanted = set(name_words(key))
        if by_words and wanted:  # (punctuation alone is part of every name: no word at all)
            holding = {k: n for _, n, k in named if wanted <= set(name_words(k))}
            if len(holding) == 1:
                return self.store.people_by_key(next(iter(holding)))
            if holding:
                listed = ", ".join(sorted(holding.values(), key=name_key))
                raise NotFoundError(f"{name!r} could be {listed}: give the whole name")
        close = close_matches(name, [n for _, n, _ in named])
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise NotFoundError(f"no one called {name!r}{hint}")

    def person_named(self, name: str) -> Person:
        """The person called ``name`` (case and accents ignored); NotFoundError naming close
        matches when no one is."""
        return self._person(self._ids_named(name)[0])

    @staticmethod
    def versions() -> dict[str, Any]:
        """facetags', the schema's, the shipped models' and the runtime's versions
        (:func:`facetags.versions.report`); opens nothing."""
        from facetags.versions import report

        return report()

    @staticmethod
    def detector(settings: Settings) -> Callable[..., Detection]:
        """Detection alone, without a library (``facetags detect``): the detector of ``settings``,
        loaded now, as ``detect(photo, crops=False) -> Detection``."""
        from facetags.vision.detect import Detector, detect_faces

        return functools.partial(detect_faces, detector=Detector(settings))

    def status(self) -> Status:
        counts = self.store.counts()
        size = sum(os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if os.path.exists(p))
        stale_xmp = self.stale_xmp()
        return Status(
            library=str(self.path),
            schema_version=current_version(self.store.conn),
            photos=counts["photos"],
            files=counts["files"],
            faces=counts["faces"],
            people=counts["people"],
            clusters=counts["clusters"],
            queue=counts["queue"],
            failures=self.store.failures(),
            bytes=size,
            model=self.pipeline.model_id,
            stale_faces=self.stale_faces(),
            lost_faces=self.lost_faces(),
            stale_xmp_photos=stale_xmp[0],
            stale_xmp_read_only=stale_xmp[1],
            missing=self.store.missing(),
            unwritten_xmp_photos=self.store.photos_with_unwritten_names(),
        )

    def data_version(self) -> int:
        """A number that changes whenever another process commits to the library (cheap to poll)."""
        return self.store.data_version()
