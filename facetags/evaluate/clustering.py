"""Clustering scores: pairwise and BCubed precision/recall/F, cluster counts, singletons.

``truth`` and ``predicted`` are parallel sequences: the true identity and the predicted cluster
of each scored face. Conventions (stated once, used everywhere):

* Pairwise: over all unordered pairs of faces, precision = same-cluster pairs that are the same
  person / same-cluster pairs; recall = same-person pairs put in one cluster / same-person pairs.
  A clustering with no same-cluster pair has precision 1; a truth with no same-person pair has
  recall 1 (nothing to find).
* BCubed (Bagga & Baldwin; Amigó et al. 2009): per face, precision = share of its cluster that is
  its person, recall = share of its person that is in its cluster; averaged over faces.
* F is the harmonic mean of precision and recall (0 when both are 0).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterScores:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f: float
    clusters: int  # predicted clusters among the scored faces
    people: int  # distinct true identities
    faces: int
    singleton_share: float  # share of scored faces alone in their predicted cluster

    def to_json(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def f_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def contingency(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> np.ndarray:
    """Counts n[i, j] of faces of person i in cluster j (dense; rows and columns in first-seen order)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predicted")
    t_index: dict[Hashable, int] = {}
    p_index: dict[Hashable, int] = {}
    ti = np.array([t_index.setdefault(t, len(t_index)) for t in truth], dtype=np.int64)
    pi = np.array([p_index.setdefault(p, len(p_index)) for p in predicted], dtype=np.int64)
    table = np.zeros((len(t_index), len(p_index)), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    return table


def _pairs(n: np.ndarray) -> float:
    return float((n * (n - 1) // 2).sum())


def score_clustering(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> ClusterScores:
    """All scores for one clustering of labelled faces."""
    table = contingency(truth, predicted)
    n = int(table.sum())
    if n == 0:
        raise ValueError("no faces to score")
    person_sizes = table.sum(axis=1)
    cluster_sizes = table.sum(axis=0)

    together = _pairs(table)
    cluster_pairs = _pairs(cluster_sizes)
    person_pairs = _pairs(person_sizes)
    pp = together / cluster_pairs if cluster_pairs else 1.0
    pr = together / person_pairs if person_pairs else 1.0

    # BCubed: each of the n[i, j] faces in cell (i, j) has precision n[i,j]/|cluster j| and
    # recall n[i,j]/|person i|; summing over faces gives sum n^2 / size.
    sq = table.astype(np.float64) ** 2
    bp = float((sq / cluster_sizes[None, :]).sum()) / n
    br = float((sq / person_sizes[:, None]).sum()) / n

    return ClusterScores(
        pairwise_precision=pp,
        pairwise_recall=pr,
        pairwise_f=f_score(pp, pr),
        bcubed_precision=bp,
        bcubed_recall=br,
        bcubed_f=f_score(bp, br),
        clusters=int(table.shape[1]),
        people=int(table.shape[0]),
        faces=n,
        singleton_share=float((cluster_sizes == 1).sum()) / n,
    )


def agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """BCubed F of clustering ``b`` against ``a`` as truth: 1.0 when they partition alike.

    Symmetric, since swapping the two swaps BCubed precision and recall.
    """
    return score_clustering(a, b).bcubed_f
