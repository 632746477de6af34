"""Embeddings as little-endian float32 blobs. The model id and dimension live beside the blob
(see the ``embeddings`` table); a blob whose length disagrees with its dimension is refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetags.errors import LibraryError

DTYPE = np.dtype("<f4")


def to_blob(vector: np.ndarray) -> bytes:
    array = np.asarray(vector, dtype=DTYPE)
    if array.ndim != 1:
        raise ValueError(f"an embedding is one vector, got shape {array.shape}")
    return array.tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    if len(blob) != dim * DTYPE.itemsize:
        raise LibraryError(f"embedding blob of {len(blob)} bytes does not hold {dim} float32")
    return np.frombuffer(blob, dtype=DTYPE).astype(np.float32)


def stack(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Many blobs of one model -> an (N, dim) float32 matrix."""
    if not blobs:
        return np.zeros((0, dim), np.float32)
    joined = b"".join(blobs)
    if len(joined) != len(blobs) * dim * DTYPE.itemsize:
        raise LibraryError(f"embedding blobs do not all hold {dim} float32")
    return np.frombuffer(joined, dtype=DTYPE).reshape(len(blobs), dim).astype(np.float32)


def landmarks_to_blob(points: np.ndarray) -> bytes:
    """Five (x, y) landmarks -> 10 float32 (x1, y1, ..., x5, y5)."""
    return np.asarray(points, dtype=DTYPE).reshape(-1).tobytes()


def landmarks_from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=DTYPE).reshape(-1, 2).astype(np.float32)
