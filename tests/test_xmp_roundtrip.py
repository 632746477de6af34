"""Round trip through exiftool: the regions we write are where the faces are, in every orientation.

Each case makes a copy of a real photo stored rotated/flipped with an EXIF orientation tag (its
upright view is the original picture), detects the faces with facetags' detector, writes them,
and reads the file back with exiftool as an independent reader. The expected stored-image
position of each face is computed by transposing a mask with Pillow, not by facetags.xmp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.xmp.read import read_regions
from facetags.xmp.regions import FaceTag, iou
from facetags.xmp.write import WriteOptions, write_photo
from tests.xmp_support import centre, detected_faces, exiftool, need_exiftool, oriented_copy, stored_box_of

TAGS = ("-struct", "-RegionInfo", "-RegionInfoMP", "-PersonInImage", "-HierarchicalSubject", "-TagsList")


Box = tuple[float, float, float, float]


def _faces(path: Path, fallback: list[Box]) -> list[Box]:
    try:
        return detected_faces(path)
    except ImportError:  # the detector's module is not there: known upright positions
        return fallback


def _check_exiftool(
    report: dict, names: list[str], upright: list[tuple[float, float, float, float]], size, orientation: int
) -> None:
    stored_w, stored_h = size if orientation < 5 else (size[1], size[0])
    info = report["RegionInfo"]
    assert info["AppliedToDimensions"]["W"] == stored_w
    assert info["AppliedToDimensions"]["H"] == stored_h
    mwg = {r["Name"]: r for r in info["RegionList"]}
    mp = {r["PersonDisplayName"]: r for r in report["RegionInfoMP"]["Regions"]}
    for name, box in zip(names, upright, strict=True):
        expected = stored_box_of(box, size, orientation)
        ex, ey = centre(expected)
        area = mwg[name]["Area"]
        assert mwg[name]["Type"] == "Face"
        assert area["Unit"] == "normalized"
        assert abs(area["X"] - ex) < 0.01 and abs(area["Y"] - ey) < 0.01, (name, area, expected)
        assert area["W"] == pytest.approx(expected[2], abs=0.01)
        assert area["H"] == pytest.approx(expected[3], abs=0.01)
        rect = [float(v) for v in mp[name]["Rectangle"].split(",")]
        mx, my = rect[0] + rect[2] / 2, rect[1] + rect[3] / 2
        assert abs(mx - ex) < 0.01 and abs(my - ey) < 0.01, (name, rect, expected)
    assert sorted(_list(report["PersonInImage"])) == sorted(names)
    assert sorted(_list(report["HierarchicalSubject"])) == sorted(f"People|{n}" for n in names)
    assert sorted(_list(report["TagsList"])) == sorted(f"People/{n}" for n in names)


def _list(value: object) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("mode", ["embed", "sidecar"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_astronaut_every_orientation(
    orientation: int, mode: str, astronaut: np.ndarray, tmp_path: Path
) -> None:
    need_exiftool()
    upright = Image.fromarray(astronaut[:, 40:480])  # 512 x 440: not square
    photo = oriented_copy(upright, orientation, tmp_path / "astronaut.jpg", quality=95)
    faces = _faces(photo, [(0.318, 0.127, 0.193, 0.209)])
    assert len(faces) == 1
    result = write_photo(photo, [FaceTag(faces[0], "Eileen Collins")], WriteOptions(mode=mode))
    assert result.error is None and result.written, result
    target = photo if mode == "embed" else photo.with_name("astronaut.jpg.xmp")
    assert result.target == target
    (report,) = exiftool(*TAGS, target)
    _check_exiftool(report, ["Eileen Collins"], faces, upright.size, orientation)
    # ... and facetags reads back the upright box it wrote.
    (region,) = read_regions(photo).regions
    assert region.name == "Eileen Collins"
    assert iou(region.box, faces[0]) > 0.98


@pytest.mark.parametrize("mode", ["embed", "sidecar"])
@pytest.mark.parametrize("orientation", [1, 6, 7])
def test_group_photo(orientation: int, mode: str, t1_path: Path, tmp_path: Path) -> None:
    need_exiftool()
    upright = Image.open(t1_path).convert("RGB")
    photo = oriented_copy(upright, orientation, tmp_path / "group.jpg", quality=92)
    faces = _faces(photo, [])
    if not faces:
        pytest.skip("the face detector is not available")
    assert len(faces) == 6
    names = [f"Person {chr(65 + i)}" for i in range(len(faces))]
    tags = [FaceTag(b, n) for b, n in zip(faces, names, strict=True)]
    result = write_photo(photo, tags, WriteOptions(mode=mode))
    assert result.written, result
    (report,) = exiftool(*TAGS, result.target)
    _check_exiftool(report, names, faces, upright.size, orientation)


@pytest.mark.shared_data
def test_shared_group_photos(shared_data: Path, tmp_path: Path) -> None:
    """Real group photos from the shared data, if present: every detected face written and read."""
    need_exiftool()
    candidates = sorted(p for p in shared_data.rglob("*.jpg") if p.stat().st_size > 50_000)[:40]
    done = 0
    for source in candidates:
        faces = _faces(source, [])
        if len(faces) < 3:
            continue
        upright = Image.open(source).convert("RGB")
        photo = oriented_copy(upright, 8, tmp_path / f"g{done}.jpg", quality=92)
        faces = _faces(photo, [])
        names = [f"P{i}" for i in range(len(faces))]
        result = write_photo(photo, [FaceTag(b, n) for b, n in zip(faces, names, strict=True)])
        assert result.written, result
        (report,) = exiftool(*TAGS, photo)
        _check_exiftool(report, names, faces, upright.size, 8)
        done += 1
        if done == 2:
            break
    if not done:
        pytest.skip("no group photos with 3+ faces among the first shared images")
