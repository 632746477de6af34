"""Batch clustering of face embeddings, obeying the user's decisions.

Every algorithm takes unit-length embeddings ``x`` (n, dim) and :class:`Constraints`, and
returns one label per face:

* a face the user placed (``fixed[i] = person id >= 0``) keeps that person id as its label, and
  every face clustered with it gets the same id (must-link: all faces of one person are one
  cluster, whatever the algorithm thought); for a person the user named (``named``), only if the
  cluster holds half the person's fixed faces or more, or if those faces' mean similarity, as a
  group, to all of them reaches the threshold; else they stay a cluster of their own;
* other clusters get fresh ids above every fixed id (``first_new``), numbered in a canonical order
  so the same faces in any input order get the same partition;
* two faces of one photo are never in one cluster (cannot-link), and a face is never labelled with
  a person listed in its rejections; a face that would break either is moved to the nearest
  cluster it may join with similarity >= threshold, else left alone (precision first).

Hidden strangers are people like any other to this module: their faces are fixed to the hidden
person, so the machine never moves them out, and similar new faces may join them (and stay hidden).

Algorithms: :func:`graph_average` (average linkage within the components of a kNN graph, and
along its edges in a component too large for an n x n matrix: the product's default, scales
to 100k faces), :func:`chinese_whispers` (label propagation on the kNN
graph), :func:`agglomerative` (exact average linkage; O(n^2) memory, for small sets),
:func:`dbscan` and :func:`hdbscan` (scikit-learn; comparison).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from facetags.people.graph import Graph, components, knn_graph

log = logging.getLogger(__name__)

FREE = -1
AGGLOMERATIVE_LIMIT = 15000  # 15k x 15k float64 distances = 1.8 GB
#: Faces up to which average linkage runs in numpy (:func:`_upgma`); larger groups of
#: look-alikes use SciPy's (O(n^2) against numpy's O(n^3)), whose import costs more than the
#: small ones take.
NUMPY_LINKAGE = 128


@dataclass(frozen=True)
class Constraints:
    photo: np.ndarray | None = None  # (n,) photo id of each face: one photo's faces are cannot-link
    fixed: np.ndarray | None = None  # (n,) person id the user put the face in, or FREE (-1)
    rejected: Mapping[int, Collection[int]] = field(default_factory=dict)  # face index -> person ids
    cannot: Collection[tuple[int, int]] = ()  # face index pairs the user split apart
    # people the user named (or hid, or merged into): faces clustered with a few of theirs join
    # them only if like them as a whole (see enforce); an unnamed cluster a user placed faces in
    # takes every face clustered with them, as before
    named: Collection[int] = ()

    def partners(self) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for a, b in self.cannot:
            out.setdefault(int(a), set()).add(int(b))
            out.setdefault(int(b), set()).add(int(a))
        return out

    def fixed_or_free(self, n: int) -> np.ndarray:
        return np.full(n, FREE, np.int64) if self.fixed is None else np.asarray(self.fixed, np.int64)

    def photos(self, n: int) -> np.ndarray:
        # Without photo ids every face is its own photo (no cannot-link).
        return np.arange(n, dtype=np.int64) if self.photo is None else np.asarray(self.photo, np.int64)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def canonical_order(x: np.ndarray) -> np.ndarray:
    """A permutation that depends on the embeddings only, not on the order they arrived in:
    sorted by two fixed random projections (rounded, so float noise cannot reorder)."""
    r = np.random.default_rng(12345).normal(size=(np.shape(x)[1], 2)).astype(np.float32)
    keys = np.round(np.asarray(x, np.float32) @ r * 1e5).astype(np.int64)
    return np.lexsort((keys[:, 1], keys[:, 0]))


# ---------------------------------------------------------------------------------------------
# Constraint repair and final labels


def enforce(labels: np.ndarray, x: np.ndarray, c: Constraints, threshold: float) -> np.ndarray:
    """Make a clustering obey the constraints (see the module doc); returns final labels."""
    n = len(labels)
    fixed = c.fixed_or_free(n)
    photo = c.photos(n)
    labels = np.asarray(labels, np.int64).copy()
    # Fixed faces: their person decides. Clusters holding several people are split: each free
    # member goes to the person whose fixed faces there it is most similar to. Free faces join a
    # named person (``c.named``) if the cluster holds at least half of its fixed faces, or if
    # their mean similarity, as a group, to all of them reaches the threshold: clustered with a
    # few of its faces (one that is not like the rest: a face the user moved there, a stranger
    # in the cluster the user named), they stay a cluster of their own instead of bringing their
    # whole group, and the name, into the person.
    # each named person's fixed faces: their vector sum and count, in one pass over the faces
    held_by_named = np.flatnonzero(np.isin(fixed, list(c.named)))
    named, which, sizes = np.unique(fixed[held_by_named], return_inverse=True, return_counts=True)
    sums = np.zeros((len(named), x.shape[1]))
    np.add.at(sums, which, x[held_by_named])
    anchors = {int(p): (sums[k], int(sizes[k])) for k, p in enumerate(named.tolist())}

    def joins(p: int, joining: np.ndarray, members: np.ndarray) -> bool:
        if p not in anchors:
            return True
        total, count = anchors[p]
        if 2 * int((fixed[members] == p).sum()) >= count:
            return True
        return float(x[joining].astype(np.float64).sum(0) @ total) / (len(joining) * count) >= threshold

    groups: dict[tuple[str, int], list[int]] = {}
    order = np.argsort(labels, kind="stable")
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, cuts):
        cl = labels[members[0]]
        persons = np.unique(fixed[members][fixed[members] != FREE])
        if len(persons) == 0:
            groups[("c", int(cl))] = members.tolist()
            continue
        free = members[fixed[members] == FREE]
        for p in persons:
            groups.setdefault(("p", int(p)), []).extend(members[fixed[members] == p].tolist())
        if len(persons) == 1:
            best = np.zeros(len(free), np.int64)
        else:
            cent = np.stack([unit(x[members[fixed[members] == p]].sum(0, keepdims=True))[0] for p in persons])
            best = np.argmax(x[free] @ cent.T, axis=1) if len(free) else np.zeros(0, np.int64)
        for b, p in enumerate(persons.tolist()):
            joining = free[best == b]
            if not len(joining):
                continue
            if joins(p, joining, members):
                groups[("p", p)].extend(joining.tolist())
            else:
                groups.setdefault(("c", int(cl)), []).extend(joining.tolist())
    # Cannot-link and rejections: keep fixed faces, then the members closest to the centroid.
    out = np.full(n, FREE, np.int64)
    partners = c.partners()
    kicked: list[int] = []
    gid = 0
    group_person: dict[int, int] = {}
    for (kind, key), members_list in sorted(groups.items()):
        members = np.asarray(members_list, np.int64)
        person = key if kind == "p" else FREE
        cent = unit(x[members].sum(0, keepdims=True))[0]
        sim = x[members] @ cent
        order = np.lexsort((-sim, fixed[members] == FREE))
        seen: set[int] = set()
        inside: set[int] = set()
        for i in members[order].tolist():
            bad = person != FREE and fixed[i] == FREE and person in c.rejected.get(i, ())
            split = fixed[i] == FREE and not partners.get(i, set()).isdisjoint(inside)
            if (photo[i] in seen and fixed[i] == FREE) or bad or split:
                kicked.append(i)
                continue
            seen.add(int(photo[i]))
            inside.add(i)
            out[i] = gid
        group_person[gid] = person
        gid += 1
    for i in kicked:  # the nearest group this face may join, else alone
        gid = _rehome(i, out, x, photo, partners, group_person, c, threshold, gid)
    return finalise(out, fixed, group_person)


def _rehome(
    i: int,
    out: np.ndarray,
    x: np.ndarray,
    photo: np.ndarray,
    partners: dict[int, set[int]],
    group_person: dict[int, int],
    c: Constraints,
    threshold: float,
    next_gid: int,
) -> int:
    sims = x @ x[i]
    sims[out == FREE] = -np.inf
    best = np.argpartition(-sims, min(20, len(sims) - 1))[:20]
    for j in best[np.argsort(-sims[best])]:
        if sims[j] < threshold:
            break
        g = int(out[j])
        if group_person[g] in c.rejected.get(i, ()):
            continue
        if np.any(photo[out == g] == photo[i]):
            continue
        if any(out[j] == g for j in partners.get(i, ())):
            continue
        out[i] = g
        return next_gid
    out[i] = next_gid
    group_person[next_gid] = FREE
    return next_gid + 1


def finalise(groups: np.ndarray, fixed: np.ndarray, group_person: Mapping[int, int]) -> np.ndarray:
    """Group numbers -> person ids for groups of fixed faces, fresh ids (canonical order) otherwise."""
    first_new = int(max(fixed.max(initial=FREE), FREE)) + 1
    labels = np.empty(len(groups), np.int64)
    nxt = first_new
    mapping: dict[int, int] = {}
    for i, g in enumerate(groups.tolist()):
        if g not in mapping:
            p = group_person.get(g, FREE)
            if p != FREE:
                mapping[g] = p
            else:
                mapping[g] = nxt
                nxt += 1
        labels[i] = mapping[g]
    return labels


# ---------------------------------------------------------------------------------------------
# Algorithms


def chinese_whispers(
    x: np.ndarray,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    k: int = 12,
    iterations: int = 30,
    batches: int = 16,
    seed: int = 0,
    graph: Graph | None = None,
) -> np.ndarray:
    """Chinese whispers (Biemann 2006) on the kNN graph, edges with similarity >= threshold.

    Each face takes the label carrying the largest summed edge weight among its neighbours.
    Updates run in seeded random order, in ``batches`` vectorised rounds per iteration (a close,
    deterministic approximation of the one-node-at-a-time original). Fixed faces are clamped to
    one label per person. Runs in canonical order, so input order does not matter.
    """
    c = constraints or Constraints()
    x = unit(x)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64)
    perm = canonical_order(x)
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    xs = x[perm]
    fixed = c.fixed_or_free(n)[perm]
    g = graph if graph is not None else knn_graph(xs, k, threshold, seed=seed)
    labels = np.arange(n, dtype=np.int64)
    for p in np.unique(fixed[fixed != FREE]):
        members = np.flatnonzero(fixed == p)
        labels[members] = members[0]
    movable = np.flatnonzero(fixed == FREE)
    # Seed: a free face next to the user's faces starts with their person's label, so a named
    # person pulls its look-alikes before free faces can form a rival cluster around them.
    _update(movable, labels, g, anchors=fixed != FREE)
    rng = np.random.default_rng(seed)
    for it in range(iterations):
        changed = 0
        order = rng.permutation(movable)
        for part in np.array_split(order, min(batches, max(1, len(order)))):
            changed += _update(part, labels, g)
        if changed == 0:
            log.debug("chinese whispers converged after %d iterations", it + 1)
            break
    groups = labels[inv]
    return enforce(groups, x, c, threshold)


def _update(part: np.ndarray, labels: np.ndarray, g: Graph, anchors: np.ndarray | None = None) -> int:
    """Relabel the faces ``part`` at once from their neighbours (only ``anchors`` if given)."""
    if len(part) == 0:
        return 0
    starts, ends = g.indptr[part], g.indptr[part + 1]
    counts = ends - starts
    has = counts > 0
    part, starts, counts = part[has], starts[has], counts[has]
    if len(part) == 0:
        return 0
    edge = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    src = np.repeat(np.arange(len(part)), counts)
    if anchors is not None:
        keep = anchors[g.indices[edge]]
        edge, src = edge[keep], src[keep]
        if len(edge) == 0:
            return 0
    lab = labels[g.indices[edge]]
    w = g.weights[edge].astype(np.float64)
    key = src * (len(labels) + 1) + lab
    uniq, inverse = np.unique(key, return_inverse=True)
    score = np.bincount(inverse, weights=w)
    s_node, s_lab = uniq // (len(labels) + 1), uniq % (len(labels) + 1)
    pick = np.lexsort((s_lab, -score, s_node))  # per node: highest score, then smallest label
    first = np.ones(len(pick), bool)
    first[1:] = s_node[pick][1:] != s_node[pick][:-1]
    best_node, best_lab = s_node[pick][first], s_lab[pick][first]
    nodes = part[best_node]
    changed = int((labels[nodes] != best_lab).sum())
    labels[nodes] = best_lab
    return changed


def _constraint_distances(x: np.ndarray, c: Constraints) -> np.ndarray:
    """Cosine distances, with cannot-link pairs pushed out of reach. Must-link (one person's fixed
    faces) is left to :func:`enforce`: forcing it here would let one odd face the user moved drag
    its person's average away from all its other faces. One n x n matrix is all it allocates
    (with the product it is made from; the constraints are written into it in place): at the
    few thousand faces of a large component, fresh n x n masks cost more than the distances."""
    n = len(x)
    d = (x @ x.T).astype(np.float64)
    np.subtract(1.0, d, out=d)
    np.clip(d, 0.0, 2.0, out=d)
    big = 1e6
    for faces in _groups(c.photos(n)):  # one photo's faces
        d[np.ix_(faces, faces)] = big
    fixed = c.fixed_or_free(n)
    placed = np.flatnonzero(fixed != FREE)
    people = fixed[placed]
    for person in np.unique(people):  # faces the user put in different people
        mine = people == person
        if not mine.all():
            d[np.ix_(placed[mine], placed[~mine])] = big
    for a, b in c.cannot:
        d[a, b] = d[b, a] = big
    for i, persons in c.rejected.items():
        cols = np.flatnonzero(np.isin(fixed, list(persons)))
        d[i, cols] = big
        d[cols, i] = big
    np.fill_diagonal(d, 0.0)
    return d


def _groups(keys: np.ndarray) -> list[np.ndarray]:
    """The indices sharing each key, for keys held by more than one index."""
    order = np.argsort(keys, kind="stable")
    runs = np.split(order, np.flatnonzero(np.diff(keys[order])) + 1)
    return [r for r in runs if len(r) > 1]


def _permuted(c: Constraints, perm: np.ndarray, n: int) -> Constraints:
    """``c`` for the faces taken in the order ``perm`` (face ``perm[j]`` becomes face ``j``)."""
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    return dataclasses.replace(
        c,
        photo=c.photos(n)[perm],
        fixed=c.fixed_or_free(n)[perm],
        rejected={int(inv[i]): p for i, p in c.rejected.items()},
        cannot=[(int(inv[a]), int(inv[b])) for a, b in c.cannot],
    )


def _average_groups(x: np.ndarray, threshold: float, c: Constraints) -> np.ndarray:
    """Average-linkage groups (before :func:`enforce`), in canonical order."""
    if len(x) > AGGLOMERATIVE_LIMIT:
        raise ValueError(f"average linkage needs O(n^2) memory; {len(x)} faces is too many")
    if len(x) < 2:
        return np.zeros(len(x), np.int64)
    if len(x) == 2:  # the commonest component: one merge or none
        merge = _constraint_distances(x, c)[0, 1] < 1.0 - threshold
        return np.array([0, 0] if merge else [0, 1], np.int64)
    perm = canonical_order(x)
    inv = np.argsort(perm)
    d = _constraint_distances(x[perm], _permuted(c, perm, len(x)))
    # merge while the average distance is below 1 - threshold, strictly (as scikit-learn's
    # distance_threshold and the two-face case do); fcluster keeps merges at or below t
    cut = float(np.nextafter(1.0 - threshold, -np.inf))
    if len(x) <= NUMPY_LINKAGE:
        labels = _upgma(d, cut)
    else:
        # SciPy's average linkage (UPGMA), not scikit-learn's AgglomerativeClustering: the
        # same merges (tested against it) for a third of the import time
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        tree = linkage(squareform(d, checks=False), method="average")
        labels = np.asarray(fcluster(tree, t=cut, criterion="distance"), np.int64)
    return _first_seen(labels)[inv]


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """``labels`` numbered 0, 1, ... in the order they first appear: the same numbers for the
    same groups, whichever way they were made."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse].astype(np.int64)


def _upgma(d: np.ndarray, cut: float) -> np.ndarray:
    """Average linkage (UPGMA) over the distances ``d`` (n x n, symmetric; overwritten),
    merging the closest pair of groups while their average distance is at most ``cut``: a
    group label per row. SciPy's linkage and fcluster give the same groups (tested); for the
    small components most faces are in, this is quicker than importing SciPy."""
    n = len(d)
    np.fill_diagonal(d, np.inf)
    size = np.ones(n)
    label = np.arange(n, dtype=np.int64)
    for _ in range(n - 1):
        i, j = divmod(int(np.argmin(d)), n)
        if not d[i, j] <= cut:
            break
        merged = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])  # Lance-Williams
        d[i, :] = merged
        d[:, i] = merged
        d[i, i] = np.inf
        d[j, :] = np.inf
        d[:, j] = np.inf
        size[i] += size[j]
        label[label == j] = i
    return label


def agglomerative(x: np.ndarray, threshold: float, constraints: Constraints | None = None) -> np.ndarray:
    """Average-linkage agglomerative clustering, merging while mean similarity >= threshold.
    Exact, O(n^2) memory: up to AGGLOMERATIVE_LIMIT faces."""
    c = constraints or Constraints()
    x = unit(x)
    return enforce(_average_groups(x, threshold, c), x, c, threshold)


def graph_average(
    x: np.ndarray,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    k: int = 12,
    component_limit: int = 5000,
    seed: int = 0,
) -> np.ndarray:
    """Average linkage at library scale: exact within each connected component of the kNN graph.

    Two clusters can only average >= threshold if some pair of their faces is >= threshold, so
    clusters never span components of the graph of such pairs: clustering each component on its
    own gives (up to the k-nearest truncation) what average linkage over all faces would, at the
    cost of the components' sizes squared. A component larger than ``component_limit`` (a chain
    of look-alikes) is clustered by average linkage along the graph's edges
    (:func:`_graph_linkage`), in memory linear in its edges.
    """
    c = constraints or Constraints()
    x = unit(x)
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64)
    g = knn_graph(x, k, threshold, seed=seed)
    comp = components(g)
    photo, fixed = c.photos(n), c.fixed_or_free(n)
    partners = c.partners()
    groups = np.empty(n, np.int64)
    offset = 0
    order = np.argsort(comp, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(comp[order])) + 1):
        if len(members) == 1:
            groups[members] = offset
            offset += 1
            continue
        local = {int(m): i for i, m in enumerate(members.tolist())}
        sub = Constraints(
            photo=photo[members],
            fixed=fixed[members],
            rejected={local[i]: p for i, p in c.rejected.items() if i in local},
            cannot=[(local[a], local[b]) for a in local for b in partners.get(a, ()) if b in local and a < b],
        )
        if len(members) <= component_limit:
            part = _average_groups(x[members], threshold, sub)
        else:
            log.info("component of %d faces: average linkage along the kNN graph's edges", len(members))
            part = _graph_linkage(x[members], _edges_within(g, members), threshold, sub)
        groups[members] = part + offset
        offset += int(part.max()) + 1
    return enforce(groups, x, c, threshold)


def _edges_within(g: Graph, members: np.ndarray) -> np.ndarray:
    """The edges of ``g`` between ``members`` (a connected component: every edge of theirs),
    numbered as positions in ``members``: (E, 2), each edge once."""
    pos = np.full(g.n, -1, np.int64)
    pos[members] = np.arange(len(members))
    a, b = pos[g.sources()], pos[np.asarray(g.indices, np.int64)]
    keep = (a >= 0) & (b >= 0) & (a < b)
    return np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0)


def _graph_linkage(x: np.ndarray, edges: np.ndarray, threshold: float, c: Constraints) -> np.ndarray:
    """Average linkage for a component too large for the n x n distances: the closest two groups
    joined by an edge of the kNN graph (``edges``) merge while their average similarity is above
    ``threshold``. The average is exact, over every pair of faces of the two groups, from the
    groups' summed vectors (the mean of x_a . x_b over pairs is sum_A . sum_B / |A||B| for
    unit vectors), so a chain of look-alikes does not merge into one group as label propagation
    lets it: a group of thousands does not take in a stranger similar to a few of its faces.
    Two groups merge only if no constraint parts them (one photo's faces, faces the user put
    in different people or split apart, a face and a person it was rejected from). Groups, in
    canonical order."""
    import heapq

    n = len(x)
    perm = canonical_order(x)
    rank = np.empty(n, np.int64)
    rank[perm] = np.arange(n)
    #: each group's first face in canonical order: ties, and which of two groups of one size
    #: stays, depend on the faces, not on the order they came in
    low = rank.tolist()
    sums = np.asarray(x, np.float64).copy()
    size = np.ones(n)
    photos: list[set[int]] = [{int(p)} for p in c.photos(n)]
    # the constraints of the few faces that have any (a group without any has no entry)
    fixed = c.fixed_or_free(n)
    persons: dict[int, set[int]] = {int(i): {int(fixed[i])} for i in np.flatnonzero(fixed != FREE)}
    rejected: dict[int, set[int]] = {int(i): set(p) for i, p in c.rejected.items() if p}
    apart: dict[int, set[int]] = {i: set(f) for i, f in c.partners().items()}  # faces it may not join
    none: set[int] = set()
    root = list(range(n))  # union-find: a face's group is the root of its tree

    def find(f: int) -> int:
        while root[f] != f:
            root[f] = root[root[f]]
            f = root[f]
        return f

    near: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges.tolist():
        near[a].add(b)
        near[b].add(a)
    version = [0] * n

    def entry(i: int, j: int, sim: float) -> tuple[float, int, int, int, int, int]:
        a, b = low[i], low[j]
        tie = a * n + b if a < b else b * n + a
        return (-sim, tie, i, j, version[i], version[j])

    def parted(i: int, j: int) -> bool:
        both = persons.get(i, none) | persons.get(j, none)
        return (
            not photos[i].isdisjoint(photos[j])
            or len(both) > 1
            or not rejected.get(i, none).isdisjoint(persons.get(j, none))
            or not rejected.get(j, none).isdisjoint(persons.get(i, none))
            or any(find(f) == j for f in apart.get(i, none))
        )

    # only pairs above the threshold: a pair's average changes only when one of its groups does,
    # and it is weighed again then
    heap = []
    for start in range(0, len(edges), 65536):  # (the pairs' vectors a block at a time)
        block = edges[start : start + 65536]
        sims = np.einsum("ij,ij->i", sums[block[:, 0]], sums[block[:, 1]])
        heap += [
            entry(a, b, sim)
            for (a, b), sim in zip(block.tolist(), sims.tolist(), strict=True)
            if sim > threshold
        ]
    heapq.heapify(heap)
    limit = 2 * len(heap) + 1024  # outdated entries pile up: past this, only the current are kept
    while heap:
        _, _, i, j, vi, vj = heapq.heappop(heap)
        if version[i] != vi or version[j] != vj or j not in near[i]:
            continue  # an older entry: the groups changed since
        if parted(i, j):  # for good: groups only grow
            near[i].discard(j)
            near[j].discard(i)
            continue
        if (size[j], -low[j]) > (size[i], -low[i]):
            i, j = j, i  # the larger group stays (of two alike, the one first in canonical order)
        sums[i] += sums[j]
        size[i] += size[j]
        low[i] = min(low[i], low[j])
        photos[i] |= photos[j]
        photos[j] = none
        for sets in (persons, rejected, apart):
            if j in sets:
                sets.setdefault(i, set()).update(sets.pop(j))
        root[j] = i
        for k in near[j]:
            near[k].discard(j)
            if k != i:
                near[k].add(i)
        near[i] |= near[j]
        near[i] -= {i, j}
        near[j] = set()
        version[i] += 1
        version[j] += 1
        if near[i]:
            others = np.fromiter(near[i], np.int64, len(near[i]))
            now = (sums[others] @ sums[i]) / (size[others] * size[i])
            for k, sim in zip(others.tolist(), now.tolist(), strict=True):
                if sim > threshold:
                    heapq.heappush(heap, entry(i, k, sim))
        if len(heap) > limit:
            heap = [e for e in heap if version[e[2]] == e[4] and version[e[3]] == e[5] and e[3] in near[e[2]]]
            heapq.heapify(heap)
            limit = 2 * len(heap) + 1024
    label = np.array([find(f) for f in range(n)], np.int64)
    return _first_seen(label[perm])[np.argsort(perm)]


def _noise_alone(groups: np.ndarray) -> np.ndarray:
    groups = np.asarray(groups, np.int64).copy()
    noise = np.flatnonzero(groups < 0)
    groups[noise] = groups.max(initial=-1) + 1 + np.arange(len(noise))
    return groups


def dbscan(
    x: np.ndarray, threshold: float, constraints: Constraints | None = None, *, min_samples: int = 1
) -> np.ndarray:
    """DBSCAN with eps = the euclidean distance of cosine similarity ``threshold``."""
    from sklearn.cluster import DBSCAN

    c = constraints or Constraints()
    x = unit(x)
    perm = canonical_order(x)
    eps = float(np.sqrt(max(2.0 - 2.0 * threshold, 1e-9)))
    groups = np.empty(len(x), np.int64)
    groups[perm] = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(x[perm])
    return enforce(_noise_alone(groups), x, c, threshold)


def hdbscan(
    x: np.ndarray, threshold: float, constraints: Constraints | None = None, *, min_cluster_size: int = 2
) -> np.ndarray:
    """HDBSCAN (density based, no distance threshold); ``threshold`` only bounds constraint repair."""
    from sklearn.cluster import HDBSCAN

    c = constraints or Constraints()
    x = unit(x)
    perm = canonical_order(x)
    groups = np.empty(len(x), np.int64)
    if len(x) < 2:
        groups[:] = 0
    else:
        model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=1, copy=True)
        groups[perm] = model.fit_predict(x[perm].astype(np.float64))
    return enforce(_noise_alone(groups), x, c, threshold)


#: The algorithms by name: (vectors, threshold, constraints or None) -> a label per vector.
ALGORITHMS: dict[str, Callable[[np.ndarray, float, Constraints | None], np.ndarray]] = {
    "graph_average": graph_average,
    "chinese_whispers": chinese_whispers,
    "agglomerative": agglomerative,
    "dbscan": dbscan,
    "hdbscan": hdbscan,
}
