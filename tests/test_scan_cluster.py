"""``facetags scan --cluster``: the per-photo work on a real Dask cluster (a scheduler and two
worker processes on 127.0.0.1, started here with Dask's own commands and stopped after).

A worker killed with SIGKILL in the middle of a scan loses nothing and adds nothing twice; the
library equals a local scan's (same faces, vectors and people); a copied folder is only hashed;
the engine's processes talk only over loopback. Real photos (../shared/data deepface + bbt).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.process_support import kill_when, without_read_override
from tests.process_support import photo_count as _photo_count
from tests.test_scan_parallel import (  # the same photos and local scan as the parallel tests
    _count,
    _same_library,
    photos,  # noqa: F401
    serial,  # noqa: F401
)

NO_ENGINE = "needs Dask distributed: pip install 'facetags[cluster]'"

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
#: Dask's HTTP servers (health, metrics) serve nothing, and listen on loopback only.
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": "[]",
    "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": "[]",
}
QUIET = ("--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0")


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen[bytes]]

    def worker_pids(self) -> list[int]:
        import distributed

        with distributed.Client(self.address, timeout=30, set_as_default=False) as client:
            return sorted(client.run(os.getpid).values())

    def tree(self) -> list[int]:
        import psutil

        pids = []
        for proc in self.processes:
            try:
                pids += [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return pids


@contextlib.contextmanager
def running_cluster(
    work: Path, workers: int, wrap: Sequence[str] = (), env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on 127.0.0.1 (the worker
    command run through ``wrap``; ``env``: added to their environment), stopped after."""
    distributed = pytest.importorskip("distributed", reason=NO_ENGINE)
    info = work / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    procs: list[subprocess.Popen[bytes]] = []

    def start(command: list[str], log: str) -> None:
        err = (work / log).open("wb")
        procs.append(
            subprocess.Popen(
                command,
                env={**ENV, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        )

    try:
        start(
            [*dask, "scheduler", "--host", LOOPBACK, "--port", "0", *QUIET, "--scheduler-file", str(info)],
            "scheduler.log",
        )
        deadline = time.monotonic() + 60
        while not info.is_file() or not info.read_text().strip():
            assert procs[0].poll() is None, (work / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)  # written in one go, but be sure it is complete
        address = json.loads(info.read_text())["address"]
        worker = [*dask, "worker", address, "--host", LOOPBACK, "--nworkers", str(workers), "--nthreads", "1"]
        start([*wrap, *worker, *QUIET, "--local-directory", str(work / "workers")], "workers.log")
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=90)
        yield Cluster(address, procs)
    finally:
        for proc in reversed(procs):  # the workers (their nannies end their processes), then the scheduler
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # the session started here
                    proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), workers=2) as running:
        yield running


def _scan(db: Path, folder: Path, address: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "facetags", "--library", str(db), "scan", "--json"]
    return subprocess.Popen(
        [*command, "--cluster", address, str(folder)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_worker_killed_mid_scan_loses_nothing_and_the_library_equals_a_local_scan(
    cluster: Cluster,
    photos: Path,  # noqa: F811
    serial: tuple[Path, dict[str, object]],  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "cluster.db"
    workers = cluster.worker_pids()
    assert len(workers) == 2
    proc = _scan(db, photos, cluster.address)
    try:
        deadline = time.monotonic() + 120
        while _photo_count(db) < 10:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "indexing did not start"
            time.sleep(0.05)
        os.kill(workers[0], signal.SIGKILL)  # its photos in flight are re-run by the engine
        killed_at = _photo_count(db)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert killed_at < 69, f"the worker was killed too late to prove anything ({killed_at})"
    assert "Traceback" not in err
    assert "analysing here" not in err  # the engine re-ran the killed worker's photos itself
    report = json.loads(out)
    assert report["cluster"] == cluster.address and report["workers"] == 2
    assert report["new"] == 69 and report["failed"] == 0
    serial_db, serial_report = serial
    assert report["faces"] == serial_report["faces"]
    _same_library(db, serial_db, ("photos", "files", "faces", "embeddings"))  # nothing twice
    assert sorted(cluster.worker_pids()) != workers  # the engine did restart the killed worker

    # a copied folder: the workers find every photo in the library and analyse none
    moved = tmp_path / "moved"
    shutil.copytree(photos, moved)  # new inodes: each photo must be decoded and hashed
    again = _scan(db, tmp_path / "moved", cluster.address)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    report = json.loads(out)
    assert report["duplicate"] == 69 and report["new"] == 0
    assert report["timings"]["hash"] > 0 and report["timings"]["detect"] == 0
    assert _count(db, "faces") == _count(serial_db, "faces")


def _tasks_done(address: str) -> int:
    """Analysis tasks the scheduler has finished since it started."""
    import distributed

    def count(dask_scheduler: distributed.Scheduler) -> int:
        prefix = dask_scheduler.task_prefixes.get("facetags-analyse")
        return 0 if prefix is None else int(prefix.state_counts["memory"])

    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return int(client.run_on_scheduler(count))


def _results_sent(address: str) -> int:
    """Requests for data the workers have served since they started (each sends one task's
    results)."""
    import distributed

    def sent(dask_worker: distributed.Worker) -> int:
        return int(dask_worker.transfer_outgoing_count_total)

    with distributed.Client(address, timeout=30, set_as_default=False) as client:
        return sum(client.run(sent).values())


@pytest.mark.slow
def test_a_few_photos_go_per_task_and_the_library_equals_a_local_scan(
    cluster: Cluster,
    photos: Path,  # noqa: F811
    serial: tuple[Path, dict[str, object]],  # noqa: F811
    tmp_path: Path,
) -> None:
    from facetags.ingest.cluster import PHOTOS_PER_TASK

    db = tmp_path / "batched.db"
    before, sent_before = _tasks_done(cluster.address), _results_sent(cluster.address)
    out, err = _scan(db, photos, cluster.address).communicate(timeout=300)
    assert "Traceback" not in err and "analysing here" not in err, err
    tasks = _tasks_done(cluster.address) - before
    # each task's results travel once, not once for each of its photos
    assert _results_sent(cluster.address) - sent_before == tasks
    report = json.loads(out)
    assert report["new"] == 69 and report["failed"] == 0  # 69: the last batch is sent part-full
    # one task per photo before; now a full batch per task, but for the few sent part-full when
    # the scan waited for one of their photos
    assert -(-69 // PHOTOS_PER_TASK) <= tasks < 69 // 2, tasks
    serial_db, _ = serial
    _same_library(db, serial_db, ("photos", "files", "faces", "embeddings"))


@pytest.mark.slow
def test_a_worker_analyses_with_its_share_of_its_machines_threads(cluster: Cluster, tmp_path: Path) -> None:
    """Two worker processes on this machine: each gets half of its machine's own ``threads``
    setting (0, the default: of its cores) in the settings it analyses with; the scanning
    machine's setting does not count there, its other settings do."""
    import distributed

    from facetags.config import Settings
    from facetags.ingest.cluster import on_this_worker

    per_host = {f"tcp://{LOOPBACK}": 2, "tcp://192.0.2.1": 8}  # as ClusterPool counts them
    sent = Settings(threads=6, min_face=30)  # the scanning machine's
    with distributed.Client(cluster.address, timeout=30, set_as_default=False) as client:
        automatic = client.submit(on_this_worker, sent, per_host).result()
    assert automatic == Settings(threads=max(1, (os.cpu_count() or 1) // 2), min_face=30)
    with (
        running_cluster(tmp_path, workers=2, wrap=["env", "FACETAGS_THREADS=10"]) as own,
        distributed.Client(own.address, timeout=30, set_as_default=False) as client,
    ):
        shared = client.submit(on_this_worker, sent, per_host).result()
    assert shared == Settings(threads=5, min_face=30)


@pytest.mark.slow
def test_the_engine_talks_over_loopback_only(cluster: Cluster) -> None:
    import psutil

    cluster.worker_pids()  # some traffic first
    addresses = set()
    for pid in cluster.tree():
        try:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                addresses.add(conn.laddr.ip)
                if conn.raddr:
                    addresses.add(conn.raddr.ip)
        except psutil.NoSuchProcess:
            continue
    assert addresses == {LOOPBACK}


def _benchmark() -> Any:
    """benchmarks/scale.py, which starts its clusters with the settings docs/scale.md gives."""
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            found |= _leaves(value, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = value
    return found


def test_the_dask_settings_in_the_docs_are_dasks_own_and_reach_scheduler_and_workers(tmp_path: Path) -> None:
    """docs/scale.md has users put Dask settings in ~/.config/dask/facetags.yaml (they cut the
    servers' own CPU): each is a setting Dask has, changed from its default (a misspelt key
    would be read and silently unused), and a scheduler and workers started as the docs say
    run with it."""
    pytest.importorskip("distributed", reason=NO_ENGINE)
    import dask.config
    import distributed
    import yaml

    block = _benchmark().dask_settings()  # the block, read from the docs as the benchmark reads it
    settings = _leaves(yaml.safe_load(block))
    assert "distributed.worker.profile.enabled" in settings
    defaults = _leaves(yaml.safe_load((Path(distributed.__file__).parent / "distributed.yaml").read_text()))
    for key, value in settings.items():
        assert key in defaults, f"{key}: not a Dask setting"
        assert value != defaults[key], f"{key}: Dask's default already"
    config = tmp_path / "dask"
    config.mkdir()
    (config / "facetags.yaml").write_text(block)

    def seen() -> dict[str, Any]:
        return {key: dask.config.get(key) for key in settings}

    with (
        running_cluster(tmp_path, workers=2, env={"DASK_CONFIG": str(config)}) as running,
        distributed.Client(running.address, timeout=30, set_as_default=False) as client,
    ):
        assert client.run_on_scheduler(seen) == settings
        assert list(client.run(seen).values()) == [settings, settings]
        assert list(client.run(seen, nanny=True).values()) == [settings, settings]


def test_without_dask_a_cluster_scan_says_what_to_install(tmp_path: Path, astronaut_path: Path) -> None:
    shutil.copy(astronaut_path, tmp_path)
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if not installed: importing it fails\n"
        "from facetags.cli import main\n"
        f"main(['--library', {str(tmp_path / 'lib.db')!r}, 'scan', '--cluster', 'tcp://{LOOPBACK}:9',"
        f" {str(tmp_path)!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(
        "facetags: error: scanning on a cluster needs Dask distributed: pip install 'facetags[cluster]'"
    )


def test_a_cluster_that_is_not_there_is_one_line(tmp_path: Path, astronaut_path: Path) -> None:
    pytest.importorskip("distributed", reason=NO_ENGINE)
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    shutil.copy(astronaut_path, photos_dir)
    for address, message in (
        ("nas.local", "is not a scheduler address"),
        (f"tcp://{LOOPBACK}:9", "cannot reach the cluster scheduler"),  # the discard port: refused
    ):
        command = [sys.executable, "-m", "facetags", "--library", str(tmp_path / "lib.db"), "scan"]
        out = subprocess.run(
            [*command, "--cluster", address, str(photos_dir)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr
    with sqlite3.connect(tmp_path / "lib.db") as conn:  # nothing recorded as failed
        assert conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0


@pytest.mark.slow
def test_a_worker_that_cannot_see_the_photos_stops_the_scan_and_records_nothing(
    tmp_path: Path, astronaut_path: Path
) -> None:
    """The worker runs in its own mount namespace with an empty folder over the photos' one."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs unshare -m (root) to hide the photos from the worker")
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    shutil.copy(astronaut_path, photos_dir / "astronaut.jpg")
    hide = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"', str(photos_dir)]
    db = tmp_path / "lib.db"
    with running_cluster(tmp_path, workers=1, wrap=hide) as hidden:
        out = _scan(db, photos_dir, hidden.address)
        _, err = out.communicate(timeout=120)
    assert out.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"a cluster worker cannot read {photos_dir / 'astronaut.jpg'}" in lines[0]
    assert "the workers must see the photos at the same paths" in lines[0]
    assert _count(db, "failures") == 0 and _count(db, "photos") == 0  # not recorded as a bad file
    local = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(db), "scan", "--json", str(photos_dir)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(local.stdout)["new"] == 1, local.stderr  # so the next scan indexes it


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root, to run the worker without its right to read every file"
)
def test_a_photo_a_worker_may_not_read_is_analysed_here(
    tmp_path: Path, astronaut_path: Path, t1_path: Path
) -> None:
    """A worker run without the right to read one photo (another user, a share that refuses
    it) hands it back: this machine, which can read it, analyses it; nothing is recorded bad."""
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    shutil.copy(t1_path, photos_dir / "t1.jpg")
    locked = photos_dir / "locked.jpg"
    shutil.copy(astronaut_path, locked)
    locked.chmod(0)
    db = tmp_path / "lib.db"
    try:
        with running_cluster(tmp_path, workers=1, wrap=without_read_override()) as refused:
            out = _scan(db, photos_dir, refused.address)
            stdout, err = out.communicate(timeout=120)
    finally:
        locked.chmod(0o644)
    assert out.returncode == 0, err
    report = json.loads(stdout)
    assert report["new"] == 2 and report["failures"] == [], report
    assert f"{locked}: a worker could not read it" in err and "analysing here" in err
    assert _count(db, "failures") == 0 and _count(db, "photos") == 2


@pytest.mark.slow
def test_kill_9_of_a_cluster_scan_then_a_rerun_equals_a_local_scan(
    cluster: Cluster,
    photos: Path,  # noqa: F811
    serial: tuple[Path, dict[str, object]],  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "killed.db"
    proc = _scan(db, photos, cluster.address)
    kill_when(proc, lambda: _photo_count(db) >= 10, "indexing did not start", timeout=120)
    done = _photo_count(db)
    assert 10 <= done < 69, f"killed too late to prove anything ({done})"
    rerun = _scan(db, photos, cluster.address)  # the same cluster, its client gone
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["new"] == 69 - done and report["failed"] == 0
    serial_db = serial[0]
    _same_library(db, serial_db, ("photos", "files", "faces", "embeddings", "queue"))


@pytest.mark.slow
def test_a_scheduler_killed_mid_scan_leaves_the_scan_to_finish_here(
    photos: Path,  # noqa: F811
    serial: tuple[Path, dict[str, object]],  # noqa: F811
    tmp_path: Path,
) -> None:
    db = tmp_path / "lib.db"
    with running_cluster(tmp_path, workers=2) as doomed:
        proc = _scan(db, photos, doomed.address)
        try:
            deadline = time.monotonic() + 120
            while _photo_count(db) < 10:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "indexing did not start"
                time.sleep(0.05)
            os.kill(doomed.processes[0].pid, signal.SIGKILL)  # the scheduler
            killed_at = _photo_count(db)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert killed_at < 69, f"killed too late to prove anything ({killed_at})"
    assert "Traceback" not in err and "analysing here" in err
    report = json.loads(out)
    assert report["new"] == 69 and report["failed"] == 0
    serial_db = serial[0]
    _same_library(db, serial_db, ("photos", "files", "faces", "embeddings", "queue"))


@pytest.mark.slow
def test_workers_running_another_facetags_stop_the_scan_in_one_line(
    tmp_path: Path, astronaut_path: Path
) -> None:
    """The workers import another installation of facetags (another version): the scan says
    so before any photo is sent, instead of mixing two versions' results into the library.
    (Another Dask version shows the same way: `software_mismatches` below.)"""
    other = tmp_path / "elsewhere"
    shutil.copytree(ROOT / "facetags", other / "facetags", ignore=shutil.ignore_patterns("__pycache__"))
    init = other / "facetags" / "__init__.py"
    init.write_text(init.read_text().replace("__version__ = ", "__version__ = '0.0.0+elsewhere'  # ", 1))
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    shutil.copy(astronaut_path, photos_dir)
    elsewhere = ["env", "-C", str(other), f"PYTHONPATH={other}"]  # python -m puts the cwd first
    with running_cluster(tmp_path, workers=2, wrap=elsewhere) as running:
        command = [sys.executable, "-m", "facetags", "--library", str(tmp_path / "lib.db"), "scan"]
        out = subprocess.run(
            [*command, "--cluster", running.address, str(photos_dir)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "runs other software than this machine: facetags 0.0.0+elsewhere on 2 workers" in lines[0]
    with sqlite3.connect(tmp_path / "lib.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0


def test_software_mismatches_name_each_package_and_where() -> None:
    from facetags.ingest.cluster import software_mismatches

    def machine(python: str, dask: str) -> dict[str, object]:
        packages = {
            "python": python,
            "dask": dask,
            "distributed": dask,
            "cloudpickle": "3.1.3",
            "msgpack": "1.2.4",
        }
        return {"host": {}, "packages": packages}

    here = machine("3.11.7.final.0", "2026.8.0")
    same = {
        "client": here,
        "scheduler": machine("3.11.9.final.0", "2026.8.0"),
        "workers": {"a": here, "b": here},
    }
    assert software_mismatches(same) == []  # another patch release of Python is fine
    mixed = {
        "client": here,
        "scheduler": here,
        "workers": {
            "a": machine("3.12.1.final.0", "2025.5.1"),
            "b": machine("3.12.1.final.0", "2025.5.1"),
            "c": here,
        },
    }
    assert software_mismatches(mixed) == [
        "python 3.12 on 2 workers, 3.11 here",
        "dask 2025.5.1 on 2 workers, 2026.8.0 here",
        "distributed 2025.5.1 on 2 workers, 2026.8.0 here",
    ]
    old_scheduler = {**same, "scheduler": machine("3.11.7.final.0", "2025.5.1")}
    assert software_mismatches(old_scheduler)[0] == "dask 2025.5.1 on the scheduler, 2026.8.0 here"


@pytest.mark.slow
def test_a_photo_deleted_mid_scan_is_not_a_lost_worker_nor_a_bad_file(
    cluster: Cluster,
    photos: Path,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A photo deleted after the walk and before a worker reads it: the worker cannot find it,
    and neither can the scan; nothing is said about workers and nothing is recorded as bad."""
    from facetags.config import Settings
    from facetags.library import Library

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    doomed = sorted(folder.iterdir())[-1]  # the walk's last: not sent yet after the first photo
    db = tmp_path / "lib.db"

    def progress(done: int, total: int, path: str) -> None:
        if done == 1:
            doomed.unlink()

    with caplog.at_level("INFO"), Library.open(db, Settings(library=db, cluster=cluster.address)) as lib:
        report = lib.scan([folder], progress=progress)
        photos_indexed = lib.status().photos
    assert report.cluster == cluster.address
    assert not any("worker process stopped" in r.getMessage() for r in caplog.records)
    assert report.failures == []
    assert report.counts["new"] == 68
    assert photos_indexed == 68
