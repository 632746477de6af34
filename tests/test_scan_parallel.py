"""A scan with worker processes gives the library a serial scan gives: same faces, vectors and
clusters; known photos are not analysed again; a ``kill -9`` then a rerun equals a clean run.

Real photos (../shared/data deepface photos and the bbt groups), real processes, real SQLite.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.config import Settings
from facetags.ingest.parallel import Batching
from facetags.library import Library
from tests.process_support import kill_when
from tests.process_support import photo_count as _photo_count

Faces = dict[tuple[str, int], tuple[tuple[float, ...], np.ndarray | None]]
Clusters = set[frozenset[tuple[str, tuple[float, ...]]]]


@pytest.fixture(scope="module")
def photos(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deepface photos (full size, 13 people) and the bbt group photos: 69 real photos."""
    folder = tmp_path_factory.mktemp("parallel") / "photos"
    folder.mkdir()
    for src in sorted((shared_data / "deepface" / "photos").glob("*.jpg")):
        shutil.copy2(src, folder / src.name)
    for src in sorted((shared_data / "bbt" / "groups").glob("*.jpg")):
        shutil.copy2(src, folder / f"bbt-{src.name}")
    return folder


def _scan(db: Path, folder: Path, workers: int) -> dict[str, object]:
    with Library.open(db, Settings(library=db, workers=workers)) as lib:
        return lib.scan([folder]).to_json()


def _faces(db: Path) -> Faces:
    """(photo file name, face index) -> (box, vector)."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT fi.path, f.idx, f.x, f.y, f.w, f.h, e.vector FROM faces f"
        " JOIN files fi ON fi.photo_id = f.photo_id LEFT JOIN embeddings e ON e.face_id = f.id"
    ).fetchall()
    conn.close()
    return {
        (Path(path).name, idx): ((x, y, w, h), None if blob is None else np.frombuffer(blob, "<f4"))
        for path, idx, x, y, w, h, blob in rows
    }


def _clusters(db: Path) -> Clusters:
    """Each person as the set of its faces, a face as (photo file name, box rounded)."""
    with Library.open(db, create=False) as lib:
        people: dict[int | None, set[tuple[str, tuple[float, ...]]]] = {}
        for face in lib.faces():
            key = (Path(face.path).name, tuple(round(v, 4) for v in face.box))
            people.setdefault(face.person_id, set()).add(key)
    return {frozenset(faces) for faces in people.values()}


def _same_faces(a: Faces, b: Faces) -> None:
    assert a.keys() == b.keys()
    for key, (box, vector) in a.items():
        other_box, other_vector = b[key]
        np.testing.assert_allclose(box, other_box, atol=1e-6, err_msg=str(key))
        assert (vector is None) == (other_vector is None), key
        if vector is not None and other_vector is not None:
            np.testing.assert_allclose(vector, other_vector, atol=1e-5, err_msg=str(key))


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _same_library(db: Path, serial_db: Path, tables: tuple[str, ...] = ()) -> None:
    """``db`` holds what the serial scan's library holds: as many rows in ``tables`` (nothing
    twice), the same faces with the same boxes and vectors, the same people."""
    for table in tables:
        assert _count(db, table) == _count(serial_db, table), table
    _same_faces(_faces(db), _faces(serial_db))
    assert _clusters(db) == _clusters(serial_db)


@pytest.fixture(scope="module")
def serial(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    db = tmp_path_factory.mktemp("serial") / "serial.db"
    return db, _scan(db, photos, workers=1)


@pytest.mark.slow
def test_two_workers_give_the_serial_library(
    photos: Path, serial: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    serial_db, serial_report = serial
    db = tmp_path / "parallel.db"
    report = _scan(db, photos, workers=2)
    assert serial_report["workers"] == 1 and report["workers"] == 2
    assert report["new"] == serial_report["new"] == 69
    assert report["faces"] == serial_report["faces"] > 69
    _same_library(db, serial_db)
    assert len(_clusters(db)) > 10


@pytest.mark.slow
def test_a_moved_folder_is_hashed_by_the_workers_not_analysed(photos: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    shutil.copytree(photos, first)
    db = tmp_path / "lib.db"
    _scan(db, tmp_path, workers=2)
    before = _faces(db)
    # copied, not renamed: new inodes, so each photo must be decoded and hashed to be known
    shutil.copytree(first, tmp_path / "second")
    shutil.rmtree(first)
    report = _scan(db, tmp_path, workers=2)
    assert report["workers"] == 2
    assert report["moved"] == 69 and report["new"] == 0
    timings = report["timings"]
    assert isinstance(timings, dict)
    assert timings["hash"] > 0  # the workers' stage times come back with their results
    assert timings["detect"] == 0 and timings["embed"] == 0  # and none analysed a known photo
    assert _faces(db).keys() == before.keys()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes in /proc")
def test_kill_9_of_a_parallel_scan_then_a_rerun_equals_a_clean_run(
    photos: Path, serial: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    db = tmp_path / "killed.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "FACETAGS_WORKERS": "2"}
    command = [sys.executable, "-m", "facetags", "scan", str(photos)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []

    def ten_in() -> bool:
        if _photo_count(db) < 10:
            return False
        workers.extend(_children(proc.pid))  # before the kill: they are orphans after it
        return True

    kill_when(proc, ten_in, "indexing did not start")
    done = _photo_count(db)
    assert 10 <= done < 69, f"killed too late to prove anything ({done})"
    assert len(workers) >= 2, "no worker processes seen"
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers):  # orphaned workers notice and end
        assert time.monotonic() < deadline, "worker processes outlived the killed scan"
        time.sleep(0.1)

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "Traceback" not in rerun.stderr
    serial_db = serial[0]
    with Library.open(db, create=False) as lib:
        status = lib.status()
        assert status.photos == status.files == 69 and status.queue == 0 and not status.failures
    _same_library(db, serial_db)


def test_workers_default_to_the_cores_and_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from facetags.config import default_workers, load_settings
    from facetags.errors import ConfigError

    monkeypatch.setenv("FACETAGS_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    monkeypatch.delenv("FACETAGS_WORKERS", raising=False)
    assert load_settings().workers == default_workers() >= 1
    monkeypatch.setenv("FACETAGS_WORKERS", "3")
    assert load_settings().workers == 3
    assert load_settings(workers=1).workers == 1
    monkeypatch.setenv("FACETAGS_WORKERS", "0")
    with pytest.raises(ConfigError, match="FACETAGS_WORKERS: setting workers: 0 is out of range"):
        load_settings()


@pytest.mark.slow
def test_local_workers_take_a_few_photos_a_task_and_each_photo_keeps_its_own_result(
    photos: Path, tmp_path: Path
) -> None:
    """A task is a round trip through the pool that cost the scanning process more than the
    commit of a photo: photos go out a few at a time, each with its own result or error, and a
    worker that would wait is never kept waiting for a batch to fill."""
    from facetags.ingest.parallel import PHOTOS_PER_TASK, PhotoPool, analyse_file

    settings = Settings(library=tmp_path / "unused.db")
    paths = sorted(str(p) for p in photos.glob("*.jpg"))[:20]
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_bytes(b"no JPEG here")
    paths.insert(5, str(bad))
    pool = PhotoPool(settings, 2, None)
    tasks: list[list[str]] = []
    send = pool._task

    def counted(batch: list[str]) -> object:  # the real task, seen on its way out
        tasks.append(list(batch))
        return send(batch)

    pool._task = counted  # type: ignore[method-assign,assignment]
    try:
        pending = [pool.submit(p) for p in paths]
        pool.flush()  # no more to come: the last few are shared between the workers
        results = [p.result() for p in pending]
    finally:
        pool.close()
    # the first photo of each worker alone, then full tasks, the rest split in two
    assert [len(t) for t in tasks] == [1, 1, PHOTOS_PER_TASK, PHOTOS_PER_TASK, 2, 1]
    assert [p for t in tasks for p in t] == paths
    assert results[5].error is not None and results[5].analysis is None
    here = [analyse_file(p, settings) for p in paths[:3]]
    for got, want in zip(results[:3], here, strict=True):
        assert got.path == want.path and got.photo == want.photo
        assert got.analysis is not None and want.analysis is not None
        assert len(got.analysis.faces) == len(want.analysis.faces)
        for a, b in zip(got.analysis.faces, want.analysis.faces, strict=True):
            assert a.embedding is not None and b.embedding is not None
            assert np.allclose(a.embedding, b.embedding, atol=1e-6)


class _Done:
    """Batching's tasks, run at once in this process (its bookkeeping is what is tested)."""

    def __init__(self, lost: BaseException | None = None) -> None:
        self.tasks: list[list[str]] = []
        self.lost = lost  # raised by the third call, once
        self.calls = 0

    def __call__(self, paths: list[str]) -> object:
        from concurrent.futures import Future

        from facetags.ingest.pipeline import Processed

        self.calls += 1
        if self.lost is not None and self.calls == 3:
            raise self.lost
        self.tasks.append(list(paths))
        future: Future[list[Processed]] = Future()
        future.set_result([Processed(p) for p in paths])
        return future


def _batching(photos: int | None, between: bool, task: _Done) -> Batching:
    from concurrent.futures.process import BrokenProcessPool

    class Pool(Batching):
        workers = 2
        lost = (BrokenProcessPool,)

        def _task(self, paths: list[str]) -> object:
            return task(paths)

    pool = Pool()
    pool._start_batches(photos, between)
    return pool


def test_a_small_scan_gets_small_tasks_and_the_watcher_smaller_still() -> None:
    """Tasks of 8 would leave a worker idle at the end of a small scan (16 photos: 1, 1, 8 and
    6 on one worker), and the watcher, which indexes photos copied in between the scan's
    commits, would wait a whole task for its turn."""
    from facetags.ingest.parallel import PHOTOS_BETWEEN, PHOTOS_PER_TASK

    for photos, between, largest in (
        (16, False, 2),
        (1000, False, PHOTOS_PER_TASK),
        (1000, True, PHOTOS_BETWEEN),
    ):
        task = _Done()
        pool = _batching(photos, between, task)
        pending = [pool.submit(f"/p/{i}.jpg") for i in range(photos)]
        pool.flush()
        assert [r.result().path for r in pending] == [f"/p/{i}.jpg" for i in range(photos)]
        sizes = [len(t) for t in task.tasks]
        assert sizes[:2] == [1, 1] and max(sizes) == largest, (photos, between, sizes)
        assert sum(sizes) == photos
        if (photos, between) == (1000, False):
            assert sizes[-2:] == [3, 3]  # 1 + 1 + 124 x 8, and the last 6 shared out


def test_a_gathering_task_waits_until_full_or_wanted_and_nothing_is_kept_once_committed() -> None:
    """Asking whether a photo is done sends nothing; asking for its result sends its task as it
    is. A task's results are held by its photos' results only: a long scan's memory does not
    grow with the photos it has done (each result is a few kB; a Dask worker keeps a task's
    results while the scan holds its future)."""
    import gc

    from facetags.ingest.parallel import Part

    task = _Done()
    pool = _batching(100, False, task)
    first = [pool.submit(f"/p/{i}.jpg") for i in range(3)]
    assert not first[2].done() and [len(t) for t in task.tasks] == [1, 1]  # waiting for 7 more
    assert first[2].result().path == "/p/2.jpg" and [len(t) for t in task.tasks] == [1, 1, 1]
    del first
    window: list[object] = []
    for i in range(3, 2003):  # a scan's window: submit one, commit the oldest ones
        window.append(pool.submit(f"/p/{i}.jpg"))
        if len(window) == 8:
            assert [r.result().path for r in window] == [f"/p/{j}.jpg" for j in range(i - 7, i + 1)]  # type: ignore[attr-defined]
            window = []
    gc.collect()
    assert sum(isinstance(o, Part) for o in gc.get_objects()) <= 2


def test_a_task_that_cannot_be_sent_fails_its_own_photos_only() -> None:
    """The workers gone while a task is sent: each of its photos says so when its turn comes
    (the scan then analyses it itself); the photos of tasks already done keep their results."""
    from concurrent.futures.process import BrokenProcessPool

    task = _Done(lost=BrokenProcessPool("a worker died"))
    pool = _batching(100, False, task)
    pending = [pool.submit(f"/p/{i}.jpg") for i in range(12)]
    pool.flush()
    assert [r.result().path for r in pending[:2]] == ["/p/0.jpg", "/p/1.jpg"]
    for r in pending[2:10]:  # the third task, of 8, failed to go
        with pytest.raises(BrokenProcessPool):
            r.result()
    assert [r.result().path for r in pending[10:]] == ["/p/10.jpg", "/p/11.jpg"]  # sent after


def test_an_error_travels_back_without_its_frames_and_in_a_form_that_unpickles() -> None:
    from facetags.errors import ModelError
    from facetags.ingest.parallel import portable

    class Unpicklable(Exception):
        def __init__(self, a: int, b: int) -> None:  # pickling passes one argument: fails to load
            super().__init__(f"{a}/{b}")

    try:
        raise ModelError("the embedder file is damaged")
    except ModelError as exc:
        kept = portable(exc)
    assert isinstance(kept, ModelError) and kept.__traceback__ is None  # the scan stops on it, as before
    other = portable(Unpicklable(1, 2))
    assert type(other) is RuntimeError and str(other) == "Unpicklable: 1/2"


@pytest.mark.slow
def test_a_workers_task_stops_between_photos_once_the_scan_has_stopped(tmp_path: Path, t1_path: Path) -> None:
    """Ctrl-C, or the watcher's stop: a worker ends its task after the photo it is on, not after
    all of the task's photos. PhotoPool.close sets a flag each worker was started with; here
    it is set before the task, so the worker begins none of its photos."""
    from facetags.ingest.parallel import AnalysisStopped, PhotoPool

    pool = PhotoPool(Settings(library=tmp_path / "unused.db"), 2, None)
    try:
        going = [pool.submit(str(t1_path)) for _ in range(2)]  # each worker's first photo
        assert all(r.result().analysis is not None for r in going)
        pool._stopped.value = True  # what close() does first
        stopped = [pool.submit(str(t1_path)) for _ in range(4)]
        pool.flush()
        for r in stopped:
            with pytest.raises(AnalysisStopped):
                r.result()
    finally:
        pool.close()
    assert pool._stopped.value


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states in /proc")
def test_a_finished_pool_closes_without_waiting_and_a_stopped_worker_is_killed_later(
    tmp_path: Path, t1_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once every task is back, close() does not wait for the workers to exit (the scan
    re-clusters meanwhile); one that does not exit (stopped with SIGSTOP here) is killed after
    STOP_WAIT_S all the same."""
    from facetags.ingest import parallel
    from facetags.ingest.parallel import PhotoPool

    monkeypatch.setattr(parallel, "STOP_WAIT_S", 2.0)
    pool = PhotoPool(Settings(library=tmp_path / "unused.db"), 2, None)
    workers: list[Any] = []
    try:
        going = [pool.submit(str(t1_path)) for _ in range(2)]
        assert all(r.result().analysis is not None for r in going)
        workers = list(pool._executor._processes.values())  # type: ignore[attr-defined]
        assert len(workers) == 2
        os.kill(workers[0].pid, signal.SIGSTOP)
        start = time.monotonic()
        pool.close()
        assert time.monotonic() - start < 0.5, "close() waited for the workers to exit"
        assert workers[0].is_alive()
        # the executor's thread waits for them too: poll (join returns early when it reaps first)
        while any(w.exitcode is None for w in workers) and time.monotonic() - start < 10:
            time.sleep(0.05)
        assert workers[0].exitcode == -signal.SIGKILL, "the stopped worker was not killed"
        assert time.monotonic() - start > 1.5
        # the other one is gone too (on its own, or killed: an idle worker waits for its next
        # task holding the task queue's lock, and the stopped one may have been the holder)
        assert workers[1].exitcode is not None
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()


def _workers_once_committed(proc: subprocess.Popen[str], db: Path, photos: int) -> list[int]:
    """The worker processes of the scan ``proc``, once it has committed ``photos`` photos."""
    deadline = time.monotonic() + 240
    while _photo_count(db) < photos:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the scan committed nothing"
        time.sleep(0.01)
    workers = [
        pid for pid in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert workers, "no worker process seen"
    return workers


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes in /proc")
def test_a_worker_killed_in_the_middle_of_its_task_loses_nothing(
    photos: Path, serial: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """kill -9 of one worker process (the OOM killer's way) while it holds a task of several
    photos: the scan analyses them itself and ends with the serial scan's library."""
    db = tmp_path / "worker-killed.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "FACETAGS_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "scan", "--json", str(photos)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        os.kill(_workers_once_committed(proc, db, 5)[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "a worker process stopped (it was killed, or ran out of memory)" in err and _photo_count(db) >= 5
    assert "abruptly" not in err  # the executor's wording
    report = json.loads(out)
    assert report["new"] == 69 and report["failed"] == 0
    _same_library(db, serial[0], ("photos", "files", "faces", "embeddings"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes in /proc")
def test_ctrl_c_again_stops_at_once_though_a_worker_is_stuck(
    photos: Path, serial: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """A worker that makes no progress (stopped with SIGSTOP here; a photo that never ends):
    the first Ctrl-C no longer waits for its result for ever, and the second, "at once", does
    not wait for it either: the stuck worker is killed. The resume hint names the library."""
    db = tmp_path / "stuck.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "FACETAGS_WORKERS": "2"}
    command = [sys.executable, "-m", "facetags", "scan", str(photos)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stuck = 0
    try:
        stuck = _workers_once_committed(proc, db, 3)[0]
        os.kill(stuck, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: stop after the current photo...
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)  # ...and again: at once
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - start < 10, "the second Ctrl-C waited"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if stuck and _alive(stuck):
            os.kill(stuck, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert f"run 'facetags --library {db} scan" in err, err
    deadline = time.monotonic() + 10
    while _alive(stuck):
        assert time.monotonic() < deadline, "the stuck worker outlived the scan"
        time.sleep(0.1)
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "Traceback" not in rerun.stderr
    _same_library(db, serial[0], ("photos", "files", "faces", "embeddings"))


def test_a_worker_that_outlives_a_library_reads_the_new_one_at_its_path(
    tmp_path: Path, t1_path: Path
) -> None:
    """A Dask worker outlives scans: when the library is deleted and created anew at the same
    path, its read-only connection follows the new file; otherwise it would find every photo
    "already indexed" in the deleted one and leave all the analysis to the scanning process."""
    from facetags.ingest.parallel import analyse_file

    photo = tmp_path / "t1.jpg"
    shutil.copyfile(t1_path, photo)
    db = tmp_path / "lib.db"
    settings = Settings(library=db)
    with Library.open(db, settings) as lib:
        lib.scan([photo])
    known = analyse_file(str(photo), settings, str(db))
    assert known.photo is not None and known.analysis is None  # found in the library: not analysed
    for leftover in tmp_path.glob("lib.db*"):
        leftover.unlink()
    Library.open(db, settings).close()  # a new, empty library at the same path
    fresh = analyse_file(str(photo), settings, str(db))
    assert fresh.analysis is not None and len(fresh.analysis.faces) == 6


def _progress_since(db: Path, start: float, photos: int) -> bool:
    """A photo committed, or an attempt at one begun, after ``start`` (time.time())."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            began = conn.execute("SELECT MAX(started_at) FROM attempts").fetchone()[0]
            committed = int(conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0])
    except sqlite3.OperationalError:
        return False
    return committed > photos or (began is not None and began > start)


@pytest.mark.slow
def test_a_parallel_scan_killed_twice_blames_no_photo(photos: Path, tmp_path: Path) -> None:
    """Photos analysed by workers are no attempt of the scanning process: killing the scan
    twice while it waits for the same photo does not mark that photo as one that crashes
    facetags (it would be skipped until it changes)."""
    db = tmp_path / "killed.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "FACETAGS_WORKERS": "2"}
    command = [sys.executable, "-m", "facetags", "scan", str(photos)]
    for _ in range(2):
        ready = functools.partial(_progress_since, db, time.time(), _photo_count(db))
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        kill_when(proc, ready, "indexing did not start")
    assert _photo_count(db) < 69, "killed too late to prove anything"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "crashed facetags" not in rerun.stderr
    with Library.open(db, create=False) as lib:
        status = lib.status()
        assert status.photos == status.files == 69 and not status.failures


def test_a_wait_for_a_task_that_does_not_end_says_so_once_and_a_stop_ends_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker stuck on a photo (or stopped) holds the commits up and the progress line stands
    still: after SLOW_TASK_S the scan says which photo it waits for, once; Ctrl-C still ends it."""
    import logging
    import threading
    from concurrent.futures import Future

    from facetags.ingest import parallel

    monkeypatch.setattr(parallel, "SLOW_TASK_S", 0.2)
    part = parallel.Part(0, 1, future=Future())  # a task whose worker never answers
    stop = threading.Event()
    threading.Timer(0.8, stop.set).start()
    with caplog.at_level(logging.WARNING, "facetags.ingest.parallel"), pytest.raises(parallel.ScanStopped):
        part.results(stop, "/photos/big.jpg")
    said = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("/photos/big.jpg: a worker has had it"), said
