"""The plan a blockwise student is laid out on: the shapes of its teacher's taps (no TensorFlow).

Shared by :mod:`facetags.train.blockwise` (dlib's plan) and :mod:`facetags.train.mfnplan`
(MobileFaceNet's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BlockPlan:
    """A teacher tap's shape (height, width, channels) per tap: tap 0 = the stem's output."""

    shapes: tuple[tuple[int, int, int], ...]


class BlockStudent:
    """What the students of both plans share: a stem, one block per teacher block and a head
    (separate Keras models, so each block can be taught alone), and the whole (``model``)."""

    stem: Any
    blocks: list[Any]
    head: Any
    model: Any

    def chained(self, x: Any, training: bool) -> tuple[list[Any], Any]:
        """(the activations after the stem and after each block, the vector) of input ``x``."""
        acts = [self.stem(x, training=training)]
        for block in self.blocks:
            acts.append(block(acts[-1], training=training))
        return acts, self.head(acts[-1], training=training)

    def params(self) -> int:
        return int(self.model.count_params())
