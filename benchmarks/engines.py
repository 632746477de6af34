"""Dask distributed against Ray for the per-photo work: what one task costs on 2 local worker
processes (loopback only), and whether a killed worker's tasks are re-run.

    python benchmarks/engines.py                  # every engine importable here
    python benchmarks/engines.py --engines dask --tasks 1000 --json

Each task stands in for one photo: it returns ``--payload`` bytes (a photo's faces, thumbnails
and vectors are ~10-30 KB), and at most 4 tasks are in flight, as in ``facetags scan``. The
overhead is wall time per task against a ``ProcessPoolExecutor`` of 2 processes doing the same.
Then 40 tasks of 0.2 s each run while one worker is killed with SIGKILL: every task must come
back, and the tasks that ran twice are counted. CPU per task counts every process of the
benchmark and the engine (client, scheduler, workers). Engines missing here are reported as such
(``pip install distributed`` / ``pip install ray``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

WINDOW = 4


def task(i: int, payload: int, sleep: float = 0.0, log: str | None = None) -> tuple[int, int, bytes]:
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{i}\n")
    if sleep:
        time.sleep(sleep)
    return i, os.getpid(), os.urandom(payload)


def cpu_of_tree() -> float:
    """CPU seconds of this process and its living descendants (the engine's processes)."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def pipelined(submit: Callable[[int], Any], result: Callable[[Any], tuple[int, int, bytes]], n: int) -> float:
    """Seconds for ``n`` tasks with at most WINDOW in flight, results taken in order."""
    start = time.perf_counter()
    window: deque[Any] = deque(submit(i) for i in range(min(WINDOW, n)))
    nxt = len(window)
    while window:
        result(window.popleft())
        if nxt < n:
            window.append(submit(nxt))
            nxt += 1
    return time.perf_counter() - start


def kill_test(
    submit: Callable[[int, str], Any], result: Callable[[Any], Any], pids: list[int]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log = str(Path(tmp) / "started")
        futures = [submit(i, log) for i in range(40)]
        time.sleep(1.0)
        os.kill(pids[0], signal.SIGKILL)
        try:
            got = sorted(result(f)[0] for f in futures)
            lost = 40 - len(set(got))
            error = None
        except Exception as exc:
            got, lost, error = [], 40, f"{type(exc).__name__}: {exc}"
        started = Path(log).read_text().split()
    return {
        "all_back": got == list(range(40)),
        "lost": lost,
        "ran_twice": len(started) - len(set(started)),
        "error": error,
    }


def local_pool(n: int, payload: int) -> dict[str, Any]:
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        pool.submit(task, 0, 0).result()
        pool.submit(task, 1, 0).result()
        cpu = cpu_of_tree()
        seconds = pipelined(lambda i: pool.submit(task, i, payload), lambda f: f.result(), n)
        cpu = cpu_of_tree() - cpu
    return {"ms_per_task": round(seconds / n * 1000, 3), "cpu_ms_per_task": round(cpu / n * 1000, 3)}


def dask(n: int, payload: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = Client(cluster)
    started = time.perf_counter() - start
    try:
        client.submit(task, 0, 0, pure=False).result()
        cpu = cpu_of_tree()
        seconds = pipelined(lambda i: client.submit(task, i, payload, pure=False), lambda f: f.result(), n)
        cpu = cpu_of_tree() - cpu
        pids = list(client.run(os.getpid).values())
        killed = kill_test(
            lambda i, log: client.submit(task, i, 10, 0.2, log, pure=False), lambda f: f.result(60), pids
        )
    finally:
        client.close()
        cluster.close()
    return {
        "ms_per_task": round(seconds / n * 1000, 3),
        "cpu_ms_per_task": round(cpu / n * 1000, 3),
        "start_s": round(started, 1),
        **killed,
    }


def ray(n: int, payload: int) -> dict[str, Any]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray as engine

    start = time.perf_counter()
    engine.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    started = time.perf_counter() - start
    remote = engine.remote(max_retries=3)(task)
    try:
        engine.get([remote.remote(i, 0) for i in range(4)])
        cpu = cpu_of_tree()
        seconds = pipelined(lambda i: remote.remote(i, payload), engine.get, n)
        cpu = cpu_of_tree() - cpu
        pids = sorted({engine.get(remote.remote(i, 0))[1] for i in range(8)})
        killed = kill_test(
            lambda i, log: remote.remote(i, 10, 0.2, log), lambda f: engine.get(f, timeout=60), pids
        )
    finally:
        engine.shutdown()
    return {
        "ms_per_task": round(seconds / n * 1000, 3),
        "cpu_ms_per_task": round(cpu / n * 1000, 3),
        "start_s": round(started, 1),
        **killed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="dask,ray")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--payload", type=int, default=20_000, help="bytes each task returns (default 20000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results: dict[str, Any] = {"local pool": local_pool(args.tasks, args.payload)}
    base = results["local pool"]["ms_per_task"]
    for name in args.engines.split(","):
        try:
            results[name] = {"dask": dask, "ray": ray}[name](args.tasks, args.payload)
        except ImportError as exc:
            results[name] = {"error": f"not installed ({exc.name})"}
            continue
        results[name]["overhead_ms"] = round(results[name]["ms_per_task"] - base, 3)
    out = {"tasks": args.tasks, "payload": args.payload, "load_before": load, "results": results}
    out["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
