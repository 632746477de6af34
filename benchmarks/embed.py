"""Embedding speed of a shipped model: milliseconds per face at batch 32 on this CPU.

    python benchmarks/embed.py [--model facetags-mobilenet-v2] [--batch 32] [--repeat 30] [--json]

Runs the product's own OnnxEmbedder (spec-driven preprocessing included) on random crops (speed
does not depend on content). Besides the wall-clock time it prints the process's CPU time per
face (all threads): the work itself, which a busy or throttled host moves far less than the
wall-clock time, so two files compare better on it (the wall-clock figure is the goal's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from facetags.config import load_settings
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec, verified_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="a model id (default: the embedder setting)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument(
        "--threads", type=int, default=0, help="threads in all (0: the threads setting, else <= 4 cores)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    settings = load_settings()
    spec = get_spec(args.model or settings.embedder)
    embedder = OnnxEmbedder(spec, threads=args.threads or settings.threads)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (args.batch, spec.input_size, spec.input_size, 3), dtype=np.uint8)
    for _ in range(5):
        embedder.embed(crops)
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        embedder.embed(crops)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    per_face = statistics.median(times) / args.batch * 1000
    result = {
        "model": spec.id,
        "batch": args.batch,
        "ms_per_face_median": round(per_face, 3),
        "ms_per_face_best": round(min(times) / args.batch * 1000, 3),
        "cpu_ms_per_face_median": round(statistics.median(cpu) / args.batch * 1000, 3),
        "file_mb": round(verified_path(spec).stat().st_size / 1e6, 3),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:20s} {v}")


if __name__ == "__main__":
    main()
