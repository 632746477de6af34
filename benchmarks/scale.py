"""A first scan of the same photos with 1, 2, ... workers: photos per second, the speed-up, peak
memory of the whole process tree, the extra CPU per photo that the worker processes cost, and
the hours a first scan of 100k, 1M and 10M such photos would take at that pace.

    python benchmarks/scale.py                    # 1 and 2 workers, 4,069 photos, 3 rounds
    python benchmarks/scale.py --workers 1,2,4 --lfw 300 --repeat 1 --json
    python benchmarks/scale.py --cluster          # and a Dask cluster of 2 workers on 127.0.0.1

The photos are copies of ../shared/data: the deepface photos (full size, up to 2280 px), the bbt
group photos and the first ``--lfw`` LFW images (250 px): 4,069 photos by default, a library's
first scan rather than a few seconds' (``--lfw 1000``: 1,069 photos; ``--lfw 134``: 203, where
the fixed costs of starting weigh: docs/scale.md). Each run is ``facetags scan --workers N`` in
its own process on a fresh library; the load average is printed beside each run, since other
work on the machine slows it. ``--repeat N`` runs N rounds of one run per count, each round in
the order the last ended with (1 2, 2 1, 1 2, ...: a machine whose speed drifts favours no
count), keeps the fastest of each count, and prints each round's speed-up beside it.
``--cluster`` adds ``facetags scan --cluster`` on a Dask cluster started for each run (``dask
scheduler`` and ``dask worker --nworkers 2 --nthreads 1``, loopback only; its start is not
timed): "fresh", its workers load the models during the scan as local workers do, and "warm",
after one untimed scan into another library (a cluster that stays up). Its memory and CPU count
the scheduler's and workers' processes too. The scheduler and workers run with the Dask settings
docs/scale.md gives (the worker profiler off: ``--profile`` turns it on, as by Dask's default).
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


class TreePeak:
    """The largest resident memory of ``pids`` and all their descendants together, sampled from
    /proc every ``every`` seconds in a thread (``ru_maxrss`` counts one process only)."""

    def __init__(self, pids: list[int], every: float = 0.05) -> None:
        self.pids, self.every, self.peak = pids, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-peak", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, sum(tree_rss(p) for p in self.pids))
            time.sleep(self.every)

    def stop(self) -> int:
        """Stop sampling; the peak in bytes."""
        self._done.set()
        self._thread.join()
        return self.peak


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of ``pids`` and their descendants that are still running."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, frontier = set(pids), list(pids)
    while frontier:
        parent = frontier.pop()
        kids = [p for p, (pp, _) in stats.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(stats[p][1] for p in tree if p in stats)


def dask_settings() -> str:
    """The Dask settings docs/scale.md has users put in ``~/.config/dask/facetags.yaml``."""
    text = (ROOT / "docs" / "scale.md").read_text()
    return text.split("~/.config/dask/facetags.yaml", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]


def start_cluster(
    work: Path, workers: int, profile: bool = False
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A Dask scheduler and ``workers`` worker processes on 127.0.0.1, ready."""
    from distributed import Client

    info = work / f"scheduler-{time.monotonic_ns()}.json"
    config = work / "dask-config"  # the settings docs/scale.md gives its scheduler and workers
    config.mkdir(exist_ok=True)
    (config / "facetags.yaml").write_text(dask_settings())
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DASK_CONFIG": str(config),
        "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": "[]",
        "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": "[]",
    }
    if profile:  # Dask's statistical profiler on, as without that file (the environment wins)
        env["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "True"
    quiet = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    dask = [sys.executable, "-m", "dask"]
    out = subprocess.DEVNULL
    procs = [
        subprocess.Popen(
            [*dask, "scheduler", *quiet, "--port", "0", "--scheduler-file", str(info)], env=env, stderr=out
        )
    ]
    while not info.is_file() or not info.read_text().strip():
        time.sleep(0.1)
    time.sleep(0.2)
    address = json.loads(info.read_text())["address"]
    worker = [*dask, "worker", address, *quiet, "--nworkers", str(workers), "--nthreads", "1"]
    procs.append(subprocess.Popen([*worker, "--local-directory", str(work / "dask")], env=env, stderr=out))
    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def stop_cluster(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        proc.terminate()
        proc.wait(60)


def run(folder: Path, workers: int, work: Path, cluster: str = "", profile: bool = False) -> dict[str, Any]:
    """One timed first scan; ``cluster``: "fresh" (a new cluster: its workers load the models
    during the scan) or "warm" (a new cluster that has run one scan into another library)."""
    db = work / f"workers-{workers}-{time.monotonic_ns()}.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "facetags", "--library", str(db), "scan", "--workers", str(workers)]
    engine: list[subprocess.Popen[bytes]] = []
    if cluster:
        address, engine = start_cluster(work, workers, profile)
        command += ["--cluster", address]
        if cluster == "warm":
            warm = [*command[:4], str(work / f"warm-{time.monotonic_ns()}.db"), *command[5:]]
            done = subprocess.run([*warm, str(folder)], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{done.stderr}the warming scan failed ({done.returncode})")
    engine_pids = [p.pid for p in engine]
    engine_cpu = tree_cpu(engine_pids)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--json", str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = TreePeak([proc.pid, *engine_pids])
    out, err = proc.communicate()  # its "new library" lines: shown only if it fails
    peak = sampler.stop()
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    engine_cpu = tree_cpu(engine_pids) - engine_cpu
    if engine:
        stop_cluster(engine)
    if proc.returncode != 0:
        sys.exit(f"{err}facetags scan --workers {workers} failed ({proc.returncode})")
    report = json.loads(out)
    photos = int(report["new"])
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    cpu += engine_cpu
    return {
        "label": f"dask {workers} {cluster}" if cluster else str(workers),
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
    parser.add_argument("--lfw", type=int, default=4000, help="LFW images added (default 4000: 4,069 photos)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of one run per worker count, alternating their order; the fastest is kept (default 3)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also scan through a local Dask cluster of 2 workers, fresh and warm",
    )
    parser.add_argument(
        "--profile", action="store_true", help="keep Dask's worker profiler on (Dask's default)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    plan = [(int(w), "") for w in args.workers.split(",")]
    plan += [(2, "fresh"), (2, "warm")] if args.cluster else []
    with tempfile.TemporaryDirectory(prefix="facetags-scale-") as tmp:
        work = Path(tmp)
        n = gather(work / "photos", args.lfw)
        rounds = [
            {t["label"]: t for t in (run(work / "photos", w, work, c, args.profile) for w, c in order)}
            for order in (plan if i % 2 == 0 else plan[::-1] for i in range(args.repeat))
        ]
    labels = list(rounds[0])  # the first round ran in the plan's order
    runs = [max((r[k] for r in rounds), key=lambda t: t["photos_per_s"]) for k in labels]
    base = runs[0]
    for r in runs:  # each round's own speed-up: how much the figure moves from run to run
        r["round_speedups"] = [
            round(x[r["label"]]["photos_per_s"] / x[base["label"]]["photos_per_s"], 2) for x in rounds
        ]
    local = {r["workers"]: r for r in runs if not r["label"].startswith("dask")}
    for r in runs:
        r["speedup"] = round(r["photos_per_s"] / base["photos_per_s"], 2)
        # extra CPU per photo against the first run: model loading in each worker, pickling
        r["overhead_cpu_ms_per_photo"] = round((r["cpu_s_per_photo"] - base["cpu_s_per_photo"]) * 1000, 1)
        same = local.get(r["workers"])
        if r["label"].startswith("dask") and same is not None:  # the engine against local workers
            r["vs_local"] = round(r["photos_per_s"] / same["photos_per_s"], 2)
            r["engine_ms_per_photo"] = round((r["seconds"] - same["seconds"]) / r["photos"] * 1000, 1)
            r["round_vs_local"] = [
                round(x[r["label"]]["photos_per_s"] / x[same["label"]]["photos_per_s"], 2) for x in rounds
            ]
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
            f"| {r['label']} | {r['photos_per_s']} | {r['speedup']}x | {r['peak_rss_mb']} MB"
            f" | {r['cpu_s_per_photo']} | {r['overhead_cpu_ms_per_photo']} ms"
            f" | {h['100000']} h | {h['1000000']} h | {h['10000000']} h"
            f" | {r['loadavg_before']} -> {r['loadavg_after']} |"
        )
    if len(rounds) > 1:
        for r in runs[1:]:
            each = ", ".join(f"{x}x" for x in r["round_speedups"])
            print(f"{r['label']} against {base['label']}, round by round: {each}")
    for r in runs:
        if "vs_local" in r:
            print(
                f"{r['label']}: {r['vs_local']}x the speed of {r['workers']} local workers;"
                f" {r['engine_ms_per_photo']:+} ms of wall time per photo against them"
                + (
                    f"; round by round: {', '.join(f'{x}x' for x in r['round_vs_local'])}"
                    if len(rounds) > 1
                    else ""
                )
            )


if __name__ == "__main__":
    main()
