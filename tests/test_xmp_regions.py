"""Region geometry: the orientation maps agree with the pixels decode produces, encodings round-trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.image.decode import decode
from facetags.xmp.regions import (
    check_box,
    format_mp_rectangle,
    from_mwg_area,
    iou,
    match_boxes,
    parse_mp_rectangle,
    point_to_upright,
    stored_to_upright,
    to_mwg_area,
    upright_size,
    upright_to_stored,
)
from tests.xmp_support import oriented_copy, stored_box_of

ORIENTATIONS = range(1, 9)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_points_follow_the_pixels_decode_gives(
    orientation: int, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """A stored pixel (u, v) shows up in decode's upright image where point_to_upright says."""
    stored = astronaut[::2, :320:2]  # 256 x 160: not square, so transposes are visible
    path = tmp_path / f"o{orientation}.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes())
    up = decode(path)
    sh, sw = stored.shape[:2]
    assert (up.width, up.height) == upright_size((sw, sh), orientation)
    rng = np.random.default_rng(orientation)
    for row, col in zip(rng.integers(0, sh, 50), rng.integers(0, sw, 50), strict=True):
        # the centre of pixel (col, row), normalised
        u, v = (col + 0.5) / sw, (row + 0.5) / sh
        x, y = point_to_upright(u, v, orientation)
        ux, uy = int(x * up.width), int(y * up.height)
        assert np.array_equal(up.image[uy, ux], stored[row, col])


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_boxes_match_an_independent_mask_transpose(orientation: int) -> None:
    upright = (0.10, 0.20, 0.30, 0.25)
    size = (400, 300)  # upright size
    expected = stored_box_of(upright, size, orientation)
    got = upright_to_stored(upright, orientation)
    assert got == pytest.approx(expected, abs=1e-9)
    assert stored_to_upright(got, orientation) == pytest.approx(upright, abs=1e-12)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_oriented_copy_is_the_same_picture_upright(
    orientation: int, astronaut: np.ndarray, tmp_path: Path
) -> None:
    path = oriented_copy(Image.fromarray(astronaut[:, :400]), orientation, tmp_path / "a.png")
    assert np.array_equal(decode(path).image, astronaut[:, :400])


def test_mwg_area_is_the_centre() -> None:
    box = (0.1, 0.2, 0.3, 0.4)
    assert to_mwg_area(box) == pytest.approx((0.25, 0.4, 0.3, 0.4))
    assert from_mwg_area(*to_mwg_area(box)) == pytest.approx(box)


def test_mp_rectangle_round_trip() -> None:
    box = (0.123456, 0.5, 0.25, 0.0625)
    text = format_mp_rectangle(box)
    assert text == "0.123456, 0.5, 0.25, 0.0625"
    assert parse_mp_rectangle(text) == pytest.approx(box)
    with pytest.raises(ValueError):
        parse_mp_rectangle("0.1, 0.2, 0.3")
    with pytest.raises(ValueError):
        parse_mp_rectangle("a, b, c, d")


@pytest.mark.parametrize(
    "box",
    [
        (math.nan, 0.1, 0.2, 0.2),
        (0.1, 0.1, math.inf, 0.2),
        (0.1, 0.1, -0.2, 0.2),
        (0.1, 0.1, 0.0, 0.2),
        (0.1, 0.1, 5.0, 0.2),
        (1e300, 0.1, 0.2, 0.2),
        (-3.0, 0.1, 0.2, 0.2),
    ],
)
def test_nonsense_boxes_are_rejected(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError):
        check_box(box)


def test_slightly_outside_boxes_are_clipped() -> None:
    assert check_box((-0.005, 0.5, 0.2, 0.2)) == pytest.approx((0.0, 0.5, 0.195, 0.2))


def test_iou_and_matching() -> None:
    a = (0.0, 0.0, 0.2, 0.2)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, (0.1, 0.0, 0.2, 0.2)) == pytest.approx(1 / 3)
    assert iou(a, (0.5, 0.5, 0.1, 0.1)) == 0.0
    left = [(0.0, 0.0, 0.2, 0.2), (0.5, 0.5, 0.2, 0.2)]
    right = [(0.51, 0.5, 0.2, 0.2), (0.9, 0.9, 0.05, 0.05), (0.01, 0.0, 0.2, 0.2)]
    assert [(i, j) for i, j, _ in match_boxes(left, right)] == [(0, 2), (1, 0)]
