"""``facetags xmp import`` and ``facetags xmp write`` against a real library of real photos."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from facetags.cli import cli
from tests.xmp_support import exiftool, exiftool_write, need_exiftool, shipped_opener, tag_astronaut


@pytest.fixture
def library(request: pytest.FixtureRequest, photo_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A library that has scanned photo_dir; the astronaut was tagged by "another tool" first."""
    need_exiftool()
    opener = shipped_opener(request)
    tag_astronaut(photo_dir, "Eileen Collins")
    where = tmp_path / "library.db"
    lib = opener(where)
    lib.scan([photo_dir])
    assert len(lib.faces()) == 7
    lib.close()
    return where, photo_dir


def _run(where: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--library", str(where), "xmp", *args], catch_exceptions=False)
    return result


def test_import_names_the_face_other_tools_tagged(library: tuple[Path, Path]) -> None:
    where, photos = library
    dry = _run(where, "import", str(photos), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    (line,) = [json.loads(x) for x in dry.stdout.splitlines()]
    assert line["name"] == "Eileen Collins" and line["photo"].endswith("astronaut.jpg")

    done = _run(where, "import", str(photos))
    assert done.exit_code == 0, done.output
    assert "Eileen Collins" in done.stdout
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        named = [f for f in lib.faces() if f.person_name == "Eileen Collins"]
        assert len(named) == 1 and named[0].assigned_by == "user"
        assert named[0].path.endswith("astronaut.jpg")
    again = _run(where, "import", str(photos))
    assert again.exit_code == 0 and again.stdout.strip() == ""


def test_write_dry_run_then_sidecar_then_embedded(library: tuple[Path, Path]) -> None:
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        t1_faces = [f for f in lib.faces() if f.path.endswith("t1.jpg")]
        lib.name(t1_faces[0].person_id, "Alice")
    t1 = photos / "t1.jpg"
    before = t1.read_bytes()

    dry = _run(where, "write", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would change" in dry.stdout and "Alice" in dry.stdout
    assert t1.read_bytes() == before and not (photos / "t1.jpg.xmp").exists()

    side = _run(where, "write", "--sidecar", "--person", "alice")
    assert side.exit_code == 0, side.output
    assert t1.read_bytes() == before
    (report,) = exiftool("-struct", "-RegionInfo", "-PersonInImage", photos / "t1.jpg.xmp")
    assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Alice"]

    embed = _run(where, "write", "--embed", "--json")
    assert embed.exit_code == 0, embed.output
    results = {Path(r["photo"]).name: r for r in map(json.loads, embed.stdout.splitlines())}
    assert results["t1.jpg"]["written"] and results["t1.jpg"]["mode"] == "embedded"
    (report,) = exiftool("-struct", "-RegionInfo", t1)
    assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Alice"]
    assert _run(where, "write", "--embed").stdout.strip() == ""  # nothing left to change

    from facetags.errors import NotFoundError

    with pytest.raises(NotFoundError, match="Nobody"):
        _run(where, "write", "--person", "Nobody")


def _regions_of(path: Path) -> list[str | None]:
    (report,) = exiftool("-struct", "-RegionInfo", path)
    return [r.get("Name") for r in report["RegionInfo"]["RegionList"]]


def test_write_takes_back_names_facetags_wrote_that_the_user_changed(library: tuple[Path, Path]) -> None:
    """Renamed, rejected or "not a face": the photo stops saying the old name; an import in
    between never brings a stale name of facetags' own back as a decision."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        faces = [f for f in lib.faces() if f.path.endswith("t1.jpg")]
        alice, bob = (lib.name(f.person_id, n).id for f, n in zip(faces, ["Alice", "Bob"], strict=False))
        lib.name(faces[2].person_id, "Carol")
    assert _run(where, "write", "--embed").exit_code == 0
    assert sorted(filter(None, _regions_of(t1))) == ["Alice", "Bob", "Carol"]

    with Library.open(where, Settings(library=where), create=False) as lib:
        assert {f.xmp_name for f in lib.faces() if f.face_id in {faces[0].face_id, faces[1].face_id}} == {
            "Alice",
            "Bob",
        }
        lib.name(alice, "Alicia")
        lib.reject(faces[1].face_id, bob)
        lib.not_a_face(faces[2].face_id)
    status = CliRunner().invoke(cli, ["--library", str(where), "status", "--json"])
    assert json.loads(status.stdout)["stale_xmp_photos"] == 1  # t1 says Alice, Bob, Carol
    stale = _run(where, "import", str(photos))  # the file still says Bob: facetags' own old tag
    assert stale.exit_code == 0 and "stale names of facetags' own ignored" in stale.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(faces[1].face_id).person_id != bob

    done = _run(where, "write", "--embed", "--person", "Alicia")  # also visits the stale faces
    assert done.exit_code == 0, done.output
    assert "take back 'Bob'" in done.stdout and "take back 'Carol'" in done.stdout
    names = _regions_of(t1)
    assert sorted(filter(None, names)) == ["Alicia"] and len(names) == 3  # regions stay, unnamed
    (report,) = exiftool("-PersonInImage", t1)
    assert report["PersonInImage"] in ("Alicia", ["Alicia"])
    assert "t1.jpg" not in _run(where, "write", "--embed").stdout  # (the import named the astronaut)
    assert _run(where, "write", "--embed").stdout.strip() == ""  # nothing left to change
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.store.faces_with_stale_xmp() == [] and lib.status().stale_xmp_photos == 0


def test_import_never_undoes_a_rejection(library: tuple[Path, Path]) -> None:
    """Another tool's name, imported, then rejected in facetags: a second import leaves the face
    out (the name is facetags' own there since the import, and stale), and the next write takes
    the name out of the photo, so other tools stop showing the wrong name too."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    assert _run(where, "import", str(photos)).exit_code == 0  # another tool's "Eileen Collins"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face,) = [f for f in lib.faces() if f.person_name == "Eileen Collins"]
        lib.reject(face.face_id, face.person_id)
        eileen = face.person_id
    again = _run(where, "import", str(photos))
    assert again.exit_code == 0 and again.stdout.strip() == ""
    assert "1 stale names of facetags' own ignored" in again.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).person_id != eileen
    assert "take back 'Eileen Collins'" in _run(where, "write", "--embed").stdout
    assert _regions_of(photos / "astronaut.jpg") == [None]  # the region stays, unnamed


@pytest.mark.parametrize("ours", ["Eileen Collins", "Eileen-Collins"])  # the same name in other punctuation
def test_import_never_undoes_a_rejection_made_before_it(library: tuple[Path, Path], ours: str) -> None:
    """The rejection comes first (the face was in a cluster the user named "Eileen Collins"
    and said it is not her): another tool's name for it is not imported, and is reported; nor
    when the library spells the name with other punctuation (the face went into a cluster of
    its own, named, then merged into her by name, rejection and all)."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        (face,) = [f for f in lib.faces() if f.path.endswith("astronaut.jpg")]
        eileen = lib.name(face.person_id or 0, ours).id
        lib.reject(face.face_id, eileen)
    again = _run(where, "import", str(photos))
    assert again.exit_code == 0
    assert "you said it is not 'Eileen Collins'" in again.stderr and again.stdout.strip() == ""
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).person_id != eileen


def test_write_refuses_a_photo_replaced_since_the_scan(library: tuple[Path, Path]) -> None:
    """A file that shows other pixels than the library indexed there (a camera reusing a file
    name, an edit) is not given the old photo's names; a file another tool only re-tagged is,
    and so is every file facetags wrote itself, without the next scan decoding it again."""
    from PIL import Image

    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1, astronaut = photos / "t1.jpg", photos / "astronaut.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        for face in lib.faces():
            lib.name(
                face.person_id or 0, "Eileen Collins" if face.path == str(astronaut) else f"P{face.face_id}"
            )
    with Image.open(t1) as im:  # an edit: other pixels under the same name
        edited = im.crop((0, 0, im.width * 3 // 4, im.height))
    edited.save(t1, quality=90)
    exiftool("-overwrite_original", "-Title=retagged elsewhere", astronaut)  # same pixels

    done = _run(where, "write", "--embed")
    assert done.exit_code == 1
    assert f"{t1}: changed since the last scan, not written: run `facetags scan`" in done.stderr
    assert done.stderr.count("changed since the last scan") == 1  # said once
    assert "RegionName" not in exiftool("-RegionName", t1)[0]  # none of the old photo's names
    assert exiftool("-Title", astronaut)[0]["Title"] == "retagged elsewhere"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face,) = lib.photo_faces(astronaut)
        assert face.xmp_name == "Eileen Collins"  # written (re-tagged elsewhere: same pixels)
        rescan = lib.scan([photos])
        assert rescan.counts["changed"] == 1  # t1, now other pixels
        assert rescan.counts["touched"] == 0  # the re-tagged file's pixels were checked once
    again = _run(where, "write", "--embed")
    assert again.exit_code == 0, again.output
    assert str(t1) in again.stdout  # its names now, for its faces as they are
    with Library.open(where, Settings(library=where), create=False) as lib:
        after = lib.scan([photos])
    assert after.counts["touched"] == 0 and after.counts["unchanged"] == 2  # what facetags wrote


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)")
@pytest.mark.parametrize("mode", ["embed", "sidecar"])
def test_a_save_by_another_program_during_the_write_is_never_undone(
    library: tuple[Path, Path], tmp_path: Path, mode: str
) -> None:
    """exiftool saves the photo while facetags is writing it (between the copy and the rename,
    held open with strace delaying every fsync): the rename put the copy, made before the
    save, over it, and the other program's change was lost (a crop, a rating). The photo is
    left as the other program saved it, the write says so, and the next write adds the names.
    Writing a sidecar, a photo saved meanwhile (its pixels may be new) gets no names either."""
    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Ann")
    slow = [shutil.which("strace") or "strace", "-f", "-o", os.devnull, "-e", "trace=fsync,fdatasync"]
    slow += ["-e", "inject=fsync,fdatasync:delay_enter=1500000"]
    command = [*slow, sys.executable, "-m", "facetags", "--library", str(where), "xmp", "write", f"--{mode}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as writer:
        copied = t1.stat().st_size if mode == "embed" else 1
        deadline = time.monotonic() + 120
        while not any(t.stat().st_size >= copied for t in photos.glob(".t1.jpg*.facetags.tmp")):
            assert writer.poll() is None and time.monotonic() < deadline, writer.communicate()
            time.sleep(0.01)
        exiftool("-overwrite_original", "-Title=saved meanwhile", "-Rating=5", t1)  # the copy is made
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 1, (out, err)
    if mode == "embed":
        assert f"{t1}: changed while facetags was writing it (another program saved it meanwhile)" in err, err
    else:
        assert f"{t1}: changed since facetags looked at it (another program saved it)" in err, err
    for xmp in (t1, t1.with_name("t1.jpg.xmp")):
        if xmp.exists():
            assert "Ann" not in str(exiftool("-RegionName", xmp)[0].get("RegionName"))
    (tags,) = exiftool("-Title", "-Rating", t1)
    assert (tags["Title"], tags["Rating"]) == ("saved meanwhile", 5)
    assert not list(photos.glob(".*.facetags.tmp"))
    again = _run(where, "write", f"--{mode}")  # the other program's save is what the library saw
    assert again.exit_code == 0, again.output
    (tags,) = exiftool("-Title", "-Rating", t1)
    assert (tags["Title"], tags["Rating"]) == ("saved meanwhile", 5)
    target = t1 if mode == "embed" else t1.with_name("t1.jpg.xmp")
    assert "Ann" in str(exiftool("-RegionName", target)[0]["RegionName"])


def test_a_photo_back_from_a_backup_without_its_tags_is_written_again(library: tuple[Path, Path]) -> None:
    """`status` trusted its record of what facetags wrote: a photo deleted, then copied back from
    before the write, was reported as written while it carried no name."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    untagged = t1.read_bytes()
    with Library.open(where, Settings(library=where), create=False) as lib:
        for face in lib.faces():
            if face.path == str(t1):
                lib.name(face.person_id or 0, f"P{face.face_id}")
    assert _run(where, "write", "--embed").exit_code == 0
    t1.unlink()

    def unwritten() -> int:
        with Library.open(where, Settings(library=where), create=False) as lib:
            lib.scan([photos])
            return lib.status().unwritten_xmp_photos

    assert unwritten() == 0  # gone: nothing to write to
    t1.write_bytes(untagged)  # back, from before the names were written
    assert unwritten() == 1
    again = _run(where, "write", "--embed")
    assert again.exit_code == 0 and str(t1) in again.stdout  # written again
    assert len(_regions_of(t1)) == 6
    assert unwritten() == 0
    assert _run(where, "write", "--embed").stdout.strip() == ""  # and nothing left to do


def _scanned(where: Path, photos: Path) -> tuple[int, list[str]]:
    """Scan ``photos`` again: the photos whose names are not all written, and what the scan saw."""
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        report = lib.scan([photos])
        return lib.status().unwritten_xmp_photos, sorted(k for k, v in report.counts.items() if v)


def _status(where: Path) -> dict[str, Any]:
    done = CliRunner().invoke(cli, ["--library", str(where), "status", "--json"])
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


def _copy_of_t1(photos: Path, folder: str) -> Path:
    """A byte-for-byte copy of t1.jpg in the folder ``folder`` of ``photos`` (made here)."""
    copy = photos / folder / "t1.jpg"
    copy.parent.mkdir()
    copy.write_bytes((photos / "t1.jpg").read_bytes())
    return copy


def _named_and_written(where: Path, photos: Path, name: str, scan: bool = True) -> tuple[Any, int]:
    """Scan ``photos`` again (new copies), name the first face of t1.jpg ``name`` and write
    every name: the face and its person's id."""
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        if scan:
            lib.scan([photos])
        (face, *_) = (f for f in lib.faces() if f.path == str(photos / "t1.jpg"))
        person = lib.name(face.person_id or 0, name).id
    assert _run(where, "write", "--embed").exit_code == 0
    return face, person


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Nothing can be written in ``folder`` meanwhile: immutable for root (who passes every
    permission check), read-only for anyone else."""
    if os.geteuid() == 0:
        if not shutil.which("chattr"):
            pytest.skip("as root, locking a folder needs chattr")
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)


def test_every_copy_of_a_photo_gets_its_names(library: tuple[Path, Path]) -> None:
    """A photo in several files (a copy in another folder, a backup): names went into one file,
    the first path indexed, which could be the backup; a tool showing the other saw nothing.
    Each copy now gets them, a rename reaches each, and a copy found later is reported as not
    written until the next write gives it the names."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    untagged = t1.read_bytes()
    backup = _copy_of_t1(photos, "a-backup")

    assert _scanned(where, photos)[1] == ["duplicate", "unchanged"]
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))  # its first path
        person = lib.name(face.person_id or 0, "Alice").id
        assert lib.status().unwritten_xmp_photos == 1
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Alice" in _regions_of(t1) and "Alice" in _regions_of(backup)

    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alicia")
        assert lib.status().stale_xmp_photos == 1
    assert _run(where, "write", "--embed").exit_code == 0
    for copy in (t1, backup):
        names = _regions_of(copy)
        assert "Alicia" in names and "Alice" not in names, (copy, names)

    later = photos / "z-later" / "t1.jpg"  # a third copy, from before any write
    later.parent.mkdir()
    later.write_bytes(untagged)
    unwritten, seen = _scanned(where, photos)
    assert seen == ["duplicate", "unchanged"] and unwritten == 1
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Alicia" in _regions_of(later)
    assert _scanned(where, photos)[0] == 0
    assert _run(where, "write", "--embed").stdout.strip() == ""  # nothing left to do

    # a copy of a written file carries facetags' names: known as ours, a rename reaches it
    tagged = photos / "z-tagged" / "t1.jpg"
    tagged.parent.mkdir()
    shutil.copy2(t1, tagged)
    assert _scanned(where, photos) == (1, ["duplicate", "unchanged"])
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Ally")
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "conflict" not in done.output and "another tool" not in done.output
    for copy in (t1, backup, later, tagged):
        names = _regions_of(copy)
        assert "Ally" in names and "Alicia" not in names, (copy, names)


def test_a_respelt_name_is_counted_stale_and_reaches_every_copy(library: tuple[Path, Path]) -> None:
    """ "alice smith" to "Alice Smith": status said everything was written, the regions kept the
    old spelling for ever and the keyword lists got both."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1, backup = photos / "t1.jpg", _copy_of_t1(photos, "a-backup")
    _face, person = _named_and_written(where, photos, "alice smith")
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alice Smith")
    assert _status(where)["stale_xmp_photos"] == 1
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.output, done.output
    for copy in (t1, backup):
        names = _regions_of(copy)
        assert "Alice Smith" in names and "alice smith" not in names, (copy, names)
        (report,) = exiftool("-PersonInImage", "-Subject", copy)
        assert {str(v) for v in [report["PersonInImage"], report["Subject"]]} == {"Alice Smith"}, report
    assert _status(where)["stale_xmp_photos"] == 0
    assert _run(where, "write", "--embed").stdout.strip() == ""  # nothing left to do


@pytest.mark.parametrize("folder", ["zz-locked", "a-locked"])  # written after the other copy, before
def test_a_copy_that_cannot_be_written_keeps_the_photo_unwritten_not_its_other_copy(
    library: tuple[Path, Path], folder: str
) -> None:
    """One copy is written; the other fails (its folder cannot be written), after it or before
    it: the record of the name the written one carries stays, and the photo counts as not
    written until the other copy is written too."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    locked = photos / folder
    locked.mkdir()
    copy = locked / "t1.jpg"
    original = t1.read_bytes()
    copy.write_bytes(original)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.scan([photos])
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Alice")
    with _locked(locked):
        failed = _run(where, "write", "--embed")
    assert failed.exit_code != 0 and str(copy) in failed.output
    assert "Alice" in _regions_of(t1) and "RegionInfo" not in exiftool("-RegionInfo", copy)[0]
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).xmp_name == "Alice"
        assert lib.status().unwritten_xmp_photos == 1
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Alice" in _regions_of(copy)
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.status().unwritten_xmp_photos == 0

    # the copy is deleted, then comes back from before the write: its record says "Alice", its
    # file says nothing, and it cannot be written: the photo stays unwritten, whichever file
    # the write visits first
    copy.unlink()
    assert _scanned(where, photos) == (0, ["copy_gone", "unchanged"])
    copy.write_bytes(original)
    assert _scanned(where, photos) == (1, ["duplicate", "unchanged"])
    with _locked(locked):
        assert _run(where, "write", "--embed").exit_code != 0
    assert _scanned(where, photos)[0] == 1
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Alice" in _regions_of(copy) and _scanned(where, photos)[0] == 0


def test_a_copy_that_missed_a_rename_is_put_right_and_never_imported(library: tuple[Path, Path]) -> None:
    """Both copies say "Alice"; the user renames her "Alicia" while one copy cannot be written
    (a backup drive, a locked folder). That copy still says "Alice", and the library knows it is
    facetags' own old name there: status counts it as stale, an import does not take it for
    another tool's decision (it would have moved the face to a new person "Alice"), and the next
    write puts it right. A record per face could not tell: it said "Alicia" for both."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    backup = _copy_of_t1(photos, "backup")
    face, person = _named_and_written(where, photos, "Alice")
    assert "Alice" in _regions_of(backup)

    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alicia")
    with _locked(backup.parent):
        assert _run(where, "write", "--embed").exit_code != 0
    assert "Alicia" in _regions_of(t1) and "Alice" in _regions_of(backup)  # the copy missed it
    assert _status(where)["stale_xmp_photos"] == 1

    imported = _run(where, "import", str(photos))
    assert imported.exit_code == 0, imported.output
    assert "1 stale names of facetags' own ignored" in imported.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).person_id == person
        assert not [p for p in lib.people() if p.name == "Alice"]

    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and str(backup) in done.stdout
    names = _regions_of(backup)
    assert "Alicia" in names and "Alice" not in names
    assert _status(where)["stale_xmp_photos"] == 0
    assert _run(where, "write", "--embed").stdout.strip() == ""


def test_names_follow_a_moved_copy_and_copies_that_disagree_are_a_conflict_on_import(
    library: tuple[Path, Path],
) -> None:
    """A copy written by facetags, then moved by a scan's eyes (renamed on disk): its record
    moves with it, so a rename still takes the old name back there. And two copies that another
    tool named differently: the import names the face from neither and reports it, instead of
    naming it twice (the last one winning); also when the first copy agrees with facetags."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    copy = _copy_of_t1(photos, "b")
    face, person = _named_and_written(where, photos, "Alice")
    moved = photos / "c" / "renamed.jpg"
    moved.parent.mkdir()
    copy.rename(moved)
    assert _scanned(where, photos) == (0, ["moved", "unchanged"])
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alicia")
    assert _run(where, "write", "--embed").exit_code == 0
    names = _regions_of(moved)
    assert "Alicia" in names and "Alice" not in names, names

    # another tool names a face of a fresh photo differently in its two copies
    from tests.xmp_support import tag_astronaut

    astronaut = photos / "astronaut.jpg"
    second = photos / "d" / "astronaut.jpg"
    second.parent.mkdir()
    shutil.copyfile(astronaut, second)
    tag_astronaut(second.parent, "Eileen M. Collins")
    _scanned(where, photos)
    for named_before in (False, True):
        imported = _run(where, "import", str(photos))
        assert imported.exit_code == 0, imported.output
        said = f"'Eileen Collins' in {astronaut}; 'Eileen M. Collins' in {second}"
        assert f"copies of the photo disagree ({said}); not imported" in imported.stderr
        with Library.open(where, Settings(library=where), create=False) as lib:
            (face,) = lib.photo_faces(astronaut)
            eileens = [p.name for p in lib.people() if p.name and p.name.startswith("Eileen")]
            assert eileens == (["Eileen Collins"] if named_before else [])
            assert face.person_name == ("Eileen Collins" if named_before else None)
            if not named_before:  # the first copy agrees with facetags now: the second still disagrees
                lib.name(face.person_id or 0, "Eileen Collins")


def test_a_rebuilt_library_imports_the_names_and_a_rename_then_reaches_the_photos(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """The names are in the photos (facetags wrote them); the library is rebuilt (a new
    machine, a lost file) and `xmp import` brings them back. A rename must then reach the photos:
    each imported name a photo's region carries is facetags' own there, as a write would have
    recorded. Before, the write kept every old name as "another tool's", said "up to date",
    and `status` said the names were not written, for ever."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Zoe Smith")
    assert _run(where, "write", "--embed").exit_code == 0

    rebuilt = tmp_path / "rebuilt.db"
    with Library.open(rebuilt, Settings(library=rebuilt)) as lib:
        lib.scan([photos])
    imported = _run(rebuilt, "import", str(photos))
    assert imported.exit_code == 0, imported.output
    assert "Zoe Smith" in imported.stdout and "Eileen Collins" in imported.stdout
    with Library.open(rebuilt, Settings(library=rebuilt), create=False) as lib:
        zoe = lib.person_named("Zoe Smith").id
        lib.name(zoe, "Zoé Smith-Jones")
    done = _run(rebuilt, "write", "--embed")
    assert done.exit_code == 0, done.output
    assert "another tool" not in done.stderr
    names = _regions_of(t1)
    assert "Zoé Smith-Jones" in names and "Zoe Smith" not in names, names
    assert _status(rebuilt)["unwritten_xmp_photos"] == 0
    # the astronaut's region was another tool's, and the import made it the user's decision:
    # a rename in facetags now reaches it too (as once a write had found it there)
    with Library.open(rebuilt, Settings(library=rebuilt), create=False) as lib:
        lib.name(lib.person_named("Eileen Collins").id, "Eileen M. Collins")
    assert _run(rebuilt, "write", "--embed").exit_code == 0
    assert _regions_of(photos / "astronaut.jpg") == ["Eileen M. Collins"]


def test_an_import_from_two_copies_makes_the_name_facetags_own_in_both(library: tuple[Path, Path]) -> None:
    """Another tool named the astronaut in the photo and in its copy; the import names the face
    from the first and finds the same name in the second. Both files carry the name as
    facetags' own from then on: a rename reaches both (the second was left as another tool's
    name, a conflict on every write)."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    astronaut = photos / "astronaut.jpg"  # named "Eileen Collins" by another tool (the fixture)
    copy = photos / "z" / "astronaut.jpg"
    copy.parent.mkdir()
    shutil.copyfile(astronaut, copy)
    _scanned(where, photos)
    imported = _run(where, "import", str(photos))
    assert imported.exit_code == 0 and "Eileen Collins" in imported.stdout, imported.output
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(lib.person_named("Eileen Collins").id, "Eileen M. Collins")
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
    for photo in (astronaut, copy):
        assert _regions_of(photo) == ["Eileen M. Collins"], photo


def test_names_left_in_xmp_a_write_could_not_touch_stay_facetags_own(library: tuple[Path, Path]) -> None:
    """Alice is written into the photo; the photo is then made read-only, so the rename to Bob
    goes into a sidecar and the photo's own XMP keeps "Alice". The library forgot that "Alice"
    there was facetags': `status` said all was well, every write called it another tool's, and
    once the person was un-named an import named the face Alice again. It is remembered as
    facetags' own (status counts it) until the photo can be written."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    face, person = _named_and_written(where, photos, "Alice", scan=False)
    t1.chmod(0o444)
    try:
        with Library.open(where, Settings(library=where), create=False) as lib:
            lib.name(person, "Bob")
        done = _run(where, "write", "--embed")
        assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
        assert "Alice" in _regions_of(t1) and "Bob" in _regions_of(Path(f"{t1}.xmp"))
        assert _status(where)["stale_xmp_photos"] == 1  # the photo itself still says Alice
        again = _run(where, "write", "--embed")
        assert again.exit_code == 0 and "another tool" not in again.stderr, again.output
        with Library.open(where, Settings(library=where), create=False) as lib:
            lib.unname(person)
        assert _run(where, "write", "--embed").exit_code == 0
        imported = _run(where, "import", str(photos))
        assert imported.exit_code == 0 and "Alice" not in imported.stdout, imported.output
        with Library.open(where, Settings(library=where), create=False) as lib:
            assert lib.face(face.face_id).person_name is None
    finally:
        t1.chmod(0o644)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Carol")
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Alice" not in _regions_of(t1) and _status(where)["stale_xmp_photos"] == 0


def test_the_write_summary_says_when_another_tools_name_was_kept(library: tuple[Path, Path]) -> None:
    """A face another tool named otherwise is left as it is, with a warning: the summary no
    longer counts that photo "up to date" (which, with `status` saying the names were not
    written, read as a loop with no way out) and says how to write facetags' name."""
    where, _photos = library
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        (astronaut,) = (f for f in lib.faces() if f.path.endswith("astronaut.jpg"))
        lib.name(astronaut.person_id or 0, "Sally Ride")  # the photo says Eileen Collins
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0, done.output
    assert "named 'Eileen Collins' by another tool" in done.stderr
    assert "1 photo: 0 changed, 0 up to date, 0 failed; in 1 photo another tool named a face otherwise" in (
        done.stderr
    )
    assert "--replace-names" in done.stderr.splitlines()[-1]
    (line,) = _run(where, "write", "--embed", "--json").stdout.splitlines()
    assert json.loads(line)["kept"] == 1


def test_the_write_says_which_named_photos_it_could_not_visit(library: tuple[Path, Path]) -> None:
    """A named photo that stopped reading (truncated) is kept as missing by the scan, and the
    write skipped it in silence: "51 photos" where 52 have names. It now says so."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Alice")
    whole = t1.read_bytes()
    t1.write_bytes(whole[: len(whole) // 2])
    _scanned(where, photos)
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0, done.output
    assert "1 photo with named faces not written: missing or unreadable" in done.stderr
    assert "not written" not in _run(where, "write", "--embed", "--person", "Alice").stderr
    t1.write_bytes(whole)
    _scanned(where, photos)
    again = _run(where, "write", "--embed")
    assert "not written" not in again.stderr and "Alice" in _regions_of(t1)


def test_an_edited_photo_that_kept_its_xmp_still_has_facetags_names_as_its_own(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """The user brightens a photo facetags wrote names into, in an editor that keeps the XMP:
    the scan finds new pixels and carries each face's decisions to the new faces, but what
    facetags had written into the file for them was forgotten, so a later rename met its own
    old name as "another tool's" and kept it. The record is carried with the face."""
    from PIL import Image, ImageEnhance

    from tests.xmp_support import exiftool_write

    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    _face, person = _named_and_written(where, photos, "Alice", scan=False)
    before = tmp_path / "before.jpg"
    before.write_bytes(t1.read_bytes())
    with Image.open(before) as im:
        ImageEnhance.Brightness(im.convert("RGB")).enhance(1.15).save(t1, quality=92)
    exiftool_write("-tagsFromFile", before, "-XMP:all", t1)  # the editor keeps the XMP
    assert "Alice" in _regions_of(t1)
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.person(person).faces == 1  # carried
        lib.name(person, "Alicia")
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
    names = _regions_of(t1)
    assert "Alicia" in names and "Alice" not in names, names


@pytest.mark.parametrize("edit", ["crop", "resize"])
def test_a_photo_cropped_or_resized_in_an_editor_that_kept_its_xmp_gets_no_second_region(
    library: tuple[Path, Path], tmp_path: Path, edit: str
) -> None:
    """Cropped in an editor that keeps the XMP as it was (its regions now placed for the older
    picture): facetags wrote a second region for every named face it still saw, beside its own
    misplaced one, and said "existing regions left as they are" at every write. It moves its own
    regions to their faces now and takes out its own region of a face the crop cut off (Ann:
    it kept her name and keyword in the photo, for good, and xmp import no longer read the
    photo); a resized copy (the same shape: every region still in place) gets its
    AppliedToDimensions put right with the next change."""
    from PIL import Image

    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        by_x = sorted((f for f in lib.faces() if f.path == str(t1)), key=lambda f: f.box[0])
        lib.name(by_x[0].person_id or 0, "Ann")
        bo = lib.name(by_x[1].person_id or 0, "Bo").id
    assert _run(where, "write", "--embed").exit_code == 0
    before = tmp_path / "before.jpg"
    before.write_bytes(t1.read_bytes())
    with Image.open(before) as im:
        w, h = im.size
        if edit == "crop":  # Ann is cut off
            left = int(w * (by_x[0].box[0] + by_x[0].box[2] + 0.02))
            im.convert("RGB").crop((left, 0, w, h)).save(t1, quality=92)
        else:
            im.convert("RGB").resize((w // 2, h // 2)).save(t1, quality=92)
    exiftool_write("-tagsFromFile", before, "-XMP:all", t1)  # the editor keeps the XMP
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    with Library.open(where, Settings(library=where), create=False) as lib:
        (bo_face,) = [f for f in lib.faces() if f.path == str(t1) and f.person_id == bo]
        cy = max((f for f in lib.faces() if f.path == str(t1)), key=lambda f: f.box[0])
        lib.name(cy.person_id or 0, "Cy")  # and a name to write in any case
    stored = Image.open(t1).size
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0, done.output
    (report,) = exiftool("-struct", "-RegionInfo", "-RegionInfoMP", "-XMP-dc:Subject", "-PersonInImage", t1)
    mwg = report["RegionInfo"]["RegionList"]
    mp = report["RegionInfoMP"]["Regions"]
    shown = ["Bo", "Cy"] if edit == "crop" else ["Ann", "Bo", "Cy"]  # one region each
    assert sorted(r.get("Name") for r in mwg) == shown
    assert sorted(r.get("PersonDisplayName") for r in mp) == shown
    assert sorted(report["Subject"]) == sorted(report["PersonInImage"]) == shown, report
    x, y, fw, fh = bo_face.box  # t1 has no EXIF orientation: upright is stored
    (area,) = [r["Area"] for r in mwg if r.get("Name") == "Bo"]
    assert abs(area["X"] - (x + fw / 2)) < 0.01 and abs(area["Y"] - (y + fh / 2)) < 0.01, (area, bo_face)
    (rect,) = [r["Rectangle"] for r in mp if r.get("PersonDisplayName") == "Bo"]
    assert abs(float(rect.split(",")[0]) - x) < 0.01, (rect, bo_face)
    dims = report["RegionInfo"]["AppliedToDimensions"]
    assert (dims["W"], dims["H"]) == stored
    assert "left as" not in done.stderr, done.stderr
    if edit == "crop":
        assert "MWG region 1: take out 'Ann'" in done.stdout and "MP region 1: take out 'Ann'" in done.stdout
        assert _status(where)["lost_faces"][0]["name"] == "Ann"  # the decision is still told
    else:
        assert "AppliedToDimensions" not in done.stderr, done.stderr
    again = _run(where, "write", "--embed")
    assert again.exit_code == 0 and "0 changed, 1 up to date" in again.stderr, again.output
    assert "warning" not in again.stderr, again.stderr
    for _ in range(2):  # unnamed faces too: each written once (their region read back in place)
        unnamed = _run(where, "write", "--embed", "--all-faces")
        assert unnamed.exit_code == 0 and "did not read back" not in unnamed.stderr, unnamed.output
    assert "0 changed, 2 up to date" in unnamed.stderr, unnamed.output  # astronaut too


def _three_named_and_written(where: Path, t1: Path, tmp_path: Path) -> tuple[list[Any], Path]:
    """t1's three faces named Ann, Bo and Cy from left to right and written into it; its faces
    from left to right, and a copy of t1 as written (what an editor starts from)."""
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        by_x = sorted((f for f in lib.faces() if f.path == str(t1)), key=lambda f: f.box[0])
        for face, name in zip(by_x, ("Ann", "Bo", "Cy"), strict=False):
            lib.name(face.person_id or 0, name)
    assert _run(where, "write", "--embed").exit_code == 0
    before = tmp_path / "before.jpg"
    before.write_bytes(t1.read_bytes())
    return by_x, before


def _cut_ann_off(t1: Path, before: Path, ann: Any) -> None:
    """t1 cropped (from ``before``) just right of Ann's face, by an editor that keeps the XMP."""
    from PIL import Image

    with Image.open(before) as im:
        w, h = im.size
        x, _y, fw, _fh = ann.box
        im.convert("RGB").crop((int(w * (x + fw + 0.02)), 0, w, h)).save(t1, quality=92)
    exiftool_write("-tagsFromFile", before, "-XMP:all", t1)


def _imported_anew(photos: Path, rebuilt: Path) -> set[str]:
    """The names ``xmp import`` gives people in a library made anew from ``photos``."""
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(rebuilt, Settings(library=rebuilt)) as lib:
        lib.scan([photos])
    imported = _run(rebuilt, "import", str(photos))
    assert imported.exit_code == 0 and "not read" not in imported.stderr, imported.output
    with Library.open(rebuilt, Settings(library=rebuilt), create=False) as lib:
        return {p.name for p in lib.people() if p.name}


def test_a_photo_trimmed_a_little_gets_its_regions_moved_and_its_size_and_reads_again(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """Its edges trimmed (the commonest crop), in an editor that kept the XMP: each region of
    facetags' still overlapped its face by half, so it counted as in place, was left in the
    older frame with the older size, the write said "up to date", and xmp import read nothing
    from the photo. The regions go to their faces, the size to the picture's, and a library
    rebuilt from the photo names them again."""
    from PIL import Image

    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    _by_x, before = _three_named_and_written(where, t1, tmp_path)
    with Image.open(before) as im:
        w, h = im.size
        im.convert("RGB").crop((30, 0, w - 15, h - 80)).save(t1, quality=92)
    exiftool_write("-tagsFromFile", before, "-XMP:all", t1)
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "1 changed" in done.stderr, done.output
    assert "AppliedToDimensions: 1280x886 -> 1235x806" in done.stdout, done.stdout
    (report,) = exiftool("-struct", "-RegionInfo", t1)
    assert report["RegionInfo"]["AppliedToDimensions"] == {"W": 1235, "H": 806, "Unit": "pixel"}
    with Library.open(where, Settings(library=where), create=False) as lib:
        placed = {f.person_name: f.box for f in lib.faces() if f.path == str(t1) and f.person_name}
    areas = {r["Name"]: r["Area"] for r in report["RegionInfo"]["RegionList"]}
    assert sorted(areas) == ["Ann", "Bo", "Cy"] == sorted(placed)
    for name, (x, y, fw, fh) in placed.items():
        assert abs(areas[name]["X"] - (x + fw / 2)) < 0.005 and abs(areas[name]["Y"] - (y + fh / 2)) < 0.005
    assert "0 changed, 1 up to date" in _run(where, "write", "--embed").stderr
    assert {"Ann", "Bo", "Cy"} <= _imported_anew(photos, tmp_path / "rebuilt.db")


def test_a_photo_cropped_beside_a_copy_of_the_original_loses_the_region_the_copy_keeps(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """A backup of the original beside it (the same pixels, so the old version is still on
    disk): the cropped file lost the cut-off face, the backup did not. The cropped file's region
    is taken out; the backup keeps it, and its face its name."""

    where, photos = library
    t1 = photos / "t1.jpg"
    by_x, before = _three_named_and_written(where, t1, tmp_path)
    backup = photos / "backup" / "t1.jpg"
    backup.parent.mkdir()
    shutil.copy2(t1, backup)
    assert _scanned(where, photos)[1] == ["duplicate", "unchanged"]
    _cut_ann_off(t1, before, by_x[0])
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "take out 'Ann'" in done.stdout, done.output
    assert sorted(_regions_of(t1)) == ["Bo", "Cy"]
    assert sorted(_regions_of(backup)) == ["Ann", "Bo", "Cy"]


def test_a_copy_of_a_cropped_photo_loses_the_cut_off_face_s_region_too(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """A copy of the cropped photo (made before the write) carries facetags' region of the face
    the crop cut off, as the photo does: the write takes it out of both."""

    where, photos = library
    t1 = photos / "t1.jpg"
    by_x, before = _three_named_and_written(where, t1, tmp_path)
    _cut_ann_off(t1, before, by_x[0])
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    copy = photos / "backup" / "t1.jpg"
    copy.parent.mkdir()
    shutil.copy2(t1, copy)
    assert _scanned(where, photos)[1] == ["duplicate", "unchanged"]
    bo = _run(where, "write", "--embed", "--person", "Bo")  # one person's write: not Ann's photos
    assert bo.exit_code == 0 and "take out" not in bo.stdout, bo.output
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and done.stdout.count("MWG region 1: take out 'Ann'") == 2, done.output
    for path in (t1, copy):
        assert sorted(_regions_of(path)) == ["Bo", "Cy"], path


def test_a_cropped_read_only_photo_keeps_the_cut_off_name_until_it_can_be_written(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """A cropped photo that is read-only gets its names in a sidecar; its own XMP still carries
    the cut-off face's region, and facetags forgot that it did (the record went with the write
    of the sidecar): once the photo was writable, nothing took the name out. It is taken out
    then."""

    where, photos = library
    t1 = photos / "t1.jpg"
    by_x, before = _three_named_and_written(where, t1, tmp_path)
    _cut_ann_off(t1, before, by_x[0])
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    t1.chmod(0o444)
    assert _run(where, "write", "--embed").exit_code == 0  # into a sidecar
    assert "Ann" in _regions_of(t1)
    t1.chmod(0o644)
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "take out 'Ann'" in done.stdout, done.output
    assert sorted(_regions_of(t1)) == ["Bo", "Cy"]


def test_a_face_painted_over_keeps_its_region_until_a_crop_cuts_it_off(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """A named face the detector no longer finds in an edit of the same shape (painted over
    here; a heavy filter, a retouch) may still be there: its region of facetags' stays. Once a
    later edit crops the picture, the file (moved meanwhile) is placed for the older picture and
    the region is taken out, with its keyword; a library rebuilt from the photo reads it again."""
    from PIL import Image, ImageDraw

    where, photos = library
    t1 = photos / "t1.jpg"
    by_x, before = _three_named_and_written(where, t1, tmp_path)
    with Image.open(before) as im:
        w, h = im.size
        painted = im.convert("RGB")
        x, y, fw, fh = by_x[0].box
        ImageDraw.Draw(painted).rectangle(
            (x * w - 5, y * h - 5, (x + fw) * w + 5, (y + fh) * h + 5), fill="grey"
        )
        painted.save(t1, quality=92)
    exiftool_write("-tagsFromFile", before, "-XMP:all", t1)  # the editor keeps the XMP
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    assert [lost["name"] for lost in _status(where)["lost_faces"]] == ["Ann"]
    kept = _run(where, "write", "--embed")
    assert kept.exit_code == 0 and "take out" not in kept.stdout, kept.output
    assert sorted(_regions_of(t1)) == ["Ann", "Bo", "Cy"]
    moved = photos / "t1-edited.jpg"
    t1.rename(moved)
    assert _scanned(where, photos)[1] == ["moved", "unchanged"]
    painted_copy = tmp_path / "painted.jpg"
    painted_copy.write_bytes(moved.read_bytes())
    with Image.open(painted_copy) as im:
        left = int(w * (x + fw + 0.02))
        im.convert("RGB").crop((left, 0, w, h)).save(moved, quality=92)
    exiftool_write("-tagsFromFile", painted_copy, "-XMP:all", moved)
    assert _scanned(where, photos)[1] == ["changed", "unchanged"]
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "MWG region 1: take out 'Ann'" in done.stdout, done.output
    (report,) = exiftool("-struct", "-RegionInfo", "-XMP-dc:Subject", moved)
    assert sorted(r["Name"] for r in report["RegionInfo"]["RegionList"]) == ["Bo", "Cy"]
    assert sorted(report["Subject"]) == ["Bo", "Cy"]
    assert "0 changed, 1 up to date" in _run(where, "write", "--embed").stderr
    assert {"Bo", "Cy"} <= _imported_anew(photos, tmp_path / "rebuilt.db")


@pytest.mark.parametrize(
    ("mode", "seen_by"), [("sidecar", "watcher"), ("sidecar", "scan"), ("embed", "scan")]
)
def test_a_photo_moved_without_its_sidecar_counts_as_not_written(
    library: tuple[Path, Path], mode: str, seen_by: str
) -> None:
    """``mv photo.jpg elsewhere/`` leaves its sidecar behind: the names facetags wrote there did
    not follow, yet status said every name was written (the record followed the file). The
    photo counts as not written now, and the next write puts the names beside it; names
    embedded in the file follow it, as before."""
    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Ann")
    assert _run(where, "write", f"--{mode}").exit_code == 0
    assert _status(where)["unwritten_xmp_photos"] == 0
    moved = photos / "elsewhere" / "t1-moved.jpg"
    moved.parent.mkdir()
    t1.rename(moved)  # the photo alone
    with Library.open(where, Settings(library=where), create=False) as lib:
        if seen_by == "watcher":
            assert lib.moved(t1, moved) == "moved"
        else:
            assert lib.scan([photos]).counts["moved"] == 1
    left_behind = mode == "sidecar"
    assert _status(where)["unwritten_xmp_photos"] == (1 if left_behind else 0)
    done = _run(where, "write", f"--{mode}")
    assert done.exit_code == 0, done.output
    assert _status(where)["unwritten_xmp_photos"] == 0
    if left_behind:
        assert "Ann" in _regions_of(moved.with_name("t1-moved.jpg.xmp"))
        assert (photos / "t1.jpg.xmp").exists()  # the user's file: left where it is
    else:
        assert "Ann" in _regions_of(moved) and "0 changed, 1 up to date" in done.stderr, done.stderr


@pytest.mark.parametrize("writable", [True, False])
def test_a_rename_written_to_a_sidecar_reaches_the_name_written_into_the_photo_before(
    library: tuple[Path, Path], writable: bool
) -> None:
    """Names written into the photo, then the setting changed to sidecars and a person renamed:
    the sidecar said 'Robert', the photo still 'Bob', and status asked for an `xmp write` that
    then had nothing to do, for ever. The photo is brought up to date too; a read-only photo
    keeps the old name, and the write says so."""
    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    _face, bob = _named_and_written(where, photos, "Bob", scan=False)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(bob, "Robert")
    if not writable:
        t1.chmod(0o444)
    else:  # a dry run shows the photo's update too
        dry = _run(where, "write", "--sidecar", "--dry-run")
        assert f"{t1}: MWG region" in dry.stdout and "'Bob' -> 'Robert'" in dry.stdout, dry.stdout
    done = _run(where, "write", "--sidecar")
    assert done.exit_code == 0, done.output
    sidecar = t1.with_name("t1.jpg.xmp")
    assert "Robert" in _regions_of(sidecar)
    if writable:
        assert "Robert" in _regions_of(t1) and "Bob" not in _regions_of(t1)
        assert _status(where)["stale_xmp_photos"] == 0
        again = _run(where, "write", "--sidecar")
        assert "0 changed" in again.stderr and "warning" not in again.stderr, again.stderr
    else:
        assert "Bob" in _regions_of(t1)
        assert f"{t1}: its own XMP still carries 'Bob', written there by facetags before" in done.stderr
        said = _status(where)  # the photo does say 'Bob', and no write can change that as it is
        assert (said["stale_xmp_photos"], said["stale_xmp_read_only"]) == (1, 1), said
        status = CliRunner().invoke(cli, ["--library", str(where), "status"]).stdout
        assert "1 read-only photo still carries names facetags wrote" in status, status
        assert "brings them up to date" not in status, status
        t1.chmod(0o644)  # as it says: writable, then a write
        assert _run(where, "write", "--sidecar").exit_code == 0
        assert "Bob" not in _regions_of(t1) and _status(where)["stale_xmp_photos"] == 0


def test_a_bad_region_is_said_once(library: tuple[Path, Path]) -> None:
    """A region that cannot be read (a NaN area) was said three times by xmp write (logged at
    each parse of the file, and reported) and twice by xmp import; once now."""
    where, photos = library
    (photos / "t1.jpg.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"><mwg-rs:Regions rdf:parseType="Resource">'
        '<mwg-rs:RegionList><rdf:Bag><rdf:li><rdf:Description mwg-rs:Name="Bad" mwg-rs:Type="Face">'
        '<mwg-rs:Area stArea:x="NaN" stArea:y="0.5" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/>'
        "</rdf:Description></rdf:li></rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description>"
        "</rdf:RDF></x:xmpmeta>"
    )
    _named_and_written(where, photos, "Ann", scan=False)
    for args in (["write", "--embed"], ["import", str(photos)]):
        done = subprocess.run(
            [sys.executable, "-m", "facetags", "--library", str(where), "xmp", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and done.stderr.count("not finite: 'NaN'") == 1, (args, done.stderr)


def test_a_read_only_photo_whose_names_are_in_its_sidecar_is_brought_up_to_date(
    library: tuple[Path, Path],
) -> None:
    """A read-only photo whose names facetags wrote into its sidecar only: a rename is brought
    up to date by a write (the sidecar is writable), and status says so; it told the user to
    make the photo writable first."""
    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    t1.chmod(0o444)
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        bob = lib.name(face.person_id or 0, "Bob").id
    assert _run(where, "write", "--embed").exit_code == 0  # into a sidecar: the photo is read-only
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(bob, "Robert")
    said = _status(where)
    assert (said["stale_xmp_photos"], said["stale_xmp_read_only"]) == (1, 0), said
    status = CliRunner().invoke(cli, ["--library", str(where), "status"]).stdout
    assert "'facetags xmp write' brings them up to date" in status and "writable" not in status, status
    assert _run(where, "write", "--embed").exit_code == 0
    assert "Robert" in _regions_of(t1.with_name("t1.jpg.xmp")) and _status(where)["stale_xmp_photos"] == 0


def test_a_read_only_photo_s_sidecar_is_said_on_its_line_not_in_a_warning_each(
    library: tuple[Path, Path],
) -> None:
    """A folder of read-only photos gave a warning a photo ('read-only; using a sidecar') above
    each photo's line; the line says it now, and --json keeps the warning."""
    from facetags.config import Settings
    from facetags.library import Library

    where, photos = library
    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        lib.name(face.person_id or 0, "Ann")
    t1.chmod(0o444)
    dry = _run(where, "write", "--embed", "--json", "--dry-run")
    (line,) = [r for r in map(json.loads, dry.stdout.splitlines()) if r["photo"] == str(t1)]
    assert any("read-only; using a sidecar" in w for w in line["warnings"]), line
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0, done.output
    assert f"{t1}.xmp\tsidecar (read-only photo)\tchanged: " in done.stdout, done.stdout
    assert "using a sidecar" not in done.stderr, done.stderr
    for run in (_run(where, "write", "--embed", "--dry-run"), _run(where, "write", "--embed")):
        assert "using a sidecar" not in run.stderr and "1 up to date" in run.stderr, run.output


def test_an_old_copy_back_at_another_path_keeps_no_old_name(library: tuple[Path, Path]) -> None:
    """A backup written "Alice" is unplugged; she is renamed "Alicia" and the photo written; the
    backup comes back at another mount point, still saying "Alice". That name is facetags' own
    (it wrote it for this face, in another file): the import did not know and moved the face to
    a new person "Alice", and a write kept it as another tool's. Now the import ignores it as
    stale, status says the copy needs a write, and the write puts "Alicia" there."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    drive = _copy_of_t1(photos, "Backup")
    face, person = _named_and_written(where, photos, "Alice")
    written = drive.read_bytes()  # the backup, as it was when it was unplugged
    shutil.rmtree(drive.parent)
    assert _scanned(where, photos) == (0, ["copy_gone", "unchanged"])
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alicia")
    assert _run(where, "write", "--embed").exit_code == 0
    back = photos / "Backup1" / "t1.jpg"  # the drive, mounted elsewhere
    back.parent.mkdir()
    back.write_bytes(written)
    assert "Alice" in _regions_of(back)
    assert _scanned(where, photos) == (1, ["duplicate", "unchanged"])

    imported = _run(where, "import", str(photos))
    assert imported.exit_code == 0, imported.output
    assert "1 stale names of facetags' own ignored" in imported.stderr and "disagree" not in imported.stderr
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).person_id == person
        assert [p.name for p in lib.people() if p.name and p.name.startswith("Ali")] == ["Alicia"]
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
    names = _regions_of(back)
    assert "Alicia" in names and "Alice" not in names, names
    assert _scanned(where, photos)[0] == 0


def test_a_person_s_write_leaves_a_new_copy_counted_as_not_written(library: tuple[Path, Path]) -> None:
    """A new copy of a photo with Alice and Bob: `xmp write --person Alice` writes Alice into
    it, not Bob, and a run stopped after the first file writes nothing into the copy. Either
    way `status` said every name was written (the photo was marked verified after one file).
    Only a write of every face, into every file of the photo, marks it so."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        alice, bob, *_ = (f for f in lib.faces() if f.path == str(t1))
        lib.name(alice.person_id or 0, "Alice")
        lib.name(bob.person_id or 0, "Bob")
    assert _run(where, "write", "--embed").exit_code == 0
    copy = photos / "z-copy" / "t1.jpg"
    copy.parent.mkdir()
    copy.write_bytes(t1.read_bytes())  # written: it has Alice and Bob; unverified all the same
    assert _scanned(where, photos) == (1, ["duplicate", "unchanged"])
    with Library.open(where, Settings(library=where), create=False) as lib:
        stop = threading.Event()  # stopped after the first file, t1.jpg: the copy is not visited
        done = lib.write_xmp(lib.xmp_options(mode="embed"), progress=lambda _r: stop.set(), stop=stop)
        assert [r.photo for r in done] == [t1]
    assert _scanned(where, photos)[0] == 1
    assert _run(where, "write", "--embed", "--person", "Alice").exit_code == 0
    assert _scanned(where, photos)[0] == 1
    assert _run(where, "write", "--embed").exit_code == 0
    assert _scanned(where, photos)[0] == 0
    assert {"Alice", "Bob"} <= set(_regions_of(copy))


def test_a_renamed_folder_keeps_what_facetags_wrote_in_its_files(library: tuple[Path, Path]) -> None:
    """The watcher sees a folder renamed (Library.folder_moved): each file's record moves with
    it, so status does not take the moved files for unwritten, and a rename reaches them."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    folder = photos / "trip"
    folder.mkdir()
    (folder / "t1.jpg").write_bytes((photos / "t1.jpg").read_bytes())
    (photos / "t1.jpg").unlink()
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.scan([photos])
        (face, *_) = lib.photo_faces(folder / "t1.jpg")
        person = lib.name(face.person_id or 0, "Alice").id
    assert _run(where, "write", "--embed").exit_code == 0
    renamed = photos / "trip 2019"
    folder.rename(renamed)
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.folder_moved(folder, renamed) == 1
        assert lib.status().unwritten_xmp_photos == 0
        lib.name(person, "Alicia")
        assert lib.status().stale_xmp_photos == 1
    assert _run(where, "write", "--embed").exit_code == 0
    names = _regions_of(renamed / "t1.jpg")
    assert "Alicia" in names and "Alice" not in names


_KILLED_WRITE = """
import os, signal, sys
from facetags.xmp import write
real, when = write.atomic_update, sys.argv[2]
def killed(*args, **kwargs):
    if when == "after":
        real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
write.atomic_update = killed
from facetags.cli import main
sys.argv = ["facetags", "--library", sys.argv[1], "xmp", "write", "--embed"]
main()
"""


@pytest.mark.parametrize("when", ["before", "after"])  # the kill: before the file is replaced, after
def test_a_rename_killed_mid_write_leaves_both_names_facetags_own(
    library: tuple[Path, Path], when: str
) -> None:
    """Alice is written, then renamed Alicia, and `xmp write` is killed (-9) while it replaces
    the photo. Killed after, the file said "Alicia" while the library knew only "Alice" as
    facetags' there: a later rename met "Alicia" as another tool's (kept for good) and an import
    moved the face to a new person "Alicia". Killed before, the library recorded "Alicia" as
    written and `status` said every name was written. Both names are now facetags' own there,
    the photo counts as not written, and the next write puts it right."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    face, person = _named_and_written(where, photos, "Alice", scan=False)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alicia")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, str(where), when], env=env, capture_output=True
    )
    assert killed.returncode == -9, killed.stderr
    assert ("Alicia" if when == "after" else "Alice") in _regions_of(t1)
    assert _status(where)["unwritten_xmp_photos"] == 1
    imported = _run(where, "import", str(photos))
    assert imported.exit_code == 0 and "Alicia\t" not in imported.stdout, imported.output
    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.face(face.face_id).person_id == person
        lib.name(person, "Ally")
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
    names = _regions_of(t1)
    assert "Ally" in names and not {"Alice", "Alicia"} & set(names), names
    assert _status(where)["unwritten_xmp_photos"] == 0 and _status(where)["stale_xmp_photos"] == 0


def test_a_person_s_write_leaves_its_photos_written_and_ctrl_c_keeps_the_claim(
    library: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name about to be written marks the photo not written, in case the run is killed; a
    `--person` write (the TUI's `x` too) that then writes every file of it must leave it as it
    was, or `status` said "not written" after every such write. And Ctrl-C just after the file
    was replaced keeps the name it now carries as facetags' own (it was taken back, and a
    rename then met the name as another tool's)."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library
    from facetags.xmp import write

    t1 = photos / "t1.jpg"
    face, person = _named_and_written(where, photos, "Alice", scan=False)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Ally")
    assert _run(where, "write", "--embed", "--person", "Ally").exit_code == 0
    assert _status(where)["unwritten_xmp_photos"] == 0 and _status(where)["stale_xmp_photos"] == 0

    real = write.atomic_update

    def interrupted(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C while the folder is synced, after the replace

    monkeypatch.setattr(write, "atomic_update", interrupted)
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alys")
        with pytest.raises(KeyboardInterrupt):
            lib.write_xmp(lib.xmp_options(mode="embed"))
        assert "Alys" in _regions_of(t1)
        (here,) = (r for r in lib.store.face_files([lib.face(face.face_id)]) if r.path == str(t1))
        assert set(here.xmp_written) == {"Ally", "Alys"}
    monkeypatch.undo()
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.name(person, "Alyssa")
    done = _run(where, "write", "--embed")
    assert done.exit_code == 0 and "another tool" not in done.stderr, done.output
    assert "Alyssa" in _regions_of(t1) and _status(where)["unwritten_xmp_photos"] == 0


def test_a_name_another_tool_puts_back_after_facetags_took_it_out_is_that_tool_s(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """facetags wrote "Alice", then took her out of the photo (the user moved the face to a
    cluster of its own); another tool names the face "Alice" again. That name is the other
    tool's now: an import brings it in, and a write leaves it."""
    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with Library.open(where, Settings(library=where), create=False) as lib:
        (face, *_) = (f for f in lib.faces() if f.path == str(t1))
        alice = lib.name(face.person_id or 0, "Alice").id
    assert _run(where, "write", "--embed").exit_code == 0
    with Library.open(where, Settings(library=where), create=False) as lib:
        lib.reject(face.face_id, alice)
    assert "take back 'Alice'" in _run(where, "write", "--embed").stdout
    (report,) = exiftool("-struct", "-RegionInfo", t1)  # another tool names the region again
    region = next(r for r in report["RegionInfo"]["RegionList"] if not r.get("Name"))
    region["Name"] = "Alice"
    edit = tmp_path / "edit.json"
    edit.write_text(json.dumps([{"SourceFile": str(t1), "RegionInfo": report["RegionInfo"]}]))
    exiftool_write(f"-json={edit}", t1)
    assert "Alice" in _regions_of(t1)
    imported = _run(where, "import", str(photos))
    assert imported.exit_code == 0, imported.output
    assert "stale" not in imported.stderr
    done = _run(where, "write", "--embed")
    assert "take back 'Alice'" not in done.stdout and "Alice" in _regions_of(t1)


def test_write_refuses_a_photo_reindexed_as_another_during_the_run(library: tuple[Path, Path]) -> None:
    """A watcher re-indexes a replaced file while a long `xmp write` runs: the names the run
    began with are the old photo's, and are not written into the new pixels."""
    from PIL import Image

    where, photos = library
    from facetags.config import Settings
    from facetags.library import Library

    t1 = photos / "t1.jpg"
    with (
        Library.open(where, Settings(library=where), create=False) as lib,
        Library.open(where, Settings(library=where), create=False) as watcher,
    ):
        for face in lib.faces():
            named = f"P{face.face_id}" if face.path == str(t1) else "Eileen Collins"
            lib.name(face.person_id or 0, named)

        def meanwhile(result: Any) -> None:
            if result.photo.name == "astronaut.jpg":  # visited first (sorted): t1 is next
                Image.new("RGB", (640, 480), (128, 128, 128)).save(t1)
                assert watcher.index_photo(t1) == "new"  # another picture: t1's photo is kept as missing

        results = lib.write_xmp(lib.xmp_options(mode="embed"), progress=meanwhile)
        (refused,) = [r for r in results if r.photo == t1]
        assert refused.error is not None and "changed since the last scan" in refused.error
        assert "RegionName" not in exiftool("-RegionName", t1)[0]
        assert lib.status().unwritten_xmp_photos == 0  # its new pixels show no one named


def test_import_reads_a_symlinked_photo_whose_file_is_elsewhere(
    library: tuple[Path, Path], tmp_path: Path
) -> None:
    """A folder of links to photos kept elsewhere: the scan indexes them under the folder, and
    `xmp import FOLDER` reads them (it resolved each link and left them out)."""
    from PIL import Image

    where, photos = library
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with Image.open(photos / "astronaut.jpg") as im:  # other pixels, the same face in place
        im.save(outside / "astronaut.jpg", quality=80)
    tag_astronaut(outside, "Sally Ride")
    links = photos / "links"
    links.mkdir()
    (links / "sally.jpg").symlink_to(outside / "astronaut.jpg")
    from facetags.config import Settings
    from facetags.library import Library

    with Library.open(where, Settings(library=where), create=False) as lib:
        assert lib.scan([photos]).counts["new"] == 1
    done = _run(where, "import", str(links))
    assert done.exit_code == 0, done.output
    assert "Sally Ride" in done.stdout and str(links / "sally.jpg") in done.stdout
