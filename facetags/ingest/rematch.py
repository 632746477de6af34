"""Which face of a changed photo is which face of its previous version.

When a file's pixels change (an edit, a crop, a re-export), its faces are detected again, and
the user's decisions on the old faces (names, assignments, rejections, "not a face") must land
on the same faces of the new version. Boxes alone do not say which is which once the photo was
cropped or resized (normalised coordinates move), and embeddings alone are not reliable enough
between the faces of one photo (people in one photo can look alike to a small model). So:

1. hypotheses: "nothing moved" (identity), "mirrored left-right", and for every (old, new)
   pair of faces the
   axis-aligned scale + shift (optionally mirrored left-right) that maps one box onto the other:
   what a crop, a resize or a flip does to the whole photo;
2. each hypothesis maps every old box into the new photo and matches boxes one to one
   (IoU >= ``MIN_IOU``, and, with embeddings of one model, similarity >= ``MIN_SIMILARITY``);
3. the hypothesis with the most matches (then the best total overlap and similarity) wins.

One match under a hypothesis made from that very pair proves nothing by itself (any box maps
onto any box), so it is kept only when the two faces also look alike (``SAME_FACE``); two or
more consistent matches, or one under the identity or the plain mirror, are geometric
evidence enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_IOU = 0.5
#: With embeddings: a pair below this is never the same face, whatever the geometry says.
MIN_SIMILARITY = 0.4
#: A lone match under a moved/scaled/mirrored hypothesis needs this much similarity.
SAME_FACE = 0.8
#: Pair hypotheses are built from at most this many faces on each side (big group photos).
MAX_HYPOTHESIS_FACES = 40

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Transform:
    """x' = ax * cx + bx (box centre), w' = |ax| * w; likewise y. ax < 0: mirrored."""

    ax: float = 1.0
    bx: float = 0.0
    ay: float = 1.0
    by: float = 0.0

    @property
    def fixed(self) -> bool:
        """The identity or the plain left-right mirror: hypotheses not fitted to any pair."""
        return self in FIXED

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x, y, w, h boxes mapped the same way."""
        cx = boxes[:, 0] + boxes[:, 2] / 2
        cy = boxes[:, 1] + boxes[:, 3] / 2
        w = boxes[:, 2] * abs(self.ax)
        h = boxes[:, 3] * abs(self.ay)
        return np.stack([self.ax * cx + self.bx - w / 2, self.ay * cy + self.by - h / 2, w, h], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of x, y, w, h boxes."""
    ax0, ay0 = a[:, None, 0], a[:, None, 1]
    ax1, ay1 = ax0 + a[:, None, 2], ay0 + a[:, None, 3]
    bx0, by0 = b[None, :, 0], b[None, :, 1]
    bx1, by1 = bx0 + b[None, :, 2], by0 + b[None, :, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


FIXED = (Transform(), Transform(ax=-1.0, bx=1.0))


def _hypotheses(old: np.ndarray, new: np.ndarray) -> list[Transform]:
    found = list(FIXED)
    for i in range(min(len(old), MAX_HYPOTHESIS_FACES)):
        ocx, ocy = old[i, 0] + old[i, 2] / 2, old[i, 1] + old[i, 3] / 2
        for j in range(min(len(new), MAX_HYPOTHESIS_FACES)):
            if old[i, 2] <= 0 or old[i, 3] <= 0:
                continue
            ncx, ncy = new[j, 0] + new[j, 2] / 2, new[j, 1] + new[j, 3] / 2
            sx, sy = new[j, 2] / old[i, 2], new[j, 3] / old[i, 3]
            for ax in (sx, -sx):
                found.append(Transform(float(ax), float(ncx - ax * ocx), float(sy), float(ncy - sy * ocy)))
    return found


def _greedy(overlap: np.ndarray, sims: np.ndarray | None) -> list[tuple[int, int, float]]:
    """One-to-one pairs (old, new, score) with enough overlap (and similarity), best first."""
    ok = overlap >= MIN_IOU
    score = overlap.copy()
    if sims is not None:
        ok &= sims >= MIN_SIMILARITY
        score = score + sims
    pairs: list[tuple[int, int, float]] = []
    used_old: set[int] = set()
    used_new: set[int] = set()
    for flat in np.argsort(-score, axis=None):
        i, j = divmod(int(flat), overlap.shape[1])
        if ok[i, j] and i not in used_old and j not in used_new:
            pairs.append((i, j, float(score[i, j])))
            used_old.add(i)
            used_new.add(j)
    return pairs


def match_faces(
    old_boxes: Sequence[Box],
    new_boxes: Sequence[Box],
    old_vectors: Sequence[np.ndarray | None] | None = None,
    new_vectors: Sequence[np.ndarray | None] | None = None,
) -> dict[int, int]:
    """Old face index -> new face index for the faces that are the same face.

    Boxes are x, y, w, h normalised to each version's upright photo. Vectors (unit length, one
    model) are optional per face; similarity is used only where both sides have one.
    """
    if not old_boxes or not new_boxes:
        return {}
    old = np.asarray(old_boxes, np.float64).reshape(-1, 4)
    new = np.asarray(new_boxes, np.float64).reshape(-1, 4)
    sims: np.ndarray | None = None
    if old_vectors is not None and new_vectors is not None:
        dims = {v.shape[0] for v in [*old_vectors, *new_vectors] if v is not None}
        if len(dims) == 1:
            dim = dims.pop()
            a = np.stack([np.zeros(dim) if v is None else np.asarray(v, np.float64) for v in old_vectors])
            b = np.stack([np.zeros(dim) if v is None else np.asarray(v, np.float64) for v in new_vectors])
            sims = a @ b.T
            missing = (
                np.array([v is None for v in old_vectors])[:, None]
                | np.array([v is None for v in new_vectors])[None, :]
            )
            sims = np.where(missing, MIN_SIMILARITY, sims)  # unknown: geometry decides
    best: tuple[int, float, Transform, list[tuple[int, int, float]]] | None = None
    for transform in _hypotheses(old, new):
        pairs = _greedy(iou(transform.apply(old), new), sims)
        key = (len(pairs), sum(s for _, _, s in pairs))
        if best is None or key > best[:2]:
            best = (key[0], key[1], transform, pairs)
    assert best is not None
    _, _, transform, pairs = best
    if len(pairs) == 1 and not transform.fixed:
        i, j, _ = pairs[0]
        if sims is None or sims[i, j] < SAME_FACE:
            # One box can be mapped onto any other: without a second face or a close look, the
            # fixed hypotheses' own verdict (if any) is all the evidence there is.
            fixed = [_greedy(iou(t.apply(old), new), sims) for t in FIXED]
            pairs = max(fixed, key=lambda found: (len(found), sum(s for _, _, s in found)))
    return {i: j for i, j, _ in pairs}
