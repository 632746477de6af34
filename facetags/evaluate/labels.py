"""Identity label files for clustering evaluations, and matching them to detected faces.

Two CSV formats, told apart by their header:

* ``photo,identity``: one row per photo; the label belongs to the photo's **largest** detected
  face, the photo's other faces are ignored in the scores.
* ``photo,x,y,w,h,identity``: one row per face, the box normalised to the upright photo
  (``x, y`` top-left corner, ``w, h`` size, all in 0..1); detected faces are matched to
  labelled boxes one-to-one by IoU (Hungarian assignment, pairs below ``min_iou`` dropped).

``photo`` is the photo's path relative to the labelled folder, with ``/`` separators.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetags.errors import FacetagsError

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
DEFAULT_MIN_IOU = 0.3


class LabelError(FacetagsError):
    """A label file that cannot be read."""


@dataclass(frozen=True)
class LabelledFace:
    photo: str
    identity: str
    box: Box | None = None  # None for photo-level labels


@dataclass(frozen=True)
class Labels:
    faces: tuple[LabelledFace, ...]
    per_face: bool  # True for the photo,x,y,w,h,identity format

    @property
    def photos(self) -> set[str]:
        return {f.photo for f in self.faces}

    @property
    def identities(self) -> set[str]:
        return {f.identity for f in self.faces}


@dataclass(frozen=True)
class DetectedFace:
    """A face as an evaluation sees it: an id, its photo (relative path) and normalised box."""

    face_id: int
    photo: str
    box: Box


@dataclass
class Matching:
    """Detected faces paired with identities, and what could not be paired."""

    face_ids: list[int] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)
    missed: int = 0  # labelled faces (or photos) with no detected face matched
    unlabelled: int = 0  # detected faces in labelled photos matched to no label (ignored)


def read_labels(path: str | Path) -> Labels:
    """Read either label format (see the module doc)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise LabelError(f"{path}: {exc}") from exc
    if not rows:
        raise LabelError(f"{path}: no labels")
    columns = set(rows[0])
    per_face = {"x", "y", "w", "h"} <= columns
    if not {"photo", "identity"} <= columns:
        raise LabelError(f"{path}: expected columns photo,identity or photo,x,y,w,h,identity")
    faces = []
    for n, row in enumerate(rows, start=2):
        try:
            box = (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"])) if per_face else None
        except (TypeError, ValueError) as exc:
            raise LabelError(f"{path}:{n}: bad box ({exc})") from exc
        if not row["photo"] or not row["identity"]:
            raise LabelError(f"{path}:{n}: empty photo or identity")
        faces.append(LabelledFace(row["photo"].replace("\\", "/"), row["identity"], box))
    return Labels(tuple(faces), per_face)


def write_photo_labels(path: str | Path, rows: Iterable[tuple[str, str]]) -> int:
    """Write a ``photo,identity`` file; returns the number of rows."""
    n = 0
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["photo", "identity"])
        for photo, identity in rows:
            writer.writerow([photo, identity])
            n += 1
    return n


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_labels(
    labels: Labels, detected: Sequence[DetectedFace], min_iou: float = DEFAULT_MIN_IOU
) -> Matching:
    """Pair detected faces with labels; faces in photos without labels are not counted at all."""
    by_photo: dict[str, list[DetectedFace]] = {}
    for face in detected:
        by_photo.setdefault(face.photo, []).append(face)
    wanted: dict[str, list[LabelledFace]] = {}
    for lf in labels.faces:
        wanted.setdefault(lf.photo, []).append(lf)
    out = Matching()
    for photo, lfs in wanted.items():
        faces = by_photo.get(photo, [])
        if not labels.per_face:
            if len(lfs) > 1:
                raise LabelError(f"{photo}: {len(lfs)} photo-level labels")
            if not faces:
                out.missed += 1
                continue
            largest = max(faces, key=lambda f: (f.box[2] * f.box[3], -f.face_id))
            out.face_ids.append(largest.face_id)
            out.identities.append(lfs[0].identity)
            continue
        pairs = _match_boxes([lf.box for lf in lfs if lf.box is not None], [f.box for f in faces], min_iou)
        for li, fi in pairs:
            out.face_ids.append(faces[fi].face_id)
            out.identities.append(lfs[li].identity)
        out.missed += len(lfs) - len(pairs)
        out.unlabelled += len(faces) - len(pairs)
    if out.missed:
        log.info("%d labelled faces had no detected face", out.missed)
    return out


def _match_boxes(truth: Sequence[Box], found: Sequence[Box], min_iou: float) -> list[tuple[int, int]]:
    if not truth or not found:
        return []
    from scipy.optimize import linear_sum_assignment

    m = np.array([[iou(t, f) for f in found] for t in truth])
    rows, cols = linear_sum_assignment(-m)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if m[r, c] >= min_iou]


def lfw_library_rows(lfw_root: str | Path, people_file: str = "peopleDevTest.txt") -> list[tuple[str, str]]:
    """LFW View 1 people with 2+ photos, as ``(Name/Name_NNNN.jpg, Name)`` photo-level labels.

    ``lfw_root`` holds ``images/`` and ``protocol/``; photo paths are relative to ``images/``.
    """
    root = Path(lfw_root)
    lines = (root / "protocol" / people_file).read_text(encoding="utf-8").split("\n")
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        name, count = line.split("\t")
        if int(count) < 2:
            continue
        for i in range(1, int(count) + 1):
            photo = f"{name}/{name}_{i:04d}.jpg"
            if not (root / "images" / photo).is_file():
                raise LabelError(f"{root / 'images' / photo}: listed in {people_file} but missing")
            rows.append((photo, name))
    return rows
