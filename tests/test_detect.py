"""MTCNN detection on real photos: faces found, geometry sane, settings honoured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.config import Settings
from facetags.vision import mtcnn_ops as ops
from facetags.vision.detect import Detector, detect_photo
from facetags.vision.types import Face


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


@pytest.fixture(scope="module")
def t1(t1_path: Path) -> np.ndarray:
    return np.asarray(Image.open(t1_path).convert("RGB"))


@pytest.fixture(scope="module")
def t1_faces(detector: Detector, t1: np.ndarray) -> list[Face]:
    return detector.detect(t1)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _match(face: Face, others: list[Face]) -> tuple[Face, float]:
    best = max(others, key=lambda o: _iou(face.box, o.box))
    return best, _iou(face.box, best.box)


def test_t1_has_six_faces_with_sane_geometry(t1_faces: list[Face], t1: np.ndarray) -> None:
    h, w = t1.shape[:2]
    assert len(t1_faces) == 6
    scores = [f.score for f in t1_faces]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.9
    for face in t1_faces:
        x, y, bw, bh = face.box
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
        assert 60 < bw < 200 and 60 < bh < 200  # t1's faces are ~100 x 130 px
        assert 0.5 < bh / bw < 2.0
        lm = face.landmarks
        assert lm.shape == (5, 2)
        # Every landmark inside its box, with a little slack.
        assert np.all(lm[:, 0] > x - 2) and np.all(lm[:, 0] < x + bw + 2)
        assert np.all(lm[:, 1] > y - 2) and np.all(lm[:, 1] < y + bh + 2)
        left_eye, right_eye, nose, left_mouth, right_mouth = lm
        assert left_eye[0] < right_eye[0]  # left = image-left
        assert left_mouth[0] < right_mouth[0]
        assert max(left_eye[1], right_eye[1]) < max(left_mouth[1], right_mouth[1])
        assert min(left_eye[1], right_eye[1]) < nose[1] < max(left_mouth[1], right_mouth[1])
    # Six different people: no two boxes overlap.
    for i, a in enumerate(t1_faces):
        for b in t1_faces[i + 1 :]:
            assert _iou(a.box, b.box) < 0.05


def test_astronaut_has_one_face(detector: Detector, astronaut: np.ndarray) -> None:
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    # Eileen Collins' face is in the upper middle of the 512 x 512 photo.
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200
    assert faces[0].to_json()["landmarks"][0][0] < faces[0].to_json()["landmarks"][1][0]


def test_analysis_at_reduced_size_maps_back(t1: np.ndarray, t1_faces: list[Face]) -> None:
    # Analysed at half size, the faces come back in the array's own (full-size) pixels.
    small = Detector(Settings(detect_max_side=640)).detect(t1)
    assert len(small) == len(t1_faces)
    errors = []
    for face in small:
        full, iou = _match(face, t1_faces)
        assert iou > 0.7
        errors.append(np.abs(face.landmarks - full.landmarks).max() / full.box[2])
    # MTCNN's landmarks move a little with the analysis scale; no systematic offset.
    assert float(np.median(errors)) < 0.05


def test_detect_photo_maps_to_full_size_upright_pixels(tmp_path: Path, t1: np.ndarray) -> None:
    # The same photo stored upright, and stored a quarter turn away with EXIF orientation 6.
    upright = tmp_path / "t1.jpg"
    Image.fromarray(t1).save(upright, quality=95)
    rotated = tmp_path / "t1_rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(t1).transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    detector = Detector(Settings(detect_max_side=800))
    _plain, plain_faces = detect_photo(upright, detector)
    decoded, faces = detect_photo(rotated, detector)
    assert (decoded.width, decoded.height) == (t1.shape[1], t1.shape[0]) == (1280, 886)
    assert max(decoded.image.shape[:2]) <= 800
    assert len(faces) == len(plain_faces) == 6
    for face in faces:
        twin, iou = _match(face, plain_faces)
        assert iou > 0.9
        assert np.abs(face.landmarks - twin.landmarks).max() < 0.05 * twin.box[2]
    # And they are full-size pixels: every face is where the full-size analysis puts it.
    full = Detector().detect(t1)
    assert all(_match(face, full)[1] > 0.7 for face in faces)


def test_min_face_setting_takes_effect(t1: np.ndarray) -> None:
    assert Detector(Settings(min_face=400)).detect(t1) == []
    assert len(Detector(Settings(min_face=200)).detect(t1)) < 6


def test_score_threshold_setting_takes_effect(t1: np.ndarray, t1_faces: list[Face]) -> None:
    strict = Detector(Settings(score_threshold=0.999)).detect(t1)
    assert 0 < len(strict) < len(t1_faces)
    assert all(f.score >= 0.999 for f in strict)
    loose = Detector(Settings(score_threshold=0.5)).detect(t1)
    assert len(loose) >= len(t1_faces)


def test_tiny_and_odd_inputs(detector: Detector, t1: np.ndarray) -> None:
    assert detector.detect(t1[:8, :8]) == []
    grey = t1.mean(axis=2).astype(np.uint8)
    assert len(detector.detect(grey)) >= 5  # greyscale is accepted and still finds faces
    with pytest.raises(ValueError):
        detector.detect(np.zeros((10, 10, 2), dtype=np.uint8))


def test_area_resize_is_exact(astronaut: np.ndarray) -> None:
    # A factor of 1/2 is a plain 2x2 mean; a fractional factor keeps the image mean.
    half = ops.resize_area(astronaut, 0.5)
    expected = astronaut.astype(np.float64).reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(half - expected).max() < 0.01
    odd = ops.resize_area(astronaut, 0.3)
    assert odd.shape == (153, 153, 3)
    assert abs(float(odd.mean()) - float(astronaut[:510, :510].mean())) < 1.0


def test_nms_is_the_references_non_greedy_rule() -> None:
    # b overlaps a (suppressed); c overlaps only b: the reference still drops c, because
    # a box is dropped whenever any better box overlaps it, suppressed or not.
    boxes = np.array(
        [
            [0, 0, 10, 10, 0.9],
            [3, 0, 13, 10, 0.8],
            [6, 0, 16, 10, 0.7],
            [50, 50, 60, 60, 0.6],
        ],
        dtype=np.float64,
    )
    kept = ops.nms(boxes, 0.3)
    assert kept[:, 4].tolist() == [0.9, 0.6]
    assert ops.nms(boxes, 0.3).tolist() == ops.nms(boxes, 0.3, method="union").tolist()
    assert len(ops.nms(boxes, 0.5, method="min")) == 2


def test_pyramid_covers_min_face_to_whole_image() -> None:
    scales = ops.pyramid_scales(1280, 886, 20, 0.709)
    assert scales[0] == pytest.approx(12 / 20)
    assert int(886 * scales[-1]) >= 12 > int(886 * scales[-1] * 0.709)
