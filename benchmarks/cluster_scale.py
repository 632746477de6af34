"""Clustering at library scale: 100,000 faces made from real embeddings.

    python benchmarks/cluster_scale.py [--faces 100000] [--pipeline facetags|dlib] [--model ID]

The real faces (LFW DevTest + DevTrain sample, deepface, BBT from ``.cache/cluster/``, see
cluster_data.py) are replicated with small perturbations up to ``--faces``: each copy is the
original plus Gaussian noise, renormalised, at a similarity to its original drawn between the
model's clustering threshold and 1, so copies behave like more photos of the same person. Faces
are grouped into photos of 1 to 4 faces (cannot-link) and 2% of the faces are "user placed".

Measures: assigning one new face with :class:`FaceIndex` (median and p95 over 200 faces), and a
full constrained re-cluster (:func:`graph_average`, what the library runs), wall time and peak
memory (RSS of a child process, so earlier allocations do not count).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_data import CACHE

from facetags.people.calibrate import threshold_for
from facetags.people.cluster import FREE, Constraints, graph_average, unit
from facetags.people.incremental import FaceIndex

log = logging.getLogger("cluster_scale")


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


def replicate(base: np.ndarray, n: int, threshold: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    pick[: len(base)] = np.arange(min(len(base), n))
    target = rng.uniform(max(threshold, 0.0) + 0.02, 0.995, n).astype(np.float32)  # cos to original
    noise = rng.normal(size=(n, base.shape[1])).astype(np.float32)
    noise -= (noise * base[pick]).sum(1, keepdims=True) * base[pick]  # orthogonal to the original
    noise = unit(noise)
    out = target[:, None] * base[pick] + np.sqrt(1 - target**2)[:, None] * noise
    out[: len(base)] = base[: min(len(base), n)]
    return unit(out)


def photos_for(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n)
    return np.repeat(np.arange(n), sizes)[:n]


def _recluster(x: np.ndarray, threshold: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
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
    x = replicate(base, args.faces, threshold)
    log.info("%d faces from %d real %s embeddings, threshold %.3f", len(x), len(base), model, threshold)

    # Incremental: an index of all faces, then 200 new faces (perturbed copies) assigned one by one.
    start = time.perf_counter()
    index = FaceIndex(x.shape[1], threshold, capacity=len(x) + 1000)
    index.add(np.arange(len(x)), x, np.arange(len(x)) // 3, photos_for(len(x)))
    build = time.perf_counter() - start
    queries = replicate(base, 200, threshold, seed=9)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.assign_photo(q[None, :], photo_id=10**9)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000

    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_recluster, args=(x, threshold, queue))
    proc.start()
    batch = queue.get()
    proc.join()
    result = {
        "model": model, "faces": len(x), "real_faces": len(base), "threshold": threshold,
        "index_build_s": round(build, 3), "assign_ms_median": round(float(np.median(ms)), 2),
        "assign_ms_p95": round(float(np.percentile(ms, 95)), 2),
        "recluster_s": round(batch["seconds"], 2), "recluster_peak_rss_mb": round(batch["peak_rss_mb"]),
        "recluster_rss_before_mb": round(batch["rss_before_mb"]), "clusters": batch["clusters"],
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
