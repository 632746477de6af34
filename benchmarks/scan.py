"""Scan benchmarks: first-scan throughput with the time per stage, re-scan of N unchanged
photos (hard links), library bytes per face, and the watcher's peak memory while indexing.

    python benchmarks/scan.py                       # all, on ../shared/data/deepface/photos
    python benchmarks/scan.py --links 10000 --json  # machine-readable

Numbers quoted in docs/library.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facetags.config import Settings  # noqa: E402
from facetags.ingest.scan import PHOTO_EXTENSIONS  # noqa: E402
from facetags.library import Library  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "deepface" / "photos"


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS)


def link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def first_scan(photos: list[Path], work: Path) -> dict[str, object]:
    folder = work / "first"
    folder.mkdir()
    for p in photos:
        link(p, folder / p.name)
    db = work / "first.db"
    with Library.open(db, Settings(library=db)) as lib:
        report = lib.scan([folder])
        lib.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        status = lib.status()
    analysed = report.counts["new"]
    timings = report.timings
    stage_total = sum(timings.values())
    return {
        "photos": analysed,
        "faces": report.faces,
        "seconds": round(report.seconds, 2),
        "photos_per_s": round(analysed / report.seconds, 2),
        "stage_seconds": timings,
        "stage_share": {k: round(v / stage_total, 3) for k, v in timings.items()} if stage_total else {},
        "library_bytes": os.path.getsize(db),
        "bytes_per_face": round(os.path.getsize(db) / max(status.faces, 1)),
    }


def rescan(photos: list[Path], work: Path, n: int) -> dict[str, object]:
    folder = work / "links"
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        src = photos[i % len(photos)]
        link(src, sub / f"{i:05d}{src.suffix}")
    db = work / "links.db"
    with Library.open(db, Settings(library=db)) as lib:
        t0 = time.perf_counter()
        first = lib.scan([folder])
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = lib.scan([folder])
        rescan_s = time.perf_counter() - t0
    assert again.counts["unchanged"] == n, again.to_json()
    return {
        "files": n,
        "distinct_photos": len(photos),
        "first_index_seconds": round(index_s, 2),
        "first_index_counts": {k: v for k, v in first.counts.items() if v},
        "rescan_seconds": round(rescan_s, 3),
        "rescan_files_per_s": round(n / rescan_s),
    }


def watcher_memory(photos: list[Path], work: Path) -> dict[str, object]:
    """Run `facetags watch` on an empty folder, copy the photos in, wait until all are indexed,
    stop it with SIGTERM and read its peak resident memory."""
    folder = work / "watched"
    folder.mkdir()
    db = work / "watch.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "watch", str(folder)], env=env, cwd=ROOT, stderr=subprocess.PIPE
    )
    try:
        while not db.exists():
            time.sleep(0.05)
        time.sleep(1.0)
        t0 = time.perf_counter()
        for p in photos:
            shutil.copyfile(p, folder / p.name)
        deadline = time.monotonic() + 1200
        while _count(db) < len(photos) and time.monotonic() < deadline:
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"photos": _count(db), "seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT photo_id) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--links", type=int, default=10_000, help="unchanged files for the re-scan")
    parser.add_argument("--skip", nargs="*", default=[], choices=["first", "rescan", "memory"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    photos = photos_in(args.photos)
    if not photos:
        sys.exit(f"no photos in {args.photos}")
    results: dict[str, object] = {"source": str(args.photos), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="facetags-bench-") as tmp:
        work = Path(tmp)
        if "first" not in args.skip:
            results["first_scan"] = first_scan(photos, work)
        if "rescan" not in args.skip:
            results["rescan"] = rescan(photos, work, args.links)
        if "memory" not in args.skip:
            results["watcher"] = watcher_memory(photos, work)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key}: {json.dumps(value)}")


if __name__ == "__main__":
    main()
