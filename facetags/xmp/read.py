"""Read face regions other tools (and facetags) wrote: MWG and Microsoft MP, embedded or sidecar.

:func:`read_regions` looks at the photo itself and at both sidecar names (``photo.jpg.xmp`` and
``photo.xmp``), converts every valid face region from the stored-image frame to a normalised
upright box and returns them with their names. :func:`parse` turns one file's flat Exiv2 keys
into regions (also used by the writer to merge with what is there).

Nothing in a file can crash this: oversized packets and DTDs are refused by
:mod:`facetags.xmp.packet`; regions with missing, non-numeric, NaN, negative, empty or
out-of-image areas, absurdly long names, or beyond :data:`MAX_REGIONS` are skipped, each with a
warning naming the file.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facetags.names import MAX_NAME
from facetags.paths import existing_sidecars as existing_sidecars
from facetags.paths import sidecar_candidates as sidecar_candidates
from facetags.xmp.packet import Entry, XmpError, load
from facetags.xmp.regions import (
    Box,
    Region,
    check_box,
    from_mwg_area,
    iou,
    parse_mp_rectangle,
    stored_to_upright,
)

log = logging.getLogger(__name__)

#: Regions beyond this many in one list are ignored (a real photo has a few dozen at most).
MAX_REGIONS = 1000
#: Names longer than this are not names.

MWG_ROOT = "Xmp.mwg-rs.Regions"
MWG_LIST = f"{MWG_ROOT}/mwg-rs:RegionList"
MWG_DIMS = f"{MWG_ROOT}/mwg-rs:AppliedToDimensions"
MP_ROOT = "Xmp.MP.RegionInfo"
MP_LIST = f"{MP_ROOT}/MPRI:Regions"

_ITEM = re.compile(r"^\[(\d{1,9})\](?:/(.*))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass
class RawRegion:
    """One entry of a region list as found in a file (stored frame)."""

    index: int  # 1-based position in the list (Exiv2's [n])
    box: Box | None  # normalised stored-frame box; None when missing or invalid
    name: str | None
    type: str | None  # MWG Type (Face, Pet, Focus, BarCode); None for MP


@dataclass
class Parsed:
    """The region-related content of one XMP file."""

    source: str
    mwg: list[RawRegion] = field(default_factory=list)
    mp: list[RawRegion] = field(default_factory=list)
    mwg_root: bool = False  # Xmp.mwg-rs.Regions exists
    mwg_list: bool = False  # ... and its RegionList container
    mwg_dims: tuple[float, float] | None = None
    mp_root: bool = False
    mp_list: bool = False
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Note a problem with the file's regions: callers report :attr:`warnings` (a write or
        an import says each once; logging it here too said it again at every parse of the file)."""
        text = f"{self.source}: {message}"
        self.warnings.append(text)
        log.debug("%s", text)

    def max_index(self, schema: str) -> int:
        items = self.mwg if schema == "mwg" else self.mp
        return max((r.index for r in items), default=0)


@dataclass
class ReadResult:
    regions: list[Region]
    warnings: list[str]


def text_of(value: Any) -> str | None:
    """A flat value as one string: first item of a list, x-default of a lang-alt."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return text_of(value[0])
    if isinstance(value, dict) and value:
        for key, text in value.items():
            if "x-default" in str(key):
                return str(text)
        return str(next(iter(value.values())))
    return None


def region_name(value: Any) -> str | None:
    """A region name as a file gives it: trimmed, control characters made spaces, cut to the
    longest a name may be (:data:`facetags.names.MAX_NAME`); None when empty. A longer name is
    still a name: the region is named (another tool's, not facetags' to fill in)."""
    text = text_of(value)
    if text is None:
        return None
    text = _CONTROL.sub(" ", text).strip()
    return text[:MAX_NAME].rstrip() or None


def _number(value: Any) -> float:
    text = text_of(value)
    if text is None:
        raise ValueError("missing")
    number = float(text.strip())
    if not math.isfinite(number):
        raise ValueError(f"not finite: {text[:30]!r}")
    return number


def item_key(key: str, prefix: str) -> tuple[int, str] | None:
    """``key`` as (index, what follows the index: "" or "/field...") when it lies in an item of
    the array at ``prefix``; None otherwise."""
    if not key.startswith(prefix + "["):
        return None
    match = _ITEM.match(key[len(prefix) :])
    if match is None:
        return None
    return int(match.group(1)), key[len(prefix) + len(match.group(1)) + 2 :]


def _group(flat: Mapping[str, Entry], prefix: str) -> tuple[bool, dict[int, dict[str, Any]]]:
    """Items of the array at ``prefix``: index -> {field path: value}; and whether it exists."""
    items: dict[int, dict[str, Any]] = {}
    exists = prefix in flat
    for key, (_type, value) in flat.items():
        found = item_key(key, prefix)
        if found is None:
            continue
        exists = True
        index, rest = found
        fields = items.setdefault(index, {})
        if rest:
            fields[rest[1:]] = value
    return exists, items


def parse(flat: Mapping[str, Entry], source: str) -> Parsed:
    """Regions in one file's flat XMP, validated, in the stored frame."""
    out = Parsed(source=source)
    out.mwg_root = any(k == MWG_ROOT or k.startswith(MWG_ROOT + "/") for k in flat)
    out.mp_root = any(k == MP_ROOT or k.startswith(MP_ROOT + "/") for k in flat)
    dims = {k.rsplit(":", 1)[-1]: v for k, (_t, v) in flat.items() if k.startswith(MWG_DIMS + "/stDim:")}
    try:
        dw, dh = _number(dims.get("w")), _number(dims.get("h"))
        if dw > 0 and dh > 0:
            out.mwg_dims = (dw, dh)
    except ValueError:
        out.mwg_dims = None
    out.mwg_list, mwg_items = _group(flat, MWG_LIST)
    out.mp_list, mp_items = _group(flat, MP_LIST)
    for schema, items in (("mwg", mwg_items), ("mp", mp_items)):
        if len(items) > MAX_REGIONS:
            out.warn(f"{len(items)} {schema.upper()} regions; only the first {MAX_REGIONS} are read")
        for index in sorted(items)[:MAX_REGIONS]:
            fields = items[index]
            if schema == "mwg":
                out.mwg.append(_parse_mwg(out, index, fields))
            else:
                out.mp.append(_parse_mp(out, index, fields))
    return out


def _parse_mwg(out: Parsed, index: int, fields: dict[str, Any]) -> RawRegion:
    name = region_name(fields.get("mwg-rs:Name"))
    kind = text_of(fields.get("mwg-rs:Type"))
    region = RawRegion(index=index, box=None, name=name, type=kind.strip() if kind else None)
    if region.type not in (None, "", "Face"):
        return region  # a pet, focus point or barcode: kept, not a face
    area = {k.rsplit(":", 1)[-1]: v for k, v in fields.items() if k.startswith("mwg-rs:Area/")}
    try:
        cx, cy, w, h = (_number(area.get(k)) for k in ("x", "y", "w", "h"))
        unit = (text_of(area.get("unit")) or "normalized").strip().lower()
        if unit == "pixel":
            if out.mwg_dims is None:
                raise ValueError("pixel units without AppliedToDimensions")
            dw, dh = out.mwg_dims
            cx, cy, w, h = cx / dw, cy / dh, w / dw, h / dh
        elif unit not in ("normalized", "normalised"):
            raise ValueError(f"unknown unit {unit[:20]!r}")
        region.box = check_box(from_mwg_area(cx, cy, w, h))
    except ValueError as exc:
        out.warn(f"MWG region {index} ({name or 'unnamed'}) ignored: {exc}")
    return region


def _parse_mp(out: Parsed, index: int, fields: dict[str, Any]) -> RawRegion:
    name = region_name(fields.get("MPReg:PersonDisplayName"))
    region = RawRegion(index=index, box=None, name=name, type=None)
    text = text_of(fields.get("MPReg:Rectangle"))
    try:
        if text is None:
            raise ValueError("no Rectangle")
        region.box = check_box(parse_mp_rectangle(text))
    except ValueError as exc:
        out.warn(f"MP region {index} ({name or 'unnamed'}) ignored: {exc}")
    return region


def photo_geometry(photo: Path) -> tuple[int, tuple[int, int]]:
    """The EXIF orientation and stored ``(width, height)`` of ``photo``, as facetags decodes it."""
    from facetags.image.decode import image_size, read_orientation

    return read_orientation(photo), image_size(photo)


def load_parsed(path: Path, *, sidecar: bool) -> Parsed:
    """Load and parse one file; unreadable or hostile XMP gives an empty result with a warning."""
    try:
        flat, _writable = load(path, sidecar=sidecar)
    except XmpError as exc:
        out = Parsed(source=str(path))
        out.warnings.append(str(exc))
        log.warning("%s", exc)
        return out
    return parse(flat, str(path))


def reframed(dims: tuple[float, float] | None, stored_size: tuple[int, int], orientation: int = 1) -> bool:
    """Whether regions given for pixel size ``dims`` (``AppliedToDimensions``) are in another
    frame of the picture than its stored ``stored_size``: its shape differs (cropped, or turned a
    quarter by rewriting the pixels, by an editor that kept the XMP as it was). The same shape at
    another size (a resized copy) keeps every normalised region in place; so does, for a photo
    shown turned a quarter (EXIF ``orientation`` 5 to 8), the shape as shown (some tools give
    that size, against the MWG rule)."""
    if dims is None or min(dims) <= 0 or min(stored_size) <= 0:
        return False
    (dw, dh), (sw, sh) = dims, stored_size

    def other_shape(w: float, h: float) -> bool:
        return abs(dw * h - dh * w) > 0.01 * dw * h

    return other_shape(sw, sh) and (orientation < 5 or other_shape(sh, sw))


def parsed_files(photo: Path, but: Path | None = None) -> list[tuple[Path, Parsed]]:
    """Every XMP file of ``photo`` (``but`` that one), parsed: the photo's own XMP, then each of
    its sidecars."""
    files = [(photo, False), *((path, True) for path in existing_sidecars(photo))]
    return [(path, load_parsed(path, sidecar=sidecar)) for path, sidecar in files if path != but]


def read_regions(photo: Path) -> ReadResult:
    """Every valid face region of ``photo`` (embedded and sidecars) as normalised upright boxes.

    Duplicates (the same face as MWG and MP, or in the photo and its sidecar) are merged. The
    regions of a file placed for a picture of another shape (:func:`reframed`) are left out,
    with a warning: they are not where the faces are.
    """
    photo = Path(photo)
    orientation, size = photo_geometry(photo)
    regions: list[Region] = []
    warnings: list[str] = []
    for _path, item in parsed_files(photo):
        warnings += item.warnings
        if reframed(item.mwg_dims, size, orientation) and (item.mwg or item.mp):
            dw, dh = (round(v) for v in item.mwg_dims or (0, 0))
            warnings.append(
                f"{item.source}: the regions in this file were placed for a {dw}x{dh} picture and the "
                f"photo is {size[0]}x{size[1]} (cropped or turned since): not read from this file"
            )
            continue
        for schema, raws in (("mwg", item.mwg), ("mp", item.mp)):
            for raw in raws:
                if raw.box is None:
                    continue
                box = stored_to_upright(raw.box, orientation)
                _add_unique(regions, Region(box=box, name=raw.name, schema=schema, source=item.source))
    return ReadResult(regions=regions, warnings=warnings)


def _add_unique(regions: list[Region], new: Region, threshold: float = 0.5) -> None:
    for i, old in enumerate(regions):
        if iou(old.box, new.box) < threshold:
            continue
        if old.name is not None and new.name is not None and old.name.casefold() != new.name.casefold():
            continue  # the same place with two names: keep both, the importer sees the conflict
        if old.name is None and new.name is not None:
            regions[i] = new
        return
    regions.append(new)
