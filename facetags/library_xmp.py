"""XMP, a part of the :class:`facetags.library.Library` facade: writing the library's names into
the photos (and recording what each photo carries) and importing the names other tools wrote
(:mod:`facetags.xmp.sync` does the work)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facetags.config import Settings
from facetags.db.records import FaceRecord, FileStat, Person
from facetags.errors import ConfigError

if TYPE_CHECKING:
    from facetags.db.store import Store
    from facetags.xmp.sync import ImportRun, PhotoImport
    from facetags.xmp.write import WriteOptions, WriteResult


@dataclass(frozen=True)
class WriteTally:
    """What an ``xmp write`` did, photo by photo, as every front end counts it: ``changed``
    (written, or with ``dry_run`` to be), ``kept`` (a face kept another tool's name: the
    warnings say which; not "up to date"), ``current`` (up to date) and ``failed``."""

    changed: tuple[WriteResult, ...]
    kept: tuple[WriteResult, ...]
    current: tuple[WriteResult, ...]
    failed: tuple[WriteResult, ...]

    @classmethod
    def of(cls, results: Sequence[WriteResult]) -> WriteTally:
        return cls(
            changed=tuple(r for r in results if r.changes and not r.error),
            kept=tuple(r for r in results if r.kept and not r.error),
            current=tuple(r for r in results if not (r.changes or r.error or r.kept)),
            failed=tuple(r for r in results if r.error),
        )


class XmpSync:
    """The XMP methods of :class:`facetags.library.Library` (mixed into it)."""

    # what they use of the library (set or defined by Library and its other parts)
    store: Store
    settings: Settings
    pipeline: Any  # the Pipeline (decode(path, side): a photo's pixels hashed as the index does)
    _lock: threading.RLock
    faces: Callable[..., list[FaceRecord]]
    people: Callable[[], list[Person]]
    rejected_people: Callable[[int], set[int]]
    set_assignment: Callable[..., int]
    name: Callable[[int, str], Person]

    def faces_to_write(self, person_id: int | None = None) -> list[FaceRecord]:
        """What ``xmp write`` should visit: the faces (of one person, if given) and, always, the
        faces whose photos carry a name facetags wrote that is no longer theirs, to take it back.
        A photo kept in several files (copies: the same pixels in two folders, a backup beside
        the original) is visited in each, with what facetags wrote into that file (``path``,
        ``xmp_name``)."""
        records = {(r.face_id, r.path): r for r in self.store.face_files(self.faces(person_id))}
        for record in self.store.faces_with_stale_xmp():
            records.setdefault((record.face_id, record.path), record)
        # a missing photo is not on disk to write to: its tags wait until it is back
        on_disk = (r for r in records.values() if not r.missing)
        return sorted(on_disk, key=lambda r: (r.photo_id, r.path, r.face_id))

    def stale_xmp(self) -> tuple[int, int]:
        """How many photos on disk carry a name facetags wrote that the user has changed since
        (a missing photo cannot be written to: it waits until it is back), and how many of those
        no ``xmp write`` can bring up to date while they stay as they are: each file of theirs
        that has a changed name is a read-only photo whose own XMP carries it (a write goes to
        its sidecar; a name in the sidecar is brought up to date, one in the photo stays)."""
        from facetags.xmp.read import load_parsed
        from facetags.xmp.write import writable

        with self._lock:
            stale = self.store.stale_xmp_files()
        names: dict[int, dict[str, set[str]]] = {}
        for photo, _face, path, name in stale:
            names.setdefault(photo, {}).setdefault(path, set()).add(name)

        def stuck(path: str, old: set[str]) -> bool:
            if writable(Path(path)):
                return False
            parsed = load_parsed(Path(path), sidecar=False)  # the photo's own XMP only
            return any(r.name in old for r in [*parsed.mwg, *parsed.mp])

        return len(names), sum(
            1 for files in names.values() if all(stuck(p, old) for p, old in files.items())
        )

    def remember_xmp_names(
        self,
        path: Path,
        names: dict[int, str | None],
        how: str = "written",
        still: dict[int, tuple[str, ...]] | None = None,
    ) -> None:
        """Record what the file at ``path`` carries of facetags' for each face (face id -> name;
        ``how``: :data:`facetags.xmp.sync.Remember`): "written", what a successful write left
        there (None: none of ours); "claim", a name it is about to write (the photo counts as
        not written until a write is seen through); "unclaim", that write failed; "found", an
        import found the name there and the face has it. ``still`` ("written"): names of
        facetags' the file still carries for a face besides, in XMP the write left alone."""
        if not names:
            return
        given = {face: name for face, name in names.items() if name is not None}
        with self._lock, self.store.write():
            if how == "written":
                self.store.set_xmp_names(str(path), names, still or {})
            elif how == "unclaim":
                self.store.unclaim_xmp_names(str(path), given)
            else:
                self.store.claim_xmp_names(str(path), given, unverified=how == "claim")

    def xmp_options(self, **overrides: Any) -> WriteOptions:
        """The XMP write options of the settings, with ``overrides`` (WriteOptions' fields);
        ConfigError on a bad value."""
        from facetags.xmp.write import WriteOptions

        try:
            return WriteOptions.from_settings(self.settings, **overrides)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def write_xmp(
        self,
        options: WriteOptions | None = None,
        person_id: int | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[WriteResult], None] | None = None,
        stop: threading.Event | None = None,
    ) -> list[WriteResult]:
        """Write the faces (of one person, if given; always the stale ones) into their photos'
        XMP, photo by photo. What each photo carries is recorded as it is written, each photo in
        its own short transaction, so a run that is stopped or killed leaves records that match
        the photos. The library is not held while files are written. ``options``: the settings'
        (:meth:`xmp_options`) if not given."""
        from facetags.xmp.regions import FaceTag
        from facetags.xmp.sync import group_faces, write_photos

        options = options or self.xmp_options()
        with self._lock:
            records = self.faces_to_write(person_id)
            # (one person's write leaves other people's photos alone)
            lost = self.store.lost_xmp_files() if person_id is None else {}
            if (records or lost) and not dry_run:
                self.store.check_writable()  # before any photo changes: what is written is recorded
            doubted = self.store.unverified_photos()
        photos = group_faces(records, include_unnamed=options.include_unnamed)
        # names of ours for faces an edit cut off, to take out where the file is placed for the
        # older picture (a crop)
        for path, (_photo, names) in lost.items():
            photos.setdefault(Path(path), []).append(
                FaceTag(box=(0.0, 0.0, 0.0, 0.0), written=names, gone=True)
            )
        guard = _IndexedFiles(self, records, dry_run, full=person_id is None, doubted=doubted)
        guard.add({Path(path): photo for path, (photo, _names) in lost.items()})
        return write_photos(
            photos,
            options,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
            remember=self.remember_xmp_names,
            guard=guard,
            lost=self._lost_xmp_names_left,
        )

    def _lost_xmp_names_left(self, path: Path, left: set[str]) -> None:
        """After a write of ``path``: of the names of faces an edit cut off, it carries ``left``."""
        with self._lock, self.store.write():
            self.store.set_lost_xmp_names(str(path), left)

    def import_xmp(
        self,
        directory: str | os.PathLike[str],
        *,
        dry_run: bool = False,
        progress: Callable[[PhotoImport], None] | None = None,
    ) -> ImportRun:
        """Name detected faces of the indexed photos under ``directory`` from the MWG/MP regions
        other tools wrote; names become the user's decisions, a face already named differently in
        facetags keeps its name (:func:`facetags.xmp.sync.apply_import`)."""
        from facetags.xmp.sync import import_faces

        root = Path(directory)
        by_file: dict[str, list[FaceRecord]] = {}
        for record in self.store.face_files(self.faces()):  # each copy of a photo, with its record
            if _under(record.path, root) and not record.missing:  # a missing photo's path is stale
                by_file.setdefault(record.path, []).append(record)
        remember = self.remember_xmp_names
        return import_faces(self, by_file, dry_run=dry_run, progress=progress, remember=remember)


class _IndexedFiles:
    """``xmp write``'s guard: names go only into a file that still shows the photo they are for
    (the photo id its faces had when the run began). A file replaced since (a camera reusing a
    file name, an edit, a rotation; re-indexed meanwhile by a watcher or not) would get the old
    photo's names and boxes, and no later write would take them back. A file another tool only
    re-tagged keeps its pixels: it is written. What facetags writes records the file's new size
    and time, so the next scan does not decode it again."""

    def __init__(
        self,
        library: XmpSync,
        records: list[FaceRecord],
        dry_run: bool,
        full: bool = True,
        doubted: set[int] | None = None,
    ) -> None:
        """``full``: the run writes every face (not one person's): a photo all of whose files
        it writes is verified. ``doubted``: the photos unverified before the run; any other the
        run wrote to is as verified as it was once its files are done (a name this run claimed
        marked it unverified meanwhile, in case the run was killed)."""
        self.library = library
        self.photo_of: dict[Path, int] = {}
        self.dry_run = dry_run
        self.full = full
        self.doubted = doubted if doubted is not None else set()
        self.unwritten: set[int] = set()  # photos a file of which failed in this run
        self.left: dict[int, set[Path]] = {}  # photo -> its files not yet done in this run
        self.add({Path(r.path): r.photo_id for r in records})

    def add(self, files: dict[Path, int]) -> None:
        """Files the run writes besides its records' (path -> the photo it is for)."""
        for path, photo_id in files.items():
            self.photo_of.setdefault(path, photo_id)
            self.left.setdefault(self.photo_of[path], set()).add(path)

    def check(self, photo: Path) -> str | None:
        from facetags.errors import DecodeError

        lib = self.library
        changed = (
            f"{photo}: changed since the last scan, not written: run `facetags scan`, then write its names"
        )
        with lib._lock:
            row = lib.store.file_by_path(str(photo))
            stored = lib.store.photo_hash(row.photo_id) if row is not None else None
        if row is None or stored is None:
            return f"{photo}: not in the library any more: run `facetags scan` first"
        if row.photo_id != self.photo_of.get(photo):
            return changed  # re-indexed as another photo since the run began
        try:
            st = FileStat.of(os.stat(photo))
        except OSError:
            return None  # the write says what is wrong with it
        if st.same_file(row):
            return None
        side, _, _ = stored.partition(":")
        try:  # another program touched it: the same pixels, as hashed when it was indexed?
            decoded = lib.pipeline.decode(photo, side=int(side) if side.isdigit() else None)
        except DecodeError:
            return changed
        with lib._lock:
            same = decoded.content_hash == stored and (
                decoded.decoded.orientation == lib.store.photo_orientation(row.photo_id)
            )
            if same and not self.dry_run:
                with lib.store.write():
                    lib.store.touch_file(row.id, st)
                    lib.store.xmp_unverified(row.photo_id)  # its metadata was rewritten
        return None if same else changed

    def done(self, photo: Path, written: bool) -> None:
        lib = self.library
        try:
            st = FileStat.of(os.stat(photo))
        except OSError:
            return
        with lib._lock, lib.store.write():
            row = lib.store.file_by_path(str(photo))
            if row is None or row.photo_id != self.photo_of.get(photo):
                return
            if written and not st.same_file(row):
                lib.store.touch_file(row.id, st)
            left = self.left.get(row.photo_id, set())
            left.discard(photo)
            if row.photo_id in self.unwritten:  # a copy failed: this file is not all of the photo
                lib.store.xmp_unverified(row.photo_id)  # (now that names of ours are recorded)
            elif not left and (self.full or row.photo_id not in self.doubted):
                lib.store.xmp_verified(row.photo_id)  # every file of it: it carries what is recorded

    def failed(self, photo: Path) -> None:
        """A copy that could not be written keeps its photo counted as not written (``status``)
        and looked at again by the next ``xmp write``, whatever its other files got."""
        photo_id = self.photo_of.get(photo)
        if photo_id is None or self.dry_run:
            return
        self.unwritten.add(photo_id)
        with self.library._lock, self.library.store.write():
            self.library.store.xmp_unverified(photo_id)


def _under(path: str, root: Path) -> bool:
    """Whether the indexed ``path`` lies under ``root``: as the scan found it (a symlink inside
    ``root`` whose photo is elsewhere is under it) or with every link resolved."""
    for mapping in (os.path.abspath, os.path.realpath):
        try:
            Path(mapping(path)).relative_to(mapping(root))
        except ValueError:
            continue
        return True
    return False
