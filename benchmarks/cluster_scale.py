"""Placing faces and re-clustering at library scale: libraries made from real embeddings.

    python benchmarks/cluster_scale.py [--faces 10000,100000,1000000] [--repeat 5]
        [--pipeline facetags|dlib] [--model ID] [--recluster-max 100000] [--json PATH]

The real faces (LFW DevTest + DevTrain sample, deepface, BBT from ``.cache/cluster/``, see
cluster_data.py) are replicated with small perturbations up to each size: each copy is the
original plus Gaussian noise, renormalised, at a similarity to its original drawn between the
model's clustering threshold and 1, and belongs to its original's person, so copies behave like
more photos of the same person (about 270 faces a person at 1M; a copy of a copy is near the
threshold). These are synthetic vectors with the real faces' directions, not real photos.

For each size, new faces (perturbed copies, in photos of 1 to 4 faces) are placed as the scan's
one writer places them, without being added, in three ways (ms a face: median, min and max over
``--repeat`` runs of ``--photos`` photos each, fresh faces each run):

* ``exhaustive``: the rule over every stored face (:func:`exhaustive_scores`, one matrix-vector
  product a face: how facetags placed faces before the filter);
* ``one_by_one``: :meth:`FaceIndex.assign_photo`, one photo at a time (a serial scan, the
  watcher);
* ``batched``: :meth:`FaceIndex.prepare` for ``--batch`` photos, then each placed in turn (a
  scan whose writer is behind its workers: the finished results wait and are prepared together).

Every placement of the index is checked against the exhaustive one (``same_people``). Also:
the index's memory (resident memory it added, and its arrays), faces scored exactly per face
placed, the writer's projected hours for a first scan of 100k, 1M and 10M photos (1.1 faces a
photo; a least-squares line through the measured ms a face, extrapolated beyond the largest
size), ``geometry`` (why a filter and not a partition: see docs/clustering.md), and up to
``--recluster-max`` faces a full constrained re-cluster (:func:`graph_average`), wall time and
peak memory (RSS of a child process).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import multiprocessing as mp
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_data import CACHE

from facetags.people.calibrate import threshold_for
from facetags.people.cluster import FREE, Constraints, graph_average, unit
from facetags.people.incremental import FaceIndex, _one_blas_thread, exhaustive_scores

log = logging.getLogger("cluster_scale")
FACES_PER_PHOTO = 1.1  # docs/scale.md: the photos measured there


def real_embeddings(pipeline: str, model: str = "") -> tuple[str, np.ndarray]:
    """The cached vectors of ``model`` (default: the configured embedder's, for the facetags
    pipeline, else the last model folder there)."""
    files = sorted((CACHE / pipeline).glob("*/*.npz"))
    if not files:
        raise SystemExit(f"no cached embeddings under {CACHE / pipeline}: run cluster_compare.py first")
    if not model and pipeline == "facetags":
        from facetags.config import load_settings
        from facetags.vision.embed import model_version

        model = model_version(load_settings().embedder)
    model = model if any(f.parent.name == model for f in files) else files[-1].parent.name
    vecs = [np.load(f)["vectors"] for f in files if f.parent.name == model]
    return model, unit(np.concatenate(vecs))


def replicate(
    base: np.ndarray, n: int, threshold: float, seed: int = 0, real: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces: the real ones (unless not ``real``), then perturbed copies; and which real
    face each copies."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    if real:
        pick[: len(base)] = np.arange(min(len(base), n))
    target = rng.uniform(max(threshold, 0.0) + 0.02, 0.995, n).astype(np.float32)  # cos to original
    noise = rng.normal(size=(n, base.shape[1])).astype(np.float32)
    noise -= (noise * base[pick]).sum(1, keepdims=True) * base[pick]  # orthogonal to the original
    noise = unit(noise)
    out = target[:, None] * base[pick] + np.sqrt(1 - target**2)[:, None] * noise
    if real:
        out[: len(base)] = base[: min(len(base), n)]
    return unit(out), pick


def photos_for(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n)
    return np.repeat(np.arange(n), sizes)[:n]


def _recluster(x: np.ndarray, threshold: float, queue: mp.Queue) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = len(x)
    fixed = np.full(n, FREE, np.int64)
    rng = np.random.default_rng(2)
    chosen = rng.choice(n, n // 50, replace=False)
    fixed[chosen] = chosen % 500  # 500 named people
    c = Constraints(photo=photos_for(n), fixed=fixed)
    start = time.perf_counter()
    labels = graph_average(x, threshold, c)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"seconds": seconds, "peak_rss_mb": peak / 1024, "rss_before_mb": before / 1024,
               "clusters": len(np.unique(labels))})  # fmt: skip


def _rss_mb() -> float:
    """Resident memory now, after handing freed heap back to the system."""
    with contextlib.suppress(OSError):  # not glibc: as it is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 1e6


def place_exhaustive(
    x: np.ndarray, person: np.ndarray, photo: np.ndarray, threshold: float
) -> list[int | None]:
    """A photo's faces placed jointly by the rule over every face (as assign_photo does)."""
    candidates = []
    for i, v in enumerate(photo):
        candidates += [(s, -i, p) for p, s in exhaustive_scores(x, person, v, threshold).items()]
    result: list[int | None] = [None] * len(photo)
    taken: set[int] = set()
    for _s, neg_i, p in sorted(candidates, reverse=True):
        if result[-neg_i] is None and p not in taken:
            result[-neg_i] = p
            taken.add(p)
    return result


Placed = list[list[int | None]]


def exhaustive_run(x: np.ndarray, person: np.ndarray, groups: list[np.ndarray], threshold: float) -> Placed:
    with _one_blas_thread():
        return [place_exhaustive(x, person, g, threshold) for g in groups]


def one_by_one_run(index: FaceIndex, groups: list[np.ndarray]) -> Placed:
    return [index.assign_photo(g, 10**9 + i) for i, g in enumerate(groups)]


def batched_run(index: FaceIndex, groups: list[np.ndarray], batch: int) -> Placed:
    out: Placed = []
    for b in range(0, len(groups), batch):
        index.prepare(np.concatenate(groups[b : b + batch]))
        out += [index.assign_photo(g, 10**9 + b + i) for i, g in enumerate(groups[b : b + batch])]
    return out


def _timed(run: Callable[..., Placed], *args: object) -> tuple[float, Placed]:
    start = time.perf_counter()
    placed = run(*args)
    return time.perf_counter() - start, placed


def measure_size(base: np.ndarray, n: int, threshold: float, args: argparse.Namespace) -> dict[str, object]:
    x, person = replicate(base, n, threshold)
    rss = _rss_mb()
    start = time.perf_counter()
    index = FaceIndex(x.shape[1], threshold)
    photo_ids = photos_for(n)
    for a in range(0, n, 65536):  # as the library reads it
        part = slice(a, a + 65536)
        index.add(np.arange(n)[part], x[part], person[part], photo_ids[part])
    build = time.perf_counter() - start
    index_mb = _rss_mb() - rss
    ms: dict[str, list[float]] = {"exhaustive": [], "one_by_one": [], "batched": []}
    warm, _ = replicate(base, 4, threshold, seed=99, real=False)  # first calls load BLAS controls: not timed
    exhaustive_run(x, person, [warm], threshold), one_by_one_run(index, [warm]), batched_run(index, [warm], 1)
    same, faces, scored = True, 0, 0
    for r in range(args.repeat):
        queries, _ = replicate(base, 4 * args.photos, threshold, seed=100 + r, real=False)
        photo = photos_for(len(queries), seed=200 + r)
        groups = [queries[photo == p] for p in range(args.photos)]
        count = sum(len(g) for g in groups)
        t, want = _timed(exhaustive_run, x, person, groups, threshold)
        ms["exhaustive"].append(1000 * t / count)
        before = index.exact_scored
        t, got = _timed(one_by_one_run, index, groups)
        ms["one_by_one"].append(1000 * t / count)
        scored += index.exact_scored - before
        faces += count
        same &= got == want
        t, got = _timed(batched_run, index, groups, args.batch)
        ms["batched"].append(1000 * t / count)
        same &= got == want
    result: dict[str, object] = {
        "faces": n, "index_build_s": round(build, 2), "filtering": index.filtering,
        "index_rss_mb": round(index_mb), "index_arrays_mb": round(index.memory_bytes() / 1e6),
        "same_people": bool(same), "exactly_scored_per_face": round(scored / faces),
        "people": len(np.unique(person)),
    }  # fmt: skip
    for how, values in ms.items():
        result[f"{how}_ms"] = [
            round(float(np.median(values)), 3),
            round(min(values), 3),
            round(max(values), 3),
        ]
    log.info(
        "%d faces: exhaustive %.2f ms a face, one by one %.2f, batched %.2f; index %d MB; same people: %s",
        n, *(float(np.median(v)) for v in ms.values()), index_mb, same,
    )  # fmt: skip
    if n <= args.recluster_max:
        ctx = mp.get_context("spawn")
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_recluster, args=(x, threshold, queue))
        proc.start()
        batch = queue.get()
        proc.join()
        result.update({
            "recluster_s": round(batch["seconds"], 2), "recluster_peak_rss_mb": round(batch["peak_rss_mb"]),
            "recluster_rss_before_mb": round(batch["rss_before_mb"]), "clusters": batch["clusters"],
        })  # fmt: skip
    return result


def _smallest_index(base: np.ndarray, threshold: float) -> FaceIndex:
    """An index whose filter is fitted on a library of 10,000 faces made from ``base``."""
    x, person = replicate(base, 10_000, threshold)
    index = FaceIndex(x.shape[1], threshold)
    index.add(np.arange(len(x)), x, person, photos_for(len(x)))
    return index


def project(rows: list[dict[str, object]], how: str) -> dict[str, float]:
    """Writer hours placing the faces of a first scan of 100k, 1M and 10M photos: ms a face as a
    line in the library's size (least squares through the medians), summed over the scan."""
    n = np.array([float(r["faces"]) for r in rows])  # type: ignore[arg-type]
    ms = np.array([r[f"{how}_ms"][0] for r in rows])  # type: ignore[index]
    slope, intercept = np.polyfit(n, ms, 1) if len(n) > 1 else (ms[0] / n[0], 0.0)
    out = {}
    for photos in (100_000, 1_000_000, 10_000_000):
        faces = FACES_PER_PHOTO * photos
        out[f"{photos}"] = round((intercept * faces + slope * faces**2 / 2) / 1000 / 3600, 2)
    return out


def geometry(pipeline: str, model: str, threshold: float, index: FaceIndex) -> dict[str, float]:
    """Why the index filters rather than partitions, on the real LFW DevTest faces (people from
    the file names): how similar two different people's faces are (median), how many of a face's
    comparisons a person-centroid partition's exact bounds (triangle inequality on the sphere)
    rule out, and how many pairs of all the real faces pass ``index``'s filter."""
    z = np.load(CACHE / pipeline / model / "lfw.npz")
    x, names = unit(z["vectors"]), np.array([str(p).split("/")[0] for p in z["photos"]])
    sims = x @ x.T
    other = names[:, None] != names[None, :]
    people = np.unique(names)
    centre = unit(np.stack([x[names == p].sum(0) for p in people]))
    radius = np.array(
        [np.arccos(np.clip(x[names == p] @ c, -1, 1)).max() for p, c in zip(people, centre, strict=True)]
    )
    size = np.array([(names == p).sum() for p in people])
    angle = np.arccos(np.clip(x @ centre.T, -1, 1))
    ruled_out = np.cos(np.maximum(0, angle - radius[None, :])) < threshold
    _, base = real_embeddings(pipeline, model)
    low = index._lowered(base, index._basis) if index._basis is not None else None  # the filter's rows
    passed = float(((low @ low.T) >= threshold).mean()) if low is not None else 1.0
    return {
        "lfw_other_people_similarity_median": round(float(np.median(sims[other])), 3),
        "lfw_partition_rules_out": round(float((ruled_out * size).sum(1).mean() / len(x)), 3),
        "real_pairs_passing_filter": round(passed, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", default="10000,100000,1000000", help="library sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--photos", type=int, default=64, help="photos placed per run")
    parser.add_argument("--batch", type=int, default=32, help="photos prepared together (batched)")
    parser.add_argument(
        "--recluster-max", type=int, default=100_000, help="re-cluster libraries up to this size"
    )
    parser.add_argument("--pipeline", default="facetags", choices=["facetags", "dlib"])
    parser.add_argument(
        "--model",
        default="",
        help="model folder under .cache/cluster/PIPELINE (default: the configured embedder's)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    model, base = real_embeddings(args.pipeline, args.model)
    threshold = threshold_for(model)
    log.info("%d real %s embeddings, threshold %.3f", len(base), model, threshold)
    rows = [measure_size(base, int(n), threshold, args) for n in args.faces.split(",")]
    why = geometry(args.pipeline, model, threshold, _smallest_index(base, threshold))
    hours = {how: project(rows, how) for how in ("exhaustive", "one_by_one", "batched")}
    result = {
        "model": model, "real_faces": len(base), "threshold": threshold, "sizes": rows,
        "writer_hours_first_scan": hours, "geometry": why,
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
