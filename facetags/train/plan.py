"""The plan a blockwise student is laid out on: the shapes of its teacher's taps (no TensorFlow).

Shared by :mod:`facetags.train.blockwise` (dlib's plan) and :mod:`facetags.train.mfnplan`
(MobileFaceNet's).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlockPlan:
    """A teacher tap's shape (height, width, channels) per tap: tap 0 = the stem's output."""

    shapes: tuple[tuple[int, int, int], ...]
