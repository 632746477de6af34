"""Face detection: MTCNN (PNet -> RNet -> ONet) run by onnxruntime graphs facetags builds itself.

``Detector.detect(image)`` finds faces in an HxWx3 uint8 RGB array; ``detect_photo(path)``
decodes a photo at a bounded size, detects, and maps the faces back to pixels of the upright
full-size photo. See ``docs/detection.md``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facetags.config import Settings
from facetags.vision import mtcnn_ops as ops
from facetags.vision.types import Face

if TYPE_CHECKING:
    from facetags.image.decode import Decoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cascade:
    """The MTCNN cascade's internal thresholds (the reference package's defaults)."""

    scale_factor: float = 0.709
    pnet_threshold: float = 0.6
    pnet_nms_level: float = 0.5
    pnet_nms_all: float = 0.7
    rnet_threshold: float = 0.7
    rnet_nms: float = 0.7
    onet_threshold: float = 0.8
    onet_nms: float = 0.7


class Detector:
    """MTCNN face detector. Networks are built once per process (and ``threads`` setting) and
    shared by all detectors."""

    def __init__(self, settings: Settings | None = None, cascade: Cascade | None = None) -> None:
        settings = settings or Settings()
        self.max_side = int(settings.detect_max_side)
        self.min_face = int(settings.min_face)
        self.score_threshold = float(settings.score_threshold)
        self.cascade = cascade or Cascade()
        from facetags.vision.mtcnn import load_net

        self._pnet = load_net("pnet", settings.threads)
        self._rnet = load_net("rnet", settings.threads)
        self._onet = load_net("onet", settings.threads)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (HxWx3 uint8 RGB), in that array's pixels, best score first.

        Images whose long side exceeds ``detect_max_side`` are analysed reduced to it and the
        faces mapped back.
        """
        image = _as_rgb(image)
        h, w = image.shape[:2]
        if self.max_side > 0 and max(h, w) > self.max_side:
            small = ops.resize_area(image, self.max_side / max(h, w))
            rows = self.detect_array(small)
            return _to_faces(rows, w / small.shape[1], h / small.shape[0])
        return _to_faces(self.detect_array(image), 1.0, 1.0)

    def detect_array(self, image: np.ndarray) -> np.ndarray:
        """Run the cascade on ``image`` as is: rows ``x1, y1, x2, y2, score, lx1..lx5, ly1..ly5``."""
        h, w = image.shape[:2]
        empty = np.empty((0, 15))
        if min(h, w) < ops.PNET_CELL:
            return empty
        c = self.cascade
        boxes = self._proposals(image)
        if boxes.shape[0] == 0:
            return empty
        # RNet: refine and rescore the square proposals.
        box, prob = self._rnet.run(ops.crop_patches(image, boxes, 24))
        boxes[:, 4] = prob[:, 1]
        boxes = ops.refine(boxes, box)
        boxes = boxes[boxes[:, 4] > c.rnet_threshold]
        boxes = ops.square(ops.nms(ops.sort_by_score(boxes), c.rnet_nms))
        if boxes.shape[0] == 0:
            return empty
        # ONet: final score, box and the five landmarks.
        box, marks, prob = self._onet.run(ops.crop_patches(image, boxes, 48))
        side_w = boxes[:, 2:3] - boxes[:, 0:1] + 1
        side_h = boxes[:, 3:4] - boxes[:, 1:2] + 1
        lx = side_w * marks[:, 0:5] + boxes[:, 0:1] - 1
        ly = side_h * marks[:, 5:10] + boxes[:, 1:2] - 1
        boxes[:, 4] = prob[:, 1]
        boxes = ops.refine(boxes, box)
        rows = np.concatenate([boxes, lx, ly], axis=1)
        floor = min(c.onet_threshold, self.score_threshold)
        rows = rows[(rows[:, 4] > floor) & (rows[:, 4] >= self.score_threshold)]
        rows = ops.nms(ops.sort_by_score(rows), c.onet_nms, method="min")
        # Like the reference, keep boxes inside the image (landmarks are left as predicted).
        rows[:, [0, 2]] = np.clip(rows[:, [0, 2]], 0, w - 1)
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, h - 1)
        min_side = np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
        return rows[min_side > 0]

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """PNet over the image pyramid: square candidate boxes, best first."""
        c = self.cascade
        h, w = image.shape[:2]
        found = []
        resizer = ops.AreaResizer(image)
        for scale in ops.pyramid_scales(w, h, self.min_face, c.scale_factor):
            level = resizer.resize(scale)
            box, prob = self._pnet.run(level[None])
            boxes = ops.pnet_boxes(box, prob, scale, c.pnet_threshold)
            if boxes.shape[0]:
                found.append(ops.nms(boxes, c.pnet_nms_level))
        if not found:
            return np.empty((0, 5))
        boxes = ops.nms(ops.sort_by_score(np.concatenate(found)), c.pnet_nms_all)
        return ops.square(boxes)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _to_faces(rows: np.ndarray, fx: float, fy: float) -> list[Face]:
    """Cascade rows -> ``Face`` objects, x multiplied by ``fx`` and y by ``fy``."""
    faces = []
    for row in rows:
        x1, x2 = float(row[0]) * fx, float(row[2]) * fx
        y1, y2 = float(row[1]) * fy, float(row[3]) * fy
        marks = np.stack([row[5:10] * fx, row[10:15] * fy], axis=1).astype(np.float64)
        faces.append(Face(box=(x1, y1, x2 - x1, y2 - y1), score=float(row[4]), landmarks=marks))
    faces.sort(key=lambda f: f.score, reverse=True)
    return faces


def detect_photo(path: str | Path, detector: Detector) -> tuple[Decoded, list[Face]]:
    """Decode ``path`` at most ``detector.max_side`` px and find its faces.

    Faces come back in pixels of the upright (orientation-applied) full-size photo.
    Raises ``facetags.errors.DecodeError`` for a file that is not a readable photo.
    """
    from facetags.image.decode import decode

    decoded = decode(path, max_side=detector.max_side if detector.max_side > 0 else None)
    image = _as_rgb(decoded.image)
    h, w = image.shape[:2]
    # detect() answers in pixels of the decoded array, the full-size upright photo reduced.
    fx, fy = decoded.width / w, decoded.height / h
    faces = detector.detect(image)
    if abs(fx - 1.0) > 1e-9 or abs(fy - 1.0) > 1e-9:
        faces = [_scaled(f, fx, fy) for f in faces]
    log.debug("%s: %d face(s), analysed at %dx%d", path, len(faces), w, h)
    return decoded, faces


def _scaled(face: Face, fx: float, fy: float) -> Face:
    x, y, w, h = face.box
    return Face(
        box=(x * fx, y * fy, w * fx, h * fy),
        score=face.score,
        landmarks=face.landmarks * np.array([fx, fy]),
    )


@dataclass(frozen=True)
class Detection:
    """One photo's faces (pixels of the upright full-size photo), its size, and on request each
    face aligned to the 112x112 template (``crops``, RGB uint8)."""

    width: int
    height: int
    faces: list[Face]
    crops: list[np.ndarray]


def detect_faces(photo: str | Path, *, detector: Detector, crops: bool = False) -> Detection:
    """:func:`detect_photo`, and the aligned crops if asked (cut from the analysed image)."""
    decoded, faces = detect_photo(photo, detector)
    aligned: list[np.ndarray] = []
    if crops:
        from facetags.vision.align import align_face

        scale = np.array([decoded.image.shape[1] / decoded.width, decoded.image.shape[0] / decoded.height])
        aligned = [align_face(decoded.image, face.landmarks * scale) for face in faces]
    return Detection(width=decoded.width, height=decoded.height, faces=faces, crops=aligned)
