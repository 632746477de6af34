"""What a fresh process pays to analyse its first photo: imports, model loading, one photo.

    python benchmarks/startup.py [PHOTO] [--runs 5] [--tree DIR ...]

Each run is a new interpreter that builds a ``Pipeline`` with the default settings and processes
``PHOTO`` (default: insightface's t1.jpg), as every ``facetags scan`` worker, the watcher and
the TUI's detection do. Prints, per source tree (default: this checkout; several ``--tree``
folders are run in turn, round-robin, so a busy machine slows them alike), the median wall and
user CPU seconds and which heavy packages the process imported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CODE = """
import json, sys
from facetags.config import Settings
from facetags.ingest.pipeline import Pipeline
done = Pipeline(Settings()).process(sys.argv[1], None)
heavy = ("onnx", "ml_dtypes", "joblib", "onnxruntime", "tensorflow")
print(json.dumps({"faces": len(done.analysis.faces) if done.analysis else None,
                  "imported": [m for m in heavy if m in sys.modules]}))
"""


def default_photo() -> Path:
    spec = importlib.util.find_spec("insightface")
    assert spec is not None and spec.submodule_search_locations, "pass a photo"
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg"


def one_run(tree: Path, photo: Path) -> tuple[float, float, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(photo)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    user = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before
    return wall, user, json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("photo", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--tree", type=Path, action="append", help="a facetags source tree (default: this one)"
    )
    args = parser.parse_args()
    photo = (args.photo or default_photo()).resolve()
    trees = [t.resolve() for t in args.tree or [ROOT]]
    results: dict[Path, list[tuple[float, float, dict[str, object]]]] = {t: [] for t in trees}
    one_run(trees[0], photo)  # warm the file cache
    for _ in range(args.runs):
        for tree in trees:
            results[tree].append(one_run(tree, photo))
    print(f"{photo.name}, {args.runs} runs each, {os.cpu_count()} CPUs")
    for tree, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        user = statistics.median(r[1] for r in runs)
        info = runs[-1][2]
        faces, imported = info["faces"], info["imported"]
        print(f"{tree}: {wall:.2f} s wall, {user:.2f} s user; {faces} faces; imported {imported}")


if __name__ == "__main__":
    main()
