"""Watch latency: a photo copied into a watched folder -> its faces indexed and assigned.

    python benchmarks/watch_latency.py [--photos DIR] [--count 10] [--json]
    python benchmarks/watch_latency.py --backlog 1000 --count 8

Runs `facetags watch` as a separate process (as a user would), copies photos in one at a time
and polls the library from this process until each photo's faces are all assigned. Goal:
<= 2 s per photo. Numbers quoted in docs/library.md come from this script.

``--backlog N`` first fills the folder with N other photos (LFW images from ../shared/data), so
the watcher starts with a catch-up scan (with its default workers), and copies the photos in
while that scan runs; it reports how many photos of the backlog were still to do when the last
copied photo was indexed (the catch-up must still be running for the figure to mean anything).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "deepface" / "photos"


def _indexed(db: Path, path: Path) -> bool:
    """The photo is in the library and every one of its faces has a person."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute(
                "SELECT COUNT(f.id), COUNT(f.person_id) FROM files fi LEFT JOIN faces f"
                " ON f.photo_id = fi.photo_id WHERE fi.path = ?",
                (str(path),),
            ).fetchone()
            exists = conn.execute("SELECT 1 FROM files WHERE path = ?", (str(path),)).fetchone()
    except sqlite3.Error:
        return False
    return exists is not None and row[0] == row[1]


def _photos(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=0, help="photos to catch up on first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sources = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    sources = sources[: args.count]
    latencies = []
    with tempfile.TemporaryDirectory(prefix="facetags-latency-") as tmp:
        folder = Path(tmp) / "watched"
        folder.mkdir()
        db = Path(tmp) / "lib.db"
        env = {**os.environ, "FACETAGS_LIBRARY": str(db)}
        lfw = sorted((ROOT.parent / "shared" / "data" / "lfw" / "images").glob("*/*.jpg"))
        if len(lfw) < args.backlog:
            sys.exit(f"--backlog {args.backlog}: only {len(lfw)} LFW images under ../shared/data")
        for src in lfw[: args.backlog]:
            shutil.copyfile(src, folder / src.name)
        proc = subprocess.Popen(
            [sys.executable, "-m", "facetags", "watch", str(folder)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        left = None
        try:
            if args.backlog:  # the catch-up scan has started once the library has a photo
                while _photos(db) == 0:
                    time.sleep(0.05)
            else:  # warm-up photo: loads the models (not part of the latency of a running daemon)
                warm = folder / "warm-up.jpg"
                time.sleep(1.0)
                shutil.copyfile(sources[0], warm)
                while not _indexed(db, warm):
                    time.sleep(0.02)
            for src in sources[0 if args.backlog else 1 :]:
                dest = folder / src.name
                t0 = time.perf_counter()
                shutil.copyfile(src, dest)
                while not _indexed(db, dest):
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - t0)
            if args.backlog:
                left = args.backlog + len(sources) - _photos(db)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = {
        "photos": len(latencies),
        "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
        "all_s": [round(v, 3) for v in latencies],
        "goal_s": 2.0,
    }
    if args.backlog:
        result.update(backlog=args.backlog, backlog_left_at_end=left)
    print(json.dumps(result, indent=2) if args.json else f"watch latency: {json.dumps(result)}")


if __name__ == "__main__":
    main()
