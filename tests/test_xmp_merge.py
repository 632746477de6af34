"""Merging with what other tools wrote: foreign regions and keywords kept, no duplicates, conflicts
reported, rewriting idempotent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag, to_mwg_area, upright_to_stored
from facetags.xmp.write import WriteOptions, still_carried, write_photo
from tests.xmp_support import exiftool, exiftool_write, need_exiftool, oriented_copy

FACE_BOX = (0.318, 0.127, 0.193, 0.209)  # the astronaut's face, upright, normalised
ORIENTATION = 6


def _mwg(box, name: str | None, orientation: int = ORIENTATION) -> str:
    x, y, w, h = to_mwg_area(upright_to_stored(box, orientation))
    named = f",Name={name}" if name else ""
    return f"{{Area={{X={x:.6f},Y={y:.6f},W={w:.6f},H={h:.6f},Unit=normalized}},Type=Face{named}}}"


def _foreign(photo: Path, *regions: str, keywords: bool = True) -> None:
    """Regions and keywords as another tool (here: exiftool) would write them."""
    args = [
        f"-RegionInfo={{AppliedToDimensions={{W=512,H=512,Unit=pixel}},RegionList=[{','.join(regions)}]}}"
    ]
    if keywords:
        args += [
            "-XMP-dc:Subject=holiday",
            "-XMP-lr:HierarchicalSubject=Places|Houston",
            "-XMP-digiKam:TagsList=Places/Houston",
            "-XMP-iptcExt:PersonInImage=Bob",
        ]
    exiftool_write(*args, photo)


@pytest.fixture
def photo(astronaut: np.ndarray, tmp_path: Path) -> Path:
    need_exiftool()
    return oriented_copy(Image.fromarray(astronaut), ORIENTATION, tmp_path / "m.jpg", quality=92)


def _report(path: Path) -> dict:
    (report,) = exiftool(
        "-struct",
        "-RegionInfo",
        "-RegionInfoMP",
        "-PersonInImage",
        "-HierarchicalSubject",
        "-TagsList",
        "-Subject",
        path,
    )
    return report


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("mode", ["embed", "sidecar"])
def test_foreign_regions_and_keywords_are_kept(mode: str, photo: Path) -> None:
    target = photo if mode == "embed" else photo.with_name("m.jpg.xmp")
    if mode == "sidecar":  # a sidecar another tool made from the photo
        exiftool_write("-o", target, photo)
    _foreign(target, _mwg((0.75, 0.7, 0.1, 0.12), "Bob"))
    result = write_photo(photo, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(mode=mode))
    assert result.written, result
    report = _report(target)
    names = [r.get("Name") for r in report["RegionInfo"]["RegionList"]]
    assert names == ["Bob", "Eileen"]
    assert sorted(_as_list(report["PersonInImage"])) == ["Bob", "Eileen"]
    assert sorted(_as_list(report["Subject"])) == ["Eileen", "holiday"]
    assert sorted(_as_list(report["HierarchicalSubject"])) == ["People|Eileen", "Places|Houston"]
    assert sorted(_as_list(report["TagsList"])) == ["People/Eileen", "Places/Houston"]
    assert report["RegionInfo"]["AppliedToDimensions"] == {"W": 512, "H": 512, "Unit": "pixel"}


def test_a_name_with_a_keyword_separator_stays_one_keyword(photo: Path) -> None:
    """'AC/DC' under People/ in digiKam's tree, 'Tom|Jerry' under People| in Lightroom's: each
    name one keyword, not a level of the tree; the region and PersonInImage keep the name."""
    # the keywords as facetags 0.1 wrote them, the separator inside the name: replaced
    old = ("-XMP-digiKam:TagsList=People/AC/DC", "-XMP-lr:HierarchicalSubject=People|Tom|Jerry")
    exiftool_write(*old, photo)
    faces = [FaceTag(FACE_BOX, "AC/DC"), FaceTag((0.6, 0.6, 0.1, 0.1), "Tom|Jerry")]
    assert write_photo(photo, faces).written
    report = _report(photo)
    assert sorted(r["Name"] for r in report["RegionInfo"]["RegionList"]) == ["AC/DC", "Tom|Jerry"]
    assert sorted(_as_list(report["PersonInImage"])) == ["AC/DC", "Tom|Jerry"]
    assert sorted(_as_list(report["TagsList"])) == ["People/AC\u2215DC", "People/Tom|Jerry"]
    assert sorted(_as_list(report["HierarchicalSubject"])) == ["People|AC/DC", "People|Tom\u00a6Jerry"]
    assert write_photo(photo, faces).changes == []  # and again: nothing to change


def test_rewriting_is_idempotent(photo: Path) -> None:
    faces = [FaceTag(FACE_BOX, "Eileen"), FaceTag((0.6, 0.6, 0.1, 0.1), None)]
    first = write_photo(photo, faces)
    assert first.written
    data, mtime = photo.read_bytes(), photo.stat().st_mtime_ns
    for mode in ("embed", "embed"):
        again = write_photo(photo, faces, WriteOptions(mode=mode))
        assert again.changes == [] and not again.written
    assert photo.read_bytes() == data and photo.stat().st_mtime_ns == mtime
    # a slightly different detection of the same face is the same region, not a new one
    moved = (FACE_BOX[0] + 0.01, FACE_BOX[1] - 0.005, FACE_BOX[2], FACE_BOX[3] * 1.02)
    assert write_photo(photo, [FaceTag(moved, "Eileen")]).changes == []
    report = _report(photo)
    assert len(report["RegionInfo"]["RegionList"]) == 1
    assert len(report["RegionInfoMP"]["Regions"]) == 1


def test_unnamed_region_at_our_face_gets_the_name(photo: Path) -> None:
    _foreign(photo, _mwg(FACE_BOX, None), keywords=False)
    result = write_photo(photo, [FaceTag(FACE_BOX, "Eileen")])
    assert "MWG region 1: name it 'Eileen' (was unnamed)" in result.changes
    regions = _report(photo)["RegionInfo"]["RegionList"]
    assert [r.get("Name") for r in regions] == ["Eileen"]


def test_a_name_another_tool_gave_is_kept_unless_asked(photo: Path) -> None:
    _foreign(photo, _mwg(FACE_BOX, "Carol"), keywords=False)
    exiftool_write("-XMP-iptcExt:PersonInImage=Carol", photo)
    result = write_photo(
        photo, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(schemas=frozenset({"mwg", "iptc"}))
    )
    assert any("named 'Carol' by another tool" in w for w in result.warnings)
    report = _report(photo)
    assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Carol"]
    assert _as_list(report["PersonInImage"]) == ["Carol"]

    result = write_photo(
        photo,
        [FaceTag(FACE_BOX, "Eileen")],
        WriteOptions(schemas=frozenset({"mwg", "iptc"}), replace_names=True),
    )
    assert "MWG region 1: rename 'Carol' -> 'Eileen'" in result.changes
    report = _report(photo)
    assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Eileen"]
    assert _as_list(report["PersonInImage"]) == ["Eileen"]


def test_our_own_stale_names_are_replaced_or_taken_back_others_kept(photo: Path) -> None:
    """A name facetags wrote (``previous``) follows the face's new name, or leaves when it has
    none; every other tool's region, name and keyword stays."""
    other = (0.6, 0.6, 0.1, 0.1)
    _foreign(photo, _mwg(other, "Carol"))  # another tool's region and keywords
    first = write_photo(photo, [FaceTag(FACE_BOX, "Eileen", face_id=7)])
    assert first.written and first.names == {7: "Eileen"}

    renamed = write_photo(photo, [FaceTag(FACE_BOX, "Eileen Collins", previous="Eileen", face_id=7)])
    assert "MWG region 2: rename 'Eileen' -> 'Eileen Collins'" in renamed.changes
    assert not renamed.warnings and renamed.names == {7: "Eileen Collins"}
    report = _report(photo)
    assert [r.get("Name") for r in report["RegionInfo"]["RegionList"]] == ["Carol", "Eileen Collins"]
    assert sorted(_as_list(report["PersonInImage"])) == ["Bob", "Eileen Collins"]

    gone = write_photo(photo, [FaceTag(FACE_BOX, None, previous="Eileen Collins", face_id=7)])
    assert gone.written and gone.names == {7: None}
    report = _report(photo)
    regions = report["RegionInfo"]["RegionList"]
    assert [r.get("Name") for r in regions] == ["Carol", None]  # the face region stays, unnamed
    assert [r.get("Name") for r in report["RegionInfoMP"]["Regions"]] == [None]
    assert sorted(_as_list(report["PersonInImage"])) == ["Bob"]
    assert "Eileen Collins" not in _as_list(report["Subject"])
    assert "Places|Houston" in _as_list(report["HierarchicalSubject"])
    again = write_photo(photo, [FaceTag(FACE_BOX, None, previous="Eileen Collins", face_id=7)])
    assert again.changes == [] and not again.written

    # a name facetags did not write is not facetags' to take back
    theirs = write_photo(photo, [FaceTag(other, None, previous="Dave", face_id=8)])
    assert theirs.changes == [] and theirs.names == {8: None}
    assert [r.get("Name") for r in _report(photo)["RegionInfo"]["RegionList"]] == ["Carol", None]


def test_a_respelt_name_of_ours_is_written_another_tools_spelling_kept(photo: Path) -> None:
    """ "alice smith" to "Alice Smith" reaches the region and every keyword list (both spellings
    stayed in the lists and the region kept the old one); another tool's spelling of the face's
    name is the same person (no conflict) and stays, unless --replace-names."""
    first = write_photo(photo, [FaceTag(FACE_BOX, "alice smith", face_id=7)])
    assert first.written
    respelt = write_photo(photo, [FaceTag(FACE_BOX, "Alice Smith", previous="alice smith", face_id=7)])
    assert "MWG region 1: rename 'alice smith' -> 'Alice Smith'" in respelt.changes
    assert respelt.names == {7: "Alice Smith"} and not respelt.warnings
    report = _report(photo)
    assert [r.get("Name") for r in report["RegionInfo"]["RegionList"]] == ["Alice Smith"]
    assert [r.get("PersonDisplayName") for r in report["RegionInfoMP"]["Regions"]] == ["Alice Smith"]
    assert _as_list(report["PersonInImage"]) == ["Alice Smith"]
    assert _as_list(report["Subject"]) == ["Alice Smith"]
    assert _as_list(report["HierarchicalSubject"]) == ["People|Alice Smith"]
    assert _as_list(report["TagsList"]) == ["People/Alice Smith"]
    again = write_photo(photo, [FaceTag(FACE_BOX, "Alice Smith", previous="Alice Smith", face_id=7)])
    assert again.changes == [] and not again.written

    # another tool's spelling: the same person, kept as that tool wrote it
    theirs = write_photo(photo, [FaceTag(FACE_BOX, "ALICE SMITH", previous="Eileen", face_id=7)])
    assert not any("MWG region" in c for c in theirs.changes) and not theirs.warnings and theirs.kept == 0
    assert [r.get("Name") for r in _report(photo)["RegionInfo"]["RegionList"]] == ["Alice Smith"]
    replaced = write_photo(
        photo, [FaceTag(FACE_BOX, "ALICE SMITH", face_id=7)], WriteOptions(replace_names=True)
    )
    assert "MWG region 1: rename 'Alice Smith' -> 'ALICE SMITH'" in replaced.changes
    assert [r.get("Name") for r in _report(photo)["RegionInfo"]["RegionList"]] == ["ALICE SMITH"]


def test_unnamed_faces_only_when_asked(photo: Path) -> None:
    faces = [FaceTag(FACE_BOX, None)]
    assert write_photo(photo, faces).changes == []
    result = write_photo(photo, faces, WriteOptions(include_unnamed=True))
    assert result.written
    report = _report(photo)
    (region,) = report["RegionInfo"]["RegionList"]
    assert region["Type"] == "Face" and "Name" not in region
    assert "PersonInImage" not in report
    assert read_regions(photo).regions[0].name is None


def test_schemas_setting_limits_what_is_written(photo: Path) -> None:
    result = write_photo(photo, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(schemas=frozenset({"mwg", "dc"})))
    assert result.written
    report = _report(photo)
    assert "RegionInfo" in report and _as_list(report["Subject"]) == ["Eileen"]
    for absent in ("RegionInfoMP", "PersonInImage", "HierarchicalSubject", "TagsList"):
        assert absent not in report
    with pytest.raises(ValueError):
        WriteOptions(schemas=frozenset({"mwg", "bogus"}))


def test_settings_feed_the_options() -> None:
    from facetags.config import Settings

    options = WriteOptions.from_settings(
        Settings(
            xmp_schemas="mwg, MP", xmp_mode="sidecar", xmp_sidecar_name="photo.xmp", xmp_people_root="Family"
        )
    )
    assert options.schemas == {"mwg", "mp"} and options.mode == "sidecar"
    assert options.sidecar_name == "photo.xmp" and options.people_root == "Family"


def test_another_file_s_regions_placed_for_another_picture_are_no_conflict(photo: Path) -> None:
    """Writing a sidecar, the photo's own XMP holds regions placed for a picture of another
    shape (cropped since, by an editor that kept them), one of which now lies over the face:
    it was taken for another tool's name for it, and the face got no name."""
    exiftool_write(
        "-RegionInfo={AppliedToDimensions={W=1024,H=512,Unit=pixel},"
        f"RegionList=[{_mwg(FACE_BOX, 'Zed')}]}}",
        photo,
    )
    result = write_photo(photo, [FaceTag(FACE_BOX, "Eileen")], WriteOptions(mode="sidecar"))
    assert result.written and result.kept == 0 and result.error is None, result
    (report,) = exiftool("-struct", "-RegionInfo", photo.with_name("m.jpg.xmp"))
    assert [r.get("Name") for r in report["RegionInfo"]["RegionList"]] == ["Eileen"]


def test_a_cut_off_face_s_region_is_taken_out_and_the_list_closes_up(photo: Path) -> None:
    """In a file placed for a picture of another shape (cropped since), facetags' region for a
    face the crop cut off (``FaceTag.gone``) is taken out of both lists: an XMP array has no
    gaps, so the regions after it move up, each with every field another tool gave it; its
    keywords go, another tool's stay."""
    left, right = (0.05, 0.1, 0.1, 0.1), (0.8, 0.1, 0.1, 0.1)
    exiftool_write(
        "-RegionInfo={AppliedToDimensions={W=1024,H=512,Unit=pixel},RegionList=["
        f"{_mwg(left, 'Zed')},{_mwg(FACE_BOX, 'Ann')},{_mwg(right, 'Eve')[:-1]},Description=by hand}}]}}",
        "-RegionInfoMP={Regions=[{PersonDisplayName=Zed,Rectangle=0.1|, 0.1|, 0.1|, 0.1},"
        "{PersonDisplayName=Ann,Rectangle=0.3|, 0.3|, 0.1|, 0.1},"
        "{PersonDisplayName=Eve,Rectangle=0.7|, 0.1|, 0.1|, 0.1}]}",
        "-XMP-dc:Subject=holiday",
        "-XMP-dc:Subject+=Ann",
        "-XMP-iptcExt:PersonInImage=Ann",
        photo,
    )
    gone = FaceTag((0.0, 0.0, 0.0, 0.0), written=("Ann",), gone=True)
    result = write_photo(photo, [gone], WriteOptions(mode="embed"))
    assert result.written and result.error is None, result
    assert still_carried(photo, ["Ann"]) == set()
    taken = [c.split(" (")[0] for c in result.changes if "take out" in c]
    assert taken == ["MWG region 2: take out 'Ann'", "MP region 2: take out 'Ann'"], result.changes
    report = _report(photo)
    mwg = report["RegionInfo"]["RegionList"]
    assert [r.get("Name") for r in mwg] == ["Zed", "Eve"]
    assert mwg[1]["Description"] == "by hand"
    assert [r["PersonDisplayName"] for r in report["RegionInfoMP"]["Regions"]] == ["Zed", "Eve"]
    assert report["RegionInfoMP"]["Regions"][1]["Rectangle"] == "0.7, 0.1, 0.1, 0.1"
    assert report["Subject"] == ["holiday"] and not report.get("PersonInImage"), report
    # the other tool's regions are still where the older picture had them: so is the list's size
    assert report["RegionInfo"]["AppliedToDimensions"] == {"W": 1024, "H": 512, "Unit": "pixel"}
    again = write_photo(photo, [gone], WriteOptions(mode="embed"))
    assert not again.written and not again.changes, again


def test_a_cut_off_face_s_region_stays_in_a_file_of_the_picture_s_shape(photo: Path) -> None:
    """The same region in a file placed for this picture's shape stays (the face may still be
    there, missed by the detector), and the file still carries the name."""
    w, h = Image.open(photo).size
    dims = f"AppliedToDimensions={{W={w},H={h},Unit=pixel}}"
    exiftool_write(f"-RegionInfo={{{dims},RegionList=[{_mwg(FACE_BOX, 'Ann')}]}}", photo)
    gone = FaceTag((0.0, 0.0, 0.0, 0.0), written=("Ann",), gone=True)
    result = write_photo(photo, [gone], WriteOptions(mode="embed"))
    assert result.error is None and not result.changes and still_carried(photo, ["Ann"]) == {"Ann"}, result
    assert [r.get("Name") for r in _report(photo)["RegionInfo"]["RegionList"]] == ["Ann"]


def test_a_name_longer_than_a_name_may_be_is_still_another_tool_s_name(photo: Path) -> None:
    """A region another tool named with over 200 characters counted as unnamed: facetags
    'named it' and the other tool's name was gone. It is a name (cut to 200 characters when
    read): a conflict, left as it is; the file keeps the whole name."""
    long_name = "Maria " + "N" * 250
    exiftool_write(f"-RegionInfo={{AppliedToDimensions={{W=512,H=512,Unit=pixel}},"
                   f"RegionList=[{_mwg(FACE_BOX, long_name)}]}}", photo)  # fmt: skip
    result = write_photo(photo, [FaceTag(FACE_BOX, "Alice")], WriteOptions(mode="embed"))
    assert result.error is None and result.kept == 1 and not result.written, result
    assert [r.get("Name") for r in _report(photo)["RegionInfo"]["RegionList"]] == [long_name]
    (region,) = read_regions(photo).regions
    assert region.name == long_name[:200]


def test_taking_a_region_out_keeps_the_kind_of_a_list_inside_the_others(photo: Path) -> None:
    """The regions after the one taken out are written anew: a list inside one (another tool's
    extension, a Bag of tags) came back as a Seq; it keeps its kind."""
    w, h = Image.open(photo).size
    sidecar = photo.with_name("m.jpg.xmp")
    sidecar.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"'
        ' xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><mwg-rs:Regions rdf:parseType="Resource">'
        f'<mwg-rs:AppliedToDimensions stDim:w="{w * 2}" stDim:h="{h}" stDim:unit="pixel"/>'
        "<mwg-rs:RegionList><rdf:Bag>"
        '<rdf:li rdf:parseType="Resource"><mwg-rs:Name>Ann</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>'
        '<mwg-rs:Area stArea:x="0.2" stArea:y="0.2" stArea:w="0.1" stArea:h="0.1"'
        ' stArea:unit="normalized"/></rdf:li>'
        '<rdf:li rdf:parseType="Resource"><mwg-rs:Name>Eve</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>'
        '<mwg-rs:Area stArea:x="0.7" stArea:y="0.7" stArea:w="0.1" stArea:h="0.1" stArea:unit="normalized"/>'
        '<mwg-rs:Extensions rdf:parseType="Resource"><dc:subject><rdf:Bag>'
        "<rdf:li>x</rdf:li><rdf:li>y</rdf:li></rdf:Bag></dc:subject></mwg-rs:Extensions></rdf:li>"
        "</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    gone = FaceTag((0.0, 0.0, 0.0, 0.0), written=("Ann",), gone=True)
    result = write_photo(photo, [gone], WriteOptions(mode="sidecar"))
    assert result.written and result.error is None, result
    (report,) = exiftool("-struct", "-RegionInfo", sidecar)
    assert [r["Name"] for r in report["RegionInfo"]["RegionList"]] == ["Eve"], report
    text = sidecar.read_text()
    assert "<rdf:li>x</rdf:li>" in text and "<rdf:li>y</rdf:li>" in text, text
    assert "<rdf:Bag>" in text.split("Extensions", 1)[1] and "rdf:Seq" not in text, text
