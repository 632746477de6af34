"""XMP orchestration for front ends: write the library's faces out, bring other tools' names in.

Nothing here imports the library; it works on what the library hands out (face records with a
path, a normalised upright box and a person) and, for importing, on any object with the
library's ``people``/``set_assignment``/``name`` methods. ``Library.write_xmp`` and
``Library.import_xmp`` (what the CLI and the TUI call) call these functions.

    results = lib.write_xmp()                      # the settings' options; records each photo
    run = lib.import_xmp("~/Pictures")             # regions matched to detected faces, applied
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facetags.errors import FacetagsError
from facetags.names import same_name, words_key
from facetags.xmp.read import read_regions
from facetags.xmp.regions import Box, FaceTag, Region, iou, match_boxes
from facetags.xmp.safefile import file_identity
from facetags.xmp.write import WriteOptions, WriteResult, still_carried, write_photo

log = logging.getLogger(__name__)


class FaceLike(Protocol):
    """What :func:`group_faces` and :func:`import_photo` need of a face record."""

    @property
    def face_id(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def box(self) -> tuple[float, float, float, float]: ...
    @property
    def person_id(self) -> int | None: ...
    @property
    def person_name(self) -> str | None: ...


class PersonLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str | None: ...


class Decisions(Protocol):
    """The library methods :func:`apply_import` calls (``facetags.library.Library`` has them)."""

    def people(self) -> Sequence[Any]: ...
    def rejected_people(self, face_id: int) -> set[int]: ...
    def set_assignment(self, face_id: int, person_id: int | None, source: str = "user") -> int: ...
    def name(self, person_id: int, name: str) -> Any: ...


# -- writing ------------------------------------------------------------------------------------


def group_faces(records: Iterable[FaceLike], *, include_unnamed: bool = False) -> dict[Path, list[FaceTag]]:
    """Face records -> photo path -> the faces to write there: named ones, unnamed ones if asked,
    and those whose photo carries a name facetags wrote for them before (``xmp_name``), so that a
    stale one is taken back."""
    photos: dict[Path, list[FaceTag]] = {}
    for record in records:
        name = record.person_name or None
        previous = getattr(record, "xmp_name", None)
        written = tuple(getattr(record, "xmp_written", ()))  # what the file may carry of ours
        if name is None and previous is None and not written and not include_unnamed:
            continue
        tag = FaceTag(
            box=tuple(record.box),  # type: ignore[arg-type]
            name=name,
            previous=previous,
            written=written,
            face_id=record.face_id,
        )
        photos.setdefault(Path(record.path), []).append(tag)
    return photos


#: Records what a file (its path) carries of ours for each face (``Library.remember_xmp_names``):
#: ``how`` "written" (what it carries now, after a write: None, nothing of ours), "claim" (it may
#: carry these too: a write is about to replace it), "unclaim" (that write failed), "found" (an
#: import found them there); ``still`` ("written" only): other names of facetags' the file's XMP
#: still carries for a face, in a part the write left alone (:attr:`WriteResult.still`).
Remember = Callable[[Path, dict[int, str | None], str, dict[int, tuple[str, ...]] | None], None]


class Guard(Protocol):
    """Whether a photo file is still the one the library indexed (``Library.write_xmp``'s)."""

    def check(self, photo: Path) -> str | None:
        """None if the names may be written into ``photo``, else why not (one line)."""

    def done(self, photo: Path, written: bool) -> None:
        """``photo`` now carries what was asked (``written`` by this run, or found so), and that
        is recorded: its new size and time are facetags' own doing."""

    def failed(self, photo: Path) -> None:
        """Writing ``photo`` failed: it may not carry what its photo's other files (copies) do."""


def write_photos(
    photos: Mapping[Path, Sequence[FaceTag]],
    options: WriteOptions | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[WriteResult], None] | None = None,
    stop: threading.Event | None = None,
    remember: Remember | None = None,
    guard: Guard | None = None,
    lost: Callable[[Path, set[str]], None] | None = None,
) -> list[WriteResult]:
    """:func:`facetags.xmp.write.write_photo` for each photo; a failure is reported, not raised.

    ``remember(path, names, how)`` (``Library.remember_xmp_names``) records, file by file, the
    names of ours each file may carry: new ones just before the file is replaced ("claim"),
    what it carries right after ("written"), before the next file is touched: a run killed
    part-way leaves every name a file may carry recorded. A photo in several files (copies: the
    same face ids at several paths) is written into each, with each file's own records
    (``FaceTag.previous``, ``FaceTag.written``). ``guard`` first says whether each
    file still shows the photo the names are for. ``lost(path, names)`` records, after each
    file with faces an edit cut off (``FaceTag.gone``), which of their names it still carries.
    """
    from facetags.xmp.safefile import remove_stale_temps_in

    options = options or WriteOptions()
    results: list[WriteResult] = []
    if not dry_run:  # what a writer that was killed left, in every folder visited
        for folder in sorted({path.parent for path in photos}):
            remove_stale_temps_in(folder)
    for path in sorted(photos):
        if stop is not None and stop.is_set():
            break
        looked = file_identity(path)  # the file the guard vets: written only while it is that one
        refused = guard.check(path) if guard is not None else None
        if refused is not None:
            result = WriteResult(
                photo=path, target=None, mode="embedded", changes=[], warnings=[], error=refused
            )
        else:
            claim = _Claims(remember, path) if remember is not None else None
            result = write_photo(path, photos[path], options, dry_run=dry_run, claim=claim, unchanged=looked)
        if remember is not None and not dry_run and not result.error and result.names:
            remember(path, result.names, "written", result.still)
        cut_off = [name for face in photos[path] if face.gone for name in face.written]
        if lost is not None and cut_off and not dry_run and result.error is None:
            # what any XMP of the photo still carries (a read-only photo's own, a sidecar that
            # failed) stays recorded, to take out once it can be
            lost(path, still_carried(path, cut_off))
        if guard is not None and not dry_run:
            if not result.error:
                guard.done(path, result.written)
            elif refused is None:
                guard.failed(path)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


class _Claims:
    """The writer's ``claim`` for one file: names it is about to write are recorded as names the
    file may carry ("claim"); if the write fails, those same names are taken back ("unclaim")."""

    def __init__(self, remember: Remember, path: Path) -> None:
        self.remember, self.path = remember, path
        self.claimed: dict[int, str | None] = {}

    def __call__(self, names: dict[int, str | None]) -> None:
        undone = {face: self.claimed.pop(face, None) for face, name in names.items() if name is None}
        added: dict[int, str | None] = {face: name for face, name in names.items() if name is not None}
        if added:
            self.claimed.update(added)
            self.remember(self.path, added, "claim", None)
        if any(name is not None for name in undone.values()):
            self.remember(self.path, {f: n for f, n in undone.items() if n is not None}, "unclaim", None)


# -- importing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """A named region that lies on a detected face."""

    face_id: int
    name: str
    iou: float
    region: Region


@dataclass
class ImportResult:
    """What one photo's XMP says about its detected faces."""

    photo: Path
    matches: list[Match] = field(default_factory=list)
    unmatched: list[Region] = field(default_factory=list)  # named regions on no detected face
    warnings: list[str] = field(default_factory=list)


def match_regions(
    regions: Sequence[Region], faces: Sequence[tuple[int, Box]], threshold: float = 0.5
) -> tuple[list[Match], list[Region], list[str]]:
    """Named regions -> detected faces by IoU (one to one). Returns matches, unmatched, warnings.

    A face covered by regions that disagree about the name (say MWG "Bob", MP "Robert") gets no
    match and a warning: facetags does not guess between two other tools.
    """
    named = [r for r in regions if r.name]
    pairs = match_boxes([r.box for r in named], [box for _id, box in faces], threshold)
    matches: list[Match] = []
    used: set[int] = set()
    warnings: list[str] = []
    for ri, fi, score in pairs:
        region = named[ri]
        assert region.name is not None
        face_id, face_box = faces[fi]
        rivals = {
            r.name
            for r in named
            if r.name and not same_name(r.name, region.name) and iou(r.box, face_box) >= threshold
        }
        if rivals:
            names = ", ".join(sorted({region.name, *rivals}))
            warnings.append(f"face {face_id}: regions disagree ({names}); not imported")
            used.update(  # they lie on this face: not regions "on no detected face"
                i for i, r in enumerate(named) if r.name and iou(r.box, face_box) >= threshold
            )
            continue
        matches.append(Match(face_id=face_id, name=region.name, iou=score, region=region))
        used.add(ri)
    unmatched = [r for i, r in enumerate(named) if i not in used]
    return matches, unmatched, warnings


def import_photo(path: str | Path, faces: Iterable[FaceLike], threshold: float = 0.5) -> ImportResult:
    """Read ``path``'s regions (embedded and sidecars) and match them to its detected ``faces``."""
    photo = Path(path)
    result = ImportResult(photo=photo)
    try:
        found = read_regions(photo)
    except FacetagsError as exc:  # e.g. the photo itself cannot be decoded any more
        result.warnings.append(str(exc))
        return result
    result.warnings += found.warnings
    boxes = [(f.face_id, tuple(f.box)) for f in faces]
    matches, unmatched, warnings = match_regions(found.regions, boxes, threshold)  # type: ignore[arg-type]
    result.matches, result.unmatched = matches, unmatched
    result.warnings += warnings
    return result


@dataclass
class Applied:
    """What :func:`apply_import` did with the matches."""

    assigned: list[tuple[int, str]] = field(default_factory=list)  # (face id, name)
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # names facetags itself wrote that are no longer the face's: not decisions of another tool
    # (the next ``xmp write`` takes them back)
    stale: list[tuple[int, str]] = field(default_factory=list)
    # face id -> its name in facetags, which the file's region now says (up to case): the file
    # carries it as facetags' own from now on, as if ``xmp write`` had found it there, so a
    # later rename reaches it
    agreed: dict[int, str] = field(default_factory=dict)


def apply_import(
    lib: Decisions,
    matches: Iterable[Match],
    face_records: Mapping[int, FaceLike],
    *,
    dry_run: bool = False,
    earlier: Mapping[int, str] | None = None,
) -> Applied:
    """Apply matched names as the user's decisions.

    A face already in a person of that name is left alone. A face the user put into a person with
    another name in facetags is left alone too (a conflict is reported): facetags' own decision
    wins over another tool's; so is a face the user rejected from the person of that name. A name
    facetags wrote itself (``xmp_name``) that the face no longer has is facetags' own stale tag,
    not another tool's decision: ignored (``stale``). Otherwise the face goes to the person with
    that name, created if needed, as a ``source="user"`` assignment. ``earlier``: the faces this
    run named already (face id -> its name), from another file of the same photo (a copy, which
    says the same: :func:`import_faces` leaves out a face whose copies disagree).
    """
    out = Applied()
    earlier = earlier or {}
    by_name: dict[str, int] = {}  # by words_key: "John D Ashcroft" is John D. Ashcroft, as Library.name says
    names: dict[int, str] = {}
    for person in lib.people():
        if person.name:
            by_name.setdefault(words_key(person.name), int(person.id))
            names[int(person.id)] = person.name
    for match in matches:
        record = face_records.get(match.face_id)
        if match.face_id in earlier:  # named from another copy of the photo in this run
            out.unchanged.append((match.face_id, match.name))
            if earlier[match.face_id].casefold() == match.name.casefold():
                out.agreed[match.face_id] = earlier[match.face_id]  # this copy says it too
            continue
        current = record.person_name if record is not None else None
        if current and same_name(current, match.name):
            out.unchanged.append((match.face_id, match.name))
            if current.casefold() == match.name.casefold():
                out.agreed[match.face_id] = current
            continue
        ours = [getattr(record, "xmp_name", None), *getattr(record, "xmp_written", ())]
        if any(mine and mine.casefold() == match.name.casefold() for mine in ours):  # as the writer
            out.stale.append((match.face_id, match.name))
            continue
        person_id = by_name.get(words_key(match.name))
        if person_id is not None and person_id in lib.rejected_people(match.face_id):
            out.conflicts.append(
                f"face {match.face_id} in {record.path if record else '?'}: XMP says {match.name!r}, "
                f"you said it is not {match.name!r} in facetags; kept it out"
            )
            continue
        if current and getattr(record, "assigned_by", None) == "user":
            out.conflicts.append(
                f"face {match.face_id} in {record.path if record else '?'}: XMP says {match.name!r}, "
                f"you said {current!r} in facetags; kept {current!r}"
            )
            continue
        if not dry_run:
            if person_id is None:
                person_id = lib.set_assignment(match.face_id, None, source="user")
                person = lib.name(person_id, match.name)
                person_id = int(getattr(person, "id", person_id))
                by_name[words_key(match.name)] = person_id
                names[person_id] = getattr(person, "name", None) or match.name  # (the survivor's)
            else:
                lib.set_assignment(match.face_id, person_id, source="user")
            if names.get(person_id, "").casefold() == match.name.casefold():
                out.agreed[match.face_id] = names[person_id]
        out.assigned.append((match.face_id, match.name))
    return out


@dataclass
class PhotoImport:
    """One photo's XMP import: what its regions say (``found``) and what was done (``applied``)."""

    photo: str
    found: ImportResult
    applied: Applied


@dataclass
class ImportRun:
    """An ``xmp import`` run: the indexed photos it covered and each one still on disk."""

    photos: int
    done: list[PhotoImport] = field(default_factory=list)


def _torn(read: Sequence[tuple[str, Sequence[Any], ImportResult]]) -> dict[int, list[tuple[str, str]]]:
    """The faces whose copies (files of one photo) name them differently, not counting names
    facetags itself wrote for the face (its own stale tags): face id -> (name, path) each. Such
    a face is not imported from any copy: facetags does not guess between them."""
    said: dict[int, dict[str, tuple[str, str]]] = {}
    for path, faces, found in read:
        records = {f.face_id: f for f in faces}
        for match in found.matches:
            record = records.get(match.face_id)
            current = getattr(record, "person_name", None)
            ours = [getattr(record, "xmp_name", None), *getattr(record, "xmp_written", ())]
            key = words_key(match.name)
            mine = any(o and o.casefold() == match.name.casefold() for o in ours)  # as the writer
            if not (current and same_name(current, match.name)) and mine:
                continue  # facetags' own old tag: not a claim of another tool's
            said.setdefault(match.face_id, {}).setdefault(key, (match.name, path))
    return {face: list(names.values()) for face, names in said.items() if len(names) > 1}


def import_faces(
    lib: Decisions,
    by_photo: Mapping[str, list[Any]],
    *,
    dry_run: bool = False,
    progress: Callable[[PhotoImport], None] | None = None,
    remember: Remember | None = None,
) -> ImportRun:
    """Import the regions of each file (path -> its face records, each with what facetags wrote
    into that file: ``xmp_name``) present on disk, in path order. ``remember(path, names)``
    records the names a file's regions now agree with (:attr:`Applied.agreed`) as facetags' own
    there, as a write would: a later rename reaches them instead of meeting "another tool's"
    name (the names were facetags' before a library was rebuilt, or are adopted by this import)."""
    run = ImportRun(photos=len(by_photo))
    read = [
        (path, by_photo[path], import_photo(path, by_photo[path]))
        for path in sorted(by_photo)
        if os.path.exists(path)
    ]
    torn = _torn(read)
    told: set[int] = set()
    named: dict[int, str] = {}  # faces named in this run (a photo's copies are other paths)
    for path, faces, found in read:
        records = {f.face_id: f for f in faces}
        matches = [m for m in found.matches if m.face_id not in torn]
        applied = apply_import(lib, matches, records, dry_run=dry_run, earlier=named)
        for face_id in sorted({m.face_id for m in found.matches} & set(torn) - told):
            told.add(face_id)  # once, with the first copy
            said = "; ".join(f"{name!r} in {where}" for name, where in torn[face_id])
            applied.conflicts.append(f"face {face_id}: copies of the photo disagree ({said}); not imported")
        named.update(applied.assigned)
        named.update(applied.agreed)  # (the face's name itself, where the region agrees with it)
        if remember is not None and not dry_run and applied.agreed:
            remember(Path(path), dict(applied.agreed), "found", None)
        one = PhotoImport(photo=path, found=found, applied=applied)
        run.done.append(one)
        if progress is not None:
            progress(one)
    return run
