"""A whole photo collection as one library, scanned and clustered as a user's would be.

    python benchmarks/cluster_library.py                      # all 13,233 LFW photos
    python benchmarks/cluster_library.py --exact              # and exact average linkage (~4 GB)
    python benchmarks/cluster_library.py --images DIR --library PATH

Scans ``--images`` (default ``../shared/data/lfw/images``: 13,233 photos of 5,749 people, about
15,000 faces) into ``--library`` with ``facetags scan`` (kept in ``.cache/``, so a second run
only clusters), then clusters every face of the library with the library's own re-cluster
(:func:`graph_average` at the model's threshold, one photo's faces apart) and scores it
against the people named by each photo's folder (every face of a photo counts as that
person's: the few other faces in LFW photos cost some precision). At this size the faces of
many people chain into one connected component of the kNN graph, far past
``component_limit``: the case a large personal library meets. ``--exact`` also clusters with
exact average linkage over all faces (SciPy, n x n distances), the reference it approximates.
Prints clusters, the largest, BCubed precision / recall / F, seconds and peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=DATA / "lfw" / "images")
    parser.add_argument("--library", type=Path, default=ROOT / ".cache" / "lfw-all.db")
    parser.add_argument("--exact", action="store_true", help="also exact average linkage (n x n: ~4 GB)")
    args = parser.parse_args()

    from facetags.config import load_settings
    from facetags.evaluate.clustering import score_clustering
    from facetags.library import Library
    from facetags.people.cluster import AGGLOMERATIVE_LIMIT, Constraints, graph_average, unit
    from facetags.people.graph import components, knn_graph

    if not args.images.is_dir():
        sys.exit(f"no photos at {args.images} (set FACETAGS_SHARED_DATA or --images)")
    args.library.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    scan = [sys.executable, "-m", "facetags", "--library", str(args.library), "scan", str(args.images)]
    subprocess.run(scan, check=True, stdout=subprocess.DEVNULL)
    print(f"scan (or re-scan) of {args.images}: {time.perf_counter() - start:.0f} s", file=sys.stderr)

    with Library.open(args.library, load_settings(library=str(args.library)), create=False) as lib:
        assigner = lib.clustering()
        rows = lib.store.clustering_rows(assigner.model_id)
        x = unit(lib.store.embedding_matrix(assigner.model_id))
        path_of = {f.face_id: f.path for f in lib.faces()}
    photo = np.array([r[1] for r in rows], np.int64)
    truth = [Path(path_of[r[0]]).parent.name for r in rows]
    threshold = assigner.threshold
    largest = int(np.bincount(components(knn_graph(x, assigner.k, threshold))).max())
    print(
        f"{len(x)} faces of {len(set(truth))} people, {assigner.model_id} at {threshold}; "
        f"largest connected component of the kNN graph: {largest} faces\n"
    )
    print("| clustering | clusters | largest | BCubed P | BCubed R | BCubed F | seconds | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    runs: list[tuple[str, dict[str, int]]] = [("graph_average (the library's re-cluster)", {})]
    if args.exact:
        runs.append(("exact average linkage", {"component_limit": AGGLOMERATIVE_LIMIT}))
    for label, options in runs:
        began = time.perf_counter()
        labels = graph_average(x, threshold, Constraints(photo=photo), k=assigner.k, **options)
        seconds = time.perf_counter() - began
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        s = score_clustering(truth, labels.tolist())
        print(
            f"| {label} | {len(set(labels.tolist()))} | {int(np.bincount(labels).max())} "
            f"| {s.bcubed_precision:.3f} | {s.bcubed_recall:.3f} | {s.bcubed_f:.3f}"
            f" | {seconds:.1f} | {peak:.0f} MB |"
        )


if __name__ == "__main__":
    main()
