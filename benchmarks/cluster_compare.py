"""Compare clustering algorithms on the labelled sets, thresholds calibrated on LFW DevTrain.

    python benchmarks/cluster_compare.py [--pipeline facetags|dlib] [--sets deepface,bbt,lfw]
        [--calibration lfw_heldout|pins_heldout|heldout|lfw_devtrain] [--save]
    python benchmarks/cluster_compare.py --sweep 0.46,0.48,0.50 --sets heldout,deepface,bbt,lfw
    python benchmarks/cluster_compare.py --mean-neighbours 10,0.5,0.5 ...   # an experiment

For each algorithm, the threshold is chosen on a calibration library (never a reported set): the
best BCubed F among thresholds whose BCubed precision is >= 0.98. For facetags' own embedder the
library is the 150 LFW DevTrain people held out of its training
(``tests/data/labels/lfw_devtrain_heldout.json``): faces it never saw, like a user's; for dlib's,
a seeded sample of 300 DevTrain people with 2+ photos. ``--calibration pins_heldout`` uses the 12
Pins people no training run trains on (``facetags.train.data.PINS_HELDOUT``, their photos in
``../shared/data/pins``), and ``heldout`` both sets of held-out people at once (LFW DevTrain and
Pins: a threshold that holds on more than one source of photos). Then every set is clustered with all its
detected faces (cannot-link between faces of one photo) and the labelled faces are scored.
Prints a Markdown table (stdout); embeddings are cached in ``.cache/cluster/`` (first run:
detection and embedding of ~4,000 photos, several minutes on 2 cores). ``--save`` records the
library's (graph_average) threshold for this model file in ``facetags/people/thresholds.json``:
run it when the embedder changes.

``--mean-neighbours K,TAU,W`` (an experiment, not what the product does) first moves every face
towards its neighbours: x + W * sum(s * y) over its K nearest faces y of other photos whose
similarity s is >= TAU, made unit length again, in every set, calibration included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_data import load_faces

from facetags.evaluate.calibration import choose, sweep
from facetags.evaluate.clustering import score_clustering
from facetags.people.calibrate import save_threshold
from facetags.people.cluster import ALGORITHMS, Constraints

log = logging.getLogger("cluster_compare")


def grid_for(x: np.ndarray) -> list[float]:
    """Thresholds spanning the model's similarity range (embedders differ a lot here)."""
    rng = np.random.default_rng(0)
    s = x[rng.choice(len(x), size=min(len(x), 2000), replace=False)]
    sims = (s @ s.T)[np.triu_indices(len(s), 1)]
    lo, hi = np.percentile(sims, [50, 99.99])
    return [round(float(t), 3) for t in np.linspace(lo, hi, 25)]


CALIBRATION = {"facetags": "lfw_heldout", "dlib": "lfw_devtrain"}
DESCRIBE = {
    "lfw_heldout": "LFW DevTrain people held out of the embedder's training ({n} people with 2+ photos)",
    "lfw_devtrain": "LFW DevTrain sample ({n} people with 2+ photos, seed 0)",
    "pins_heldout": "Pins people held out of training ({n} people, not in LFW)",
    "heldout": "people held out of training from two sources: LFW DevTrain and Pins ({n} people)",
}


class Scored(NamedTuple):
    """A labelled set's faces, the indices and labels of the scored ones, how many labelled faces
    were not detected, and the cannot-link constraints (faces of one photo)."""

    faces: Any
    idx: np.ndarray
    truth: list[Any]
    missed: int
    constraints: Constraints


#: (K, TAU, W) of ``--mean-neighbours``, or None.
MEAN_NEIGHBOURS: tuple[int, float, float] | None = None


def mean_neighbours(x: np.ndarray, photo: np.ndarray, k: int, tau: float, weight: float) -> np.ndarray:
    """Each face moved towards its ``k`` nearest faces of other photos with similarity >= ``tau``."""
    s = x @ x.T
    np.fill_diagonal(s, -1.0)
    s[photo[:, None] == photo[None, :]] = -1.0
    k = min(k, len(x) - 1)
    if k <= 0:
        return x
    near = np.argpartition(-s, k - 1, axis=1)[:, :k]
    sims = np.take_along_axis(s, near, axis=1)
    w = np.where(sims >= tau, sims, 0.0) * weight
    moved = x + (w[:, :, None] * x[near]).sum(axis=1)
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def scored_set(set_name: str, pipeline: str) -> Scored:
    lset, faces = load_faces(set_name, pipeline)
    if MEAN_NEIGHBOURS is not None:
        faces = dataclasses.replace(
            faces, vectors=mean_neighbours(faces.vectors, faces.photo_ids(), *MEAN_NEIGHBOURS)
        )
    idx, truth, missed = faces.scored(lset.labels)
    return Scored(faces, idx, truth, missed, Constraints(photo=faces.photo_ids()))


def calibrate(
    pipeline: str, min_precision: float, save: bool = False, calibration: str = ""
) -> dict[str, float]:
    calibration = calibration or CALIBRATION[pipeline]
    faces, idx, truth, _, c = scored_set(calibration, pipeline)
    grid = grid_for(faces.vectors)
    chosen = {}
    for name, algo in ALGORITHMS.items():
        if name == "hdbscan":
            chosen[name] = 0.0
            continue
        g = grid if name != "agglomerative" else grid[::2]
        points = sweep(algo, faces.vectors, c, idx, truth, g)
        best = choose(points, min_precision)
        # refine around the coarse choice
        step = g[1] - g[0]
        fine = [round(best.threshold + d * step / 4, 4) for d in (-3, -2, -1, 1, 2, 3)]
        best = choose([*points, *sweep(algo, faces.vectors, c, idx, truth, fine)], min_precision)
        s = best.scores
        log.info(
            "%s: threshold %.4f on %s: P %.4f R %.4f F %.4f",
            name, best.threshold, calibration, s.bcubed_precision, s.bcubed_recall, s.bcubed_f,
        )  # fmt: skip
        chosen[name] = best.threshold
        if save and name == "graph_average":  # the library's algorithm
            save_threshold(
                faces.model_id,
                best.threshold,
                algorithm=name,
                calibration=DESCRIBE[calibration].format(n=len(set(truth)))
                + f", {name}, best BCubed F with BCubed P >= {min_precision}",
                scores={k: round(v, 4) for k, v in s.to_json().items() if k.startswith("bcubed")},
            )
            log.info("saved %s: %.4f", faces.model_id, best.threshold)
    return chosen


def sweep_table(pipeline: str, set_names: list[str], grid: list[float]) -> None:
    """Print BCubed precision, recall and F of graph_average on each set at each threshold."""
    loaded = [scored_set(set_name, pipeline) for set_name in set_names]
    print(f"model `{loaded[0].faces.model_id}`, pipeline `{pipeline}`, graph_average; BCubed P / R / F\n")
    print("| threshold | " + " | ".join(set_names) + " |")
    print("|---" * (len(set_names) + 1) + "|")
    for t in grid:
        cells = []
        for faces, idx, truth, _, c in loaded:
            s = score_clustering(truth, ALGORITHMS["graph_average"](faces.vectors, t, c)[idx].tolist())
            cells.append(f"{s.bcubed_precision:.3f} / {s.bcubed_recall:.3f} / {s.bcubed_f:.3f}")
        print(f"| {t:.3f} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default="facetags", choices=["facetags", "dlib"])
    parser.add_argument("--sets", default="deepface,bbt,lfw")
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument(
        "--calibration",
        choices=sorted(DESCRIBE),
        help="calibration library (default: lfw_heldout for facetags, lfw_devtrain for dlib)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--save",
        action="store_true",
        help="record graph_average's threshold in facetags/people/thresholds.json",
    )
    parser.add_argument(
        "--sweep",
        help="instead: graph_average at these thresholds (comma-separated) on each of --sets, which"
        " may name calibration libraries too (lfw_heldout, pins_heldout, heldout): the margin"
        " around a calibrated threshold",
    )
    parser.add_argument(
        "--mean-neighbours",
        metavar="K,TAU,W",
        help="an experiment: move each face towards its K nearest faces of other photos with"
        " similarity >= TAU, with weight W, before clustering (every set; not with --save)",
    )
    args = parser.parse_args()
    if args.mean_neighbours:
        if args.save:
            parser.error("--save records the product's clustering: not with --mean-neighbours")
        global MEAN_NEIGHBOURS
        k, tau, w = args.mean_neighbours.split(",")
        MEAN_NEIGHBOURS = (int(k), float(tau), float(w))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.sweep:
        sweep_table(args.pipeline, args.sets.split(","), [float(t) for t in args.sweep.split(",")])
        return

    thresholds = calibrate(args.pipeline, args.min_precision, args.save, args.calibration or "")
    rows = []
    for set_name in args.sets.split(","):
        faces, idx, truth, missed, c = scored_set(set_name, args.pipeline)
        for name, algo in ALGORITHMS.items():
            start = time.perf_counter()
            labels = algo(faces.vectors, thresholds[name], c)
            seconds = time.perf_counter() - start
            s = score_clustering(truth, labels[idx].tolist())
            rows.append(
                {"set": set_name, "algorithm": name, "threshold": thresholds[name], "model": faces.model_id,
                 "faces": len(faces.vectors), "missed": missed, "seconds": round(seconds, 3), **s.to_json()}
            )  # fmt: skip
    print(f"model `{rows[0]['model']}`, pipeline `{args.pipeline}`\n")
    print("| set | algorithm | threshold | BCubed P | BCubed R | BCubed F | pairwise F | clusters / people "
          "| singletons | labelled faces missed | time (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        thr = "-" if r["algorithm"] == "hdbscan" else f"{r['threshold']:.3f}"
        print(
            f"| {r['set']} | {r['algorithm']} | {thr} | {r['bcubed_precision']:.3f} "
            f"| {r['bcubed_recall']:.3f} | {r['bcubed_f']:.3f} | {r['pairwise_f']:.3f} "
            f"| {r['clusters']} / {r['people']} "
            f"| {r['singleton_share']:.2f} | {r['missed']} | {r['seconds']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"thresholds": thresholds, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
