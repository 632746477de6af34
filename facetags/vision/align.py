"""Five-point face alignment onto the standard ArcFace 112x112 template.

Equivalent to insightface's ``face_align.norm_crop``: a least-squares similarity transform
(rotation, uniform scale, translation; Umeyama 1991, no reflection) maps the five detected
landmarks onto ``ARCFACE_TEMPLATE`` and the face is warped with bilinear interpolation,
black outside the photo. Coordinates follow OpenCV's convention (pixel ``i`` is centred on
``i``), like MTCNN's landmarks and the template; the warp itself uses Pillow.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

#: insightface ``face_align.arcface_dst``: left eye, right eye, nose, left and right mouth
#: corner (left = image-left) in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def template(size: int = 112) -> np.ndarray:
    """The template for a ``size x size`` crop, scaled as insightface does (112k or 128k)."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        return ARCFACE_TEMPLATE * ratio + np.array([8.0 * ratio, 0.0])
    raise ValueError(f"crop size must be a multiple of 112 or 128, got {size}")


def estimate_transform(landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The 2x3 similarity matrix ``M`` with ``M @ [x, y, 1]`` taking ``landmarks`` onto the template.

    Least squares over the five points (Umeyama's closed form, reflection excluded).
    """
    src = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    dst = template(size)
    if src.shape != dst.shape:
        raise ValueError(f"expected 5 landmarks, got shape {np.shape(landmarks)}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = float((s * d).sum() / var_src) if var_src > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to ``(n, 2)`` points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp(image: np.ndarray | Image.Image, matrix: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` by the 2x3 ``matrix`` (source -> crop) into a ``size x size`` RGB crop."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(_rgb(image))
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    a, b, c = inverse[0]
    d, e, f = inverse[1]
    # Pillow samples output pixel centres (x + 0.5) and treats input pixel i as [i, i + 1);
    # shift the translation so that integer coordinates are pixel centres on both sides.
    c += 0.5 - 0.5 * (a + b)
    f += 0.5 - 0.5 * (d + e)
    crop = pil.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR)
    return np.asarray(crop.convert("RGB"))


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The aligned ``size x size x 3`` uint8 crop of the face with these five landmarks."""
    return warp(image, estimate_transform(landmarks, size), size)


def align_faces(image: np.ndarray, landmarks: Iterable[np.ndarray], size: int = 112) -> np.ndarray:
    """Aligned crops of several faces of one image, ``(n, size, size, 3)`` uint8."""
    pil = Image.fromarray(_rgb(image))
    crops = [warp(pil, estimate_transform(lm, size), size) for lm in landmarks]
    if not crops:
        return np.empty((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)


def _rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)
