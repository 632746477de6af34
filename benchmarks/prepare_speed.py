"""How fast ``facetags train prepare`` turns each set's photos into crops, and how long a full build takes.

    python benchmarks/prepare_speed.py [--data ../shared/data] [--sources DIR] [--photos 200]
        [--teacher none|dlib]

For each source (LFW DevTrain, Pins, FairFace, UTKFace: from ``--sources`` when given, as
``train prepare --sources`` reads them) it takes ``--photos`` photos spread evenly over the
source's training list, runs them through one cache worker (decode, detect, align, and with
``--teacher dlib`` the teacher's chip and vector) after the worker has loaded its models, and
prints photos per second of one process and the faces found. The estimate for the whole list
divides each source's photo count by its rate and by ``--workers`` (the build's processes, one
per free core).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--sources", type=Path, default=None)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--teacher", choices=["none", "dlib"], default="none")
    parser.add_argument("--workers", type=int, default=2, help="processes of the build estimated")
    args = parser.parse_args()

    from facetags.train import data

    items = data.training_items(args.data, full=args.sources)
    roots = data.item_roots(args.data, args.sources)
    data._init_worker(args.teacher)
    rows = []
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for source in ("lfw", "pins", "fairface", "utkface"):
            mine = [i for i in items if i.source == source]
            step = max(1, len(mine) // args.photos)
            chosen = mine[::step][: args.photos]
            start = time.perf_counter()
            _, n, faces = data._build_shard((roots, Path(tmp), chosen, 0))
            seconds = time.perf_counter() - start
            rate = n / seconds
            total += len(mine) / rate
            rows.append({"source": source, "photos": n, "faces": faces, "seconds": round(seconds, 2),
                         "photos_per_s": round(rate, 1), "in_list": len(mine)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    minutes = total / args.workers / 60
    print(json.dumps({"teacher": args.teacher, "photos": len(items), "estimated_minutes": round(minutes),
                      "workers": args.workers}))  # fmt: skip


if __name__ == "__main__":
    main()
