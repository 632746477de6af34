"""Parity with the reference ``mtcnn`` package (TensorFlow), the detector facetags reimplements.

On every photo under ``../shared/data/{bbt/groups,deepface/photos,face_recognition_examples}``
and insightface's ``t1.jpg``, at least 98% of the faces the reference finds with score >= 0.9
must be found by facetags with IoU >= 0.9 and every landmark within 3% of the face width.
Both detectors get the very same array: the photo decoded by facetags at the analysis size
(long side <= 1280, EXIF orientation applied), so only the detectors differ.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from facetags.config import Settings
from facetags.image.decode import decode
from facetags.vision.detect import Detector
from facetags.vision.types import Face

pytestmark = [pytest.mark.reference, pytest.mark.shared_data]

FOLDERS = ("bbt/groups", "deepface/photos", "face_recognition_examples")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MIN_SCORE = 0.9
MIN_IOU = 0.9
MAX_LANDMARK_ERROR = 0.03  # of the reference face's width
REQUIRED = 0.98


def _photos(shared_data: Path, t1_path: Path) -> list[Path]:
    photos = [t1_path]
    for folder in FOLDERS:
        photos += sorted(p for p in (shared_data / folder).rglob("*") if p.suffix.lower() in SUFFIXES)
    return photos


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of ``box`` (x1, y1, x2, y2) with each row of ``boxes``."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    inter = iw * ih
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _score(expected: np.ndarray, found: list[Face]) -> tuple[int, int, list[str]]:
    """(reference faces, matched, descriptions of the misses) for one photo."""
    boxes = np.array([[f.box[0], f.box[1], f.box[0] + f.box[2], f.box[1] + f.box[3]] for f in found]).reshape(
        -1, 4
    )
    total = matched = 0
    misses = []
    for row in np.asarray(expected).reshape(-1, 16):
        if row[5] < MIN_SCORE:
            continue
        total += 1
        box, marks = row[1:5], np.stack([row[6:11], row[11:16]], axis=1)
        if not found:
            misses.append("no face found")
            continue
        ious = _iou(boxes, box)
        best = int(np.argmax(ious))
        error = float(np.hypot(*(found[best].landmarks - marks).T).max()) / (box[2] - box[0])
        if ious[best] >= MIN_IOU and error <= MAX_LANDMARK_ERROR:
            matched += 1
        else:
            misses.append(f"IoU {ious[best]:.3f}, landmarks {error:.1%}")
    return total, matched, misses


@pytest.mark.slow
def test_faces_match_the_mtcnn_package(
    shared_data: Path, t1_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow", reason="the reference needs TensorFlow (pip install '.[train]')")
    mtcnn = pytest.importorskip("mtcnn")
    reference = mtcnn.MTCNN()
    # The default settings, and min_face 40 (the faster setting docs/detection.md recommends).
    ours = {20: Detector(Settings(min_face=20)), 40: Detector(Settings(min_face=40))}
    photos = _photos(shared_data, t1_path)
    assert len(photos) > 90, "the shared data set looks incomplete"
    totals = dict.fromkeys(ours, 0)
    matched = dict.fromkeys(ours, 0)
    misses: dict[int, list[str]] = {k: [] for k in ours}
    seconds = {"mtcnn": 0.0, **{f"facetags {k}": 0.0 for k in ours}}
    for path in photos:
        image = decode(path, max_side=Settings().detect_max_side).image
        start = time.perf_counter()
        # Rows: image id, x1, y1, x2, y2, score, 5 landmark x, 5 landmark y (floats).
        expected = reference.detect_faces(image, output_type="numpy", box_format="xyxy")
        seconds["mtcnn"] += time.perf_counter() - start
        for min_face, detector in ours.items():
            start = time.perf_counter()
            found = detector.detect(image)
            seconds[f"facetags {min_face}"] += time.perf_counter() - start
            total, hits, missed = _score(expected, found)
            totals[min_face] += total
            matched[min_face] += hits
            misses[min_face] += [f"{path.name}: {m}" for m in missed]
    with capsys.disabled():
        print(f"\nMTCNN parity on {len(photos)} photos (reference faces with score >= {MIN_SCORE}):")
        for min_face in ours:
            share = matched[min_face] / totals[min_face]
            print(f"  min_face {min_face}: {matched[min_face]}/{totals[min_face]} ({share:.2%})")
            for miss in misses[min_face]:
                print(f"    unmatched {miss}")
        print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    for min_face in ours:
        assert totals[min_face] > 100
        assert matched[min_face] / totals[min_face] >= REQUIRED, misses[min_face]
