"""Incremental assignment and suggestions over an in-memory matrix of every face.

:class:`FaceIndex` keeps all embeddings of one model in memory as float32 rows (100,000 128-D
faces are 51 MB), in blocks of a million rows, so growing never copies the library, beside each
face's person (cluster) id and photo id, and each person's face count and vector sum.

The rule is the incremental form of average linkage (:func:`facetags.people.cluster.graph_average`):
a person's score is the face's mean cosine similarity to all of that person's faces; only people
with a face at least ``threshold`` similar are candidates (of the faces that similar, the ``4 * k``
most similar). The face joins the best-scoring person whose score reaches ``threshold`` and that
it may join (no other face of its photo is in it; the face was never rejected from it), else it
starts a cluster of its own (``None``). The faces of one photo are placed jointly, best pairs
first. :func:`exhaustive_scores` writes the rule out over every face; the index computes the same
scores without reading every face's whole vector:

* **A filter that cannot miss.** Once the library has :data:`PROJECT_FROM` faces, each face is
  also kept as its coordinates on the library's principal directions (:data:`FILTER_DIMS` of
  its dimension: 48 of 128) plus the length of the rest (``low``). For any two vectors
  ``v . f <= v_low . f_low + |v_rest| |f_rest|``
  (Cauchy-Schwarz on the part the directions miss), so one product with these short rows gives
  every face an upper bound on its similarity; only faces whose bound reaches the threshold
  (0.7% of pairs of real faces, most of them the same person) are scored exactly, from their
  full vectors, best bound first, until no face left can change the result. The bound carries a
  margin far above float32 rounding (:data:`MARGIN`), so no face at or above the threshold is
  ever filtered out. Where the directions would not filter (vectors with no dominant
  directions), every face is scored exactly.
* **Means from sums.** A person's mean similarity is its vector sum (float64) times the face,
  divided by its count: no pass over its faces. A mean within :data:`RECHECK` of the threshold
  is computed again from the person's faces, as the rule writes it.
* **Batches.** :meth:`FaceIndex.prepare` runs the filter for the faces of many photos at once
  (the photos a scan's workers have finished and the writer has not yet stored): one
  matrix-matrix product instead of one matrix-vector product per face. What it finds covers the
  faces stored until then; faces stored after (the earlier photos of the batch, placed first) are
  compared when the face is placed, so the result is the one placing the faces one by one gives.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

NONE = -1
DEAD = -2

#: The filter (principal directions) is fitted once the library has this many faces; below, every
#: face is scored exactly (a few milliseconds at most).
PROJECT_FROM = 4096
#: ... and fitted again each time the library has grown this many times over.
REFIT_GROWTH = 4
#: Rows the directions are fitted on (evenly spaced through the library).
FIT_SAMPLE = 16384
#: The filter's directions, as a share of the vectors' dimension.
FILTER_DIMS = 0.375
#: Not worth filtering when more than this share of faces would pass it (measured when fitted).
FILTER_PASS_MAX = 0.2
#: The filter's safety margin, times the vectors' lengths: its bound is exact up to float32
#: rounding of products of length ``dim`` (< 1e-5 for unit vectors), and a face passes when its
#: bound reaches ``threshold - MARGIN``.
MARGIN = 1e-4
#: A mean from a person's vector sum this close to the threshold is computed again from the
#: person's faces (the sum and the faces differ by float rounding only, ~1e-7).
RECHECK = 1e-5
#: Fewer faces than this (a library's newest, say) are scored exactly without the filter.
FILTER_FROM = 2048
#: Faces that passed the filter are scored exactly, best bound first, this many at first, then
#: twice as many each time up to BLOCK, until no face left can be near or among the nearest.
FIRST_BLOCK = 256
BLOCK = 4096
#: Prepared faces kept (see :meth:`FaceIndex.prepare`).
PREPARED_MAX = 4096
#: Rows of one block of stored vectors (:class:`_Rows`).
BLOCK_SHIFT = 20
#: Products are computed this many (rows x queries) at a time.
CHUNK = 1 << 18
#: Queries are searched together in groups of at most this many (queries x rows) pairs: what
#: passes the filter is held until scored, and in a library where a few people own most faces
#: most of their faces pass, so this bounds that memory (~20 bytes a pair, ~340 MB at worst).
GROUP_PAIRS = 1 << 24
BLOCK_ROWS = 1 << BLOCK_SHIFT


_controller: Any = None


def _one_blas_thread() -> AbstractContextManager[Any]:
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, run as is
        return nullcontext()


@dataclass(frozen=True)
class Suggestion:
    face_id: int
    person_id: int  # the (unnamed) cluster the face is in now
    score: float  # similarity to the named person (mean of its best matches)


def exhaustive_scores(
    vectors: np.ndarray, person: np.ndarray, vector: np.ndarray, threshold: float, k: int = 12, skip: int = -1
) -> dict[int, float]:
    """The placement rule over every face, as written: person id -> mean similarity of ``vector``
    to all of that person's faces, for the people it may join (mean >= threshold). ``vectors``
    and ``person``: every stored face (a removed face: a zero vector, person :data:`DEAD`);
    ``skip``: a row left out. Linear in the library; :meth:`FaceIndex.scores` gives the same
    scores, and tests and ``benchmarks/cluster_scale.py`` check it against this."""
    if len(vectors) == 0:
        return {}
    sims = vectors @ np.asarray(vector, np.float32)
    if skip >= 0:
        sims[skip] = -np.inf
    near = np.flatnonzero(sims >= threshold)
    if len(near) > 4 * k:  # the 4k most similar; of equal similarities, the first rows
        near = near[np.lexsort((near, -sims[near]))[: 4 * k]]
    candidates = np.unique(person[near])
    if len(candidates) == 0:
        return {}
    rows = np.flatnonzero(np.isin(person, candidates))
    if skip >= 0:
        rows = rows[rows != skip]
    who, inverse = np.unique(person[rows], return_inverse=True)
    mean = np.bincount(inverse, weights=sims[rows]) / np.bincount(inverse)
    return {int(p): float(m) for p, m in zip(who, mean, strict=True) if m >= threshold and p != DEAD}


class _Lookup:
    """Rows by the value of one column (face id, photo id). Faces and photos come in the order the
    library numbered them, so while the column's values only grow, a binary search finds them;
    a value out of order switches to a table (built once, then kept up to date)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.table: dict[int, list[int]] | None = None

    def added(self, column: np.ndarray, start: int, stop: int) -> None:
        keys = column[start:stop]
        if len(keys) == 0:
            return
        if self.table is None:
            if (self.last is None or keys[0] >= self.last) and bool(np.all(keys[1:] >= keys[:-1])):
                self.last = int(keys[-1])
                return
            self.table = {}
            start = 0
        for row, key in enumerate(column[start:stop].tolist(), start):
            self.table.setdefault(key, []).append(row)

    def rows(self, column: np.ndarray, n: int, key: int) -> np.ndarray:
        if self.table is not None:
            return np.asarray(self.table.get(key, ()), np.int64)
        lo, hi = np.searchsorted(column[:n], [key, key + 1])
        return np.arange(lo, hi, dtype=np.int64)

    def newer_than_all(self, keys: np.ndarray) -> bool:
        """Are all ``keys`` larger than every value so far (so none is present)?"""
        return self.table is None and (self.last is None or bool(keys.min() > self.last))


class _Rows:
    """A float32 matrix that grows by rows without copying what it holds: blocks of
    :data:`BLOCK_ROWS` rows (the first one grows by doubling up to that size), so adding faces
    never needs twice the memory of the library, as re-allocating one array would. Stored
    ``by_column`` (each block ``width`` x rows), a product with a few vectors reads it in one
    sweep (half the time of row order for a matrix-vector product with 33 columns)."""

    def __init__(self, width: int, capacity: int = 0, by_column: bool = False) -> None:
        self.width = width
        self.by_column = by_column
        self.blocks = [self._new(min(max(capacity, 16), BLOCK_ROWS))]
        self.n = 0

    def _new(self, rows: int) -> np.ndarray:
        return np.zeros((self.width, rows) if self.by_column else (rows, self.width), np.float32)

    def _len(self, block: np.ndarray) -> int:
        return int(block.shape[1] if self.by_column else block.shape[0])

    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.blocks)

    def append(self, rows: np.ndarray) -> None:
        done = 0
        while done < len(rows):
            block, at = divmod(self.n, BLOCK_ROWS)
            if block == len(self.blocks):
                self.blocks.append(self._new(BLOCK_ROWS))
            current = self.blocks[block]
            if at == self._len(current):  # the first block, full: it grows
                grown = self._new(min(BLOCK_ROWS, max(2 * at, at + len(rows) - done)))
                if self.by_column:
                    grown[:, :at] = current[:, :at]
                else:
                    grown[:at] = current[:at]
                self.blocks[block] = current = grown
            take = min(self._len(current) - at, len(rows) - done)
            if self.by_column:
                current[:, at : at + take] = rows[done : done + take].T
            else:
                current[at : at + take] = rows[done : done + take]
            self.n += take
            done += take

    def products(
        self, queries: np.ndarray, start: int, stop: int, size: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, ``queries`` times the rows) for rows start..stop, at most ``size`` rows at a
        time: (queries, rows) arrays."""
        a = start
        while a < stop:
            block, at = divmod(a, BLOCK_ROWS)
            z = min(stop, a + size, block * BLOCK_ROWS + self._len(self.blocks[block]))
            part = self.blocks[block]
            yield a, queries @ (part[:, at : at + z - a] if self.by_column else part[at : at + z - a].T)
            a = z

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop (a copy where they span blocks)."""
        return self.take(np.arange(start, stop))

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        if len(self.blocks) == 1:
            only = self.blocks[0]
            return only[:, rows].T if self.by_column else only[rows]
        out = np.empty((len(rows), self.width), np.float32)
        block = rows >> BLOCK_SHIFT
        for b in np.unique(block).tolist():
            mine = block == b
            at = rows[mine] & (BLOCK_ROWS - 1)
            out[mine] = self.blocks[b][:, at].T if self.by_column else self.blocks[b][at]
        return out

    def put(self, row: int, values: np.ndarray | float) -> None:
        block, at = row >> BLOCK_SHIFT, row & (BLOCK_ROWS - 1)
        if self.by_column:
            self.blocks[block][:, at] = values
        else:
            self.blocks[block][at] = values


class FaceIndex:
    def __init__(self, dim: int, threshold: float, k: int = 12, capacity: int = 1024) -> None:
        self.dim = int(dim)
        self.threshold = float(threshold)
        self.k = int(k)
        capacity = max(int(capacity), 16)
        self._vectors = _Rows(self.dim, capacity)
        self._person = np.full(capacity, DEAD, np.int64)
        self._photo = np.full(capacity, NONE, np.int64)
        self._face = np.full(capacity, NONE, np.int64)
        self._n = 0
        self._live = 0
        self._longest = 0.0  # the longest stored vector (1 for unit vectors)
        self._faces = _Lookup()
        self._photos = _Lookup()
        # the filter: principal directions (dim, K) and each face's coordinates on them plus the
        # length of the rest (n, K + 1); None: every face is scored exactly
        self._basis: np.ndarray | None = None
        self._low: _Rows | None = None
        self._fitted_at = 0
        # people: slot by person id; per slot the face count, one face's row, the row of its
        # vector sum in _sums (-1 until it has two faces)
        self._slot: dict[int, int] = {}
        self._count = np.zeros(16, np.int64)
        self._one = np.zeros(16, np.int64)
        self._sum_at = np.full(16, -1, np.int64)
        self._sums = np.zeros((16, dim), np.float64)
        self._n_sums = 0
        # prepare(): vector bytes -> (faces stored then, their near rows, similarities)
        self._prepared: dict[bytes, tuple[int, np.ndarray, np.ndarray]] = {}
        #: Faces scored from their full vectors so far, over all placements (the filter's work).
        self.exact_scored = 0

    # -- contents -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    @property
    def filtering(self) -> bool:
        """Whether the filter is on (else every face is scored exactly)."""
        return self._low is not None

    def memory_bytes(self) -> int:
        """What the index's arrays hold (the people table's Python dict aside)."""
        arrays = [self._person, self._photo, self._face, self._count, self._one, self._sum_at, self._sums]
        low = self._low.nbytes() if self._low is not None else 0
        return sum(a.nbytes for a in arrays) + self._vectors.nbytes() + low

    def _grow(self, need: int) -> None:
        cap = len(self._person)
        if self._n + need <= cap:
            return
        new = max(cap * 2, self._n + need)
        self._person = _grown(self._person, new, DEAD)
        self._photo = _grown(self._photo, new, NONE)
        self._face = _grown(self._face, new, NONE)

    def add(
        self,
        face_ids: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        person_ids: Sequence[int] | np.ndarray,
        photo_ids: Sequence[int] | np.ndarray,
    ) -> None:
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        face_ids = np.asarray(face_ids, np.int64).reshape(-1)
        m = len(vectors)
        if m == 0:
            return
        if not self._faces.newer_than_all(face_ids):  # a face stored again: its old row goes
            for f in face_ids.tolist():
                for row in self._faces.rows(self._face, self._n, f).tolist():
                    if self._person[row] != DEAD:
                        self._kill(row)
        self._grow(m)
        start, stop = self._n, self._n + m
        self._vectors.append(vectors)
        self._person[start:stop] = np.broadcast_to(np.asarray(person_ids, np.int64), (m,))
        self._photo[start:stop] = np.broadcast_to(np.asarray(photo_ids, np.int64), (m,))
        self._face[start:stop] = face_ids
        self._faces.added(self._face, start, stop)
        self._photos.added(self._photo, start, stop)
        self._n = stop
        self._live += m
        self._longest = max(self._longest, float(np.sqrt((vectors.astype(np.float64) ** 2).sum(1).max())))
        for a in range(start, stop, 65536):
            self._join(np.arange(a, min(stop, a + 65536)))
        if self._n >= max(PROJECT_FROM, REFIT_GROWTH * self._fitted_at):
            self._fit()
        elif self._basis is not None:
            self._project(start, stop)

    def _join(self, rows: np.ndarray) -> None:
        """Count the faces at ``rows`` into their people (counts and vector sums)."""
        person = self._person[rows]
        order = np.argsort(person, kind="stable")
        rows, person = rows[order], person[order]
        starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
        counts = np.diff(np.r_[starts, len(rows)])
        sums = np.add.reduceat(self._vectors.take(rows).astype(np.float64), starts, axis=0)
        for j, (p, c, first) in enumerate(
            zip(person[starts].tolist(), counts.tolist(), rows[starts].tolist(), strict=True)
        ):
            slot = self._slot.get(p)
            if slot is None:
                slot = self._slot[p] = len(self._slot)
                if slot >= len(self._count):
                    self._count = _grown(self._count, 2 * slot, 0)
                    self._one = _grown(self._one, 2 * slot, 0)
                    self._sum_at = _grown(self._sum_at, 2 * slot, -1)
            had = int(self._count[slot])
            if had == 0:
                self._one[slot] = first
            self._count[slot] = had + c
            at = int(self._sum_at[slot])
            if at >= 0:
                self._sums[at] += sums[j]
            elif had + c >= 2:
                at = self._sum_at[slot] = self._n_sums
                self._n_sums += 1
                if at >= len(self._sums):
                    self._sums = _grown(self._sums, 2 * at, 0)
                self._sums[at] = sums[j]
                if had:
                    self._sums[at] += self._vectors.take(self._one[slot : slot + 1])[0]

    def _kill(self, row: int) -> None:
        slot = self._slot[int(self._person[row])]
        self._count[slot] -= 1
        if self._sum_at[slot] >= 0:
            self._sums[self._sum_at[slot]] -= self._vectors.take(np.array([row]))[0]
        self._person[row] = DEAD
        self._vectors.put(row, 0.0)
        if self._low is not None:
            self._low.put(row, 0.0)
        self._live -= 1
        self._prepared.clear()  # what it found may hold this row

    # -- the filter ---------------------------------------------------------------------------

    def _fit(self) -> None:
        """Principal directions of (a sample of) the library, kept if they filter."""
        n = self._n
        self._fitted_at = n
        keep = int(self.dim * FILTER_DIMS)
        if keep < 8:
            return
        sample = self._vectors.take(np.unique(np.linspace(0, n - 1, min(n, FIT_SAMPLE)).astype(np.int64)))
        with _one_blas_thread():
            sample64 = sample.astype(np.float64)
            _, directions = np.linalg.eigh(sample64.T @ sample64)  # ascending eigenvalues
            basis = np.ascontiguousarray(directions[:, ::-1][:, :keep], np.float32)
            low = self._lowered(sample, basis)
            probe = low[:: max(1, len(low) // 64)][:64]
            passed = float(((probe @ low.T) >= self.threshold - MARGIN).mean())
        if passed > FILTER_PASS_MAX:
            log.debug("no filter: %.0f%% of faces would pass it", 100 * passed)
            self._basis = self._low = None
            return
        self._basis = basis
        self._low = _Rows(keep + 1, len(self._person), by_column=True)
        self._project(0, n)
        log.debug("filter on %d directions fitted on %d faces (%.1f%% pass)", keep, len(sample), 100 * passed)

    @staticmethod
    def _lowered(vectors: np.ndarray, basis: np.ndarray) -> np.ndarray:
        """Rows of coordinates on ``basis`` followed by the length of what it misses."""
        low = vectors @ basis
        rest = vectors - low @ basis.T
        return np.concatenate([low, np.sqrt((rest.astype(np.float64) ** 2).sum(1))[:, None]], 1).astype(
            np.float32
        )

    def _project(self, start: int, stop: int) -> None:
        assert self._basis is not None and self._low is not None and self._low.n == start
        with _one_blas_thread():
            for a in range(start, stop, 65536):
                z = min(stop, a + 65536)
                low = self._lowered(self._vectors.rows(a, z), self._basis)
                low[self._person[a:z] == DEAD] = 0.0
                self._low.append(low)

    # -- near faces ---------------------------------------------------------------------------

    def _near(
        self, queries: np.ndarray, start: int = 0, skips: Sequence[int] | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query: the rows from ``start`` on (but its skip row) at least ``threshold``
        similar, the ``4 * k`` most similar if more, in row order, with their similarities."""
        n, b = self._n, len(queries)
        if start >= n or b == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32))] * b
        skips = skips if skips is not None else [-1] * b
        group = max(1, GROUP_PAIRS // (n - start))
        if b > group:
            return [
                found
                for i in range(0, b, group)
                for found in self._near(queries[i : i + group], start, skips[i : i + group])
            ]
        with _one_blas_thread():
            if self._low is not None and n - start >= FILTER_FROM:
                passed = self._filter(queries, start)
                return [self._exact(q, r, u, s) for q, (r, u), s in zip(queries, passed, skips, strict=True)]
            out = []
            for (rows, sims), skip in zip(self._scan(queries, start, exact=True), skips, strict=True):
                keep = (rows != skip) & (self._person[rows] != DEAD)
                out.append(self._top(rows[keep], sims[keep]))
            return out

    def _scan(self, queries: np.ndarray, start: int, exact: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """One pass over the rows from ``start``, in chunks: for each query, the rows whose
        similarity (``exact``) or filter bound reaches the threshold, with the value."""
        n, b = self._n, len(queries)
        if exact:
            matrix, q = self._vectors, queries
            limit = np.full(b, self.threshold, np.float32)
            self.exact_scored += b * (n - start)
        else:
            assert self._basis is not None and self._low is not None
            matrix, q = self._low, self._lowered(queries, self._basis)
            lengths = np.sqrt((queries.astype(np.float64) ** 2).sum(1))
            limit = (self.threshold - MARGIN * lengths * max(self._longest, 1.0)).astype(np.float32)
        queries_hit, rows, values = (
            [np.zeros(0, np.int64)],
            [np.zeros(0, np.int64)],
            [np.zeros(0, np.float32)],
        )
        for a, s in matrix.products(q, start, n, max(4096, CHUNK // b)):
            qi, ri = _hits(s >= limit[:, None])  # by query, each query's rows in order
            if len(qi):
                queries_hit.append(qi)
                rows.append(ri + a)
                values.append(s[qi, ri])
        qi = np.concatenate(queries_hit)
        order = np.argsort(qi.astype(np.int16 if b < 1 << 15 else np.int64), kind="stable")  # a radix sort
        qi, ri, got = qi[order], np.concatenate(rows)[order], np.concatenate(values)[order]
        bounds = np.searchsorted(qi, np.arange(b + 1)).tolist()
        return [(ri[bounds[i] : bounds[i + 1]], got[bounds[i] : bounds[i + 1]]) for i in range(b)]

    def _filter(self, queries: np.ndarray, start: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return self._scan(np.asarray(queries, np.float32), start, exact=False)

    def _exact(
        self, q: np.ndarray, rows: np.ndarray, bound: np.ndarray, skip: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The near rows among those that passed the filter (``bound``: their upper bounds):
        scored from their full vectors, best bound first, until no unscored row can be near or
        among the ``4 * k`` most similar."""
        keep = rows != skip
        rows, bound = rows[keep], bound[keep]
        top = 4 * self.k
        margin = MARGIN * float(np.sqrt(float(q.astype(np.float64) @ q))) * max(self._longest, 1.0)
        found_rows: list[np.ndarray] = []
        found_sims: list[np.ndarray] = []
        found = 0
        kth = -np.inf  # the top-th best similarity found so far
        left = np.arange(len(rows))
        block = FIRST_BLOCK
        while len(left):
            if len(left) > block:
                part = np.argpartition(-bound[left], block - 1)
                now, left = left[part[:block]], left[part[block:]]
                block = min(2 * block, BLOCK)
            else:
                now, left = left, left[:0]
            r = rows[now]
            sims = self._vectors.take(r) @ q
            self.exact_scored += len(r)
            near = (sims >= self.threshold) & (self._person[r] != DEAD)
            if near.any():
                found_rows.append(r[near])
                found_sims.append(sims[near])
                found += int(near.sum())
                if found >= top:
                    every = np.concatenate(found_sims)
                    kth = float(np.partition(every, len(every) - top)[len(every) - top])
            if len(left):
                best_left = float(bound[left].max()) + margin
                if best_left < self.threshold or (found >= top and best_left < kth):
                    break
        if not found_rows:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        r, s = np.concatenate(found_rows), np.concatenate(found_sims)
        order = np.argsort(r, kind="stable")
        return self._top(r[order], s[order])

    def _top(self, rows: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = 4 * self.k
        if len(rows) > top:
            part = np.sort(np.lexsort((rows, -sims))[:top])  # ties: the first rows, as the rule
            return rows[part], sims[part]
        return rows, sims

    def prepare(self, vectors: Iterable[np.ndarray] | np.ndarray) -> None:
        """Faces about to be placed (say, the photos a scan's workers have finished): find their
        near faces among those stored now in one pass over the library for all of them (a
        matrix-matrix product). :meth:`assign_photo` and :meth:`scores` then compare such a face
        only with the faces stored after this call. Costs memory for at most
        :data:`PREPARED_MAX` faces; any change to stored faces but an addition forgets it all."""
        fresh: dict[bytes, np.ndarray] = {}
        for v in vectors:
            v = np.asarray(v, np.float32).reshape(self.dim)
            key = v.tobytes()
            if key not in self._prepared:
                fresh[key] = v
        if not fresh or self._n < FILTER_FROM:
            return
        found = self._near(np.stack(list(fresh.values())))
        for key, (rows, sims) in zip(fresh, found, strict=True):
            self._prepared[key] = (self._n, rows, sims)
        while len(self._prepared) > PREPARED_MAX:
            del self._prepared[next(iter(self._prepared))]

    def _near_all(self, queries: np.ndarray, skips: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`_near` from row 0, using what :meth:`prepare` found where it can."""
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(queries)
        todo = []
        for i, (q, skip) in enumerate(zip(queries, skips, strict=True)):
            known = self._prepared.get(q.tobytes()) if skip < 0 else None
            if known is None:
                todo.append(i)
                continue
            then, rows, sims = known
            (new_rows, new_sims) = self._near(q[None, :], start=then)[0]
            out[i] = self._top(np.concatenate([rows, new_rows]), np.concatenate([sims, new_sims]))
        if todo:
            for i, found in zip(todo, self._near(queries[todo], 0, [skips[i] for i in todo]), strict=True):
                out[i] = found
        return [o for o in out if o is not None]

    # -- assignment -----------------------------------------------------------------------------

    def _means(self, q: np.ndarray, rows: np.ndarray, skip: int) -> dict[int, float]:
        """Person id -> mean similarity of ``q`` to all its faces (but ``skip``), for the people
        of the near ``rows`` whose mean reaches the threshold."""
        people = np.unique(self._person[rows])
        if len(people) == 0:
            return {}
        slots = np.array([self._slot[p] for p in people.tolist()], np.int64)
        count = self._count[slots].astype(np.float64)
        at = self._sum_at[slots]
        q64 = q.astype(np.float64)
        total = np.empty(len(slots), np.float64)
        summed = at >= 0
        total[summed] = self._sums[at[summed]] @ q64
        total[~summed] = self._vectors.take(self._one[slots[~summed]]).astype(np.float64) @ q64
        if skip >= 0:
            mine = people == self._person[skip]
            total[mine] -= float(self._vectors.take(np.array([skip]))[0].astype(np.float64) @ q64)
            count[mine] -= 1
        mean = total / np.maximum(count, 1)
        scale = float(np.sqrt(q64 @ q64)) * max(self._longest, 1.0)
        out = {}
        for p, m, c in zip(people.tolist(), mean.tolist(), count.tolist(), strict=True):
            if c < 1:
                continue
            if abs(m - self.threshold) <= RECHECK * scale:
                m = self._mean_of_faces(p, q, skip)
            if m >= self.threshold:
                out[p] = m
        return out

    def _mean_of_faces(self, person: int, q: np.ndarray, skip: int) -> float:
        """The mean of ``person`` as :func:`exhaustive_scores` computes it (near the threshold)."""
        rows = np.flatnonzero(self._person[: self._n] == person)
        rows = rows[rows != skip]
        sims = self._vectors.take(rows) @ q
        return float(np.bincount(np.zeros(len(rows), np.int64), weights=sims)[0] / len(rows))

    def scores(self, vector: np.ndarray, exclude_face: int | None = None) -> dict[int, float]:
        """Person id -> mean similarity of the face to all of that person's faces (the average
        linkage the batch re-cluster uses), for the people it may join: mean >= threshold."""
        if self._n == 0:
            return {}
        q = np.asarray(vector, np.float32).reshape(self.dim)
        skip = -1
        if exclude_face is not None:
            live = [
                r
                for r in self._faces.rows(self._face, self._n, exclude_face).tolist()
                if self._person[r] != DEAD
            ]
            skip = live[-1] if live else -1
        rows, _ = self._near_all(q[None, :], [skip])[0]
        return self._means(q, rows, skip)

    def assign_photo(
        self,
        vectors: np.ndarray,
        photo_id: int,
        rejected: Sequence[Collection[int]] | None = None,
        taken: Collection[int] = (),
    ) -> list[int | None]:
        """Best allowed person for each face of one photo, or None (a cluster of its own).

        ``taken``: people already in this photo (faces indexed earlier); ``rejected[i]``: the
        people face ``i`` was rejected from. Nothing is added to the index; call :meth:`add`.
        """
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        in_photo = set(int(p) for p in taken)
        rows = self._photos.rows(self._photo, self._n, int(photo_id))
        in_photo.update(int(p) for p in self._person[rows].tolist())
        candidates = []
        near = self._near_all(vectors, [-1] * len(vectors))
        for i, (v, (rows_i, _)) in enumerate(zip(vectors, near, strict=True)):
            banned = set(rejected[i]) if rejected is not None else set()
            for p, s in self._means(v, rows_i, -1).items():
                if p not in banned and p not in in_photo:
                    candidates.append((s, -i, p))
        result: list[int | None] = [None] * len(vectors)
        for _s, neg_i, p in sorted(candidates, reverse=True):
            i = -neg_i
            if result[i] is None and p not in in_photo:
                result[i] = p
                in_photo.add(p)
        return result

    # -- suggestions ----------------------------------------------------------------------------

    def suggest(
        self,
        person_id: int,
        candidates: Collection[int] | None = None,
        rejected: Mapping[int, Collection[int]] | None = None,
        limit: int = 20,
        floor: float | None = None,
    ) -> list[Suggestion]:
        """Faces outside ``person_id`` most like it, best first, for a yes/no review.

        ``candidates``: the person ids whose faces may be suggested (the unnamed clusters;
        default: everyone else). Faces in a photo that already shows the person, and faces
        rejected from it, are skipped. Score: mean of a face's 3 best similarities to the
        person's faces. ``floor`` (default: threshold minus 0.15) drops hopeless ones.
        """
        n = self._n
        own = np.flatnonzero(self._person[:n] == person_id)
        if len(own) == 0:
            return []
        floor = self.threshold - 0.15 if floor is None else floor
        alive = self._person[:n] != DEAD
        pool = alive & (self._person[:n] != person_id)
        if candidates is not None:
            pool &= np.isin(self._person[:n], list(candidates))
        pool &= ~np.isin(self._photo[:n], self._photo[own])
        idx = np.flatnonzero(pool)
        if len(idx) == 0:
            return []
        # Shortlist by similarity to the person's centroid, then score against its faces.
        mine = self._vectors.take(own)
        cent = mine.sum(axis=0)
        cent /= max(float(np.linalg.norm(cent)), 1e-12)
        short = idx[np.argsort(-(self._vectors.take(idx) @ cent))[: max(limit * 10, 200)]]
        sims = self._vectors.take(short) @ mine.T
        top = np.sort(sims, axis=1)[:, -min(3, sims.shape[1]) :]
        score = top.mean(axis=1)
        out = []
        rejected = rejected or {}
        for j in np.argsort(-score).tolist():
            face = int(self._face[short[j]])
            if score[j] < floor:
                break
            if person_id in rejected.get(face, ()):
                continue
            out.append(Suggestion(face, int(self._person[short[j]]), float(score[j])))
            if len(out) >= limit:
                break
        return out


def _grown(a: np.ndarray, size: int, fill: float) -> np.ndarray:
    out = np.full((size, *a.shape[1:]), fill, a.dtype)
    out[: len(a)] = a
    return out


def _hits(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D mask with few hits, faster: the mask is read eight
    bytes at a time and only the words holding a hit are looked into."""
    flat = mask.reshape(-1)
    if flat.size % 8:
        i, j = np.nonzero(mask)
        return i.astype(np.int64), j.astype(np.int64)
    words = np.flatnonzero(flat.view(np.uint64))
    r, c = np.nonzero(flat.reshape(-1, 8)[words])
    i, j = np.divmod(words[r] * 8 + c, mask.shape[1])
    return i, j
