"""Clustering thresholds per embedder model, and the sweep that calibrates them.

A threshold is a cosine similarity: two faces at least this similar may be one person. It is a
property of the embedder, so it is stored per model id in :data:`THRESHOLDS`, each entry with the
command and data it came from. :func:`sweep` runs one algorithm over a grid on labelled
calibration data (LFW DevTrain people, never the sets we report on) and :func:`choose` picks the
threshold with the best BCubed F among those whose BCubed precision reaches ``min_precision``
(users forgive a split far more than a wrong merge).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from facetags.evaluate.clustering import ClusterScores, score_clustering
from facetags.people.cluster import Constraints

log = logging.getLogger(__name__)

#: Calibrated thresholds: "model id@first 12 hex of its sha256" (a retrained model keeps its id)
#: or a bare model id for models that never change. benchmarks/cluster_compare.py prints them;
#: docs/clustering.md has the runs. A model's spec may carry its own, extra["cluster_threshold"].
THRESHOLDS: dict[str, float] = {
    # dlib descriptors, L2-normalised. LFW DevTrain sample (300 people with 2+ photos),
    # graph_average, best BCubed F with BCubed P >= 0.98.
    "dlib-resnet-v1": 0.924,
    # The bootstrap model (weak); same protocol. Recall is low at this precision.
    "facetags-mobilenet-v1@07f2f793f2f6": 0.863,
}
#: For a model nobody has calibrated: conservative (few merges).
FALLBACK = 0.6


def threshold_for(model_id: str, extra: dict[str, object] | None = None, sha256: str = "") -> float:
    """The clustering threshold for a model: its spec's ``cluster_threshold``, else this table's
    entry for that exact file, else for the id, else :data:`FALLBACK` (with a warning)."""
    value = (extra or {}).get("cluster_threshold")
    if isinstance(value, int | float):
        return float(value)
    for key in (f"{model_id}@{sha256[:12]}", model_id):
        if key in THRESHOLDS:
            return THRESHOLDS[key]
    log.warning("no calibrated clustering threshold for %s; using %.2f", model_id, FALLBACK)
    return FALLBACK


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
