"""The user's decisions survive what the disk and the models do (the fault-injection cases).

Each test names the case it covers, as the reliability report numbered them:

* case 2: a model file that changes (same network, new hash) re-embeds but moves no named face;
* case 3: a photo that briefly cannot be read (truncated, then restored) keeps its faces and names;
* case 4: a folder moved out of the scanned root (a NAS offline) is missing, not deleted, and
  comes back whole; ``facetags forget`` is the only way its faces go;
* case 5: an EXIF orientation change (and back) is the same photo: a rejection stays.

Real photos, real files, a real SQLite library; exiftool for the orientation tag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from facetags.cli import cli
from facetags.config import Settings
from facetags.library import Library
from facetags.paths import models_dir
from facetags.vision.specs import get_spec, sha256_file
from tests.library_support import OpenLibrary, copy, lfw

pytestmark = pytest.mark.shared_data

MODEL = Settings().embedder  # the default embedder, the one a library uses unless told


def named_faces(lib: Library) -> dict[str, set[int]]:
    """Named person -> the ids of its faces."""
    out: dict[str, set[int]] = {}
    for face in lib.faces():
        if face.person_name:
            out.setdefault(face.person_name, set()).add(face.face_id)
    return out


def name_everyone(lib: Library, photo: Path, prefix: str) -> dict[str, set[int]]:
    """Name the person of each face in ``photo``; returns named person -> faces."""
    for i, face in enumerate(lib.photo_faces(photo)):
        assert face.person_id is not None
        lib.name(face.person_id, f"{prefix} {i}")
    return named_faces(lib)


# -- case 3: a photo that briefly cannot be read ----------------------------------------------


def test_case3_truncated_then_restored_photo_keeps_faces_and_names(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    photos = tmp_path / "photos"
    photo = copy(shared_data / "bbt" / "groups" / "bbt1.jpg", photos / "bbt1.jpg")
    original = photo.read_bytes()
    lib = open_library()
    lib.scan([photos])
    before = name_everyone(lib, photo, "Cast")
    assert len(before) >= 2

    photo.write_bytes(original[:5000])  # a sync tool half way through, a disk hiccup
    report = lib.scan([photos])
    assert report.counts["failed"] == 1
    assert named_faces(lib) == before  # nothing lost while it cannot be read
    (missing,) = lib.status().missing
    assert missing.path == str(photo) and missing.named_faces == sum(len(f) for f in before.values())
    assert "truncated" in missing.reason or "decode" in missing.reason

    photo.write_bytes(original)  # the same bytes again
    report = lib.scan([photos])
    assert report.counts["restored"] == 1 and report.counts["new"] == 0
    assert named_faces(lib) == before
    assert lib.status().missing == [] and lib.status().failures == []
    assert lib.find(["Cast 0"]) == [str(photo)]


def test_case3_unreadable_photo_edited_meanwhile_carries_its_names(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Unreadable for a while, then back with new pixels (an editor's slow save): the faces of
    the new version take the old faces' places, as for any edit."""
    from PIL import Image

    photos = tmp_path / "photos"
    photo = copy(shared_data / "bbt" / "groups" / "bbt1.jpg", photos / "bbt1.jpg")
    original = photo.read_bytes()
    lib = open_library()
    lib.scan([photos])
    before = name_everyone(lib, photo, "Cast")

    photo.write_bytes(original[:5000])
    lib.scan([photos])
    with Image.open(shared_data / "bbt" / "groups" / "bbt1.jpg") as im:
        im.convert("RGB").save(photo, quality=80)  # new pixels, same people in the same places
    report = lib.scan([photos])
    assert report.counts["changed"] == 1
    after = named_faces(lib)
    assert set(after) == set(before)
    assert all(len(after[n]) == len(before[n]) for n in before)
    assert lib.status().missing == []


# -- case 4: a folder moved out of the scanned root, or a drive offline -------------------------


def test_case4_folder_moved_out_and_back_keeps_names(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    root = tmp_path / "Pictures"
    trip = root / "trip"
    for n in (1, 2, 3):
        copy(lfw(shared_data, "George_W_Bush", n), trip / f"bush{n}.jpg")
    copy(shared_data / "bbt" / "groups" / "bbt2.jpg", root / "home" / "bbt2.jpg")
    lib = open_library()
    lib.scan([root])
    bush = lib.photo_faces(trip / "bush1.jpg")[0]
    assert bush.person_id is not None
    lib.name(bush.person_id, "George")
    lib.set_assignment(lib.photo_faces(trip / "bush2.jpg")[0].face_id, lib._resolve(bush.person_id))
    before = named_faces(lib)

    away = tmp_path / "elsewhere" / "trip"
    away.parent.mkdir()
    trip.rename(away)  # moved out of the scanned root (or the NAS share went offline)
    report = lib.scan([root])
    assert report.counts["deleted"] == 3
    assert named_faces(lib) == before
    missing = lib.status().missing
    assert sorted(m.path for m in missing) == sorted(str(trip / f"bush{n}.jpg") for n in (1, 2, 3))
    assert lib.find(["George"]) == []  # not on disk: find lists only photos you can open

    away.rename(trip)  # back
    report = lib.scan([root])
    assert report.counts["restored"] == 3 and report.counts["new"] == 0
    assert named_faces(lib) == before
    assert lib.status().missing == []
    assert len(lib.find(["George"])) >= 2


def test_case4_forget_is_the_only_way_missing_faces_go(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    root = tmp_path / "Pictures"
    copy(lfw(shared_data, "George_W_Bush", 1), root / "a" / "bush1.jpg")
    copy(lfw(shared_data, "Colin_Powell", 1), root / "b" / "powell1.jpg")
    lib = open_library()
    lib.scan([root])
    faces = len(lib.faces())
    shutil.rmtree(root / "a")
    lib.scan([root])
    lib.scan([root])  # scanning again changes nothing
    assert len(lib.faces()) == faces
    assert lib.forget([root / "b"]) == []  # a photo still on disk is never forgotten
    gone = lib.forget([root / "a"])
    assert [m.path for m in gone] == [str(root / "a" / "bush1.jpg")]
    assert len(lib.faces()) == faces - 1
    assert lib.status().missing == []


def test_forget_drops_paths_under_a_folder_no_scan_covers_any_more(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Copies in a folder scanned once (a memory card, a second disk) that is then removed:
    no scan of the other folders sees those paths go, `status` did not list them and `forget
    FOLDER` said it "holds no missing photo": `find` showed dead paths for ever. `forget` now
    drops the indexed paths under a path gone from disk; the photos, at their other paths,
    keep their faces and names."""
    root = tmp_path / "Pictures"
    copy(lfw(shared_data, "George_W_Bush", 1), root / "bush1.jpg")
    copy(lfw(shared_data, "Colin_Powell", 1), root / "powell1.jpg")
    card = tmp_path / "card"
    shutil.copytree(root, card)
    lib = open_library()
    lib.scan([root])
    (bush,) = lib.photo_faces(root / "bush1.jpg")
    lib.name(bush.person_id or 0, "George")
    assert lib.scan([card]).counts["duplicate"] == 2
    assert sorted(lib.find(["George"])) == sorted([str(card / "bush1.jpg"), str(root / "bush1.jpg")])
    shutil.rmtree(card)
    lib.scan([root])
    forgot = CliRunner().invoke(cli, ["--library", str(lib.path), "forget", str(card)])
    assert forgot.exit_code == 0, forgot.output
    assert "2 indexed paths no longer on disk dropped" in forgot.stderr
    assert "forgot 0 missing photos" in forgot.stderr and "holds no missing photo" not in forgot.stderr
    assert lib.find(["George"]) == [str(root / "bush1.jpg")]
    assert lib.status().missing == [] and lib.status().photos == 2
    assert lib.store.file_by_path(str(card / "powell1.jpg")) is None


def test_a_folder_scanned_again_through_a_link_is_not_indexed_twice(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """The folder scanned once as it is and once through a symbolic link to it (~/Pictures and
    the NAS path it points to): every photo got a second path, as if it were a copy, `find`
    listed each twice and names were written twice into one file. The same file reached
    through a link is indexed once; once the link's paths are the only ones and the link goes,
    the photos move to their real paths, names and all."""
    root = tmp_path / "Pictures"
    copy(lfw(shared_data, "George_W_Bush", 1), root / "bush1.jpg")
    copy(lfw(shared_data, "Colin_Powell", 1), root / "powell1.jpg")
    link = tmp_path / "PicLink"
    link.symlink_to(root)
    lib = open_library()
    lib.scan([root])
    (bush,) = lib.photo_faces(root / "bush1.jpg")
    lib.name(bush.person_id or 0, "George")
    report = lib.scan([link])
    assert report.counts["linked"] == 2 and report.counts["duplicate"] == 0
    assert "2 skipped (reached through a link" in report.describe()
    assert lib.find(["George"]) == [str(root / "bush1.jpg")]
    assert lib.scan([root]).counts["unchanged"] == 2

    other = open_library(tmp_path / "other.db")  # indexed through the link first
    other.scan([link])
    (bush,) = other.photo_faces(link / "bush1.jpg")
    other.name(bush.person_id or 0, "George")
    assert other.scan([root]).counts["linked"] == 2
    link.unlink()
    assert other.scan([root]).counts["moved"] == 2
    assert other.find(["George"]) == [str(root / "bush1.jpg")]

    # the folder and a link to it in one scan (or one watcher), either order
    link.symlink_to(root)
    for n, roots in enumerate([[root, link], [link, root]]):
        both = open_library(tmp_path / f"both{n}.db")
        report = both.scan(roots)
        assert (report.counts["new"], report.counts["linked"], report.counts["duplicate"]) == (2, 2, 0)
        assert both.status().photos == 2 and len(both.store.files_under(str(tmp_path))) == 2
    copy(lfw(shared_data, "Colin_Powell", 2), root / "powell2.jpg")  # what the watcher is told
    assert both.index_photo(root / "powell2.jpg") == "new"
    assert both.index_photo(link / "powell2.jpg") == "linked"
    assert both.status().photos == 3 and len(both.store.files_under(str(tmp_path))) == 3


def test_case4_watcher_deletion_keeps_the_photo_as_missing(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """What the watcher calls when a file or folder disappears."""
    root = tmp_path / "Pictures"
    photo = copy(lfw(shared_data, "George_W_Bush", 1), root / "sub" / "bush1.jpg")
    lib = open_library()
    lib.scan([root])
    (face,) = lib.photo_faces(photo)
    assert face.person_id is not None
    lib.name(face.person_id, "George")
    moved = tmp_path / "away.jpg"
    photo.rename(moved)
    assert lib.index_photo(photo) == "deleted"
    shutil.rmtree(root / "sub")
    lib.folder_deleted(root / "sub")
    assert named_faces(lib) == {"George": {face.face_id}}
    copy(moved, root / "other" / "bush1.jpg")
    assert lib.index_photo(root / "other" / "bush1.jpg") == "moved"
    assert named_faces(lib) == {"George": {face.face_id}}
    assert lib.status().missing == []


def test_case4_cli_status_and_forget(tmp_path: Path, shared_data: Path) -> None:
    """The user's side: ``status`` says what is missing and since when; ``forget`` drops it."""
    root = tmp_path / "Pictures"
    copy(lfw(shared_data, "George_W_Bush", 1), root / "nas" / "bush1.jpg")
    on_disk = root / "home" / "bush2.jpg"
    copy(lfw(shared_data, "George_W_Bush", 2), on_disk)
    db = tmp_path / "lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db)}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "facetags", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert (done.returncode == 0) == ok, done.stderr
        assert "Traceback" not in done.stderr
        return done

    cli("scan", str(root))
    shutil.rmtree(root / "nas")
    cli("scan", str(root))
    status = cli("status").stdout
    assert "missing   1 photo not on disk" in status and str(root / "nas" / "bush1.jpg") in status
    assert json.loads(cli("status", "--json").stdout)["missing"][0]["faces"] == 1
    assert "--all" in cli("forget", ok=False).stderr  # nothing forgotten by accident
    kept = cli(
        "forget", str(on_disk), ok=False
    ).stderr  # a photo on disk is never forgotten: it says so, exit 1
    assert f"{on_disk} is on disk: only photos gone from disk are forgotten" in kept
    assert "forgot 0 missing photos" in kept
    folder = cli("forget", str(on_disk.parent), ok=False).stderr
    assert f"{on_disk.parent} holds no missing photo" in folder
    several = cli("forget", str(root / "nas"), str(on_disk), str(root / "typo.jpg"), ok=False)
    assert "forgot 1 missing photo (1 face" in several.stderr  # done where there was something,
    assert f"{on_disk} is on disk" in several.stderr and f"{root / 'typo.jpg'} holds no" in several.stderr
    assert json.loads(cli("status", "--json").stdout)["missing"] == []
    assert json.loads(cli("forget", "--json", str(root / "nas"), ok=False).stdout) == []
    assert "forgot 0 missing photos" in cli("forget", "--all").stderr  # nothing left: not an error
    assert "no lost face to forget" in cli("forget", "--lost").stderr


def test_forget_keeps_a_photo_in_a_folder_it_cannot_look_into(tmp_path: Path, shared_data: Path) -> None:
    """``forget PATH`` took a photo whose folder it could not read (permissions) for one gone
    from disk, and dropped it with its faces and names; it keeps it now, and says why."""
    from tests.process_support import without_read_override

    root = tmp_path / "Pictures"
    photo = copy(lfw(shared_data, "George_W_Bush", 1), root / "locked" / "bush1.jpg")
    db = tmp_path / "lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db)}
    prefix = without_read_override()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", "facetags", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    assert cli("scan", str(root)).returncode == 0
    with Library.open(db, Settings(library=db), create=False) as lib:
        lib.name(lib.faces()[0].person_id or 0, "George")
    (root / "locked").chmod(0)
    try:
        done = cli("forget", str(photo))
    finally:
        (root / "locked").chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{photo} cannot be looked at" in done.stderr and "forgot 0 missing photos" in done.stderr
    with Library.open(db, Settings(library=db), create=False) as lib:
        assert [p.name for p in lib.people() if p.name] == ["George"] and len(lib.faces()) == 1


# -- case 5: an orientation change and back ----------------------------------------------------


def exiftool_orientation(path: Path, value: int) -> None:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed")
    subprocess.run(["exiftool", "-q", "-overwrite_original", f"-Orientation#={value}", str(path)], check=True)


def test_case5_orientation_change_and_back_keeps_a_rejection(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    photos = tmp_path / "photos"
    for n in (1, 2, 3, 4):
        copy(lfw(shared_data, "George_W_Bush", n), photos / f"bush{n}.jpg")
    lib = open_library()
    lib.scan([photos])
    target = photos / "bush1.jpg"
    (face,) = [f for f in lib.photo_faces(target) if f.box[2] > 0.2]  # the centred face
    assert face.person_id is not None
    person = lib._resolve(face.person_id)
    lib.name(person, "George")
    lib.reject(face.face_id, person)
    box = face.box

    exiftool_orientation(target, 8)  # rotate 90° counter-clockwise, by the tag alone
    report = lib.scan([photos])
    assert report.counts["reoriented"] == 1
    turned = lib.face(face.face_id)  # the same face, turned with the photo
    assert turned.box == pytest.approx((box[1], 1 - box[0] - box[2], box[3], box[2]), abs=1e-6)
    assert (turned.width, turned.height) == (face.height, face.width)
    assert person in lib.rejected_people(face.face_id)
    assert turned.person_id is None or lib._resolve(turned.person_id) != person

    exiftool_orientation(target, 1)  # and back
    report = lib.scan([photos])
    assert report.counts["reoriented"] == 1
    back = lib.face(face.face_id)
    assert back.box == pytest.approx(box, abs=1e-6)
    assert person in lib.rejected_people(face.face_id)
    assert back.person_id is None or lib._resolve(back.person_id) != person


# -- case 2: a model change moves no named face --------------------------------------------------


def doc_string_model(folder: Path) -> str:
    """The shipped model with another ONNX doc_string: the same vectors, a new file hash, and (as
    for any new file) no calibrated threshold. Returns its versioned id."""
    import onnx

    shipped = get_spec(MODEL)
    model = onnx.load(str(shipped.path()))
    model.doc_string = "re-exported"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL}.onnx"
    onnx.save(model, str(path))
    data = json.loads((models_dir() / f"{MODEL}.json").read_text(encoding="utf-8"))
    data.update(sha256=sha256_file(path), file=path.name)
    (folder / f"{MODEL}.json").write_text(json.dumps(data), encoding="utf-8")
    return get_spec(MODEL, folder).version_id


def test_case2_model_change_moves_no_named_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models: tuple[Any, Any], shared_data: Path
) -> None:
    pytest.importorskip("onnx")
    photos = tmp_path / "photos"
    for i, image in enumerate(sorted((shared_data / "deepface" / "photos").glob("img*.jpg"))[:24]):
        copy(image, photos / f"{i:02d}.jpg")
    copy(shared_data / "bbt" / "groups" / "bbt1.jpg", photos / "bbt1.jpg")
    where = tmp_path / "library.db"
    with Library.open(where, Settings(library=where), detector=models[0]) as lib:
        lib.scan([photos])
        people = [p for p in lib.people() if p.faces >= 2][:3]
        assert len(people) == 3
        for i, p in enumerate(people):
            lib.name(p.id, f"Person {i}")
        extra = next(f for f in lib.faces() if f.person_id not in {p.id for p in people})
        lib.set_assignment(extra.face_id, people[0].id)  # the user adds a face by hand
        before = named_faces(lib)
        faces_before = len(lib.faces())

    new_id = doc_string_model(tmp_path / "models")
    monkeypatch.setenv("FACETAGS_MODELS_DIR", str(tmp_path / "models"))
    with Library.open(where, Settings(library=where), detector=models[0]) as lib:
        assert lib.pipeline.model_id == new_id
        report = lib.scan([photos])
        assert report.reembedded == faces_before
        assert lib.store.embedding_models() == {new_id: faces_before}
        assert named_faces(lib) == before  # no named face left its person, no stranger joined


# -- a path that shows another photo: renamed over, replaced, reused ---------------------------


def _keep_as_missing_since(lib: Library, path: Path, seconds_ago: float) -> None:
    """As if ``path`` had gone from disk ``seconds_ago`` (a scan that long ago saw it go)."""
    with lib.store.write():
        lib.store.conn.execute(
            "UPDATE missing SET since = since - ? WHERE path = ?", (seconds_ago, str(path))
        )


def test_a_photo_renamed_then_rewritten_is_indexed_again(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Renamed, then written to (another picture saved under the new name) before the watcher
    handled the rename (busy, or during its catch-up scan, which handles renames at its end):
    the new path kept the old photo's faces for good and every scan said "unchanged". It is
    read again; another picture there leaves the photo it showed missing, names and all."""
    root = tmp_path / "Pictures"
    a = copy(lfw(shared_data, "George_W_Bush", 1), root / "A.jpg")
    lib = open_library()
    lib.scan([root])
    (george,) = lib.photo_faces(a)
    lib.name(george.person_id or 0, "George")
    b = root / "B.jpg"
    a.rename(b)
    b.write_bytes(lfw(shared_data, "Colin_Powell", 1).read_bytes())  # same file, new pixels
    assert lib.moved(a, b) == "new"  # another picture: George's photo is kept as missing
    (now,) = lib.photo_faces(b)
    assert now.face_id != george.face_id and now.person_name != "George"
    assert lib.scan([root]).counts["unchanged"] == 1
    assert [(m.path, m.named_faces) for m in lib.status().missing] == [(str(b), 1)]
    assert lib.status().lost_faces == []


def test_a_photo_renamed_over_another_keeps_the_other_as_missing(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """``mv A.jpg B.jpg`` over an indexed B.jpg, or a folder replaced by another of its name:
    the photo B showed lost its path and was listed nowhere (not on disk, not missing, never
    forgettable) while its people kept its faces. It is kept as missing, names and all."""
    root = tmp_path / "Pictures"
    a = copy(lfw(shared_data, "George_W_Bush", 1), root / "A.jpg")
    b = copy(lfw(shared_data, "Colin_Powell", 1), root / "B.jpg")
    album = copy(lfw(shared_data, "Tony_Blair", 1), root / "Album" / "blair.jpg").parent
    new_album = copy(lfw(shared_data, "Gerhard_Schroeder", 1), root / "Album.new" / "schroeder.jpg").parent
    lib = open_library()
    lib.scan([root])
    for photo, name in ((b, "Colin"), (album / "blair.jpg", "Tony")):
        (face,) = lib.photo_faces(photo)
        lib.name(face.person_id or 0, name)

    a.rename(b)
    assert lib.moved(a, b) == "moved"
    shutil.rmtree(album)
    new_album.rename(album)
    assert lib.folder_moved(new_album, album) == 1
    missing = {m.path: m for m in lib.status().missing}
    assert sorted(missing) == [str(album / "blair.jpg"), str(b)]
    assert all(m.named_faces == 1 for m in missing.values())
    forgot = CliRunner().invoke(cli, ["--library", str(lib.path), "forget", str(b)])
    assert forgot.exit_code == 0 and "forgot 1 missing photo (1 face, 1 of named people)" in forgot.stderr
    assert [m.path for m in lib.status().missing] == [str(album / "blair.jpg")]


def test_a_new_photo_at_a_missing_photo_s_path_leaves_it_missing(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Photos moved off to an archive disk (missing), then a card reusing IMG_0001.jpg: the new
    picture was taken for an edit of the missing one, whose faces and names went. Another photo
    at its path (with none of its faces, or gone a while ago) leaves it missing, and once found
    again it is whole; what an editor writes moments after it deleted the file is an edit."""
    root = tmp_path / "Pictures"
    photos = [copy(shared_data / "bbt" / "groups" / f"bbt{n}.jpg", root / f"IMG_000{n}.jpg") for n in (1, 2)]
    lib = open_library()
    lib.scan([root])
    for n, photo in enumerate(photos):
        name_everyone(lib, photo, f"Friend {n}")
    before = named_faces(lib)
    archive = tmp_path / "archive"
    archive.mkdir()
    for photo in photos:
        photo.rename(archive / photo.name)
    lib.scan([root])
    from PIL import Image

    _keep_as_missing_since(lib, photos[1], 3600)  # gone an hour ago
    copy(lfw(shared_data, "Colin_Powell", 1), photos[0])  # at once, with none of its faces
    with Image.open(archive / photos[1].name) as im:  # its faces, but an hour later
        im.crop((0, 0, im.width, im.height * 9 // 10)).save(photos[1], quality=95)
    report = lib.scan([root])
    assert report.counts["new"] == 2 and report.counts["changed"] == 0, report.describe()
    assert sorted(m.path for m in lib.status().missing) == [str(p) for p in photos]
    assert lib.status().lost_faces == []
    assert all(faces <= named_faces(lib)[name] for name, faces in before.items())
    # a name reused with no scan in between: the photo indexed there is kept as missing too
    third = copy(shared_data / "bbt" / "groups" / "bbt3.jpg", root / "IMG_0003.jpg")
    lib.scan([root])
    name_everyone(lib, third, "Third")
    third.rename(archive / third.name)
    copy(lfw(shared_data, "George_W_Bush", 1), third)
    report = lib.scan([root])
    assert report.counts["new"] == 1 and report.counts["changed"] == 0, report.describe()
    assert str(third) in [m.path for m in lib.status().missing] and lib.status().lost_faces == []
    before = named_faces(lib)
    third.unlink()
    lib.scan([root])
    photos[0].unlink()  # a second photo missing at IMG_0001.jpg: both kept
    lib.scan([root])
    assert sorted(m.path for m in lib.status().missing) == sorted(
        [str(photos[0]), *map(str, photos), str(third), str(third)]
    )
    back = root / "back"
    archive.rename(back)
    report = lib.scan([root])
    assert report.counts["moved"] == 3 and named_faces(lib) == {
        name: faces | named_faces(lib)[name] for name, faces in before.items()
    }
    left = sorted(m.path for m in lib.status().missing)  # the Colin Powell and Bush photos
    assert left == [str(photos[0]), str(third)]

    # an editor that deletes the photo, then writes the new version at once: an edit
    photo = back / "IMG_0001.jpg"
    cropped = tmp_path / "cropped.jpg"
    with Image.open(photo) as im:
        im.crop((0, 0, im.width, im.height * 9 // 10)).save(cropped, quality=95)
    photo.unlink()
    lib.scan([root])
    shutil.copyfile(cropped, photo)
    report = lib.scan([root])
    assert report.counts["changed"] == 1 and sorted(m.path for m in lib.status().missing) == left
    assert set(named_faces(lib)) == set(before)
