"""A first scan of the same photos with 1, 2, ... workers: photos per second, the speed-up, peak
memory of the whole process tree, the extra CPU per photo that the worker processes cost, and
the hours a first scan of 100k, 1M and 10M such photos would take at that pace.

    python benchmarks/scale.py                    # 1 and 2 workers, 200 photos
    python benchmarks/scale.py --workers 1,2,4 --lfw 300 --json

The photos are copies of ../shared/data: the deepface photos (full size, up to 2280 px), the bbt
group photos and the first ``--lfw`` LFW images (250 px). Each run is ``facetags scan --workers
N`` in its own process on a fresh library; the load average is printed beside each run, since
other work on the machine slows it (``--repeat N`` interleaves N runs per count and keeps the
fastest of each).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))
PAGE = os.sysconf("SC_PAGE_SIZE")
LIBRARY_SIZES = (100_000, 1_000_000, 10_000_000)


def gather(folder: Path, lfw: int) -> int:
    sources = sorted((DATA / "deepface" / "photos").glob("*.jpg"))
    sources += sorted((DATA / "bbt" / "groups").glob("*.jpg"))
    sources += sorted((DATA / "lfw" / "images").glob("*/*.jpg"))[:lfw]
    if not sources:
        sys.exit(f"no photos under {DATA} (set FACETAGS_SHARED_DATA)")
    folder.mkdir(parents=True)
    for i, src in enumerate(sources):
        shutil.copyfile(src, folder / f"{i:05d}-{src.name}")
    return len(sources)


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(fields[21]) * PAGE
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree)


def run(folder: Path, workers: int, work: Path) -> dict[str, Any]:
    db = work / f"workers-{workers}-{time.monotonic_ns()}.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "facetags", "--library", str(db), "scan", "--workers", str(workers)]
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen([*command, "--json", str(folder)], env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"facetags scan --workers {workers} failed ({proc.returncode})")
    report = json.loads(out)
    photos = int(report["new"])
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "workers": workers,
        "used_workers": report["workers"],
        "photos": photos,
        "faces": report["faces"],
        "seconds": round(wall, 2),
        "photos_per_s": round(photos / wall, 2),
        "cpu_seconds": round(cpu, 1),
        "cpu_s_per_photo": round(cpu / photos, 4),
        "peak_rss_mb": round(peak / 2**20),
        "loadavg_before": " ".join(load_before),
        "loadavg_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "hours": {str(n): round(n / (photos / wall) / 3600, 1) for n in LIBRARY_SIZES},
    }


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--lfw", type=int, default=134, help="LFW images added (default 134: 200 photos)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per worker count, interleaved; the fastest is kept"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="facetags-scale-") as tmp:
        work = Path(tmp)
        n = gather(work / "photos", args.lfw)
        tries = [run(work / "photos", w, work) for _ in range(args.repeat) for w in counts]
    runs = [max((t for t in tries if t["workers"] == w), key=lambda t: t["photos_per_s"]) for w in counts]
    base = runs[0]
    for r in runs:
        r["speedup"] = round(r["photos_per_s"] / base["photos_per_s"], 2)
        # extra CPU per photo against the first run: model loading in each worker, pickling
        r["overhead_cpu_ms_per_photo"] = round((r["cpu_s_per_photo"] - base["cpu_s_per_photo"]) * 1000, 1)
    result = {"photos": n, "cores": os.cpu_count(), "runs": runs}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{n} photos, {os.cpu_count()} cores")
    print(
        "| workers | photos/s | speed-up | peak RSS (tree) | CPU s/photo | overhead"
        " | 100k | 1M | 10M | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        h = r["hours"]
        print(
            f"| {r['workers']} | {r['photos_per_s']} | {r['speedup']}x | {r['peak_rss_mb']} MB"
            f" | {r['cpu_s_per_photo']} | {r['overhead_cpu_ms_per_photo']} ms"
            f" | {h['100000']} h | {h['1000000']} h | {h['10000000']} h"
            f" | {r['loadavg_before']} -> {r['loadavg_after']} |"
        )


if __name__ == "__main__":
    main()
