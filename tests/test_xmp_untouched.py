"""Issue 23, case 7: ``xmp write`` changes nothing but XMP.

Every JPEG, PNG, TIFF and WebP in ``../shared/data`` that carries metadata (found with exiftool
in the folders of full-size photos; the crop sets lfw, pins, fairface and utkface carry none,
only JFIF headers) gets its detected faces written, named; ``exiftool -a -G1 -s`` must be equal
before and after except the XMP groups, and ``exiftool -validate`` must not get worse. The data
has no TIFF and only a simple WebP without metadata, so a TIFF and a WebP with EXIF, IPTC, an
ICC profile and other tools' XMP are made here too. Before the fix (Exiv2 rewrote the whole
file) 30 of these 52 photos changed: IFD0:PhotometricInterpretation dropped, img13.jpg's IPTC
CodedCharacterSet records lost and ``-validate`` failing on its IPTCDigest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag
from facetags.xmp.write import write_photo
from tests.conftest import SHARED_DATA
from tests.xmp_support import detected_faces, exiftool_write, need_exiftool

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("bbt", "deepface", "face_recognition_examples")
SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
# Groups that describe the file or the image stream, not metadata a user or another tool wrote.
PLAIN = {"ExifTool", "System", "File", "Composite", "JFIF", "PNG", "RIFF"}
# A simple (VP8/VP8L) WebP needs the VP8X header to carry XMP at all; these are its fields.
VP8X = {"[File] FileType", "[RIFF] WebP_Flags", "[RIFF] ImageWidth", "[RIFF] ImageHeight"}


def _photos_with_metadata() -> list[str]:
    if not SHARED_DATA.is_dir() or shutil.which("exiftool") is None:
        return []
    args = ["exiftool", "-q", "-r", "-j", "-G1"]
    for suffix in SUFFIXES:
        args += ["-ext", suffix[1:]]
    out = subprocess.run([*args, *FOLDERS], cwd=SHARED_DATA, capture_output=True, text=True, check=False)
    found = []
    for report in json.loads(out.stdout or "[]"):
        groups = {key.split(":")[0] for key in report if ":" in key}
        if groups - PLAIN or report.get("File:FileType") == "WEBP":  # the data's only WebP
            found.append(report["SourceFile"])
    return sorted(found)


PHOTOS = _photos_with_metadata()


def _metadata(path: Path) -> list[str]:
    """``exiftool -a -G1 -s`` without the XMP groups and the file system's own fields."""
    exe = need_exiftool()
    out = subprocess.run([exe, "-a", "-G1", "-s", str(path)], capture_output=True, text=True, check=True)
    return [
        " ".join(line.split())
        for line in out.stdout.splitlines()
        if not line.startswith(("[XMP", "[System]", "[ExifTool]"))
    ]


def _validate(path: Path) -> set[str]:
    exe = need_exiftool()
    out = subprocess.run(
        [exe, "-validate", "-warning", "-a", "-s3", str(path)], capture_output=True, text=True, check=False
    )
    return {line for line in out.stdout.splitlines() if line.strip()}


def _faces(photo: Path) -> list[FaceTag]:
    boxes = detected_faces(photo)[:6] or [(0.4, 0.3, 0.2, 0.25)]
    return [FaceTag(box=box, name=f"Person {n}", face_id=n) for n, box in enumerate(boxes, start=1)]


def _check_only_xmp_changed(photo: Path, write: object, *, simple_webp: bool = False) -> None:
    before, valid_before = _metadata(photo), _validate(photo)
    pixels = np.asarray(Image.open(photo))
    write_result = write(photo)  # type: ignore[operator]
    after, valid_after = _metadata(photo), _validate(photo)
    if simple_webp:  # the VP8X header appears; nothing else may change
        before = [line for line in before if line.split(":", 1)[0].strip() not in VP8X]
        after = [line for line in after if line.split(":", 1)[0].strip() not in VP8X]
    assert after == before, (write_result, sorted(set(before) ^ set(after)))
    assert valid_after <= valid_before, sorted(valid_after - valid_before)
    assert np.array_equal(np.asarray(Image.open(photo)), pixels)
    assert {r.name for r in read_regions(photo).regions} >= {"Person 1"}


@pytest.mark.parametrize("relative", PHOTOS or ["(none)"])
def test_xmp_write_changes_nothing_but_xmp(relative: str, shared_data: Path, tmp_path: Path) -> None:
    if not PHOTOS:
        pytest.skip("exiftool or ../shared/data is missing")
    photo = tmp_path / Path(relative).name
    shutil.copyfile(shared_data / relative, photo)  # the shared copies are read-only
    simple_webp = photo.read_bytes()[12:16] in (b"VP8 ", b"VP8L")

    def write(path: Path) -> object:
        result = write_photo(path, _faces(path))
        assert result.written and result.mode == "embedded" and not result.error, result
        return result

    _check_only_xmp_changed(photo, write, simple_webp=simple_webp)


def _tagged(path: Path) -> Path:
    """What a camera and a photo manager leave in a file: EXIF, IPTC, other tools' XMP."""
    exiftool_write(
        "-EXIF:Make=FaceCam",
        "-EXIF:Model=FC-1",
        "-EXIF:Artist=Test Photographer",
        "-EXIF:DateTimeOriginal=2021:06:05 14:03:22",
        "-IPTC:City=Houston",
        "-IPTC:Keywords=space",
        "-XMP-dc:Rights=CC0",
        "-XMP-dc:Subject=space",
        path,
    )
    return path


@pytest.mark.parametrize("suffix", [".tif", ".webp", ".png"])
def test_made_photos_with_exif_keep_it(suffix: str, astronaut: np.ndarray, tmp_path: Path) -> None:
    need_exiftool()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / f"made{suffix}"
    save = {".tif": {"compression": "tiff_lzw"}, ".webp": {"quality": 90}, ".png": {}}[suffix]
    Image.fromarray(astronaut).save(photo, exif=exif.tobytes(), icc_profile=icc, **save)
    if suffix != ".webp":  # exiftool writes no IPTC into WebP
        _tagged(photo)
    else:
        exiftool_write("-EXIF:Make=FaceCam", "-EXIF:Artist=Test Photographer", "-XMP-dc:Rights=CC0", photo)
    assert any(line.startswith("[IFD0] Make") for line in _metadata(photo))

    def write(path: Path) -> object:
        faces = [FaceTag((0.318, 0.127, 0.193, 0.209), "Person 1", face_id=1)]
        result = write_photo(path, faces)
        assert result.written and result.mode == "embedded", result
        # a second write that grows the packet past its padding (TIFF: appended, tag moved)
        more = [
            FaceTag((0.02 * n, 0.8, 0.015, 0.1), f"Someone {n} " + "x" * 150, face_id=10 + n)
            for n in range(30)
        ]
        again = write_photo(path, faces + more)
        assert again.written and again.mode == "embedded", again
        return again

    _check_only_xmp_changed(photo, write)
    (report,) = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-XMP-dc:Rights", "-Subject", str(photo)], capture_output=True, text=True
        ).stdout
    )
    assert report["Rights"] == "CC0"  # other tools' XMP stays


def test_cli_xmp_write_touches_nothing_but_xmp(
    shared_data: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The real command on a scanned library: img13.jpg (EXIF, IPTC, Photoshop IRB) and a
    group photo with an ICC profile."""
    need_exiftool()
    from facetags.errors import FacetagsError

    try:
        opener = request.getfixturevalue("open_library")
    except FacetagsError as exc:
        pytest.skip(f"the shipped models are not available here: {exc}")
    photos = tmp_path / "photos"
    photos.mkdir()
    for relative in ("deepface/photos/img13.jpg", "bbt/groups/bbt1.jpg"):
        shutil.copyfile(shared_data / relative, photos / Path(relative).name)
    where = tmp_path / "library.db"
    lib = opener(where)
    lib.scan([photos])
    for n, person in enumerate(p for p in lib.people() if p.faces):
        lib.name(person.id, f"Person {n + 1}")
    lib.close()
    before = {p.name: (_metadata(p), _validate(p)) for p in photos.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(where), "xmp", "write"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 changed" in done.stderr, done.stderr
    for photo in photos.iterdir():
        metadata, validation = before[photo.name]
        assert _metadata(photo) == metadata, photo
        assert _validate(photo) <= validation, photo


def test_jpeg_packet_over_64k_goes_to_a_sidecar(astronaut: np.ndarray, tmp_path: Path) -> None:
    """A JPEG segment holds 64 KiB of XMP; a bigger packet is written beside the photo instead."""
    photo = tmp_path / "big.jpg"
    Image.fromarray(astronaut).save(photo, quality=90)
    before = photo.read_bytes()
    faces = [
        FaceTag((0.0065 * n, 0.5, 0.005, 0.1), f"Someone {n} " + "x" * 180, face_id=n) for n in range(150)
    ]
    result = write_photo(photo, faces)
    assert result.written and result.mode == "sidecar", result
    assert any("over the JPEG limit" in w and w.startswith(str(photo)) for w in result.warnings)
    assert photo.read_bytes() == before
    assert len(read_regions(photo).regions) == 150


def test_simple_lossless_webp_with_alpha_keeps_its_pixels(tmp_path: Path) -> None:
    photo = tmp_path / "alpha.webp"
    rgba = np.zeros((64, 96, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(96, dtype=np.uint8)
    rgba[..., 3] = 200
    Image.fromarray(rgba, "RGBA").save(photo, lossless=True)
    assert photo.read_bytes()[12:16] == b"VP8L"
    result = write_photo(photo, [FaceTag((0.3, 0.3, 0.3, 0.4), "Person 1", face_id=1)])
    assert result.written and result.mode == "embedded", result
    data = photo.read_bytes()
    assert data[12:16] == b"VP8X" and data[20] & 0x14 == 0x14  # the XMP and alpha flags
    with Image.open(photo) as image:
        assert image.size == (96, 64) and np.array_equal(np.asarray(image), rgba)
    assert [r.name for r in read_regions(photo).regions] == ["Person 1"]


def test_png_compressed_xmp_is_read_and_kept(astronaut: np.ndarray, tmp_path: Path) -> None:
    """Another tool's XMP in a compressed iTXt chunk: read, merged, other properties kept."""
    from PIL.PngImagePlugin import PngInfo

    need_exiftool()
    info = PngInfo()
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">CC0</rdf:li></rdf:Alt></dc:rights>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    info.add_itxt("XML:com.adobe.xmp", xmp, zip=True)
    photo = tmp_path / "z.png"
    Image.fromarray(astronaut).save(photo, pnginfo=info)
    result = write_photo(photo, [FaceTag((0.318, 0.127, 0.193, 0.209), "Person 1", face_id=1)])
    assert result.written and result.mode == "embedded", result
    (report,) = json.loads(
        subprocess.run(
            ["exiftool", "-j", "-a", "-XMP:all", str(photo)], capture_output=True, text=True
        ).stdout
    )
    assert report["Rights"] == "CC0" and report["PersonInImage"] == "Person 1"
