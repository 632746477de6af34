"""Writing is lossless and crash-safe: pixels, JPEG scan data, EXIF/IPTC/ICC survive; a killed
writer leaves the original intact; read-only photos and formats Exiv2 cannot write get sidecars."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from facetags.image.decode import decode
from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag
from facetags.xmp.safefile import TEMP_SUFFIX
from facetags.xmp.sync import write_photos
from facetags.xmp.write import WriteOptions, write_photo
from tests.xmp_support import exiftool, exiftool_write, jpeg_scan, need_exiftool, oriented_copy

FACE = FaceTag((0.318, 0.127, 0.193, 0.209), "Eileen Collins")
ROOT = Path(__file__).resolve().parents[1]


def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rich_jpeg(astronaut: np.ndarray, path: Path) -> Path:
    """A real photo with EXIF (orientation 6 and camera data), IPTC and an ICC profile."""
    oriented_copy(Image.fromarray(astronaut), 6, path, quality=93, icc_profile=_srgb())
    exiftool_write(
        "-EXIF:Make=FaceCam",
        "-EXIF:Model=FC-1",
        "-EXIF:DateTimeOriginal=2021:06:05 14:03:22",
        "-EXIF:Artist=Test Photographer",
        "-IPTC:Keywords=space",
        "-IPTC:Keywords=nasa",
        "-IPTC:City=Houston",
        "-XMP-dc:Rights=CC0",
        path,
    )
    return path


def _metadata(path: Path) -> dict:
    (report,) = exiftool("-G1", "-EXIF:all", "-IPTC:all", "-ICC_Profile:all", "-b", path)
    report.pop("SourceFile")
    return report


def test_jpeg_keeps_scan_data_pixels_exif_iptc_icc(astronaut: np.ndarray, tmp_path: Path) -> None:
    need_exiftool()
    photo = _rich_jpeg(astronaut, tmp_path / "rich.jpg")
    before_bytes = photo.read_bytes()
    before_meta = _metadata(photo)
    before_pixels = decode(photo).image
    assert (
        "IFD0:Make" in before_meta
        and "IPTC:City" in before_meta
        and "ICC_Profile:ProfileDescription" in before_meta
    )
    os.chmod(photo, 0o640)

    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "embedded", result

    after_bytes = photo.read_bytes()
    assert after_bytes != before_bytes
    assert jpeg_scan(after_bytes) == jpeg_scan(before_bytes)
    assert np.array_equal(decode(photo).image, before_pixels)
    assert _metadata(photo) == before_meta
    (xmp,) = exiftool("-XMP-dc:Rights", "-XMP-iptcExt:PersonInImage", photo)
    assert xmp["Rights"] == "CC0" and xmp["PersonInImage"] == "Eileen Collins"
    assert stat.S_IMODE(photo.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(f"*{TEMP_SUFFIX}"))


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_other_formats_keep_their_pixels(suffix: str, astronaut: np.ndarray, tmp_path: Path) -> None:
    need_exiftool()
    save = {".webp": {"quality": 90}, ".png": {}, ".tif": {}}[suffix]
    photo = oriented_copy(Image.fromarray(astronaut), 8, tmp_path / f"photo{suffix}", **save)
    before = decode(photo).image
    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "embedded", result
    assert np.array_equal(decode(photo).image, before)
    (report,) = exiftool("-struct", "-RegionInfo", "-Orientation#", photo)
    assert report["RegionInfo"]["RegionList"][0]["Name"] == "Eileen Collins"
    assert report["Orientation"] == 8
    assert read_regions(photo).regions[0].name == "Eileen Collins"


def test_heic_gets_a_sidecar(astronaut: np.ndarray, tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    photo = tmp_path / "photo.heic"
    Image.fromarray(astronaut).save(photo)
    before = photo.read_bytes()
    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "sidecar", result
    assert result.target == tmp_path / "photo.heic.xmp"
    assert photo.read_bytes() == before
    assert [r.name for r in read_regions(photo).regions] == ["Eileen Collins"]


@pytest.mark.parametrize("name", ["photo.j2k", "photo.jp2"])
def test_jpeg2000_gets_a_sidecar_read_back_by_exiftool(
    name: str, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """A JPEG 2000 (a bare codestream or a JP2 file) is never rewritten: its names go to a
    sidecar, which exiftool reads as facetags wrote it."""
    photo = tmp_path / name
    Image.fromarray(astronaut).save(photo, "JPEG2000")
    before = photo.read_bytes()
    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "sidecar", result
    assert result.target == tmp_path / f"{name}.xmp"
    assert photo.read_bytes() == before
    (report,) = exiftool("-struct", "-RegionInfo", result.target)
    assert report["RegionInfo"]["RegionList"][0]["Name"] == "Eileen Collins"
    assert [r.name for r in read_regions(photo).regions] == ["Eileen Collins"]


def test_read_only_photo_gets_a_sidecar(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = oriented_copy(Image.fromarray(astronaut), 3, tmp_path / "ro.jpg", quality=90)
    before = photo.read_bytes()
    os.chmod(photo, 0o444)
    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "sidecar", result
    assert any("read-only" in w for w in result.warnings)
    assert photo.read_bytes() == before
    assert stat.S_IMODE(photo.stat().st_mode) == 0o444
    assert (tmp_path / "ro.jpg.xmp").is_file()
    (region,) = read_regions(photo).regions
    assert region.name == "Eileen Collins"
    again = write_photo(photo, [FaceTag(FACE.box, FACE.name, previous=FACE.name)])
    assert not again.written and again.warnings == []  # nothing to write: nothing to explain


def test_a_new_sidecar_is_readable_by_those_who_may_read_its_photo_only(
    astronaut: np.ndarray, tmp_path: Path
) -> None:
    """A sidecar took its photo's mode but the writer's group: a photo 0640 of another group got
    a sidecar 0640 of the user's group, so another set of people could read the names in it. It
    takes the photo's group; where the user cannot give it (not one of theirs), the group bits
    go."""
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "g.jpg", quality=90)
    other_group = 54321
    try:
        os.chown(photo, -1, other_group)
    except PermissionError:  # an ordinary user cannot: the photo's group is one of theirs
        other_group = photo.stat().st_gid
    os.chmod(photo, 0o640)
    assert write_photo(photo, [FACE], WriteOptions(mode="sidecar")).written
    sidecar = (tmp_path / "g.jpg.xmp").stat()
    assert sidecar.st_gid == other_group and stat.S_IMODE(sidecar.st_mode) == 0o640, sidecar


def test_a_photo_with_a_long_name_is_written(astronaut: np.ndarray, tmp_path: Path) -> None:
    """A photo named with 240 characters (the most a name may have is 255 bytes) failed every
    write: 'cannot create a temporary file beside it (File name too long)'."""
    name = "é" * 20 + "a" * 200 + ".jpg"
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / name, quality=90)
    result = write_photo(photo, [FACE])
    assert result.written and result.error is None, result
    assert [r.name for r in read_regions(photo).regions] == ["Eileen Collins"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo.name]  # no copy left behind


def test_a_photo_in_a_read_only_folder_is_left_alone(astronaut: np.ndarray, tmp_path: Path) -> None:
    """`chmod a-w` on the folder: nothing is written there, into the photo nor beside it, even
    by root (who passes every permission check: the photos were rewritten)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    photo = oriented_copy(Image.fromarray(astronaut), 1, folder / "p.jpg", quality=90)
    before = photo.read_bytes()
    folder.chmod(0o555)
    try:
        for mode in ("embed", "sidecar"):
            result = write_photo(photo, [FACE], WriteOptions(mode=mode))
            assert not result.written and result.error is not None, result
            assert "its folder is read-only (no write permission bits)" in result.error, result.error
        assert sorted(p.name for p in folder.iterdir()) == ["p.jpg"]
        assert photo.read_bytes() == before
    finally:
        folder.chmod(0o755)


def test_a_sidecar_with_faces_stays_in_step_once_the_photo_is_writable(
    astronaut: np.ndarray, tmp_path: Path
) -> None:
    """Written to a sidecar while read-only, then into the photo once writable: the sidecar is
    brought up to date too (it kept the first names, which tools that prefer sidecars showed).
    A sidecar of another tool with no faces in it is left alone."""
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "ro.jpg", quality=90)
    os.chmod(photo, 0o444)
    assert write_photo(photo, [FACE]).mode == "sidecar"
    os.chmod(photo, 0o644)
    second = FaceTag((0.6, 0.5, 0.15, 0.15), "Anna Example")
    faces = [FaceTag(FACE.box, FACE.name, previous=FACE.name), second]
    result = write_photo(photo, faces)
    assert result.written and result.mode == "embedded" and result.error is None, result
    for where in (photo, tmp_path / "ro.jpg.xmp"):
        (report,) = exiftool("-struct", "-RegionInfo", "-PersonInImage", where)
        listed = sorted(r["Name"] for r in report["RegionInfo"]["RegionList"])
        assert listed == ["Anna Example", "Eileen Collins"], where
        assert sorted(report["PersonInImage"]) == ["Anna Example", "Eileen Collins"], where
    again = write_photo(photo, faces)
    assert not again.written and again.changes == [] and again.error is None

    other = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "dt.jpg", quality=90)
    darktable = tmp_path / "dt.jpg.xmp"
    darktable.write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="3"/>'
        b"</rdf:RDF></x:xmpmeta>"
    )
    kept = darktable.read_bytes()
    assert write_photo(other, [FACE]).written
    assert darktable.read_bytes() == kept
    (report,) = exiftool("-struct", "-RegionInfo", other)
    assert report["RegionInfo"]["RegionList"][0]["Name"] == "Eileen Collins"


def test_a_sidecar_that_cannot_be_written_leaves_the_photo_to_try_again(
    astronaut: np.ndarray, tmp_path: Path
) -> None:
    """A rename written into the photo while its sidecar cannot be replaced (immutable, here):
    an error for the photo, so the names are not taken as written, and the next run renames
    the sidecar too, without calling its old name another tool's."""
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "p.jpg", quality=90)
    os.chmod(photo, 0o444)
    assert write_photo(photo, [FACE]).mode == "sidecar"
    os.chmod(photo, 0o644)
    sidecar = tmp_path / "p.jpg.xmp"
    if subprocess.run(["chattr", "+i", str(sidecar)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root on a filesystem with immutable files")
    renamed = [FaceTag(FACE.box, "Eileen M. Collins", previous=FACE.name)]
    try:
        failed = write_photo(photo, renamed)
    finally:
        subprocess.run(["chattr", "-i", str(sidecar)], check=True)
    assert failed.error is not None and "could not be brought up to date" in failed.error
    (embedded,) = exiftool("-struct", "-RegionInfo", photo)
    assert [r["Name"] for r in embedded["RegionInfo"]["RegionList"]] == ["Eileen M. Collins"]
    again = write_photo(photo, renamed)  # previous: still the old name, nothing was taken as written
    assert again.error is None and again.written and again.warnings == [], again
    for where in (photo, sidecar):
        (report,) = exiftool("-struct", "-RegionInfo", where)
        assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Eileen M. Collins"], where


def test_photo_xmp_sidecar_name_option(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "p.jpg", quality=90)
    result = write_photo(photo, [FACE], WriteOptions(mode="sidecar", sidecar_name="photo.xmp"))
    assert result.target == tmp_path / "p.xmp" and result.written
    assert not (tmp_path / "p.jpg.xmp").exists()
    assert [r.name for r in read_regions(photo).regions] == ["Eileen Collins"]


def test_dry_run_changes_nothing(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "d.jpg", quality=90)
    before = photo.read_bytes()
    for mode in ("embed", "sidecar"):
        result = write_photo(photo, [FACE], WriteOptions(mode=mode), dry_run=True)
        assert not result.written and result.error is None
        assert any("add 'Eileen Collins'" in c for c in result.changes)
        assert any("PersonInImage" in c for c in result.changes)
    assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jpg"]


# The writer, stopped at the most delicate moment: the new file complete and fsynced, the rename
# not yet done. The test stands in for os.replace in this process only (no hook in shipped code).
_WRITER = """
import os, sys, time
from pathlib import Path
from facetags.xmp.regions import FaceTag
from facetags.xmp.write import WriteOptions, write_photo
photo, mode, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
def paused(src, dst):
    marker.write_text(str(src), encoding="utf-8")
    time.sleep(3600)
os.replace = paused
write_photo(photo, [FaceTag((0.318, 0.127, 0.193, 0.209), "Eileen Collins")], WriteOptions(mode=mode))
"""


@pytest.mark.parametrize("mode", ["embed", "sidecar"])
def test_killed_writer_leaves_the_original_intact(mode: str, astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = oriented_copy(Image.fromarray(astronaut), 6, tmp_path / "k.jpg", quality=90)
    target = photo if mode == "embed" else tmp_path / "k.jpg.xmp"
    if mode == "sidecar":  # an existing sidecar from another tool, which must survive too
        assert write_photo(
            photo, [FaceTag((0.7, 0.7, 0.1, 0.1), "Someone Else")], WriteOptions(mode=mode)
        ).written
    before = target.read_bytes()
    marker = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(photo), mode, str(marker)], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "writer never reached the rename"
            time.sleep(0.05)
        temp = Path(marker.read_text(encoding="utf-8"))
        assert temp.parent == tmp_path and temp.name.endswith(TEMP_SUFFIX)
        assert temp.stat().st_size > 0  # the new version is complete on disk ...
        assert target.read_bytes() == before  # ... and the original not yet touched
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    assert decode(photo).width == 512
    # The next run (xmp write: write_photos) writes normally and removes the copy: its name
    # says which process of this machine wrote it, and that process is gone.
    (result,) = write_photos({photo: [FACE]}, WriteOptions(mode=mode))
    assert result.written and result.error is None
    assert "Eileen Collins" in {r.name for r in read_regions(photo).regions}
    assert not temp.exists()
    assert not list(tmp_path.glob(f".*{TEMP_SUFFIX}"))


def test_leftover_copies_go_once_their_writer_is_gone_and_only_then(tmp_path: Path) -> None:
    """A copy of a live writer (this machine's process still running, or another machine's less
    than an hour old) is never removed; a dead writer's goes at the next write in the folder,
    even where the photo itself is up to date and not written again."""
    from facetags.xmp.safefile import _host, remove_stale_temps_in

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        named = {
            "live": tmp_path / f".a.jpg.{_host()}-{live.pid}.x1{TEMP_SUFFIX}",
            "dead": tmp_path / f".a.jpg.{_host()}-{dead.pid}.x2{TEMP_SUFFIX}",
            "other machine, young": tmp_path / f".a.jpg.elsewhere-{live.pid}.x3{TEMP_SUFFIX}",
            "other machine, old": tmp_path / f".a.jpg.elsewhere-{dead.pid}.x4{TEMP_SUFFIX}",
            "unnamed writer, old": tmp_path / f".a.jpg.x5{TEMP_SUFFIX}",
        }
        old = time.time() - 2 * 3600
        for temp in named.values():
            temp.write_bytes(b"a copy")
            os.utime(temp, (old, old))
        os.utime(named["other machine, young"])  # now
        removed = {temp.name for temp in remove_stale_temps_in(tmp_path)}
        assert removed == {named[k].name for k in ("dead", "other machine, old", "unnamed writer, old")}
        assert named["live"].exists() and named["other machine, young"].exists()
    finally:
        live.kill()
        live.wait()


def test_hard_linked_photo_gets_a_sidecar(astronaut: np.ndarray, tmp_path: Path) -> None:
    """Replacing one name of a hard-linked file would silently split it into two copies."""
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "h.jpg", quality=90)
    other = tmp_path / "other-name.jpg"
    os.link(photo, other)
    before = photo.read_bytes()
    result = write_photo(photo, [FACE])
    assert result.written and result.mode == "sidecar", result
    assert any("hard links" in w for w in result.warnings)
    assert photo.read_bytes() == before and os.path.samefile(photo, other)
    assert [r.name for r in read_regions(photo).regions] == ["Eileen Collins"]


def test_symlinked_photo_is_written_through_the_link(astronaut: np.ndarray, tmp_path: Path) -> None:
    real = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "real.jpg", quality=90)
    link = tmp_path / "link.jpg"
    link.symlink_to(real)
    assert write_photo(link, [FACE]).written
    assert link.is_symlink()
    assert [r.name for r in read_regions(real).regions] == ["Eileen Collins"]


def test_a_write_that_does_not_read_back_keeps_the_original(
    astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facetags.xmp import packet

    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "s.jpg", quality=90)
    before = photo.read_bytes()
    monkeypatch.setattr(packet, "apply", lambda path, updates, sidecar=False: None)  # a silent no-op
    result = write_photo(photo, [FACE])
    assert not result.written and result.error and "did not read back" in result.error
    assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jpg"]


def test_keyword_list_with_qualifiers_is_left_alone(astronaut: np.ndarray, tmp_path: Path) -> None:
    """Exiv2 cannot rewrite a Bag whose items carry xml:lang qualifiers: facetags leaves that
    one property alone (with a warning) and writes the rest."""
    import pyexiv2

    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "q.jpg", quality=90)
    image = pyexiv2.Image(str(photo))
    image.modify_xmp({"Xmp.dc.subject": {'lang="x-default"': "space"}})
    image.close()
    result = write_photo(photo, [FACE])
    assert result.written, result
    assert any("Xmp.dc.subject" in w for w in result.warnings)
    (report,) = exiftool("-struct", "-RegionInfo", "-Subject", "-PersonInImage", photo)
    assert report["Subject"] == ["space"] and report["PersonInImage"] == ["Eileen Collins"]
    assert report["RegionInfo"]["RegionList"][0]["Name"] == "Eileen Collins"


@pytest.mark.parametrize("kind", ["fifo", "device", "dangling link", "link"])
def test_a_sidecar_that_is_not_a_plain_file_of_its_own_is_neither_read_nor_written(
    kind: str, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """A named pipe at the sidecar's name hung xmp write (and its dry run) for ever, a link to
    /dev/zero read until memory ran out, and a link to a file not there made the write create
    that file, wherever the link pointed (anyone who can write into a shared photo folder could
    choose where names go). Each is an error for that photo now, at once; nothing is created."""
    photo = tmp_path / "photos" / "p.jpg"
    photo.parent.mkdir()
    Image.fromarray(astronaut).save(photo, quality=90)
    sidecar = photo.with_name("p.jpg.xmp")
    elsewhere = tmp_path / "elsewhere" / "created.xmp"
    elsewhere.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(sidecar)
    elif kind == "device":
        sidecar.symlink_to("/dev/zero")
    elif kind == "dangling link":
        sidecar.symlink_to(elsewhere)
    else:  # to another folder's sidecar
        from facetags.xmp.packet import EMPTY_PACKET

        elsewhere.write_bytes(EMPTY_PACKET)
        sidecar.symlink_to(elsewhere)
    before = elsewhere.read_bytes() if elsewhere.exists() else None
    script = (
        "import sys; from pathlib import Path\n"
        "from facetags.xmp.regions import FaceTag\n"
        "from facetags.xmp.write import WriteOptions, write_photo\n"
        "face = FaceTag((0.318, 0.127, 0.193, 0.209), 'Eileen Collins')\n"
        "for dry in (True, False):\n"
        "    r = write_photo(Path(sys.argv[1]), [face], WriteOptions(mode='sidecar'), dry_run=dry)\n"
        "    print(r.error)\n"
    )
    done = subprocess.run(  # a hang or a runaway read must fail the test, not stop the run
        [sys.executable, "-c", script, str(photo)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    errors = done.stdout.splitlines()
    assert len(errors) == 2 and all(e != "None" and str(sidecar) in e for e in errors), done.stdout
    assert (elsewhere.read_bytes() if elsewhere.exists() else None) == before
