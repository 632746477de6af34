"""k-nearest-neighbour similarity graphs over unit-length embeddings.

Exact (blocked matrix products) up to ``exact_limit`` faces; beyond that an inverted-file
approximation: a seeded k-means coarse quantiser, each face probed into its ``probes`` nearest
cells, exact neighbours searched among the faces of those cells. Faces of one person sit in
the same few cells, so the neighbours that matter (similarity above a clustering threshold) are
found at a small fraction of the cost of all pairs.

The graph is returned in CSR form, symmetric, without self loops, keeping only edges whose
cosine similarity reaches ``threshold``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

BLOCK = 1024


@dataclass(frozen=True)
class Graph:
    indptr: np.ndarray  # (n + 1,) int64
    indices: np.ndarray  # (E,) int64 neighbour of each edge
    weights: np.ndarray  # (E,) float32 cosine similarity

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def sources(self) -> np.ndarray:
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.indptr))


#: Faces up to which :func:`components` labels in numpy; above, SciPy's compiled search (its
#: import, 0.1 s and more, would be most of a small scan's re-clustering).
NUMPY_COMPONENTS = 50_000


def components(g: Graph) -> np.ndarray:
    """The connected component of each face, numbered as SciPy's ``connected_components``
    numbers them (by the smallest face of each: the component of face 0 is 0)."""
    n = g.n
    if n > NUMPY_COMPONENTS:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        adj = csr_matrix((np.ones(len(g.indices), np.int8), g.indices, g.indptr), shape=(n, n))
        return np.asarray(connected_components(adj, directed=False)[1], np.int64)
    src, dst = g.sources(), np.asarray(g.indices, np.int64)
    root = np.arange(n, dtype=np.int64)
    while True:  # hook each edge's larger root under its smaller one, then flatten the trees
        a, b = root[src], root[dst]
        apart = a != b
        if not apart.any():
            break
        np.minimum.at(root, np.maximum(a, b)[apart], np.minimum(a, b)[apart])
        while not np.array_equal(up := root[root], root):
            root = up
    # each face's root is now its component's smallest face: number them in that order
    return np.unique(root, return_inverse=True)[1].astype(np.int64)


def _topk_rows(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries of each row (unsorted)."""
    k = min(k, sims.shape[1])
    if k <= 0:
        return np.zeros((sims.shape[0], 0), np.int64), np.zeros((sims.shape[0], 0), np.float32)
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)


def _exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    rows, cols, vals = [], [], []
    for start in range(0, n, BLOCK):
        block = x[start : start + BLOCK] @ x.T
        r = np.arange(start, min(start + BLOCK, n))
        block[r - start, r] = -np.inf  # no self loops
        idx, val = _topk_rows(block, k)
        rows.append(np.repeat(r, idx.shape[1]))
        cols.append(idx.ravel())
        vals.append(val.ravel())
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _kmeans(x: np.ndarray, cells: int, seed: int, iterations: int = 8, sample: int = 20000) -> np.ndarray:
    """Spherical k-means centroids on a seeded sample (cheap; only a coarse quantiser)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    s = x[np.sort(pick)]
    c = s[rng.choice(len(s), size=cells, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(s @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, s)
        empty = np.bincount(assign, minlength=cells) == 0
        sums[empty] = c[empty]
        c = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return c.astype(np.float32)


def _ivf(x: np.ndarray, k: int, cells: int, probes: int, seed: int) -> tuple[np.ndarray, ...]:
    n = len(x)
    cent = _kmeans(x, cells, seed)
    home = np.empty((n, probes), np.int64)
    for start in range(0, n, 8 * BLOCK):
        idx, val = _topk_rows(x[start : start + 8 * BLOCK] @ cent.T, probes)
        order = np.argsort(-val, axis=1)
        home[start : start + len(idx)] = np.take_along_axis(idx, order, axis=1)
    # Each face is searched from its nearest cell, against the faces probed into that cell.
    probed = np.repeat(np.arange(n), probes)
    cell_of = home.ravel()
    order = np.argsort(cell_of, kind="stable")
    bounds = np.searchsorted(cell_of[order], np.arange(cells + 1))
    primary = np.argsort(home[:, 0], kind="stable")
    pbounds = np.searchsorted(home[primary, 0], np.arange(cells + 1))
    rows, cols, vals = [], [], []
    for c in range(cells):
        queries = primary[pbounds[c] : pbounds[c + 1]]
        if len(queries) == 0:
            continue
        pool = probed[order[bounds[c] : bounds[c + 1]]]
        for start in range(0, len(queries), BLOCK):
            q = queries[start : start + BLOCK]
            block = x[q] @ x[pool].T
            idx, val = _topk_rows(block, k + 1)  # one extra: the face itself is in its pool
            r, c = np.repeat(q, idx.shape[1]), pool[idx.ravel()]
            not_self = r != c
            rows.append(r[not_self])
            cols.append(c[not_self])
            vals.append(val.ravel()[not_self])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def knn_graph(
    x: np.ndarray,
    k: int,
    threshold: float,
    *,
    exact_limit: int = 20000,
    cells: int | None = None,
    probes: int = 2,
    seed: int = 0,
) -> Graph:
    """Symmetric kNN graph of ``x`` (rows of unit length), edges with similarity >= threshold."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < 2 or k <= 0:
        return Graph(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n <= exact_limit:
        r, c, v = _exact(x, k)
    else:
        cells = cells or max(16, int(np.sqrt(n) * 4))
        r, c, v = _ivf(x, k, cells, min(probes, cells), seed)
    keep = np.isfinite(v) & (v >= threshold)
    r, c, v = r[keep], c[keep], v[keep].astype(np.float32)
    # Symmetrise: an edge found from either end; duplicates collapse.
    rr = np.concatenate([r, c])
    cc = np.concatenate([c, r])
    vv = np.concatenate([v, v])
    key = rr * n + cc
    key, first = np.unique(key, return_index=True)
    rr, cc, vv = key // n, key % n, vv[first]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rr, minlength=n), out=indptr[1:])
    log.debug("kNN graph: %d faces, %d edges (k=%d, threshold %.3f)", n, len(cc), k, threshold)
    return Graph(indptr, cc.astype(np.int64), vv)
