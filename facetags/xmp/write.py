"""Write facetags' faces into a photo's XMP (embedded or sidecar), merging with what is there.

:func:`write_photo` plans the change as flat Exiv2 keys (:func:`plan`), then applies it through
:func:`facetags.xmp.safefile.atomic_update`. New regions are appended after the ones already in
the file, an unnamed region that matches one of our faces gets its name, and names are appended
to the keyword lists. Other tools' regions, names, keywords and fields facetags does not know are
left as they are. A region at the place of one of our faces (IoU >= ``iou_threshold``) that
carries another name, in this file or in the photo's other XMP, is kept and reported as a
conflict, and nothing is written for that face (no region in any schema, no keyword: one story
per photo), unless ``replace_names`` is set, or
unless facetags wrote that name itself for that face into this file (``FaceTag.previous``,
``FaceTag.written``, remembered by the library): then
facetags' own stale name is replaced by the face's new one, or taken back (the region stays, unnamed,
and the name leaves the keyword lists) when the face has none any more. In a file whose regions
were placed for a picture of another shape (cropped since, by an editor that kept the XMP),
facetags' own regions move to their faces and no other region is matched (:func:`facetags.xmp.read.reframed`).
Running it twice changes nothing the second time.

All coordinates written are in the stored-image frame (MWG rule); see
:mod:`facetags.xmp.regions`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facetags.errors import FacetagsError, LibraryError
from facetags.names import same_name
from facetags.xmp import packet, read
from facetags.xmp.packet import Entry, Flat, XmpError
from facetags.xmp.read import MP_LIST, MP_ROOT, MWG_DIMS, MWG_LIST, MWG_ROOT, Parsed, RawRegion
from facetags.xmp.regions import (
    Box,
    FaceTag,
    clip,
    format_mp_rectangle,
    format_number,
    iou,
    to_mwg_area,
    upright_to_stored,
)
from facetags.xmp.safefile import atomic_update, file_identity

log = logging.getLogger(__name__)

SCHEMAS = ("mwg", "mp", "iptc", "digikam", "lightroom", "dc")

# one face to write, in the stored-image frame: (box, name or None, the name facetags wrote before)
#: A face to write: its box, its name, and the names facetags wrote for it (its own, if found)
Ours = tuple[Box, str | None, tuple[str, ...]]

# schema -> (flat key, array type, how a name becomes an item)
_KEYWORDS: dict[str, tuple[str, str]] = {
    "iptc": ("Xmp.iptcExt.PersonInImage", "Bag"),
    "digikam": ("Xmp.digiKam.TagsList", "Seq"),
    "lightroom": ("Xmp.lr.hierarchicalSubject", "Bag"),
    "dc": ("Xmp.dc.subject", "Bag"),
}


@dataclass(frozen=True)
class WriteOptions:
    """What to write and where. :meth:`from_settings` reads the ``xmp_*`` settings."""

    schemas: frozenset[str] = frozenset(SCHEMAS)
    mode: str = "embed"  # "embed" or "sidecar"
    sidecar_name: str = "photo.jpg.xmp"  # or "photo.xmp"
    people_root: str = "People"
    include_unnamed: bool = False
    replace_names: bool = False
    iou_threshold: float = 0.5

    def __post_init__(self) -> None:
        unknown = set(self.schemas) - set(SCHEMAS)
        if unknown:
            raise ValueError(f"unknown XMP schema(s) {sorted(unknown)}; known: {', '.join(SCHEMAS)}")
        if self.mode not in ("embed", "sidecar"):
            raise ValueError(f"XMP mode must be 'embed' or 'sidecar', got {self.mode!r}")
        if self.sidecar_name not in ("photo.jpg.xmp", "photo.xmp"):
            raise ValueError(
                f"sidecar name must be 'photo.jpg.xmp' or 'photo.xmp', got {self.sidecar_name!r}"
            )

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WriteOptions:
        """Options from :class:`facetags.config.Settings` (missing fields keep defaults)."""
        values: dict[str, Any] = {}
        schemas = getattr(settings, "xmp_schemas", None)
        if isinstance(schemas, str):
            values["schemas"] = frozenset(s.strip().lower() for s in schemas.split(",") if s.strip())
        for name, attr in (
            ("mode", "xmp_mode"),
            ("sidecar_name", "xmp_sidecar_name"),
            ("people_root", "xmp_people_root"),
        ):
            value = getattr(settings, attr, None)
            if value:
                values[name] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Plan:
    updates: dict[str, Any] = field(default_factory=dict)  # a value of None deletes the key
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # position in the faces planned -> the name facetags' region carries once the plan is applied
    # (None: no name of ours); faces left out (a conflict, nothing to say) are absent
    names: dict[int, str | None] = field(default_factory=dict)
    # faces left as they are because another tool gave them another name (a conflict)
    kept: int = 0
    # position -> names of facetags' still at the face in XMP this plan leaves alone (the photo's
    # other XMP file, region lists of schemas not written): the file may still carry them
    still: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class WriteResult:
    """What :func:`write_photo` did (or, with ``dry_run``, would do) to one photo."""

    photo: Path
    target: Path | None  # the file written: the photo itself or its sidecar
    mode: str  # "embedded" or "sidecar"
    changes: list[str]
    warnings: list[str]
    written: bool = False
    error: str | None = None
    # face id -> the name of ours the photo now carries for it (None: none); only once the file
    # holds it (written, or already up to date), never for a dry run or a failure
    names: dict[int, str | None] = field(default_factory=dict)
    # faces whose tags were left as they are: another tool named them otherwise (a warning each)
    kept: int = 0
    # face id -> names of facetags' the photo's XMP still carries for it besides ``names``' (in
    # XMP this write did not touch: the embedded packet while a sidecar was written, say)
    still: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # why a sidecar though the photo itself was asked for ("read-only photo", ...); its warning
    # is in ``warnings`` too
    fallback: str | None = None


# -- planning ---------------------------------------------------------------------------------


def _same(a: str | None, b: str | None) -> bool:
    """The same name, however spelt (case, accents, punctuation: facetags.names.same_name)."""
    return a is not None and b is not None and same_name(a, b)


def _mine(written: tuple[str, ...], name: str | None) -> bool:
    """Whether ``name`` is one facetags wrote for the face."""
    return any(_same(w, name) for w in written)


def _match(ours: Sequence[Ours], theirs: Sequence[RawRegion], threshold: float) -> dict[int, int]:
    """Our face i -> their region position j; a region with the same name is preferred."""
    pairs: list[tuple[float, int, int]] = []
    for i, (box, name, _written) in enumerate(ours):
        for j, region in enumerate(theirs):
            if region.box is None or region.type not in (None, "", "Face"):
                continue
            score = iou(box, region.box)
            if score >= threshold:
                pairs.append((score + (1.0 if _same(name, region.name) else 0.0), i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    out: dict[int, int] = {}
    used: set[int] = set()
    for _score, i, j in pairs:
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


#: In a file placed for another frame of the picture, a region is where its face is now when it
#: covers the face this closely (facetags' own, placed by it: IoU 1 but for rounding). A region
#: left in the older frame by a small crop still overlaps its face by half or more: it is moved.
PLACED_IOU = 0.9


def _match_ours(ours: Sequence[Ours], theirs: Sequence[RawRegion]) -> dict[int, int]:
    """Our face i -> its region j in a file whose regions are placed for an older frame of the
    picture (:func:`facetags.xmp.read.reframed`): one with the face's name (or, for an unnamed
    face, none) at its place (written for the picture as it is), else the first that carries a
    name facetags wrote for the face (places cannot be compared: facetags' own name says which
    region is the face's). Other regions match nothing."""
    out: dict[int, int] = {}
    used: set[int] = set()
    for placed in (True, False):
        for i, (box, name, written) in enumerate(ours):
            if i in out:
                continue
            for j, region in enumerate(theirs):
                if j in used or region.type not in (None, "", "Face"):
                    continue
                if placed:  # the face's name (or, unnamed, none) at its place: written for this frame
                    alike = _same(name, region.name) or (name is None and region.name is None)
                    hit = alike and region.box is not None and iou(box, region.box) >= PLACED_IOU
                else:
                    hit = _mine(written, region.name)
                if hit:
                    out[i] = j
                    used.add(j)
                    break
    return out


def _conflicts(ours: Sequence[Ours], regions: Sequence[RawRegion], threshold: float) -> dict[int, str]:
    """Our named face i -> a different name another tool gave a Face region at its place (not a
    name facetags wrote itself). Such a face is left as it is: one photo, one story."""
    out: dict[int, str] = {}
    for i, (box, name, written) in enumerate(ours):
        if name is None:
            continue
        for region in regions:
            if region.box is None or not region.name or region.type not in (None, "", "Face"):
                continue
            if _same(name, region.name) or _mine(written, region.name):
                continue
            if iou(box, region.box) >= threshold:
                out[i] = region.name
                break
    return out


def _regions(
    plan: Plan,
    schema: str,
    parsed: Parsed,
    ours: Sequence[Ours],
    opts: WriteOptions,
    renamed: dict[tuple[str, int], str],
    kept_names: set[str],
    reframed: bool = False,
) -> tuple[set[int], set[int]]:
    """Plan one region list (MWG or MP): name unnamed matches, take back or replace the names
    facetags wrote that are no longer right, append the rest. In a ``reframed`` file the regions
    of facetags' names move to their faces' places, and no other region is matched. Returns the
    indexes of facetags' regions in such a file, and of those this plan moves."""
    label = schema.upper()
    theirs = parsed.mwg if schema == "mwg" else parsed.mp
    lst, name_field = (MWG_LIST, "mwg-rs:Name") if schema == "mwg" else (MP_LIST, "MPReg:PersonDisplayName")
    matches = _match_ours(ours, theirs) if reframed else _match(ours, theirs, opts.iou_threshold)
    ours_found: set[int] = set()
    moved: set[int] = set()
    next_index = parsed.max_index(schema) + 1
    if schema == "mp" and not parsed.mp_root:
        plan.updates[MP_ROOT] = 'type="Struct"'
    list_exists = parsed.mwg_list if schema == "mwg" else parsed.mp_list
    for i, (box, name, written) in enumerate(ours):
        j = matches.get(i)
        if j is not None:
            region = theirs[j]
            key = f"{lst}[{region.index}]/{name_field}"
            ours_there = _mine(written, region.name)  # facetags wrote that name for this face
            if reframed:  # facetags' region, placed in an older frame of the picture or moved since
                ours_found.add(region.index)
                if region.box is None or iou(box, region.box) < PLACED_IOU:
                    plan.updates.update(_area(schema, f"{lst}[{region.index}]", box))
                    plan.changes.append(
                        f"{label} region {region.index}: move {region.name!r} to the face's place "
                        "(the picture was cropped or turned since it was written)"
                    )
                    moved.add(region.index)
            if name is None:
                if ours_there:
                    plan.updates[key] = None
                    plan.changes.append(
                        f"{label} region {region.index}: take back {region.name!r} (facetags wrote it; "
                        "the face no longer has that name)"
                    )
                    renamed[(schema, region.index)] = str(region.name)
                    plan.names[i] = None
                elif written:
                    plan.names.setdefault(i, None)
                continue
            if name == region.name or (
                _same(name, region.name) and not opts.replace_names and region.name not in written
            ):  # the name, or another tool's spelling of it (kept: not a conflict either)
                kept_names.add(name)
                plan.names[i] = name
                continue
            if region.name is None:
                plan.updates[key] = name
                plan.changes.append(f"{label} region {region.index}: name it {name!r} (was unnamed)")
                kept_names.add(name)
                plan.names[i] = name
            elif opts.replace_names or ours_there:
                plan.updates[key] = name
                plan.changes.append(f"{label} region {region.index}: rename {region.name!r} -> {name!r}")
                renamed[(schema, region.index)] = region.name
                kept_names.add(name)
                plan.names[i] = name
            else:
                plan.warnings.append(
                    f"{label} region {region.index} is named {region.name!r} by another tool; facetags "
                    f"has {name!r} for this face; kept {region.name!r} (use --replace-names to change it)"
                )
            continue
        if name is None and not opts.include_unnamed:
            if written:
                plan.names.setdefault(i, None)  # our region is gone (another tool removed it)
            continue
        if not list_exists:
            plan.updates[lst] = 'type="Bag"'
            list_exists = True
        item = f"{lst}[{next_index}]"
        plan.updates.update(_area(schema, item, box))
        if schema == "mwg":
            plan.updates[f"{item}/mwg-rs:Type"] = "Face"
        if name is not None:
            plan.updates[f"{item}/{name_field}"] = name
            kept_names.add(name)
        plan.names[i] = name
        plan.changes.append(f"{label} region {next_index}: add {name or 'unnamed face'!r}")
        next_index += 1
    return ours_found, moved


def _take_out(
    plan: Plan,
    schema: str,
    regions: Sequence[RawRegion],
    ours_found: set[int],
    gone: Sequence[str],
    renamed: dict[tuple[str, int], str],
) -> set[int]:
    """In a file whose regions are placed for an older frame of the picture: the regions that
    carry a name facetags wrote for a face the picture no longer shows (cut off by a crop), and
    are not one of its faces', are taken out. Returns their indexes."""
    out: set[int] = set()
    for region in regions:
        if region.index in ours_found or region.type not in (None, "", "Face"):
            continue
        if region.name and any(_same(region.name, name) for name in gone):
            out.add(region.index)
            renamed[(schema, region.index)] = region.name
            plan.changes.append(
                f"{schema.upper()} region {region.index}: take out {region.name!r} (facetags wrote it "
                "for a face the edited picture no longer shows)"
            )
    return out


def _without_items(flat: Flat, updates: dict[str, Any], lst: str, drop: set[int]) -> dict[str, Any]:
    """``updates`` that also take the items ``drop`` (the file's indexes) out of the array at
    ``lst``. An XMP array has no gaps (Exiv2 refuses to write one), so the array is written anew
    from its first item: every item the file has there is deleted, then what is left (with the
    other ``updates`` applied) is added again in order, numbered from 1."""
    after = {key: value for key, (_type, value) in flat.items()}
    for key, value in updates.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    items: dict[int, list[tuple[str, Any]]] = {}
    for key, value in after.items():
        found = read.item_key(key, lst)
        if found is not None:
            items.setdefault(found[0], []).append((found[1], value))
    out = {key: value for key, value in updates.items() if read.item_key(key, lst) is None}
    out.update({key: None for key in flat if read.item_key(key, lst) is not None})
    kept = [index for index in sorted(items) if index not in drop]
    for number, index in enumerate(kept, start=1):
        for rest, value in items[index]:
            key = f"{lst}[{number}]{rest}"
            kind = _ARRAY_KINDS.get(flat.get(f"{lst}[{index}]{rest}", ("", None))[0])
            if kind is not None and isinstance(value, list):  # a list inside a region: its kind kept
                out[key] = f'type="{kind}"'
                out.update({f"{key}[{n}]": item for n, item in enumerate(value, start=1)})
            else:
                out[key] = value
    return out


#: Exiv2's array types -> the XMP array kind a list is written back as (a plain list would be
#: written as a Seq).
_ARRAY_KINDS = {"XmpBag": "Bag", "XmpSeq": "Seq", "XmpAlt": "Alt"}


def _set_dims(plan: Plan, stored_size: tuple[int, int]) -> None:
    """The region list's ``AppliedToDimensions``: the stored picture's pixel size."""
    w, h = stored_size
    plan.updates[f"{MWG_DIMS}/stDim:w"] = str(int(w))
    plan.updates[f"{MWG_DIMS}/stDim:h"] = str(int(h))
    plan.updates[f"{MWG_DIMS}/stDim:unit"] = "pixel"


def _area(schema: str, item: str, box: Box) -> dict[str, str]:
    """The keys that place region ``item`` of ``schema``'s list at ``box`` (stored frame)."""
    if schema == "mp":
        return {f"{item}/MPReg:Rectangle": format_mp_rectangle(box)}
    cx, cy, w, h = to_mwg_area(box)
    return {
        f"{item}/mwg-rs:Area/stArea:x": format_number(cx),
        f"{item}/mwg-rs:Area/stArea:y": format_number(cy),
        f"{item}/mwg-rs:Area/stArea:w": format_number(w),
        f"{item}/mwg-rs:Area/stArea:h": format_number(h),
        f"{item}/mwg-rs:Area/stArea:unit": "normalized",
    }


def _items(flat: Mapping[str, Entry], key: str) -> list[str] | None:
    """The items of a simple array; None when the property holds something we must not rewrite
    (a language alternative, a structure): then it is left alone."""
    entry = flat.get(key)
    if any(k.startswith(key + "[") and "/" in k for k in flat):
        return None  # items with qualifiers or fields: not a plain list of strings
    indexed = sorted(
        (int(k[len(key) + 1 : -1]), v)
        for k, (_t, v) in flat.items()
        if k.startswith(key + "[") and k.endswith("]") and k[len(key) + 1 : -1].isdigit()
    )
    if entry is None:
        return [str(v) for _i, v in indexed] if all(isinstance(v, str) for _i, v in indexed) else None
    value = entry[1]
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str) and value.startswith("type="):
        if "Struct" in value or not all(isinstance(v, str) for _i, v in indexed):
            return None
        return [str(v) for _i, v in indexed]
    if isinstance(value, str):
        return [value] if value else []
    return None


#: The separator of each hierarchical keyword schema's levels (``People/Alice``, ``People|Alice``).
HIERARCHY_SEPARATOR = {"digikam": "/", "lightroom": "|"}
#: ... written in a person's name as a look-alike (U+2215 DIVISION SLASH, U+00A6 BROKEN BAR), so
#: the name stays one keyword instead of a level of the tree ("AC/DC": "AC", then "DC").
HIERARCHY_LOOKALIKE = {"/": "\u2215", "|": "\u00a6"}


def _keyword(name: str, schema: str, root: str, *, lookalike: bool = True) -> str:
    """``name``'s keyword in ``schema``: under ``root`` in a hierarchical one (``lookalike``
    False: as facetags 0.1 wrote it, a separator inside the name left as it is)."""
    separator = HIERARCHY_SEPARATOR.get(schema)
    if separator is None or not root:
        return name
    leaf = name.replace(separator, HIERARCHY_LOOKALIKE[separator]) if lookalike else name
    return f"{root}{separator}{leaf}"


def _keywords(
    plan: Plan, flat: Mapping[str, Entry], opts: WriteOptions, names: set[str], removed: set[str]
) -> None:
    root = opts.people_root
    for schema, (key, kind) in _KEYWORDS.items():
        if schema not in opts.schemas:
            continue

        def item(name: str, schema: str = schema) -> str:
            return _keyword(name, schema, root)

        old = _items(flat, key)
        if old is None:
            plan.warnings.append(f"{key} is not a simple list here; left as it is")
            continue
        gone = {item(n) for n in removed}
        # the same names as facetags 0.1 wrote them, with a separator inside the name
        gone |= {
            raw for n in names | removed if (raw := _keyword(n, schema, root, lookalike=False)) != item(n)
        }
        new = [v for v in old if v not in gone]
        for name in sorted(names, key=str.casefold):
            if item(name) not in new:
                new.append(item(name))
        if new == old:
            continue
        existing_kind = flat[key][0] if key in flat else ""
        kind = {"XmpBag": "Bag", "XmpSeq": "Seq", "XmpAlt": "Alt"}.get(existing_kind, kind)
        plan.updates[key] = f'type="{kind}"'
        for n, value in enumerate(new, start=1):
            plan.updates[f"{key}[{n}]"] = value
        added = [v for v in new if v not in old]
        dropped = [v for v in old if v not in new]
        plan.changes.append(f"{key}: " + ", ".join([f"+{v!r}" for v in added] + [f"-{v!r}" for v in dropped]))


def plan(
    flat: Flat,
    faces: Sequence[FaceTag],
    *,
    orientation: int,
    stored_size: tuple[int, int],
    options: WriteOptions,
    source: str = "",
    others: Sequence[RawRegion] = (),
) -> Plan:
    """The flat-key updates that merge ``faces`` (upright, normalised) into ``flat``.

    ``others`` are the regions (stored frame) of the photo's other XMP files (its embedded packet
    or sidecars): they are not written, but a name there counts as a conflict too.
    """
    out = Plan()
    parsed = read.parse(flat, source)
    out.warnings += parsed.warnings
    ours: list[Ours] = []
    positions: list[int] = []  # ours[k] is faces[positions[k]]
    gone: list[str] = []  # names of ours for faces the picture no longer shows
    for position, face in enumerate(faces):
        name = read.region_name(face.name) if face.name is not None else None
        cleaned = (read.region_name(n) for n in (face.previous, *face.written) if n is not None)
        written = tuple(dict.fromkeys(n for n in cleaned if n is not None))
        if face.gone:
            gone += [n for n in written if n not in gone]
            continue
        if name is None and not written and not options.include_unnamed:
            continue
        box = upright_to_stored(clip(face.box), orientation)
        if box[2] <= 0 or box[3] <= 0:
            out.warnings.append(f"face {face.box} lies outside the photo; skipped")
            continue
        ours.append((box, name, written))
        positions.append(position)
    # Regions written for a picture of another shape (cropped or turned since) are not where its
    # faces are: facetags moves its own and compares no place with the others.
    reframed = read.reframed(parsed.mwg_dims, stored_size, orientation)
    if not options.replace_names:
        here = [] if reframed else [*parsed.mwg, *parsed.mp]
        conflicts = _conflicts(ours, [*here, *others], options.iou_threshold)
        for i, theirs in sorted(conflicts.items()):
            face = faces[positions[i]]
            what = f"face {face.face_id}" if face.face_id is not None else f"the face at {face.box}"
            out.warnings.append(
                f"{source or 'photo'}: {what} is named {theirs!r} by another tool and {ours[i][1]!r} in "
                "facetags; left this face's tags as they are (use --replace-names to write facetags' name)"
            )
        out.kept = len(conflicts)
        ours = [o for i, o in enumerate(ours) if i not in conflicts]
        positions = [p for i, p in enumerate(positions) if i not in conflicts]
    renamed: dict[tuple[str, int], str] = {}  # (schema, index) -> the name it had
    kept: set[str] = set()
    # regions taken out: facetags' own for faces the picture no longer shows, in a file placed
    # for the older picture (in one of its shape the face may still be there, missed)
    dropped: dict[str, set[int]] = {"mwg": set(), "mp": set()}
    take_out = reframed and bool(gone)
    if "mwg" in options.schemas and (ours or take_out):
        # Containers are declared before anything inside them, or Exiv2 drops the contents.
        if not parsed.mwg_root:
            out.updates[MWG_ROOT] = 'type="Struct"'
        if parsed.mwg_dims is None:
            if not any(k.startswith(MWG_DIMS) for k in flat):
                out.updates[MWG_DIMS] = 'type="Struct"'
            _set_dims(out, stored_size)
        found, moved = _regions(out, "mwg", parsed, ours, options, renamed, kept, reframed)
        if take_out:
            dropped["mwg"] = _take_out(out, "mwg", parsed.mwg, found, gone, renamed)
        if parsed.mwg_dims is not None and tuple(round(v) for v in parsed.mwg_dims) != tuple(stored_size):
            others_left = [r for r in parsed.mwg if r.index not in found | dropped["mwg"]]
            placed_for = "x".join(str(round(v)) for v in parsed.mwg_dims)
            size = f"{stored_size[0]}x{stored_size[1]}"
            # every region of the list placed for this picture now: it says so, with the next
            # change, or at once in a file of another shape (import reads it again); with other
            # regions left where they were, the list keeps the size they were placed for
            if (out.changes or reframed) and not (reframed and others_left):
                _set_dims(out, stored_size)
                if reframed:
                    out.changes.append(
                        f"MWG AppliedToDimensions: {placed_for} -> {size} "
                        "(the picture was cropped or turned since)"
                    )
            if moved and others_left:  # said when facetags moves its own, not at every write
                many = len(others_left) > 1
                listed = ", ".join(f"{r.index} ({r.name!r})" if r.name else str(r.index) for r in others_left)
                out.warnings.append(
                    f"{source or 'photo'}: the picture is {size} but its MWG regions were placed for "
                    f"{placed_for} (cropped or turned since): facetags places its own where their faces "
                    f"are now; region{'s' if many else ''} {listed}, which facetags does not know as a "
                    "face of this picture (another tool's, or a face the crop cut off), "
                    f"{'are' if many else 'is'} left as {'they are' if many else 'it is'}, with the size "
                    f"{'they were' if many else 'it was'} placed for (xmp import does not read this "
                    "file's regions while they are there)"
                )
    if "mp" in options.schemas and (ours or take_out):
        found_mp = _regions(out, "mp", parsed, ours, options, renamed, kept, reframed)[0] if ours else set()
        if take_out:
            dropped["mp"] = _take_out(out, "mp", parsed.mp, found_mp, gone, renamed)
    taken_back = set(renamed.values())
    if not {"mwg", "mp"} & options.schemas:  # keywords only: our old names go where they differ
        kept = {name for _box, name, _written in ours if name is not None}
        out.names = {i: name for i, (_box, name, _written) in enumerate(ours)}
        taken_back = {w for _box, n, written in ours for w in written if w != n}
    # A replaced name leaves the keyword lists only if no region still carries it (as it is
    # spelt: a keyword is one string, and a name of ours respelt, "alice" to "Alice", goes).
    still = set(kept)
    for schema, regions in (("mwg", parsed.mwg), ("mp", parsed.mp)):
        still |= {r.name for r in regions if r.name and (schema, r.index) not in renamed}
    removed = taken_back - still
    _keywords(out, flat, options, kept, removed)
    # names of ours this plan leaves in place at each face: regions in the photo's other XMP and
    # in lists of schemas not written (their names are still facetags' own there)
    untouched = [*others]
    if "mwg" not in options.schemas:
        untouched += parsed.mwg
    if "mp" not in options.schemas:
        untouched += parsed.mp
    for i, (box, name, written) in enumerate(ours):
        left = {
            r.name
            for r in untouched
            if r.name
            and r.box is not None
            and _mine(written, r.name)
            and not _same(name, r.name)
            and iou(box, r.box) >= options.iou_threshold
        }
        if left and i in out.names:
            out.still[positions[i]] = tuple(sorted(left))
    out.names = {positions[i]: name for i, name in out.names.items()}
    for schema, lst in (("mwg", MWG_LIST), ("mp", MP_LIST)):
        if dropped[schema]:
            out.updates = _without_items(flat, out.updates, lst, dropped[schema])
    if not out.changes:
        out.updates.clear()  # containers declared for nothing: leave the file alone
    return out


# -- choosing the file and writing --------------------------------------------------------------


def writable(path: Path) -> bool:
    """Whether facetags may rewrite ``path``: write permission bits set, and access granted.

    The mode bits are checked too because root passes every ``os.access`` test; a file the user
    marked read-only stays untouched even then.
    """
    try:
        info = path.stat()
    except OSError:
        return False
    if not info.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _hard_links(path: Path) -> int:
    """How many names the file has (a symlink is followed: its target is what gets written)."""
    try:
        return int(path.stat().st_nlink)
    except OSError:
        return 1


def sidecar_for(photo: Path, options: WriteOptions) -> Path:
    """The sidecar to write: an existing one (preferred name first), else a new preferred name."""
    preferred = (
        photo.with_name(photo.name + ".xmp")
        if options.sidecar_name == "photo.jpg.xmp"
        else photo.with_suffix(".xmp")
    )
    existing = read.existing_sidecars(photo)
    for path in existing:
        if path.name.casefold() == preferred.name.casefold():
            return path
    return existing[0] if existing else preferred


def still_carried(photo: Path, names: Sequence[str]) -> set[str]:
    """Which of ``names`` a region in any XMP of ``photo`` (its own, its sidecars) carries."""
    found = [
        r.name for _path, parsed in read.parsed_files(photo) for r in [*parsed.mwg, *parsed.mp] if r.name
    ]
    return {name for name in names if any(_same(name, n) for n in found)}


def _other_regions(
    photo: Path, target: Path, stored_size: tuple[int, int], orientation: int
) -> tuple[list[RawRegion], list[str]]:
    """The regions of the photo's XMP files other than ``target`` (embedded and sidecars), but
    those of a file placed for a picture of another shape (not where the faces are); and what
    could not be read in them (warnings)."""
    found: list[RawRegion] = []
    warnings: list[str] = []
    for _path, parsed in read.parsed_files(photo, but=target):
        warnings += parsed.warnings
        if not read.reframed(parsed.mwg_dims, stored_size, orientation):
            found += parsed.mwg + parsed.mp
    return found, warnings


def write_photo(
    photo: Path,
    faces: Sequence[FaceTag],
    options: WriteOptions | None = None,
    *,
    dry_run: bool = False,
    orientation: int | None = None,
    stored_size: tuple[int, int] | None = None,
    claim: Callable[[dict[int, str | None]], None] | None = None,
    unchanged: tuple[int, ...] | None = None,
) -> WriteResult:
    """Merge ``faces`` into ``photo``'s XMP (embedded, or sidecar as ``options.mode`` says).

    Written into the photo, the faces go into a sidecar it has with face regions too (one
    written while the photo was read-only, say), so that the two never tell different stories:
    tools that prefer the sidecar would show its old names. Written into a sidecar (``mode``
    sidecar), the photo's own XMP is brought up to date too where it still carries names
    facetags wrote there before.

    ``claim(names)``, when given, is called just before the file is replaced with the names of
    ours this write gives faces that the file may not carry as facetags' yet (not
    ``FaceTag.previous`` nor in ``FaceTag.written``: a new name, a rename), and again with those
    faces set to None if the write then fails: whoever records what facetags wrote knows a name
    of ours before any photo can carry it, whenever the process is killed.
    ``unchanged``: the photo's :func:`file_identity` when the caller made sure it is the photo
    the faces are for; nothing is written if it is not that file any more when the file is
    replaced (another program saved it meanwhile).

    Never raises for a problem with this one photo: the result carries ``error`` instead.
    """
    options = options or WriteOptions()
    result = _write_one(
        photo,
        faces,
        options,
        dry_run=dry_run,
        orientation=orientation,
        stored_size=stored_size,
        claim=claim,
        unchanged=unchanged,
    )
    if result.error is not None:
        return result
    if result.mode == "sidecar":  # and, asked for sidecars, the photo where it has old names of ours
        if options.mode == "sidecar" and result.still:
            # claim=None: the sidecar's write claimed the names; a failure here must not unclaim them
            inside = _write_in(
                "embed", photo, faces, options, dry_run, orientation, stored_size, None, unchanged
            )
            if inside.mode == "embedded":
                _absorb(result, inside, Path(photo), "the sidecar was written")
            else:  # read-only, hard-linked, a format without embedded XMP
                left = sorted({n for names in result.still.values() for n in names})
                them = "them" if len(left) > 1 else "it"
                result.warnings.append(
                    f"{photo}: its own XMP still carries {', '.join(map(repr, left))}, written there by "
                    f"facetags before; the photo cannot be written, so it keeps {them}"
                )
        return result
    if result.written and unchanged is not None:
        unchanged = file_identity(Path(photo))  # facetags' own write
    sidecar = sidecar_for(Path(photo), options)
    if not sidecar.exists():
        return result
    parsed = read.load_parsed(sidecar, sidecar=True)
    if not (parsed.mwg or parsed.mp):
        return result  # another tool's sidecar without faces: not ours to fill
    # claim=None: the photo's own write claimed the names; a failure here must not unclaim them
    side = _write_in("sidecar", photo, faces, options, dry_run, orientation, stored_size, None, unchanged)
    # an error for the photo: the names it now carries are not taken as written, so the next run
    # tries the sidecar again (its old names are still ours to replace)
    _absorb(result, side, sidecar, "the photo itself was written")
    return result


def _absorb(result: WriteResult, other: WriteResult, where: Path, done: str) -> None:
    """Add to ``result`` the write into the photo's other XMP file ``where`` that keeps the two
    telling one story: its changes, warnings, and what is left of ours once both are written;
    its failure is the photo's (``done``: what was written all the same)."""
    result.changes += [f"{where}: {change}" for change in other.changes]
    result.warnings += [w for w in other.warnings if w not in result.warnings]
    result.written = result.written or other.written
    if other.error is not None:
        result.error = f"{where}: could not be brought up to date ({other.error}); {done}"
    else:
        result.still = other.still


def _write_in(
    mode: str,
    photo: Path,
    faces: Sequence[FaceTag],
    options: WriteOptions,
    dry_run: bool,
    orientation: int | None,
    stored_size: tuple[int, int] | None,
    claim: Callable[[dict[int, str | None]], None] | None,
    unchanged: tuple[int, ...] | None = None,
) -> WriteResult:
    """:func:`_write_one` into the photo's sidecar (``mode`` "sidecar") or the photo itself
    ("embed"), whatever ``options.mode`` says."""
    return _write_one(
        photo,
        faces,
        dataclasses.replace(options, mode=mode),
        dry_run=dry_run,
        orientation=orientation,
        stored_size=stored_size,
        claim=claim,
        unchanged=unchanged,
    )


def _write_one(
    photo: Path,
    faces: Sequence[FaceTag],
    options: WriteOptions,
    *,
    dry_run: bool = False,
    orientation: int | None = None,
    stored_size: tuple[int, int] | None = None,
    claim: Callable[[dict[int, str | None]], None] | None = None,
    unchanged: tuple[int, ...] | None = None,
) -> WriteResult:
    """:func:`write_photo` into one file: the photo, or the sidecar it needs."""
    photo = Path(photo)
    result = WriteResult(photo=photo, target=None, mode="embedded", changes=[], warnings=[])
    try:
        if orientation is None or stored_size is None:
            orientation, stored_size = read.photo_geometry(photo)
        target, sidecar = photo, options.mode == "sidecar"
        flat: Flat = {}
        if not sidecar:
            flat, format_ok = packet.load(photo)
            if not format_ok:
                result.warnings.append(f"{photo}: this format cannot hold embedded XMP here; using a sidecar")
                result.fallback = "a format without embedded XMP"
                sidecar = True
            elif not writable(photo):
                result.warnings.append(f"{photo}: read-only; using a sidecar")
                result.fallback = "read-only photo"
                sidecar = True
            elif (links := _hard_links(photo)) > 1:
                result.warnings.append(
                    f"{photo}: one of {links} hard links to the same file; writing into it would "
                    "make this name a separate copy; using a sidecar"
                )
                result.fallback = "hard-linked photo"
                sidecar = True
        fallbacks = len(result.warnings)  # why a sidecar instead of the photo
        if sidecar:
            target = sidecar_for(photo, options)
            if target.is_symlink():  # a link could send the names anywhere (or create a file there)
                raise XmpError(target, "a symbolic link: facetags does not write a sidecar through a link")
            flat = packet.load(target, sidecar=True)[0] if target.exists() else {}
            result.mode = "sidecar"
        result.target = target
        others, unread = _other_regions(photo, target, stored_size, orientation)
        result.warnings += [w for w in unread if w not in result.warnings]
        todo = plan(
            flat,
            faces,
            orientation=orientation,
            stored_size=stored_size,
            options=options,
            source=str(target),
            others=others,
        )
        result.changes, result.warnings = todo.changes, result.warnings + todo.warnings
        result.kept = todo.kept
        still: dict[int, tuple[str, ...]] = {}
        for i, left in todo.still.items():
            face_id = faces[i].face_id
            if face_id is not None:
                still[face_id] = left
        names: dict[int, str | None] = {}
        for i, name in todo.names.items():
            face_id = faces[i].face_id
            if face_id is not None:
                names[face_id] = name
        if dry_run:
            result.still = still  # what the photo's other XMP would keep (write_photo previews it)
            if not todo.updates:
                result.warnings = result.warnings[fallbacks:]  # why a sidecar: said when written
            return result
        if not todo.updates:
            result.names = names  # the file already says all of it
            result.still = still
            result.warnings = result.warnings[fallbacks:]  # why a sidecar: said when written
            return result
        known = {face.face_id: (face.previous, *face.written) for face in faces if face.face_id is not None}
        claimed: dict[int, str | None] = {  # names the file may not carry as facetags' yet
            i: n for i, n in names.items() if n is not None and not any(_same(k, n) for k in known.get(i, ()))
        }
        if claim is not None and claimed:
            claim(claimed)

        def modify(temp: Path) -> None:
            packet.apply(temp, todo.updates, sidecar=sidecar)
            # Read the copy back: the same plan against it must have nothing left to do.
            again = plan(
                packet.load(temp, sidecar=sidecar)[0],
                faces,
                orientation=orientation,
                stored_size=stored_size,
                options=options,
                source=str(target),
                others=others,
            )
            if again.changes:
                raise XmpError(
                    target, f"the XMP written did not read back ({again.changes[0]}); original kept"
                )

        def same_photo() -> str | None:
            if unchanged is None or file_identity(photo) == unchanged:
                return None
            return f"{photo}: changed since facetags looked at it (another program saved it); left as it is"

        try:
            atomic_update(
                target,
                modify,
                initial=packet.EMPTY_PACKET if sidecar else None,
                verify_image=not sidecar,
                mode_like=photo,
                still=same_photo,
            )
        except Exception:  # (Ctrl-C may come after the replace: the claim stays, the safe way)
            if claim is not None and claimed:
                claim(dict.fromkeys(claimed))
            raise
        result.written = True
        result.names = names
        result.still = still
        log.info("%s: %d change(s) written to %s", photo, len(todo.changes), target)
    except packet.PacketTooLarge as exc:
        if options.mode == "sidecar":
            result.error = str(exc)
            return result
        again = _write_in(
            "sidecar", photo, faces, options, dry_run, orientation, stored_size, claim, unchanged
        )
        if again.changes:  # why a sidecar: said when something is written
            again.warnings.insert(0, f"{photo}: {exc.reason}; using a sidecar")
        return again
    except LibraryError:  # the library cannot record what is written: no photo can be
        raise
    except (FacetagsError, OSError) as exc:  # XmpError, or a DecodeError reading the geometry
        result.error = str(exc)  # the caller reports it (the CLI, the TUI)
        log.debug("%s", exc)
    return result
