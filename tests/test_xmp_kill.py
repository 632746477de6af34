"""Issue 23, case 6: ``kill -9`` during ``xmp write`` leaves records that match the photos.

A real ``facetags xmp write`` over 100 real photos (LFW) is killed with SIGKILL once a few photos
have been replaced (seen from their inodes: every write renames a new file over the old one).
Every name of ours a photo then carries must be recorded in the library (``xmp_names``) for the
face it names, and photos not written must carry nothing. After the people are renamed, ``xmp
import`` must not take the names facetags wrote for another tool's decisions (before the fix,
nothing was recorded until the last photo, so the import moved the faces to a person named by the
stale regions), and a later ``xmp write`` and ``xmp import`` agree with the photos.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facetags.config import Settings
from facetags.errors import FacetagsError
from facetags.library import Library
from facetags.xmp.read import read_regions
from facetags.xmp.regions import iou
from tests.xmp_support import need_exiftool

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = 100


def _facetags(where: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "facetags", "--library", str(where), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _carried(photo: Path, faces: list) -> dict[int, str]:
    """Face id -> the name the photo's regions give it (regions matched to faces by IoU)."""
    out: dict[int, str] = {}
    for region in read_regions(photo).regions:
        if not region.name:
            continue
        best = max(faces, key=lambda f: iou(region.box, f.box))
        assert iou(region.box, best.box) >= 0.5, (photo, region)
        out[best.face_id] = region.name
    return out


def test_killed_xmp_write_leaves_matching_records(
    shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    need_exiftool()
    try:
        opener = request.getfixturevalue("open_library")
    except FacetagsError as exc:
        pytest.skip(f"the shipped models are not available here: {exc}")
    folder = tmp_path / "photos"
    folder.mkdir()
    source = shared_data / "lfw" / "images" / "George_W_Bush"
    for n in range(1, PHOTOS + 1):
        shutil.copyfile(source / f"George_W_Bush_{n:04d}.jpg", folder / f"photo{n:03d}.jpg")
    where = tmp_path / "library.db"
    lib = opener(where)
    lib.scan([folder])
    for person in lib.people():
        if person.faces:
            lib.name(person.id, f"Person {person.id}")
    lib.close()
    photos = sorted(folder.iterdir())
    inodes = {p: p.stat().st_ino for p in photos}

    proc = subprocess.Popen(
        _facetags(where, "xmp", "write"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while sum(p.stat().st_ino != inodes[p] for p in photos) < 3:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "xmp write never got going"
            time.sleep(0.002)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = [p for p in photos if p.stat().st_ino != inodes[p]]
    assert 3 <= len(written) < PHOTOS, "the run was not killed part-way; use more photos"

    with Library.open(where, Settings(library=where), create=False) as lib:
        faces = lib.faces()
    by_photo: dict[str, list] = {}
    for face in faces:
        by_photo.setdefault(face.path, []).append(face)
    in_flight = 0
    for photo in photos:
        ours = by_photo.get(str(photo), [])
        carried = _carried(photo, ours) if ours else {}
        recorded = {f.face_id: f.xmp_name for f in ours if f.xmp_name is not None}
        if photo in written:
            assert carried and carried == recorded, (photo, carried, recorded)
        else:
            assert carried == {}, photo
            # the photo being written when the kill came may be recorded already, never the others
            in_flight += bool(recorded)
            assert not recorded or recorded == {f.face_id: f.person_name for f in ours if f.person_name}
    assert in_flight <= 1

    # The user renames everyone: the names in the photos are facetags' own, now stale; an import
    # must not move faces to people named after them.
    with Library.open(where, Settings(library=where), create=False) as lib:
        for person in lib.people():
            if person.name:
                lib.name(person.id, person.name.replace("Person", "Renamed"))
        before = {f.face_id: f.person_id for f in lib.faces()}
    imported = subprocess.run(
        _facetags(where, "xmp", "import", str(folder)), env=_env(), capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "", imported.stdout
    assert "0 conflicts kept" in imported.stderr, imported.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert {f.face_id: f.person_id for f in lib.faces()} == before

    # A full write now brings every photo up to date, and an import agrees with it.
    done = subprocess.run(_facetags(where, "xmp", "write"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        faces = lib.faces()
        assert lib.status().stale_xmp_photos == 0
    for photo in photos:
        ours = [f for f in faces if f.path == str(photo)]
        expected = {f.face_id: f.person_name for f in ours if f.person_name}
        assert _carried(photo, ours) == expected, photo
        assert {f.face_id: f.xmp_name for f in ours if f.xmp_name} == expected, photo
    again = subprocess.run(
        _facetags(where, "xmp", "import", str(folder)), env=_env(), capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stdout.strip() == "", again.stderr
    assert "0 conflicts kept" in again.stderr, again.stderr


def test_a_failed_write_takes_its_claim_back(
    astronaut, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new name is recorded before the photo is replaced, and unrecorded when the write fails."""
    from PIL import Image

    from facetags.xmp import packet
    from facetags.xmp.packet import XmpError
    from facetags.xmp.regions import FaceTag
    from facetags.xmp.write import write_photo

    photo = tmp_path / "p.jpg"
    Image.fromarray(astronaut).save(photo, quality=90)
    before = photo.read_bytes()
    face = FaceTag((0.318, 0.127, 0.193, 0.209), "Eileen Collins", face_id=7)
    claims: list[dict[int, str | None]] = []

    def fail(path: Path, updates: object, sidecar: bool = False) -> None:
        raise XmpError(path, "disk full")

    monkeypatch.setattr(packet, "apply", fail)
    result = write_photo(photo, [face], claim=claims.append)
    assert result.error and not result.written and not result.names
    assert claims == [{7: "Eileen Collins"}, {7: None}]
    assert photo.read_bytes() == before
    monkeypatch.undo()
    claims.clear()
    result = write_photo(photo, [face], claim=claims.append)
    assert result.written and result.names == {7: "Eileen Collins"} and claims == [{7: "Eileen Collins"}]
