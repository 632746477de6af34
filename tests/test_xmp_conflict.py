"""Issue 23, case 10: a name conflict must not write two stories into one photo.

Rule (docs/xmp.md): when a Face region at the place of one of our faces carries a name another
tool gave (a different name, not one facetags wrote), in the file written or in the photo's other
XMP (embedded or sidecar), facetags writes nothing for that face: no region in any schema, no
keyword. It reports the conflict; ``--replace-names`` writes facetags' name instead. Before the
fix the MWG region kept "Carol" while facetags wrote "Eileen" into a new MP region and the keyword
lists, and ``xmp import`` then refused the face ("regions disagree").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag, format_mp_rectangle, to_mwg_area, upright_to_stored
from facetags.xmp.sync import match_regions
from facetags.xmp.write import WriteOptions, write_photo
from tests.xmp_support import (
    exiftool,
    exiftool_write,
    need_exiftool,
    oriented_copy,
    shipped_opener,
    tag_astronaut,
)

ROOT = Path(__file__).resolve().parents[1]
FACE_BOX = (0.318, 0.127, 0.193, 0.209)  # the astronaut's face, upright, normalised
OTHER_BOX = (0.62, 0.55, 0.12, 0.14)
ORIENTATION = 6


def _mwg(box: tuple[float, float, float, float], name: str) -> str:
    x, y, w, h = to_mwg_area(upright_to_stored(box, ORIENTATION))
    return f"{{Area={{X={x:.6f},Y={y:.6f},W={w:.6f},H={h:.6f},Unit=normalized}},Type=Face,Name={name}}}"


def _mwg_region(path: Path, name: str) -> None:
    exiftool_write(
        f"-RegionInfo={{AppliedToDimensions={{W=512,H=512,Unit=pixel}},RegionList=[{_mwg(FACE_BOX, name)}]}}",
        path,
    )


def _names(path: Path) -> dict[str, object]:
    (report,) = exiftool(
        "-struct", "-RegionInfo", "-RegionInfoMP", "-PersonInImage", "-Subject", "-HierarchicalSubject", path
    )
    mwg = [r.get("Name") for r in report.get("RegionInfo", {}).get("RegionList", [])]
    mp = [r.get("PersonDisplayName") for r in report.get("RegionInfoMP", {}).get("Regions", [])]
    keywords = {
        key: sorted(v if isinstance(v, list) else [v])
        for key in ("PersonInImage", "Subject", "HierarchicalSubject")
        if (v := report.get(key)) is not None
    }
    return {"mwg": mwg, "mp": mp, **keywords}


@pytest.fixture
def photo(astronaut: np.ndarray, tmp_path: Path) -> Path:
    need_exiftool()
    return oriented_copy(Image.fromarray(astronaut), ORIENTATION, tmp_path / "c.jpg", quality=92)


def _one_story(photo: Path) -> None:
    """What ``xmp import`` sees: every face has one name, no region disagrees."""
    found = read_regions(photo)
    faces = [(1, FACE_BOX), (2, OTHER_BOX)]
    matches, _unmatched, warnings = match_regions(found.regions, faces)
    assert warnings == [] and {m.face_id: m.name for m in matches} == {1: "Carol", 2: "Bob"}


def test_another_tools_mwg_name_leaves_the_face_alone(photo: Path) -> None:
    _mwg_region(photo, "Carol")
    faces = [FaceTag(FACE_BOX, "Eileen", face_id=1), FaceTag(OTHER_BOX, "Bob", face_id=2)]
    result = write_photo(photo, faces)
    assert result.written and result.error is None, result
    (warning,) = [w for w in result.warnings if "another tool" in w]
    assert "face 1 is named 'Carol' by another tool and 'Eileen' in facetags" in warning
    assert result.names == {2: "Bob"}  # face 1 carries no name of ours
    assert _names(photo) == {
        "mwg": ["Carol", "Bob"],
        "mp": ["Bob"],
        "PersonInImage": ["Bob"],
        "Subject": ["Bob"],
        "HierarchicalSubject": ["People|Bob"],
    }
    _one_story(photo)
    again = write_photo(photo, faces)  # the conflict is reported each time; nothing to change
    assert again.changes == [] and not again.written and any("another tool" in w for w in again.warnings)


def test_another_tools_mp_name_leaves_the_face_alone(photo: Path) -> None:
    """A Windows Photo Gallery style MP region only: facetags adds no MWG region beside it."""
    rectangle = format_mp_rectangle(upright_to_stored(FACE_BOX, ORIENTATION)).replace(",", "|,")
    exiftool_write(f"-RegionInfoMP={{Regions=[{{Rectangle={rectangle},PersonDisplayName=Carol}}]}}", photo)
    result = write_photo(
        photo, [FaceTag(FACE_BOX, "Eileen", face_id=1), FaceTag(OTHER_BOX, "Bob", face_id=2)]
    )
    assert result.written and any("'Carol' by another tool" in w for w in result.warnings), result
    names = _names(photo)
    assert names["mwg"] == ["Bob"] and names["mp"] == ["Carol", "Bob"] and names["PersonInImage"] == ["Bob"]
    _one_story(photo)


def test_a_name_in_the_photo_blocks_the_sidecar_too(photo: Path) -> None:
    """Writing a sidecar (read-only photo), a name another tool embedded in the photo counts."""
    _mwg_region(photo, "Carol")
    os.chmod(photo, 0o444)
    result = write_photo(
        photo, [FaceTag(FACE_BOX, "Eileen", face_id=1), FaceTag(OTHER_BOX, "Bob", face_id=2)]
    )
    assert result.written and result.mode == "sidecar", result
    assert any("'Carol' by another tool" in w for w in result.warnings)
    sidecar = photo.with_name("c.jpg.xmp")
    assert _names(sidecar)["mwg"] == ["Bob"] and _names(sidecar)["mp"] == ["Bob"]
    _one_story(photo)


def test_replace_names_writes_one_story_too(photo: Path) -> None:
    _mwg_region(photo, "Carol")
    result = write_photo(photo, [FaceTag(FACE_BOX, "Eileen", face_id=1)], WriteOptions(replace_names=True))
    assert result.written and "MWG region 1: rename 'Carol' -> 'Eileen'" in result.changes
    names = _names(photo)
    assert names["mwg"] == ["Eileen"] and names["mp"] == ["Eileen"] and names["PersonInImage"] == ["Eileen"]


def test_cli_reports_the_conflict_and_import_reads_the_photo(
    photo_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The real commands: the astronaut was named "Eileen Collins" by another tool (exiftool)
    and "Commander" in facetags."""
    need_exiftool()

    opener = shipped_opener(request)
    astronaut = tag_astronaut(photo_dir, "Eileen Collins")
    where = tmp_path / "library.db"
    lib = opener(where)
    lib.scan([photo_dir])
    (face,) = [f for f in lib.faces() if f.path.endswith("astronaut.jpg")]
    lib.name(face.person_id, "Commander")
    lib.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "facetags", "--library", str(where), "xmp"]

    done = subprocess.run([*base, "write", "--json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in done.stdout.splitlines() if "astronaut" in x]
    assert not line["written"] and line["changes"] == []
    assert any("'Eileen Collins' by another tool and 'Commander' in facetags" in w for w in line["warnings"])
    names = _names(astronaut)
    assert names["mwg"] == ["Eileen Collins"] and names["mp"] == [] and "PersonInImage" not in names

    imported = subprocess.run(
        [*base, "import", str(photo_dir), "--dry-run"], capture_output=True, text=True, env=env
    )
    assert imported.returncode == 0, imported.stderr
    assert "regions disagree" not in imported.stderr and "Eileen Collins" in imported.stdout
