"""Issue 25: one name rule. The XMP import compares names with the library's own key
(``facetags.names.name_key``: case, accents and repeated white space ignored), so "Mary  Ann"
(two spaces, as another tool may write it) is the "Mary Ann" the user named in facetags."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetags.names import MAX_NAME, clean_name, name_key
from facetags.xmp.read import region_name
from facetags.xmp.regions import Region
from facetags.xmp.sync import match_regions
from tests.xmp_support import need_exiftool, shipped_opener, tag_astronaut

FACE = (0.30, 0.10, 0.20, 0.25)


def test_two_tools_spelling_one_name_with_two_spaces_agree() -> None:
    """Two regions on one face, "Mary Ann" (MWG) and "Mary  Ann" (MP), name the same person:
    a match, not "regions disagree" (the XMP side's own key kept the two spaces)."""
    regions = [
        Region(box=FACE, name="Mary Ann", schema="mwg", source="photo.jpg"),
        Region(box=FACE, name="Mary  Ann", schema="mp", source="photo.jpg"),
    ]
    matches, _unmatched, warnings = match_regions(regions, [(7, FACE)])
    assert warnings == []
    assert [(m.face_id, name_key(m.name)) for m in matches] == [(7, name_key(clean_name("Mary Ann")))]


def test_a_phones_apostrophe_and_hyphen_are_the_plain_ones() -> None:
    """A phone keyboard types ’ where a computer's types ': one name, not two people who look
    alike in every list ("zoe" then could be either)."""
    assert name_key("Zoë O’Brien‐Smith") == name_key("zoe o'brien-smith")
    assert name_key("D‘Artagnan") == name_key("dʼartagnan") == "d'artagnan"
    assert name_key("Anne–Marie") != name_key("Anne-Marie")  # a dash is not a hyphen


def test_a_region_name_is_at_most_a_library_name_long() -> None:
    """A longer one is cut (it is still a name: another tool's, not facetags' to fill in)."""
    assert region_name("x" * MAX_NAME) == "x" * MAX_NAME
    assert region_name("x" * (MAX_NAME + 1)) == "x" * MAX_NAME
    assert region_name("x" * (MAX_NAME - 1) + " yz") == "x" * (MAX_NAME - 1)  # no trailing space
    with pytest.raises(Exception, match="at most"):
        clean_name("x" * (MAX_NAME + 1))


def test_import_finds_the_user_named_person_under_two_spaces(
    photo_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The real library and a region exiftool wrote: the astronaut is "Mary Ann" in facetags (the
    user's decision) and "Mary  Ann" in the photo. The import leaves the face alone and reports
    no conflict (before, the two spellings were two names: "you said 'Mary Ann'; kept")."""
    need_exiftool()

    opener = shipped_opener(request)
    tag_astronaut(photo_dir, "Mary  Ann")
    lib = opener(tmp_path / "library.db")
    lib.scan([photo_dir])
    (face,) = [f for f in lib.faces() if f.path.endswith("astronaut.jpg")]
    person = lib.name(face.person_id, "Mary Ann")
    people_before = len(lib.people())

    run = lib.import_xmp(photo_dir)
    (done,) = [d for d in run.done if d.photo.endswith("astronaut.jpg")]
    assert [m.name for m in done.found.matches] == ["Mary  Ann"]
    assert done.applied.conflicts == []
    assert done.applied.unchanged == [(face.face_id, "Mary  Ann")]
    assert lib.face(face.face_id).person_id == person.id
    assert len(lib.people()) == people_before
    assert lib.person_named("mary  ANN").id == person.id
