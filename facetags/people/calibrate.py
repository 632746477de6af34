"""Clustering thresholds per embedder model, and the sweep that calibrates them.

A threshold is a cosine similarity: two faces at least this similar may be one person. It is a
property of the embedder, so it is stored per model file in ``thresholds.json``, each entry with
how it was calibrated. :func:`sweep` runs one algorithm over a grid on labelled
calibration data (LFW DevTrain people, never the sets we report on) and :func:`choose` picks the
threshold with the best BCubed F among those whose BCubed precision reaches ``min_precision``
(users forgive a split far more than a wrong merge).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facetags.evaluate.clustering import ClusterScores, score_clustering
from facetags.people.cluster import Constraints

log = logging.getLogger(__name__)

#: Calibrated thresholds, keyed "model id@first 12 hex of its sha256" (a retrained model keeps its
#: id) or a bare id for models that never change; each entry records how it was calibrated.
#: Written by ``python benchmarks/cluster_compare.py --save``; docs/clustering.md has the runs.
#: A model's spec may carry its own, ``extra["cluster_threshold"]``, which wins.
THRESHOLDS_FILE = Path(__file__).with_name("thresholds.json")
#: For a model nobody has calibrated: conservative (few merges).
FALLBACK = 0.6


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: %s", THRESHOLDS_FILE, exc)
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def threshold_for(model_id: str, extra: dict[str, object] | None = None, sha256: str = "") -> float:
    """The clustering threshold for a model: its spec's ``cluster_threshold``, else the table's
    entry for that exact file, else for the id, else :data:`FALLBACK` (with a warning)."""
    value = (extra or {}).get("cluster_threshold")
    if isinstance(value, int | float):
        return float(value)
    table = _table()
    for key in (f"{model_id}@{sha256[:12]}", model_id):
        if key in table and isinstance(table[key].get("threshold"), int | float):
            return float(table[key]["threshold"])
    log.warning("no calibrated clustering threshold for %s; using %.2f", model_id, FALLBACK)
    return FALLBACK


def save_threshold(key: str, threshold: float, **details: Any) -> None:
    """Record a calibrated threshold in :data:`THRESHOLDS_FILE` (keys sorted, one per model)."""
    data = dict(_table())
    data[key] = {"threshold": round(float(threshold), 4), **details}
    THRESHOLDS_FILE.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n", encoding="utf-8")
    _table.cache_clear()


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
