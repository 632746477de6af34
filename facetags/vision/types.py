"""Plain data passed between pipeline stages (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the upright (EXIF-orientation-applied) full-size photo."""

    box: tuple[float, float, float, float]  # x, y, w, h (top-left corner, width, height)
    score: float
    landmarks: np.ndarray  # shape (5, 2): left eye, right eye, nose, left mouth, right mouth (x, y)

    def to_json(self) -> dict[str, object]:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
        }
