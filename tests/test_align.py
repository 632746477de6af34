"""Five-point alignment onto the ArcFace template, checked on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from facetags.vision.align import (
    ARCFACE_TEMPLATE,
    align_face,
    align_faces,
    estimate_transform,
    template,
    transform_points,
)
from facetags.vision.detect import Detector


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut: np.ndarray) -> np.ndarray:
    faces = Detector().detect(astronaut)
    assert len(faces) == 1
    return faces[0].landmarks


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift)[:, None]])


def test_template_is_insightfaces_arcface_dst() -> None:
    face_align = pytest.importorskip("insightface.utils.face_align")
    assert np.allclose(ARCFACE_TEMPLATE, face_align.arcface_dst)
    assert np.allclose(template(224), ARCFACE_TEMPLATE * 2)
    with pytest.raises(ValueError):
        template(100)


def test_exact_similarity_is_recovered() -> None:
    # Landmarks that are the template moved by a known similarity map back exactly.
    forward = _similarity(25.0, 2.3, (140.0, 80.0))
    landmarks = transform_points(forward, ARCFACE_TEMPLATE)
    matrix = estimate_transform(landmarks)
    assert np.abs(transform_points(matrix, landmarks) - ARCFACE_TEMPLATE).max() < 1e-6


def test_real_landmarks_land_near_the_template(astronaut_landmarks: np.ndarray) -> None:
    matrix = estimate_transform(astronaut_landmarks)
    warped = transform_points(matrix, astronaut_landmarks)
    # A real face is not exactly the template (a smile widens the mouth): least squares
    # leaves a few pixels, and any other similarity does worse.
    residual = np.linalg.norm(warped - ARCFACE_TEMPLATE, axis=1)
    assert residual[:2].max() < 4.0 and residual.max() < 8.0
    for tweak in (_similarity(2.0, 1.0, (0, 0)), _similarity(0.0, 1.03, (0.5, -0.5))):
        other = transform_points(tweak, warped)
        assert (np.linalg.norm(other - ARCFACE_TEMPLATE, axis=1) ** 2).sum() > (residual**2).sum()
    assert np.linalg.det(matrix[:, :2]) > 0  # no mirror image


def test_warped_pixels_land_where_the_matrix_says(
    astronaut: np.ndarray, astronaut_landmarks: np.ndarray
) -> None:
    """Paint markers at the landmarks; in the crop they sit on the template within 1 px."""
    matrix = estimate_transform(astronaut_landmarks)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    # Marker centres: the photo points that the transform sends exactly onto the template.
    centres = transform_points(inverse, ARCFACE_TEMPLATE)
    image = astronaut.copy()
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    for cx, cy in centres:
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.5**2))
        image[..., 1] = np.maximum(image[..., 1], (255 * blob).astype(np.uint8))
    crop = align_face(image, astronaut_landmarks).astype(np.float64)
    plain = align_face(astronaut, astronaut_landmarks).astype(np.float64)
    signal = np.clip(crop[..., 1] - plain[..., 1], 0, None)
    cy, cx = np.mgrid[0:112, 0:112]
    for tx, ty in ARCFACE_TEMPLATE:
        near = (np.hypot(cx - tx, cy - ty) < 6) * signal
        assert near.sum() > 0
        found = np.array([(near * cx).sum(), (near * cy).sum()]) / near.sum()
        assert np.hypot(*(found - (tx, ty))) < 1.0


@pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage estimate() inside insightface
def test_matches_insightface_norm_crop(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    face_align = pytest.importorskip("insightface.utils.face_align")
    theirs = face_align.norm_crop(astronaut, astronaut_landmarks.astype(np.float32))
    ours = align_face(astronaut, astronaut_landmarks)
    assert ours.shape == (112, 112, 3) and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3


def test_batch_helper(astronaut: np.ndarray, astronaut_landmarks: np.ndarray) -> None:
    crops = align_faces(astronaut, [astronaut_landmarks, astronaut_landmarks + 5])
    assert crops.shape == (2, 112, 112, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops[0], align_face(astronaut, astronaut_landmarks))
    assert align_faces(astronaut, []).shape == (0, 112, 112, 3)
    assert align_face(astronaut, astronaut_landmarks, size=224).shape == (224, 224, 3)
