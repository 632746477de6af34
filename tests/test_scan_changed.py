"""A changed photo (new pixels at the same path: an edit, a crop, a re-export) keeps the user's
decisions: names, the user's assignments, rejections, "not a face", hidden strangers. Real
photos, edited for real (cropped, brightened, re-saved) and scanned again."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result
from PIL import Image, ImageEnhance

from facetags.cli import cli
from facetags.db.records import FaceRecord
from facetags.ingest.rematch import match_faces

if TYPE_CHECKING:
    from tests.library_support import OpenLibrary


def edit(path: Path, left: float = 0.0, top: float = 0.0, brightness: float = 1.0, quality: int = 90) -> None:
    """Crop fractions off the left and top, change the brightness, save over the file."""
    with Image.open(path) as im:
        w, h = im.size
        out = im.convert("RGB").crop((int(w * left), int(h * top), w, h))
    ImageEnhance.Brightness(out).enhance(brightness).save(path, quality=quality)


def centre(face: FaceRecord, width: int, height: int, left: float, top: float) -> tuple[float, float]:
    """The face's centre in the cropped photo's normalised coordinates."""
    x, y, w, h = face.box
    cw, ch = width - int(width * left), height - int(height * top)
    return ((x + w / 2) * width - int(width * left)) / cw, ((y + h / 2) * height - int(height * top)) / ch


def near(face: FaceRecord, point: tuple[float, float]) -> bool:
    x, y, w, h = face.box
    return abs(x + w / 2 - point[0]) < w / 2 and abs(y + h / 2 - point[1]) < h / 2


def test_names_assignments_rejections_and_marks_survive_an_edit(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    t1 = photo_dir / "t1.jpg"
    faces = lib.photo_faces(t1)
    assert len(faces) == 6
    (astro,) = lib.photo_faces(photo_dir / "astronaut.jpg")
    by_x = sorted(faces, key=lambda f: f.box[0])  # leftmost first; the leftmost is cropped below
    ann, bob, cat, dan, stray = by_x[1], by_x[2], by_x[3], by_x[4], by_x[5]
    lib.name(ann.person_id or 0, "Ann")  # the cluster is named: the face stays 'auto'
    eileen = lib.name(astro.person_id or 0, "Eileen").id
    lib.set_assignment(bob.face_id, eileen)  # the user's placement, against the model
    lib.reject(cat.face_id, ann.person_id or 0)
    lib.not_a_face(dan.face_id)
    hidden = lib.hide(stray.person_id or 0).id
    width, height = Image.open(t1).size

    edit(t1, left=0.01, top=0.05, brightness=1.25)
    report = lib.scan([photo_dir])
    assert report.counts["changed"] == 1

    after = lib.photo_faces(t1)
    assert len(after) >= 4

    def new_face(old: FaceRecord) -> FaceRecord:
        point = centre(old, width, height, 0.01, 0.05)
        (found,) = [f for f in after if near(f, point)]
        return found

    assert new_face(ann).person_name == "Ann"
    moved = new_face(bob)
    assert (moved.person_id, moved.assigned_by) == (eileen, "user")
    assert new_face(cat).person_id != ann.person_id
    assert ann.person_id in lib.store.rejected_people(new_face(cat).face_id)
    assert not [f for f in after if near(f, centre(dan, width, height, 0.01, 0.05))], "not a face"
    assert new_face(stray).person_id == hidden and lib.person(hidden).hidden
    assert lib.find(["ann"]) == [str(t1)]
    assert lib.find(["eileen"]) == sorted([str(photo_dir / "astronaut.jpg"), str(t1)])
    assert len({f.person_id for f in after}) == len(after), "two faces of one photo in one person"
    assert sum(p.faces for p in lib.people()) == len(lib.faces())
    assert lib.status().photos == 2


def test_a_named_face_keeps_its_name_through_brightness_and_reexport(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    path = photo_dir / "astronaut.jpg"
    (face,) = lib.photo_faces(path)
    person = lib.name(face.person_id or 0, "Eileen Collins").id
    lib.set_assignment(face.face_id, person)  # confirmed by the user
    for step in range(2):
        edit(path, brightness=0.8 if step == 0 else 1.1, quality=80 - 10 * step)
        assert lib.scan([photo_dir]).counts["changed"] == 1
        (after,) = lib.photo_faces(path)
        assert (after.person_name, after.assigned_by) == ("Eileen Collins", "user")
        assert lib.find(["eileen collins"]) == [str(path)]
    assert {p.name for p in lib.people() if p.name} == {"Eileen Collins"}


def test_a_named_face_cropped_out_is_recorded_and_the_person_stays(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    t1 = photo_dir / "t1.jpg"
    leftmost = min(lib.photo_faces(t1), key=lambda f: f.box[0])
    other = max(lib.photo_faces(t1), key=lambda f: f.box[0])
    ann = lib.name(leftmost.person_id or 0, "Ann").id
    lib.name(other.person_id or 0, "Zed")
    original = t1.read_bytes()
    edit(t1, left=leftmost.box[0] + leftmost.box[2] + 0.02)  # Ann is cut off
    assert lib.scan([photo_dir]).counts["changed"] == 1
    assert lib.find(["ann"]) == []
    assert lib.find(["zed"]) == [str(t1)]
    assert lib.person(ann).name == "Ann" and lib.person(ann).faces == 0
    rows = lib.store.conn.execute(
        "SELECT face_id, person_id, detail FROM decisions WHERE kind = 'face_lost'"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(leftmost.face_id, ann)]
    detail = json.loads(rows[0][2])
    assert detail["path"] == str(t1) and detail["name"] == "Ann"
    # shown to the user: status lists it for good, a front end is told once
    (lost,) = lib.status().lost_faces
    assert (lost.path, lost.name, lost.person_id) == (str(t1), "Ann", ann)
    assert lib.lost_faces_to_show(mark=False) == [lost]
    assert lib.lost_faces_to_show() == [lost]
    assert lib.lost_faces_to_show() == []
    assert lib.status().lost_faces == [lost]
    out = CliRunner().invoke(cli, ["--library", str(lib.path), "status"])
    assert out.exit_code == 0, out.output
    assert "lost      1 decided face gone from edited photos" in out.output
    assert f"  {t1}: Ann" in out.output
    # it says who the person is now (it kept the name Ann had then), and not once she is back
    lib.name(ann, "Ann Smith")
    assert [f.name for f in lib.status().lost_faces] == ["Ann Smith"]
    t1.write_bytes(original)  # the edit undone
    assert lib.scan([photo_dir]).counts["changed"] == 1
    back = min(lib.photo_faces(t1), key=lambda f: f.box[0])
    assert lib.status().lost_faces == [dataclasses.replace(lost, name="Ann Smith")]  # not yet hers
    lib.move_faces([back.face_id], ann)
    assert lib.status().lost_faces == []


def test_lost_faces_put_aside_are_no_longer_listed_and_later_ones_are(
    open_library: OpenLibrary, photo_dir: Path
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    t1 = photo_dir / "t1.jpg"
    by_x = sorted(lib.photo_faces(t1), key=lambda f: f.box[0])
    ann = lib.name(by_x[0].person_id or 0, "Ann").id
    bo = lib.name(by_x[1].person_id or 0, "Bo").id
    edit(t1, left=by_x[0].box[0] + by_x[0].box[2] + 0.02)  # Ann is cut off
    assert lib.scan([photo_dir]).counts["changed"] == 1
    assert [f.name for f in lib.status().lost_faces] == ["Ann"]

    def forget_lost(*extra: str) -> Result:
        return CliRunner().invoke(cli, ["--library", str(lib.path), "forget", "--lost", *extra])

    assert forget_lost(str(t1)).exit_code == 2  # not with PATHS: a photo on disk is not forgotten
    done = forget_lost()
    assert done.exit_code == 0 and "forgot 1 lost face" in done.output, done.output
    assert f"  {t1}: Ann\n" in done.output  # which: one recorded since status was read is seen
    assert lib.status().lost_faces == [] and lib.lost_faces_to_show() == []
    out = CliRunner().invoke(cli, ["--library", str(lib.path), "status"]).output
    assert "lost " not in out and "Ann" not in out
    assert lib.person(ann).name == "Ann"  # the person stays
    assert json.loads(forget_lost("--json").output) == []
    # a face lost later is listed, and the front end told, as before
    (bo_face,) = [f for f in lib.photo_faces(t1) if f.person_id == bo]
    edit(t1, left=bo_face.box[0] + bo_face.box[2] + 0.02)  # then Bo
    assert lib.scan([photo_dir]).counts["changed"] == 1
    assert [f.name for f in lib.status().lost_faces] == ["Bo"]
    assert [f.name for f in lib.lost_faces_to_show()] == ["Bo"]
    assert [f["name"] for f in json.loads(forget_lost("--json").output)] == ["Bo"]
    assert lib.status().lost_faces == []


def test_editing_one_copy_of_a_duplicate_keeps_both(open_library: OpenLibrary, photo_dir: Path) -> None:
    lib = open_library()
    copy = photo_dir / "astronaut-copy.jpg"
    shutil.copyfile(photo_dir / "astronaut.jpg", copy)
    lib.scan([photo_dir])
    (face,) = lib.photo_faces(copy)
    lib.set_assignment(face.face_id, lib.name(face.person_id or 0, "Eileen").id)
    edit(copy, brightness=1.2)
    assert lib.scan([photo_dir]).counts["changed"] == 1
    (edited,) = lib.photo_faces(copy)
    assert edited.face_id != face.face_id and edited.assigned_by == "user"
    assert lib.find(["eileen"]) == sorted([str(copy), str(photo_dir / "astronaut.jpg")])
    assert lib.face(face.face_id).person_name == "Eileen"  # the unedited copy's face is still there
    assert (
        lib.store.conn.execute("SELECT COUNT(*) FROM decisions WHERE kind = 'face_lost'").fetchone()[0] == 0
    )


def test_a_different_photo_at_the_same_path_inherits_nothing(
    open_library: OpenLibrary, photo_dir: Path, astronaut_path: Path
) -> None:
    lib = open_library()
    lib.scan([photo_dir])
    t1 = photo_dir / "t1.jpg"
    for f in lib.photo_faces(t1):
        lib.name(f.person_id or 0, f"P{f.face_id}")
    shutil.copyfile(astronaut_path, photo_dir / "elsewhere.jpg")
    (photo_dir / "astronaut.jpg").unlink()
    Image.open(astronaut_path).save(t1, quality=70)  # another picture saved over t1.jpg
    lib.scan([photo_dir])
    assert all(f.person_name is None or not f.person_name.startswith("P") for f in lib.photo_faces(t1))


@pytest.mark.parametrize("mirror", [False, True])
def test_match_faces_under_crop_resize_and_mirror(mirror: bool) -> None:
    """The matcher on its own: three faces, a crop plus a resize (and a mirror), one face gone,
    one new; with no embeddings, geometry decides."""
    old = [(0.1, 0.2, 0.1, 0.15), (0.5, 0.25, 0.08, 0.12), (0.8, 0.6, 0.09, 0.13)]

    def moved(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x, y, w, h = (b[0] - 0.3) / 0.7, (b[1] - 0.1) / 0.9, b[2] / 0.7, b[3] / 0.9
        return (1 - x - w, y, w, h) if mirror else (x, y, w, h)

    new = [moved(old[2]), (0.02, 0.02, 0.05, 0.05), moved(old[1])]
    assert match_faces(old, new) == {1: 2, 2: 0}
    assert match_faces(old[:1], [(0.6, 0.6, 0.1, 0.15)]) == {}  # one box maps onto any: no evidence
