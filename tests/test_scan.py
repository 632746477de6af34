"""Scanning real photos: new, unchanged (no decode), moved, renamed, duplicated, changed,
metadata-only changes, deleted, hidden and sidecar files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

import facetags.image.decode as decode_mod
from facetags.errors import NotFoundError
from facetags.ingest.pipeline import Pipeline

if TYPE_CHECKING:
    from tests.library_support import OpenLibrary


def _forbid(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{what} must not run here")

    if what == "decode":
        monkeypatch.setattr(decode_mod, "decode", boom)
    else:
        monkeypatch.setattr(Pipeline, "analyse", boom)


def test_first_scan_finds_faces_and_puts_each_in_one_person(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    lib = open_library()
    report = lib.scan([photo_dir])
    assert report.counts["new"] == 2 and report.counts["failed"] == 0
    faces = lib.faces()
    assert report.faces == len(faces) >= 6
    assert all(f.person_id is not None for f in faces)
    assert all(os.path.isabs(f.path) and Path(f.path).exists() for f in faces)
    for f in faces:
        x, y, w, h = f.box
        assert 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1
        assert len(lib.thumbnail(f.face_id)) > 500
    t1_faces = [f for f in faces if f.path.endswith("t1.jpg")]
    assert len(t1_faces) >= 5
    assert len({f.person_id for f in t1_faces}) == len(t1_faces), "two faces of one photo in one person"
    people = lib.people()
    assert sum(p.faces for p in people) == len(faces)
    status = lib.status()
    assert (status.photos, status.files, status.faces, status.queue) == (2, 2, len(faces), 0)
    timings = report.timings
    assert set(timings) == {"decode", "hash", "detect", "align", "embed", "store"}
    assert timings["detect"] > 0 and timings["embed"] > 0


def test_rescan_of_unchanged_photos_decodes_nothing(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    _forbid(monkeypatch, "decode")
    report = lib.scan([photo_dir])
    assert report.counts["unchanged"] == 2
    assert sum(report.counts.values()) == 2


def test_rename_and_move_keep_faces_names_and_ids(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    (face,) = lib.photo_faces(photo_dir / "astronaut.jpg")
    assert face.person_id is not None
    lib.name(face.person_id, "Eileen Collins")
    (photo_dir / "2024" / "trip").mkdir(parents=True)
    moved = photo_dir / "2024" / "trip" / "eileen.jpg"
    os.rename(photo_dir / "astronaut.jpg", moved)
    _forbid(monkeypatch, "decode")  # a rename keeps the inode: recognised without decoding
    report = lib.scan([photo_dir])
    assert (report.counts["moved"], report.counts["deleted"], report.counts["new"]) == (1, 0, 0)
    (after,) = lib.photo_faces(moved)
    assert (after.face_id, after.person_id, after.person_name) == (
        face.face_id,
        face.person_id,
        "Eileen Collins",
    )
    assert lib.find(["eileen collins"]) == [str(moved)]
    with pytest.raises(NotFoundError):
        lib.photo_faces(photo_dir / "astronaut.jpg")


def test_move_by_copy_and_delete_decodes_but_does_not_analyse(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    before = {f.face_id for f in lib.faces()}
    other = photo_dir / "elsewhere" / "copy.jpg"
    other.parent.mkdir()
    shutil.copyfile(photo_dir / "t1.jpg", other)  # new inode and mtime: another file system
    (photo_dir / "t1.jpg").unlink()
    _forbid(monkeypatch, "analyse")
    report = lib.scan([photo_dir])
    assert report.counts["moved"] == 1 and report.counts["deleted"] == 0
    assert {f.face_id for f in lib.faces()} == before


def test_duplicates_share_faces_and_deleting_one_path_keeps_them(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    (face,) = lib.photo_faces(photo_dir / "astronaut.jpg")
    lib.name(face.person_id or 0, "Eileen")
    shutil.copyfile(photo_dir / "astronaut.jpg", photo_dir / "copy of astronaut.jpg")
    _forbid(monkeypatch, "analyse")
    report = lib.scan([photo_dir])
    assert report.counts["duplicate"] == 1
    assert len(lib.faces()) == lib.status().faces
    assert lib.find(["Eileen"]) == sorted(
        [str(photo_dir / "astronaut.jpg"), str(photo_dir / "copy of astronaut.jpg")]
    )
    assert lib.status().files == 3 and lib.status().photos == 2

    (photo_dir / "astronaut.jpg").unlink()
    report = lib.scan([photo_dir])
    assert report.counts["deleted"] == 0 and report.counts["copy_gone"] == 1  # not a missing photo
    assert "1 copy gone (the photo is still at another path)" in report.describe()
    assert "status' lists them" not in report.describe() and lib.status().missing == []
    assert lib.find(["Eileen"]) == [str(photo_dir / "copy of astronaut.jpg")]

    (photo_dir / "copy of astronaut.jpg").unlink()
    report = lib.scan([photo_dir])
    assert report.counts["deleted"] == 1
    assert lib.find(["Eileen"]) == []
    assert lib.status().photos == 1  # on disk
    (missing,) = lib.status().missing  # kept, named face and all, until it is back or forgotten
    assert missing.path == str(photo_dir / "copy of astronaut.jpg") and missing.named_faces == 1
    assert [p.faces for p in lib.people() if p.name == "Eileen"] == [1]
    lib.forget([photo_dir / "copy of astronaut.jpg"])
    eileen = [p for p in lib.people() if p.name == "Eileen"]
    assert eileen and eileen[0].faces == 0, "forgetting photos removes faces, not people"


def test_metadata_written_into_a_photo_is_not_a_change(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.library_support import with_xmp

    lib = open_library()
    lib.scan([photo_dir])
    before = [(f.face_id, f.person_id) for f in lib.photo_faces(photo_dir / "t1.jpg")]
    path = photo_dir / "t1.jpg"
    path.write_bytes(with_xmp(path.read_bytes()))
    _forbid(monkeypatch, "analyse")
    report = lib.scan([photo_dir])
    assert report.counts["touched"] == 1 and report.counts["changed"] == 0
    assert [(f.face_id, f.person_id) for f in lib.photo_faces(path)] == before
    assert lib.scan([photo_dir]).counts["unchanged"] == 2  # the new stat was recorded


def test_changed_pixels_are_analysed_again(open_library: OpenLibrary, photo_dir: Path) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    path = photo_dir / "astronaut.jpg"
    (old,) = lib.photo_faces(path)
    flipped = np.asarray(Image.open(path))[:, ::-1]
    Image.fromarray(np.ascontiguousarray(flipped)).save(path, quality=92)
    report = lib.scan([photo_dir])
    assert report.counts["changed"] == 1
    (new,) = lib.photo_faces(path)
    assert new.face_id != old.face_id
    assert new.person_id == old.person_id  # the same face, mirrored: it keeps its place
    assert abs((new.box[0] + new.box[2] / 2) - (1 - (old.box[0] + old.box[2] / 2))) < 0.05
    assert lib.status().photos == 2  # the old content went with its faces
    with pytest.raises(NotFoundError):
        lib.face(old.face_id)


def test_hidden_folders_sidecars_and_other_files_are_skipped(
    open_library: OpenLibrary, photo_dir: Path, astronaut_path: Path
) -> None:
    (photo_dir / ".thumbnails").mkdir()
    shutil.copyfile(astronaut_path, photo_dir / ".thumbnails" / "a.jpg")
    shutil.copyfile(astronaut_path, photo_dir / ".hidden.jpg")
    (photo_dir / "astronaut.jpg.xmp").write_text("<x:xmpmeta/>")
    (photo_dir / "IMG_0001.AAE").write_text("<plist/>")
    (photo_dir / "notes.txt").write_text("hello")
    shutil.copyfile(astronaut_path, photo_dir / "UPPER.JPG")
    lib = open_library()
    report = lib.scan([photo_dir])
    assert report.counts["new"] == 2 and report.counts["duplicate"] == 1
    assert report.counts["failed"] == 0
    assert lib.status().files == 3


def test_hard_links_are_recognised_without_decoding(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.library_support import link_or_copy

    lib = open_library()
    lib.scan([photo_dir])
    for i in range(25):
        link_or_copy(photo_dir / "t1.jpg", photo_dir / "links" / f"t1-{i:02d}.jpg")
    if (photo_dir / "links" / "t1-00.jpg").stat().st_nlink < 2:
        pytest.skip("hard links not supported here")
    _forbid(monkeypatch, "decode")
    report = lib.scan([photo_dir])
    assert report.counts["duplicate"] == 25
    assert lib.status().files == 27 and lib.status().photos == 2


def test_missing_folder_is_an_error_and_forgets_nothing(open_library: OpenLibrary, photo_dir: Path) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    with pytest.raises(NotFoundError):
        lib.scan([photo_dir / "nope"])
    assert lib.status().photos == 2


def test_interrupted_scan_keeps_what_it_finished(open_library: OpenLibrary, photo_dir: Path) -> None:
    import threading

    lib = open_library()
    stop = threading.Event()
    report = lib.scan([photo_dir], progress=lambda done, total, path: stop.set(), stop=stop)
    assert report.interrupted and report.counts["new"] == 1
    assert lib.status().queue == 1  # the rest is visible as queued work
    report = lib.scan([photo_dir])
    assert report.counts["new"] == 1 and report.counts["unchanged"] == 1
    assert lib.status().queue == 0


def test_a_photo_moved_into_a_hidden_folder_is_missing(open_library: OpenLibrary, photo_dir: Path) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    (photo_dir / ".trash").mkdir()
    os.rename(photo_dir / "astronaut.jpg", photo_dir / ".trash" / "astronaut.jpg")
    report = lib.scan([photo_dir])
    assert report.counts["deleted"] == 1
    assert lib.status().photos == 1


def test_a_photo_indexed_by_between_after_the_walk_keeps_its_newer_entry(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    """``scan(between=)`` (the watcher's catch-up) may index a photo the scan has still to
    reach, after it was written again: the scan must not store the walk's older stat over it."""
    from tests.library_support import with_xmp

    lib = open_library()
    later = photo_dir / "t1.jpg"  # walked after astronaut.jpg
    calls: list[str] = []

    def between() -> None:
        if not calls:  # after the first photo: the second one is written again, and indexed
            later.write_bytes(with_xmp(later.read_bytes()))
            os.utime(later, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
            calls.append(lib.index_photo(later))

    report = lib.scan([photo_dir], between=between)
    assert calls == ["new"]
    assert report.counts["new"] == 1 and report.counts["unchanged"] == 1 and report.counts["touched"] == 0
    # the faces this scan found: the first photo's, not those ``between`` indexed meanwhile
    assert report.faces == len(lib.photo_faces(photo_dir / "astronaut.jpg")) >= 1
    assert len(lib.photo_faces(later)) > report.faces
    row = lib.store.file_by_path(str(later))
    st = os.stat(later)
    assert row is not None and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert lib.scan([photo_dir]).counts["unchanged"] == 2  # nothing to look at again


def test_a_photo_gone_before_it_was_read_is_counted_as_such(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    """A folder unmounted or moved away during a scan: the photos not read yet are neither new
    nor "unchanged" (which hid them), and none is recorded as failed."""
    lib = open_library()
    later = photo_dir / "t1.jpg"  # walked after astronaut.jpg

    def unplug(done: int, total: int, path: str) -> None:
        if later.exists():
            later.unlink()

    report = lib.scan([photo_dir], progress=unplug)
    assert report.counts["new"] == 1 and report.counts["vanished"] == 1
    assert report.counts["unchanged"] == 0 and report.counts["failed"] == 0
    assert "1 photo gone before it was read" in report.describe() and report.to_json()["vanished"] == 1
    assert lib.status().failures == []
    assert lib.status().queue == 0  # nothing left to do: it is not in the queue of work to finish


def test_a_photo_another_scan_indexed_meanwhile_is_no_duplicate(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    """Two scans of one library at once: a photo the other one indexed after this one's walk was
    counted as a duplicate of itself (the library was right; the report was not)."""
    lib = open_library()
    other = open_library()  # a second process's library: its own connection to the same file
    later = photo_dir / "t1.jpg"  # walked after astronaut.jpg

    def the_other_scan(done: int, total: int, path: str) -> None:
        if done == 1:
            lib.store.commit_now()  # as the scan does at least every GROUP_S: the other's turn
            assert other.index_photo(later) == "new"

    report = lib.scan([photo_dir], progress=the_other_scan)
    assert report.counts["new"] == 1 and report.counts["unchanged"] == 1
    assert report.counts["duplicate"] == 0
    assert len(lib.store.photo_files(lib.photo_faces(later)[0].photo_id)) == 1


def test_a_photo_another_scan_stored_while_this_one_analysed_it_is_no_duplicate(
    open_library: OpenLibrary, photo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other scan stores the photo after this one looked its pixels up (not there yet) and
    before this one takes the library to store it: it was counted as a duplicate of itself (3
    of 4 runs of two scans of 364 photos started a second apart)."""
    lib = open_library()
    other = open_library()
    later = photo_dir / "t1.jpg"
    looked_up = lib.store.photo_by_hash
    misses: list[str] = []  # t1.jpg's lookups: before analysing it, then before storing it

    def the_other_scan_between(content_hash: str) -> int | None:
        found = looked_up(content_hash)
        if found is None and lib.store.file_by_path(str(photo_dir / "astronaut.jpg")):
            misses.append(content_hash)
            if len(misses) == 2:  # looked up to store it: the other scan stores it now
                lib.store.commit_now()
                assert other.index_photo(later) == "new"
        return found

    monkeypatch.setattr(lib.store, "photo_by_hash", the_other_scan_between)
    report = lib.scan([photo_dir])
    assert len(misses) == 2 and report.counts["new"] == 1 and report.counts["unchanged"] == 1
    assert report.counts["duplicate"] == 0
    assert len(lib.store.photo_files(lib.photo_faces(later)[0].photo_id)) == 1


def test_a_named_photo_overwritten_by_a_copy_of_another_is_kept_as_missing(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    """The file now shows a photo the library already has (a copy saved over it): the named
    face it showed went without a word; its photo is kept as missing, name and all, until its
    pixels are back or it is forgotten."""
    lib = open_library()
    lib.scan([photo_dir])
    (face,) = lib.photo_faces(photo_dir / "astronaut.jpg")
    lib.name(face.person_id or 0, "Eileen")
    astronaut = (photo_dir / "astronaut.jpg").read_bytes()
    shutil.copyfile(photo_dir / "t1.jpg", photo_dir / "astronaut.jpg")
    assert lib.scan([photo_dir]).counts["changed"] == 1
    (missing,) = lib.status().missing
    assert missing.path == str(photo_dir / "astronaut.jpg") and missing.named_faces == 1
    (photo_dir / "back.jpg").write_bytes(astronaut)
    assert lib.scan([photo_dir]).counts["moved"] == 1
    assert lib.find(["Eileen"]) == [str(photo_dir / "back.jpg")] and lib.status().missing == []


def test_files_renamed_in_a_ring_keep_every_decision(open_library: OpenLibrary, photo_dir: Path) -> None:
    """b.jpg -> c.jpg, then a.jpg -> b.jpg, between two scans: b.jpg now shows a's photo, and
    b's photo (its faces named by the user) is at c.jpg. It lost every decision when its path
    was taken, before the scan reached c.jpg."""
    lib = open_library()
    (photo_dir / "t1.jpg").rename(photo_dir / "b.jpg")
    (photo_dir / "astronaut.jpg").rename(photo_dir / "a.jpg")
    lib.scan([photo_dir])
    named = {f.face_id: f"P{f.face_id}" for f in lib.photo_faces(photo_dir / "b.jpg")}
    for face_id, name in named.items():
        lib.name(lib.face(face_id).person_id or 0, name)
    (photo_dir / "b.jpg").rename(photo_dir / "c.jpg")
    (photo_dir / "a.jpg").rename(photo_dir / "b.jpg")
    lib.scan([photo_dir])
    assert {f.face_id: f.person_name for f in lib.photo_faces(photo_dir / "c.jpg")} == named
    assert lib.status().missing == [] and lib.status().lost_faces == []


def test_exiftools_backup_rename_is_no_photo_gone(open_library: OpenLibrary, photo_dir: Path) -> None:
    """exiftool edits photo.jpg by renaming it to photo.jpg_original and writing a new photo.jpg:
    the rename was logged as a photo gone (the new file there already)."""
    lib = open_library()
    lib.scan([photo_dir])
    photo = photo_dir / "astronaut.jpg"
    backup = photo_dir / "astronaut.jpg_original"
    shutil.copyfile(photo, backup)  # the rename's result, with the new photo.jpg written already
    assert lib.moved(photo, backup) == "unchanged"
    assert lib.photo_faces(photo) and lib.status().missing == []
    photo.unlink()  # a real rename away from a photo name: the photo is gone
    assert lib.moved(photo, backup) == "deleted"
