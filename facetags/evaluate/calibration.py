"""Calibrating a clustering threshold on labelled data.

:func:`sweep` runs one algorithm over a grid on labelled calibration data (LFW DevTrain people,
never the sets we report on) and :func:`choose` picks the threshold with the best BCubed F among
those whose BCubed precision reaches ``min_precision`` (users forgive a split far more than a
wrong merge). The chosen value is recorded with :func:`facetags.people.calibrate.save_threshold`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from facetags.evaluate.clustering import ClusterScores, score_clustering
from facetags.people.cluster import Constraints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    scores: ClusterScores


Algorithm = Callable[[np.ndarray, float, Constraints], np.ndarray]


def sweep(
    algorithm: Algorithm,
    x: np.ndarray,
    constraints: Constraints,
    scored: np.ndarray,
    truth: Sequence[Hashable],
    grid: Sequence[float],
) -> list[SweepPoint]:
    """Cluster all faces at each threshold; score the labelled ones (indices ``scored``)."""
    out = []
    for t in grid:
        labels = algorithm(x, float(t), constraints)
        s = score_clustering(list(truth), labels[scored].tolist())
        out.append(SweepPoint(float(t), s))
        log.debug(
            "threshold %.3f: BCubed P %.4f R %.4f F %.4f", t, s.bcubed_precision, s.bcubed_recall, s.bcubed_f
        )
    return out


def choose(points: Sequence[SweepPoint], min_precision: float = 0.98) -> SweepPoint:
    """Best BCubed F among points with precision >= min_precision (else the most precise)."""
    ok = [p for p in points if p.scores.bcubed_precision >= min_precision]
    if not ok:
        return max(points, key=lambda p: (p.scores.bcubed_precision, p.scores.bcubed_f))
    return max(ok, key=lambda p: (p.scores.bcubed_f, p.scores.bcubed_precision))
