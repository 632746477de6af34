"""Region geometry: upright <-> stored coordinates, MWG and MP encodings, IoU matching.

Every box here is normalised: ``(x, y, w, h)`` with ``x, y`` the top-left corner and all four
values fractions of the image's width and height. Two frames matter:

* **upright**: the photo as shown, with the EXIF orientation applied. facetags detects faces
  here (:class:`facetags.vision.types.Face`) and the library stores them here.
* **stored**: the pixel grid as it lies in the file, before the orientation is applied. The
  MWG guidelines put regions here (``AppliedToDimensions`` is the stored pixel size), and so do
  Windows' ``MP:RegionInfo`` rectangles; so does every tool that reads them.

Because boxes are normalised, converting between the frames needs only the orientation, not
the pixel size: :mod:`facetags.orientation` has the table of the eight EXIF orientations and
the conversions, which this module re-exports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from facetags.orientation import point_to_upright as point_to_upright
from facetags.orientation import stored_to_upright as stored_to_upright
from facetags.orientation import upright_size as upright_size
from facetags.orientation import upright_to_stored as upright_to_stored

Box = tuple[float, float, float, float]  # x, y, w, h; top-left corner; normalised


@dataclass(frozen=True)
class FaceTag:
    """A face facetags wants written: a normalised upright box and the person's name, if any."""

    box: Box
    name: str | None = None
    previous: str | None = None  # the name facetags last wrote for this face in this file
    # every name of facetags' this file may carry for this face (a write stopped part-way, a copy
    # made before a rename): all are facetags' own, to replace or take back
    written: tuple[str, ...] = ()
    face_id: int | None = None  # the library's face, to report what the file now says of it
    # a face an edit of the picture cut off: its regions of ours (``written``) are taken out of a
    # file placed for the older picture (``box`` is not used)
    gone: bool = False


@dataclass(frozen=True)
class Region:
    """A face region read from a photo's XMP, converted to a normalised upright box."""

    box: Box
    name: str | None
    schema: str  # "mwg" or "mp"
    source: str  # the file it was read from (the photo or a sidecar)


def normalise(box_px: Sequence[float], width: float, height: float) -> Box:
    """A pixel box ``(x, y, w, h)`` -> normalised, clipped to the image."""
    x, y, w, h = (float(v) for v in box_px)
    return clip((x / width, y / height, w / width, h / height))


def clip(box: Box) -> Box:
    """``box`` clipped to the unit square (a detector's box may stick out of the photo)."""
    x, y, w, h = box
    left, top = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    right, bottom = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    return (left, top, max(right - left, 0.0), max(bottom - top, 0.0))


# -- encodings ------------------------------------------------------------------------------


def to_mwg_area(stored: Box) -> Box:
    """A stored-frame box -> MWG ``stArea`` ``(x, y, w, h)`` with ``x, y`` the centre."""
    x, y, w, h = stored
    return (x + w / 2.0, y + h / 2.0, w, h)


def from_mwg_area(cx: float, cy: float, w: float, h: float) -> Box:
    """MWG ``stArea`` (centre, size) -> a top-left box in the same (stored) frame."""
    return (cx - w / 2.0, cy - h / 2.0, w, h)


def format_number(value: float) -> str:
    """A coordinate as XMP text: six decimals, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_mp_rectangle(stored: Box) -> str:
    """A stored-frame box -> MP ``Rectangle`` text ``"x, y, w, h"`` (top-left, normalised)."""
    return ", ".join(format_number(v) for v in stored)


def parse_mp_rectangle(text: str) -> Box:
    """MP ``Rectangle`` text -> ``(x, y, w, h)``; raises ``ValueError`` if it is not 4 numbers."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise ValueError(f"MP rectangle needs 4 numbers, got {text[:60]!r}")
    values = tuple(float(p) for p in parts)
    return (values[0], values[1], values[2], values[3])


def check_box(box: Box, *, slack: float = 0.01) -> Box:
    """Validate a normalised box read from a file; return it clipped to the unit square.

    Raises ``ValueError`` for NaN/infinite values, an empty or negative size, a size beyond the
    image, or a box lying outside the image (more than ``slack`` beyond an edge).
    """
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"non-finite coordinate in {box}")
    x, y, w, h = box
    if w <= 0.0 or h <= 0.0:
        raise ValueError(f"empty or negative size {w:g} x {h:g}")
    if w > 1.0 + slack or h > 1.0 + slack:
        raise ValueError(f"size {w:g} x {h:g} is larger than the image")
    if x < -slack or y < -slack or x + w > 1.0 + slack or y + h > 1.0 + slack:
        raise ValueError(f"box {tuple(round(v, 4) for v in box)} lies outside the image")
    clipped = clip(box)
    if clipped[2] <= 0.0 or clipped[3] <= 0.0:
        raise ValueError("box is empty once clipped to the image")
    return clipped


# -- matching -------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes in the same frame."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0.0 or ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0.0 else 0.0


def match_boxes(
    left: Sequence[Box], right: Sequence[Box], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU: ``(i, j, iou)`` for pairs with IoU >= ``threshold``.

    The best-overlapping pair is taken first, so each box is used at most once.
    """
    pairs = [
        (score, i, j)
        for i, a in enumerate(left)
        for j, b in enumerate(right)
        if (score := iou(a, b)) >= threshold
    ]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_left: set[int] = set()
    used_right: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for score, i, j in pairs:
        if i in used_left or j in used_right:
            continue
        used_left.add(i)
        used_right.add(j)
        out.append((i, j, score))
    return out
