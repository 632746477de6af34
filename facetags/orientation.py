"""EXIF orientation as geometry: normalised points and boxes between the stored and the upright frame.

Every box is normalised: ``(x, y, w, h)``, top-left corner, fractions of the image's width and
height. The **stored** frame is the pixel grid as it lies in the file; the **upright** frame is
the photo as shown, with the EXIF orientation applied (where facetags detects and stores faces).
Normalised coordinates need only the orientation to move between frames, not the pixel size.
EXIF orientation ``o`` says which transform makes the stored image upright:

=====  ======================================  ==========================
``o``  stored -> upright                        stored (u, v) -> upright
=====  ======================================  ==========================
1      identity                                 (u, v)
2      mirror left-right                        (1 - u, v)
3      rotate 180°                              (1 - u, 1 - v)
4      mirror top-bottom                        (u, 1 - v)
5      transpose (mirror along main diagonal)   (v, u)
6      rotate 90° clockwise                     (1 - v, u)
7      transverse (mirror along anti-diagonal)  (1 - v, 1 - u)
8      rotate 90° counter-clockwise             (v, 1 - u)
=====  ======================================  ==========================

These match the Pillow transposes that :mod:`facetags.image.decode` applies, which a test checks
pixel by pixel. A leaf module: ingest (a photo whose orientation tag changed) and xmp (regions
are written in the stored frame) both use it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h; top-left corner; normalised
Point = tuple[float, float]

_TO_UPRIGHT: dict[int, Callable[[float, float], Point]] = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1.0 - u, v),
    3: lambda u, v: (1.0 - u, 1.0 - v),
    4: lambda u, v: (u, 1.0 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (1.0 - v, u),
    7: lambda u, v: (1.0 - v, 1.0 - u),
    8: lambda u, v: (v, 1.0 - u),
}

_TO_STORED: dict[int, Callable[[float, float], Point]] = {
    1: lambda x, y: (x, y),
    2: lambda x, y: (1.0 - x, y),
    3: lambda x, y: (1.0 - x, 1.0 - y),
    4: lambda x, y: (x, 1.0 - y),
    5: lambda x, y: (y, x),
    6: lambda x, y: (y, 1.0 - x),
    7: lambda x, y: (1.0 - y, 1.0 - x),
    8: lambda x, y: (1.0 - y, x),
}


def check_orientation(orientation: int) -> int:
    if orientation not in _TO_UPRIGHT:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}")
    return orientation


def map_box(box: Box, fn: Callable[[float, float], Point]) -> Box:
    x, y, w, h = box
    ax, ay = fn(x, y)
    bx, by = fn(x + w, y + h)
    left, top = min(ax, bx), min(ay, by)
    return (left, top, abs(bx - ax), abs(by - ay))


def upright_to_stored(box: Box, orientation: int) -> Box:
    """A normalised box in the upright photo -> the same box in the stored image."""
    return map_box(box, _TO_STORED[check_orientation(orientation)])


def stored_to_upright(box: Box, orientation: int) -> Box:
    """A normalised box in the stored image -> the same box in the upright photo."""
    return map_box(box, _TO_UPRIGHT[check_orientation(orientation)])


def point_to_upright(u: float, v: float, orientation: int) -> Point:
    """A normalised point of the stored image -> the upright photo."""
    return _TO_UPRIGHT[check_orientation(orientation)](u, v)


def point_to_stored(x: float, y: float, orientation: int) -> Point:
    """A normalised point of the upright photo -> the stored image."""
    return _TO_STORED[check_orientation(orientation)](x, y)


def upright_size(stored_size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The upright ``(width, height)`` of a stored image of ``stored_size`` (and back: the
    swap is its own inverse)."""
    w, h = stored_size
    return (h, w) if check_orientation(orientation) >= 5 else (w, h)


def reorient_box(box: Box, old: int, new: int) -> Box:
    """A box of the photo shown under orientation ``old`` -> the same pixels shown under ``new``."""
    return stored_to_upright(upright_to_stored(box, old), new)


def reorient_point(x: float, y: float, old: int, new: int) -> Point:
    u, v = point_to_stored(x, y, old)
    return point_to_upright(u, v, new)


def to_stored_pixels(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixel grid of an ``HxW[xC]`` image shown under ``orientation`` (a view, exact:
    transposes move pixels, never resample them)."""
    o = check_orientation(orientation)
    if o == 1:
        return upright
    if o == 2:
        return upright[:, ::-1]
    if o == 3:
        return upright[::-1, ::-1]
    if o == 4:
        return upright[::-1]
    swapped = upright.swapaxes(0, 1)
    if o == 5:
        return swapped
    if o == 6:  # upright = stored turned 90° clockwise
        return swapped[::-1]
    if o == 7:
        return swapped[::-1, ::-1]
    return swapped[:, ::-1]  # 8: upright = stored turned 90° counter-clockwise
