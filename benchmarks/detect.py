"""Face detection speed: facetags' MTCNN (onnxruntime) against the ``mtcnn`` package (TensorFlow).

    python benchmarks/detect.py                 # facetags settings vs the package's defaults
    python benchmarks/detect.py --min-face 40   # facetags at min_face 40, the package at 20
    python benchmarks/detect.py --no-reference  # facetags only (no TensorFlow needed)

Photos: ``../shared/data/deepface/photos``, ``../shared/data/bbt/groups`` and insightface's
``t1.jpg``, each decoded upright and resized in memory to a 1280 px long side (what facetags
analyses by default). Each photo is run ``--repeat`` times by each detector, interleaved so
both see the same machine load; the figure is the median over photos of each photo's median
wall time. CPU time (all threads) is printed too: on a shared machine it moves less than wall
time. Prints the load average before and after, since other jobs change every figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def photos(limit: int | None) -> list[Path]:
    found = sorted((SHARED / "deepface" / "photos").glob("*.jpg"))
    found += sorted((SHARED / "bbt" / "groups").glob("*.jpg"))
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.submodule_search_locations:
        t1 = Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg"
        if t1.is_file():
            found.append(t1)
    return found[:limit] if limit else found


def load_1280(path: Path, side: int) -> np.ndarray:
    from facetags.image.decode import decode

    image = Image.fromarray(decode(path).image)
    factor = side / max(image.size)
    size = (round(image.width * factor), round(image.height * factor))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per photo and detector")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--side", type=int, default=1280, help="long side of the photos")
    parser.add_argument("--min-face", type=int, default=None, help="facetags min_face")
    parser.add_argument(
        "--reference-min-face",
        type=int,
        default=None,
        help="the package's min_face_size (default: its own default, 20). Above 20 the "
        "package 1.0.0 finds nothing on large photos: its pyramid then reaches levels under "
        "12 px, TensorFlow raises, and it returns no faces",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the mtcnn package")
    args = parser.parse_args(argv)

    from facetags.config import Settings
    from facetags.vision.detect import Detector

    settings = Settings() if args.min_face is None else Settings(min_face=args.min_face)
    ours = Detector(settings)
    ref_min_face = args.reference_min_face or 20
    reference: Any = None
    if not args.no_reference:
        if importlib.util.find_spec("mtcnn") is None or importlib.util.find_spec("tensorflow") is None:
            print("the mtcnn package or TensorFlow is missing: use --no-reference", file=sys.stderr)
            return 2
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mtcnn import MTCNN

        reference = MTCNN()

    paths = photos(args.limit)
    if not paths:
        print(f"no photos found under {SHARED}", file=sys.stderr)
        return 2
    images = [load_1280(p, args.side) for p in paths]
    load_before = os.getloadavg()
    # Warm-up: graph building, first-call allocations, TensorFlow tracing.
    ours.detect(images[0])
    if reference is not None:
        reference.detect_faces(images[0], min_face_size=ref_min_face)

    rows: dict[str, list[tuple[float, float]]] = {"facetags": [], "mtcnn": []}
    faces = {"facetags": 0, "mtcnn": 0}
    for image in images:
        runs: dict[str, list[tuple[float, float]]] = {"facetags": [], "mtcnn": []}
        n_ours = n_ref = 0
        for _ in range(args.repeat):
            wall, cpu, found = timed(partial(ours.detect, image))
            runs["facetags"].append((wall, cpu))
            n_ours = len(found)
            if reference is not None:
                wall, cpu, found = timed(partial(reference.detect_faces, image, min_face_size=ref_min_face))
                runs["mtcnn"].append((wall, cpu))
                n_ref = sum(1 for f in found if f["confidence"] >= settings.score_threshold)
        faces["facetags"] += n_ours
        if reference is not None:
            faces["mtcnn"] += n_ref
        for name, values in runs.items():
            if values:
                rows[name].append(
                    (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
                )
    load_after = os.getloadavg()

    print(
        f"{len(images)} photos, long side {args.side} px, {args.repeat} runs each; "
        f"{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print(f"facetags min_face {settings.min_face}; mtcnn package min_face_size {ref_min_face}")
    summary = {}
    for name, values in rows.items():
        if not values:
            continue
        wall = statistics.median(v[0] for v in values) * 1000
        cpu = statistics.median(v[1] for v in values) * 1000
        summary[name] = (wall, cpu)
        print(
            f"  {name:9s} median {wall:7.1f} ms/photo wall, {cpu:7.1f} ms/photo CPU, "
            f"{faces[name]} faces (score >= {settings.score_threshold})"
        )
    if reference is not None and faces["mtcnn"] == 0:
        print("  warning: the mtcnn package found no faces; its timing is meaningless")
    if "mtcnn" in summary:
        print(
            f"  speed-up  {summary['mtcnn'][0] / summary['facetags'][0]:.1f}x wall, "
            f"{summary['mtcnn'][1] / summary['facetags'][1]:.1f}x CPU"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
