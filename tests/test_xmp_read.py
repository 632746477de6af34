"""Reading regions other tools wrote (here exiftool, as digiKam/Lightroom/Picasa write them), and
refusing hostile metadata with a warning instead of a crash."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.xmp import packet
from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag, iou
from facetags.xmp.sync import match_regions
from facetags.xmp.write import WriteOptions, write_photo
from tests.xmp_support import (
    centre,
    detected_faces,
    exiftool_write,
    need_exiftool,
    oriented_copy,
    stored_box_of,
)

FACE_BOX = (0.318, 0.127, 0.193, 0.209)


def _faces(path: Path) -> list[tuple[float, float, float, float]]:
    try:
        return detected_faces(path)
    except ImportError:
        return [FACE_BOX]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exiftool_mwg_regions_import_onto_the_detected_face(
    orientation: int, astronaut: np.ndarray, tmp_path: Path
) -> None:
    need_exiftool()
    upright = Image.fromarray(astronaut[:, :460])
    photo = oriented_copy(upright, orientation, tmp_path / "x.jpg", quality=92)
    (face,) = _faces(photo)
    # Where the face lies in the stored pixels, computed without facetags.xmp:
    sx, sy, sw, sh = stored_box_of(face, upright.size, orientation)
    cx, cy = centre((sx, sy, sw, sh))
    stored_size = upright.size if orientation < 5 else upright.size[::-1]
    exiftool_write(
        f"-RegionInfo={{AppliedToDimensions={{W={stored_size[0]},H={stored_size[1]},Unit=pixel}},"
        f"RegionList=[{{Area={{X={cx},Y={cy},W={sw},H={sh},Unit=normalized}},Type=Face,Name=Eileen Collins}},"
        f"{{Area={{X=0.5,Y=0.5,W=0.01,H=0.01,Unit=normalized}},Type=Focus}}]}}",
        photo,
    )
    found = read_regions(photo)
    assert found.warnings == []
    (region,) = found.regions  # the focus region is not a face
    assert region.name == "Eileen Collins" and region.schema == "mwg"
    assert iou(region.box, face) > 0.95
    matches, unmatched, warnings = match_regions(found.regions, [(7, face), (8, (0.0, 0.0, 0.1, 0.1))])
    assert [(m.face_id, m.name) for m in matches] == [(7, "Eileen Collins")]
    assert unmatched == [] and warnings == []


@pytest.mark.parametrize(
    ("dims", "orientation", "read"),
    [
        ((512, 512), 1, False),  # cropped since
        ((512, 460), 1, False),  # turned a quarter by rewriting the pixels
        ((920, 1024), 1, True),  # a resized copy
        ((460, 512), 1, True),
        ((460, 512), 6, True),  # stored 512x460, shown turned: the size as shown (against MWG)
    ],
)
def test_regions_placed_for_a_picture_of_another_shape_are_not_read(
    dims: tuple[int, int], orientation: int, read: bool, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """The 512x512 astronaut cropped to 460x512 by an editor that kept the XMP: the regions point
    at the older picture's places, and an import would name whatever face is there now. Such a
    file's regions are left out, with a warning; a resized copy's (the same shape) are read, and
    so are those of a photo shown turned whose tool gave the size as shown."""
    need_exiftool()
    photo = oriented_copy(Image.fromarray(astronaut[:, :460]), orientation, tmp_path / "c.jpg", quality=92)
    cx, cy = centre(FACE_BOX)
    exiftool_write(
        f"-RegionInfo={{AppliedToDimensions={{W={dims[0]},H={dims[1]},Unit=pixel}},"
        f"RegionList=[{{Area={{X={cx},Y={cy},W={FACE_BOX[2]},H={FACE_BOX[3]},Unit=normalized}},"
        "Type=Face,Name=Eileen Collins}]}",
        photo,
    )
    found = read_regions(photo)
    assert [r.name for r in found.regions] == (["Eileen Collins"] if read else [])
    if read:
        assert found.warnings == []
    else:
        (warning,) = found.warnings
        assert f"placed for a {dims[0]}x{dims[1]} picture and the photo is 460x512" in warning, warning


@pytest.mark.parametrize("sidecar", ["x.jpg.xmp", "x.xmp"])
def test_exiftool_mp_regions_in_either_sidecar(sidecar: str, astronaut: np.ndarray, tmp_path: Path) -> None:
    need_exiftool()
    photo = oriented_copy(Image.fromarray(astronaut), 6, tmp_path / "x.jpg", quality=92)
    x, y, w, h = stored_box_of(FACE_BOX, (512, 512), 6)
    side = tmp_path / sidecar
    exiftool_write("-o", side, photo)
    exiftool_write(
        f"-RegionInfoMP={{Regions=[{{Rectangle={x:.5f}|, {y:.5f}|, {w:.5f}|, {h:.5f},"
        "PersonDisplayName=Eileen}]}",
        side,
    )
    (region,) = read_regions(photo).regions
    assert region.name == "Eileen" and region.schema == "mp" and region.source == str(side)
    assert iou(region.box, FACE_BOX) > 0.95


def test_the_same_face_in_mwg_mp_and_sidecar_is_one_region(astronaut: np.ndarray, tmp_path: Path) -> None:
    photo = oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "d.jpg", quality=92)
    assert write_photo(photo, [FaceTag(FACE_BOX, "Eileen")]).written
    assert write_photo(photo, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(mode="sidecar")).written
    assert [r.name for r in read_regions(photo).regions] == ["Eileen"]


def test_disagreeing_regions_are_not_imported() -> None:
    from facetags.xmp.regions import Region

    regions = [Region(FACE_BOX, "Bob", "mwg", "a"), Region(FACE_BOX, "Robert", "mp", "a")]
    matches, unmatched, warnings = match_regions(regions, [(1, FACE_BOX)])
    assert matches == [] and "disagree" in warnings[0]
    assert unmatched == []  # both lie on face 1: not "named regions on no detected face"


# -- hostile input -----------------------------------------------------------------------------

_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lollollollollollollollollollol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/">
<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType="Resource">
<mwg-rs:Name>&lol9;</mwg-rs:Name></rdf:li></rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def _with_app1_xmp(photo: Path, xmp: bytes) -> None:
    """Insert an XMP APP1 segment by hand: the hostile file another program could have made."""
    data = photo.read_bytes()
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    photo.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:])


def _sidecar_xmp(regions: str) -> str:
    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
  xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:MP="http://ns.microsoft.com/photo/1.2/"
  xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">
<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>{regions}</rdf:Bag></mwg-rs:RegionList>
</mwg-rs:Regions>
<MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
<rdf:li MPReg:Rectangle="nan, 0.1, 0.2, 0.2" MPReg:PersonDisplayName="NaN Person"/>
<rdf:li MPReg:Rectangle="0.1, 0.1" MPReg:PersonDisplayName="Short"/>
</rdf:Bag></MPRI:Regions></MP:RegionInfo>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""


def _area(name: str, x: str, y: str, w: str, h: str) -> str:
    return (
        f'<rdf:li rdf:parseType="Resource"><mwg-rs:Name>{name}</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>'
        f'<mwg-rs:Area stArea:x="{x}" stArea:y="{y}" stArea:w="{w}" stArea:h="{h}" stArea:unit="normalized"/>'
        "</rdf:li>"
    )


@pytest.fixture
def plain(astronaut: np.ndarray, tmp_path: Path) -> Path:
    return oriented_copy(Image.fromarray(astronaut), 1, tmp_path / "h.jpg", quality=90)


def test_xml_bomb_embedded_is_refused(plain: Path, caplog: pytest.LogCaptureFixture) -> None:
    _with_app1_xmp(plain, _BOMB)
    before = plain.read_bytes()
    with caplog.at_level(logging.WARNING):
        found = read_regions(plain)
    assert found.regions == [] and len(found.warnings) == 1
    assert str(plain) in found.warnings[0]
    result = write_photo(plain, [FaceTag(FACE_BOX, "Eileen")])
    assert result.error is not None and not result.written
    assert plain.read_bytes() == before


def test_xml_bomb_sidecar_is_refused(plain: Path) -> None:
    side = plain.with_name("h.jpg.xmp")
    side.write_bytes(_BOMB)
    found = read_regions(plain)
    assert found.regions == []
    assert any("DOCTYPE" in w for w in found.warnings)
    # writing into that sidecar is refused too; the photo's embedded XMP is unaffected
    result = write_photo(plain, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(mode="sidecar"))
    assert result.error is not None and side.read_bytes() == _BOMB


def test_huge_sidecar_is_refused_unread(plain: Path) -> None:
    side = plain.with_name("h.xmp")
    padding = "<!-- " + "x" * (packet.MAX_PACKET_BYTES + 10) + " -->"
    side.write_text(_sidecar_xmp(_area("Eileen", "0.41", "0.23", "0.19", "0.21")) + padding, encoding="utf-8")
    found = read_regions(plain)
    assert found.regions == [] and any("too large" in w for w in found.warnings)


def test_huge_embedded_packet_is_refused(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packet, "MAX_PACKET_BYTES", 2048)
    exiftool_write("-XMP-dc:Description=" + "y" * 4000, plain)
    found = read_regions(plain)
    assert found.regions == [] and any("too large" in w for w in found.warnings)


def test_nonsense_values_are_skipped_with_warnings(plain: Path) -> None:
    regions = "".join(
        [
            _area("Good", "0.4145", "0.2315", "0.193", "0.209"),
            _area("NaN", "NaN", "0.5", "0.1", "0.1"),
            _area("Negative", "0.5", "0.5", "-0.1", "0.1"),
            _area("Huge", "0.5", "0.5", "1e308", "1e308"),
            _area("Inf", "inf", "0.5", "0.1", "0.1"),
            _area("Text", "left", "0.5", "0.1", "0.1"),
            _area("Outside", "7", "7", "0.1", "0.1"),
            _area("N" * 5000, "0.8", "0.8", "0.1", "0.1"),
        ]
    )
    plain.with_name("h.jpg.xmp").write_text(_sidecar_xmp(regions), encoding="utf-8")
    found = read_regions(plain)
    assert [(r.name, r.schema) for r in found.regions] == [("Good", "mwg"), ("N" * 200, "mwg")]  # capped
    assert len(found.warnings) == 8  # six bad MWG areas, two bad MP rectangles
    assert all(str(plain.with_name("h.jpg.xmp")) in w for w in found.warnings)


def test_too_many_regions_are_capped(plain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facetags.xmp import read

    monkeypatch.setattr(read, "MAX_REGIONS", 5)
    regions = "".join(_area(f"P{i}", f"{0.05 + i * 0.03:.3f}", "0.5", "0.02", "0.02") for i in range(20))
    plain.with_name("h.jpg.xmp").write_text(_sidecar_xmp(regions), encoding="utf-8")
    found = read_regions(plain)
    assert len(found.regions) == 5
    assert any("only the first 5" in w for w in found.warnings)


def test_garbage_sidecar_is_a_warning(plain: Path) -> None:
    plain.with_name("h.jpg.xmp").write_bytes(b"\x00\xffnot xml at all <<<")
    found = read_regions(plain)
    assert found.regions == [] and found.warnings
