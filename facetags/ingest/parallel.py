"""Analyse several photos at once in worker processes; the scanning process stays the library's
one writer (facetags.ingest.indexer stores each result whole, in walk order).

The per-photo work is :func:`analyse_file`, a plain function of (path, settings, library file)
returning a small picklable :class:`~facetags.ingest.pipeline.Processed` (faces, landmarks,
thumbnails, vectors; no pixels), so any executor that can call a function in another process
can run it. Here it is a ``concurrent.futures.ProcessPoolExecutor`` ("spawn": no state is
inherited, and the same on every system). Each worker loads the detector and embedder once,
with onnxruntime's threads sized so that workers x threads ~ cores (each worker is handed the
settings with its share as ``threads``: :func:`worker_settings`), and looks content hashes up
in the library read-only (SQLite WAL), so a photo already indexed (a moved folder, a
duplicate) is decoded and hashed but never analysed. At most :attr:`PhotoPool.ahead` photos are
in flight, so memory grows with the workers, not with the library.

Photos go to the workers in tasks of a few (:class:`Batching`, :data:`PHOTOS_PER_TASK`): each
task is a round trip through the executor (a future, a pickled call and result, wake-ups of the
scanning process's threads), which with one photo a task cost the scanning process more CPU
than committing the photo did. Each worker's first photo goes alone (it starts at once), later
ones in full tasks, sized for the scan; a task not yet full is sent when the scan waits for one
of its photos, and once the scan has no more photos, the last few are shared between the
workers (:meth:`Batching.flush`).

An executor is anything with the :class:`Analysers` interface; :mod:`facetags.ingest.cluster`
is the other one (a Dask cluster's workers), and the scan loop does not know which it has.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import os
import pickle
import signal
import socket
import stat
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import wait as wait_for
from typing import Any, Protocol

from facetags.config import Settings
from facetags.db.connect import connect_readonly
from facetags.db.store import Store
from facetags.ingest.pipeline import Pipeline, Processed, Timings
from facetags.ingest.scan import printable
from facetags.text import OwnDebug

log = logging.getLogger(__name__)

#: Fewer photos to analyse than this are done in the scanning process: starting workers (each
#: loads the models) costs more than it saves.
PARALLEL_FROM = 8
#: Tasks submitted ahead per worker (the bounded window).
AHEAD_PER_WORKER = 2
#: ... and at least this many: when storing results is the slower half (placing faces in a
#: library of millions), finished results wait, and the faces of all of them are compared with
#: the library in one pass (facetags.people.incremental). A waiting result is a few kB.
AHEAD_FOR_WRITER = 32
#: Photos analysed per task at most (:class:`Batching`).
PHOTOS_PER_TASK = 8
#: ... and fewer in a small scan: at least this many tasks per worker.
TASKS_PER_WORKER = 4
#: ... and at most this many while the scan does other work between photos (the watcher).
PHOTOS_BETWEEN = 2
#: Seconds at most between looks at the scan's stop while it waits for a worker's result.
STOP_POLL_S = 0.05
#: Seconds a scan waits for one task's results before it says so (a worker stuck on a photo, or
#: stopped, holds the commits up: the progress line stands still).
SLOW_TASK_S = 120.0
#: Seconds a stopped scan waits for its workers to finish the photos they are on; still busy
#: then (a photo that never ends, a stopped process), they are killed.
STOP_WAIT_S = 30.0


def analyse_file(
    path: str, settings: Settings, library: str | None = None, host: str | None = None
) -> Processed:
    """Decode, hash and (unless ``library`` already holds the photo) detect, align and embed
    ``path``. Models and the read-only library connection are opened once per process (per
    thread, where an engine runs several in one process). ``host``: look the library up only on
    this machine (SQLite is not to be shared over a network; a photo found already indexed is
    only work saved, the scanning process decides)."""
    pipeline = _pipeline(settings, threading.get_ident())
    pipeline.timings = Timings()  # each result carries its own stage times
    known = None
    reader = _reader(library, threading.get_ident()) if host is None or host == socket.gethostname() else None
    if reader is not None:

        def known(content_hash: str) -> bool:
            return reader.photo_by_hash(content_hash) is not None

    return pipeline.process(path, known)


@functools.cache
def _pipeline(settings: Settings, _thread: int) -> Pipeline:
    return Pipeline(settings)


#: Read-only connections to libraries, by (path, thread), with the file they opened.
_readers: dict[tuple[str, int], tuple[tuple[int, int], Store]] = {}


def _reader(library: str | None, thread: int) -> Store | None:
    """A read-only connection to ``library`` for this thread, or None if it is not a file. A
    worker that outlives a scan (a Dask cluster's) may see the library deleted and created
    anew at the same path: the connection is to the file there now, never to a deleted one."""
    if library is None:
        return None
    try:
        st = os.stat(library)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    opened = _readers.get((library, thread))
    if opened is not None and opened[0] == (st.st_dev, st.st_ino):
        return opened[1]
    if opened is not None:
        opened[1].conn.close()
    store = Store(connect_readonly(library))
    _readers[(library, thread)] = ((st.st_dev, st.st_ino), store)
    return store


class Pending(Protocol):
    """A photo being analysed: :meth:`result` waits for it (:class:`BatchResult`, over a
    ``concurrent.futures.Future`` or an engine's own future); :meth:`done` says whether it would
    wait."""

    def result(self, stop: threading.Event | None = None) -> Processed:
        """Wait for the photo's result; :class:`ScanStopped` once ``stop`` is set meanwhile."""

    def done(self) -> bool: ...


class Analysers(Protocol):
    """Where :func:`analyse_file` runs: ``workers`` at once, at most ``ahead`` photos in flight."""

    workers: int
    ahead: int
    #: What a result raises when a worker (or the engine) is gone: the scan then analyses the
    #: photo itself (:class:`Batching` records a task that cannot be sent; submit never raises).
    lost: tuple[type[BaseException], ...]

    def submit(self, path: str) -> Pending: ...

    def flush(self) -> None:
        """No more photos will be submitted: send any still gathering."""

    def close(self, at_once: bool = False) -> None:
        """Stop; ``at_once``: without waiting for the photos being analysed."""


def analyse_files(
    paths: list[str], settings: Settings, library: str | None = None
) -> list[Processed | Exception]:
    """:func:`analyse_file` for each of ``paths`` (one task of :class:`PhotoPool`); a photo's error
    is its own result (:func:`portable`), raised again for that photo alone in the scanning
    process. Once the scan has stopped (:meth:`PhotoPool.close`), the photos not yet begun are
    left: :class:`AnalysisStopped` each."""
    results: list[Processed | Exception] = []
    for path in paths:
        if _stopped is not None and _stopped.value:
            results.append(AnalysisStopped("the scan stopped"))
            continue
        try:
            results.append(analyse_file(path, settings, library))
        except Exception as exc:
            results.append(portable(exc))
    return results


def portable(exc: Exception) -> Exception:
    """``exc`` fit to travel back in a task's list of results: without its traceback (which holds
    the frames, decoded pixels and all, until the task ends), and as a RuntimeError saying what
    it was if it cannot be pickled (one such error would fail the task's other photos)."""
    exc = exc.with_traceback(None)
    exc.__cause__ = exc.__context__ = None  # their tracebacks hold frames too
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class ScanStopped(Exception):
    """The scan was stopped while it waited for a worker's result (nothing of the photo is known)."""


class Part:
    """Photos ``start`` to ``end`` of a :class:`Batch`, sent as one task: its future, or why it
    could not be sent (``error``: the workers are gone)."""

    def __init__(self, start: int, end: int, future: Any = None, error: BaseException | None = None) -> None:
        self.start, self.end = start, end
        self.future = future
        self.error = error
        self._results: list[Processed | Exception] | None = None

    def done(self) -> bool:
        return self.future is None or bool(self.future.done())

    def results(self, stop: threading.Event | None = None, photo: str = "") -> list[Processed | Exception]:
        """The task's results, fetched once (from a cluster, each ``Future.result()`` is a round
        trip that sends all of them again) and kept until its last photo is committed. ``stop``:
        :class:`ScanStopped` once it is set (a worker stuck on a photo must not keep a stopped
        scan, or watcher, waiting). A wait longer than :data:`SLOW_TASK_S` is logged, once, with
        ``photo`` (the one the scan waits for)."""
        if self.error is not None:
            raise self.error
        if self._results is None:
            if stop is not None and not self.future.done():
                # wait for the task to end, then fetch once: a fetch cut short by a timeout would
                # be asked for again, and a cluster would send the results twice
                woken = threading.Event()
                self.future.add_done_callback(lambda _future: woken.set())
                # done() again after each wake: Dask calls back when a result is lost too (its
                # worker died), and the task runs again
                slow = time.monotonic() + SLOW_TASK_S
                while not self.future.done():  # woken by the result; by the stop within STOP_POLL_S
                    if stop.is_set():
                        raise ScanStopped
                    if time.monotonic() > slow:
                        log.warning(
                            "%s: a worker has had it (or the photos sent with it) for %d s; still "
                            "waiting (Ctrl-C stops the scan; the next one finishes it)",
                            printable(photo or "a photo"),
                            SLOW_TASK_S,
                        )
                        slow = float("inf")
                    woken.wait(STOP_POLL_S)
                    woken.clear()
            self._results = self.future.result()
        return self._results


class Batch:
    """Photos gathered for the workers: sent as one task, or split into a few (:meth:`Batching.flush`)."""

    def __init__(self, pool: Batching) -> None:
        self.pool = pool
        self.paths: list[str] = []
        self.parts: list[Part] = []  # empty while gathering

    def part(self, index: int) -> Part:
        """The sent part holding photo ``index``; the scan waits for it: a batch still gathering
        is sent as it is."""
        if not self.parts:
            self.pool.send(self)
        return next(p for p in self.parts if p.start <= index < p.end)


class BatchResult:
    """One photo of a :class:`Batch` (a :class:`Pending`)."""

    def __init__(self, path: str, batch: Batch, index: int) -> None:
        self.path = path
        self.batch = batch
        self.index = index

    def done(self) -> bool:
        return bool(self.batch.parts) and self.batch.part(self.index).done()

    def result(self, stop: threading.Event | None = None) -> Processed:
        part = self.batch.part(self.index)
        outcome = part.results(stop, self.path)[self.index - part.start]
        if isinstance(outcome, Exception):
            raise outcome
        if outcome.path != self.path:  # a bookkeeping error must not store one photo's faces for another
            raise RuntimeError(f"a worker's result for {outcome.path} came back as {self.path}'s")
        return outcome


class Batching:
    """Gathers submitted photos into tasks of up to :attr:`batch`. The first photo each worker
    gets goes at once, alone; later ones wait for a full task, or for the scan to wait for one
    of them; when the scan has no more to submit, :meth:`flush` shares out the last few between
    the workers. Subclasses say how a task is sent (:meth:`_task`) and may wrap each photo's
    result (:attr:`result_type`)."""

    workers: int
    batch: int = PHOTOS_PER_TASK
    result_type: type[BatchResult] = BatchResult
    #: what :meth:`_task` raises when the workers are gone
    lost: tuple[type[BaseException], ...]

    def _start_batches(self, photos: int | None = None, between: bool = False) -> None:
        """Tasks sized for a scan of ``photos``: at least :data:`TASKS_PER_WORKER` per worker,
        so that the last ones share out evenly; and of at most :data:`PHOTOS_BETWEEN` photos
        when the scan does other work between photos (``between``: the watcher indexes photos
        copied in during its catch-up, and waits for a task's photos before it can)."""
        if photos is not None:
            self.batch = max(1, min(self.batch, photos // (TASKS_PER_WORKER * self.workers)))
        if between:
            self.batch = min(self.batch, PHOTOS_BETWEEN)
        self.ahead = max(AHEAD_PER_WORKER * self.workers * self.batch, AHEAD_FOR_WRITER)
        self._gathering = Batch(self)
        self._tasks = 0  # sent so far

    def submit(self, path: str) -> Pending:
        batch = self._gathering
        batch.paths.append(path)
        result = self.result_type(path, batch, len(batch.paths) - 1)
        if len(batch.paths) >= self.batch or self._tasks < self.workers:
            self.send(batch)  # full, or a worker's first photo
        return result

    def flush(self) -> None:
        """No more photos will come: send the ones gathering, shared between the workers."""
        if self._gathering.paths:
            self.send(self._gathering, pieces=self.workers)

    def send(self, batch: Batch, pieces: int = 1) -> None:
        """Send ``batch`` as ``pieces`` tasks at most. A task that cannot be sent (the workers are
        gone) is recorded: its photos' results raise why."""
        if batch is self._gathering:
            self._gathering = Batch(self)
        size = -(-len(batch.paths) // max(1, pieces))
        for start in range(0, len(batch.paths), size):
            end = min(start + size, len(batch.paths))
            try:
                part = Part(start, end, future=self._task(batch.paths[start:end]))
            except self.lost as exc:
                part = Part(start, end, error=exc)
            batch.parts.append(part)  # held by its photos' results only: gone once they are committed
            self._tasks += 1

    def _task(self, paths: list[str]) -> Any:
        """Start analysing ``paths``; a future of their results (:func:`analyse_files`'s)."""
        raise NotImplementedError


def worker_threads(threads: int, workers: int) -> int:
    """onnxruntime threads for each of ``workers`` analysing at once on one machine: the
    ``threads`` setting (0: this machine's cores) shared out, at least one."""
    total = threads if threads > 0 else (os.cpu_count() or 1)
    return max(1, total // workers)


def worker_settings(settings: Settings, workers: int) -> Settings:
    """``settings`` for one of ``workers`` analysing at once on this machine: ``threads`` is its
    share (:func:`worker_threads`), which its models' sessions open with."""
    return dataclasses.replace(settings, threads=worker_threads(settings.threads, workers))


def _worker_start_args() -> tuple[int, int, str | None]:
    """What :func:`_start_worker` needs from this process: its id, and its logging set-up (the
    level and format, so a worker logs as the scan does)."""
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    return os.getpid(), root.getEffectiveLevel(), formatter._fmt if formatter is not None else None


#: In a worker process, the flag its scan sets once it stops (:meth:`PhotoPool.close`): a shared
#: boolean without a lock (a worker killed while holding an Event's lock would leave the scan
#: waiting for it for ever).
_stopped: Any = None


def _start_worker(parent: int, level: int, fmt: str | None, stopped: Any = None) -> None:
    """Runs first in each worker process; ``stopped``: the pool's stop event."""
    global _stopped
    _stopped = stopped
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scanning process's to handle
    if fmt is not None:
        logging.basicConfig(level=level, format=fmt)
        for handler in logging.getLogger().handlers:
            handler.addFilter(OwnDebug())  # as the scan's
    threading.Thread(target=_exit_with, args=(parent,), name="facetags-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once the scanning process is gone (killed: nothing else would)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class PhotoPool(Batching):
    """``workers`` processes on this machine running :func:`analyse_files`."""

    lost: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def __init__(
        self,
        settings: Settings,
        workers: int,
        library: str | None,
        photos: int | None = None,
        between: bool = False,
    ) -> None:
        """``photos``: how many the scan has to analyse; ``between``: the scan does other work
        between photos (:meth:`Batching._start_batches`)."""
        self.settings = worker_settings(settings, workers)  # what each worker analyses with
        self.library = library
        self.workers = workers
        self._start_batches(photos, between)
        context = get_context("spawn")
        self._stopped = context.RawValue(ctypes.c_bool, False)
        self._open: set[Any] = set()  # tasks sent and not ended
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(*_worker_start_args(), self._stopped),
        )
        log.info("analysing with %d worker processes", workers)

    def _task(self, paths: list[str]) -> Any:
        future = self._executor.submit(analyse_files, paths, self.settings, self.library)
        self._open.add(future)
        future.add_done_callback(self._open.discard)  # in the executor's thread: set ops are atomic
        return future

    def close(self, at_once: bool = False) -> None:
        """Stop: tasks not started are dropped; a worker ends its task once the photo it is on is
        done (the rest of the task come back as :class:`AnalysisStopped`) and is waited for, at
        most :data:`STOP_WAIT_S`; then, or ``at_once`` (Ctrl-C again, an error), or if the wait is
        interrupted, the workers still busy are killed (their photos were not committed: the
        next scan analyses them). With every task ended (a scan that went to its end), the
        workers only have to exit: the scan goes on meanwhile (it re-clusters), and a thread
        kills any still there after :data:`STOP_WAIT_S` (a stopped one)."""
        self._stopped.value = True
        workers = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        if at_once or not all(task.done() for task in list(self._open)):
            _reap(workers, 0.0 if at_once else STOP_WAIT_S)
        else:
            reaper = threading.Thread(target=_reap, args=(workers, STOP_WAIT_S), name="facetags-reaper")
            reaper.daemon = True
            reaper.start()


def _reap(workers: list[Any], wait_s: float) -> None:
    """Wait at most ``wait_s`` for ``workers`` (processes) to exit; kill those still there then,
    or if the wait is interrupted."""
    busy = {worker.sentinel: worker for worker in workers}
    deadline = time.monotonic() + wait_s
    try:
        while busy and (left := deadline - time.monotonic()) > 0:
            for ended in wait_for(list(busy), left):
                busy.pop(ended)
    finally:
        for worker in busy.values():
            log.debug("worker %s still busy after the stop: killed", worker.pid)
            worker.kill()  # SIGKILL: a stopped (SIGSTOP) process too


#: How a process analysing one photo can die of the photo: the kernel's OOM killer (SIGKILL) or a
#: decoder's crash. SIGTERM, SIGINT or SIGHUP mean facetags is being stopped: no one's fault.
CRASH_SIGNALS = frozenset(
    {signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
)


class AnalysisDied(Exception):
    """The process analysing a photo on its own died of it (a crash signal: :data:`CRASH_SIGNALS`)."""


class AnalysisStopped(Exception):
    """The process analysing a photo on its own was stopped (a stop signal), or never started:
    nothing is known about the photo. Also what a worker's task gives for the photos it did not
    begin once its scan had stopped (never committed: the scan is over)."""


def analyse_alone(path: str, settings: Settings, library: str | None) -> Processed:
    """Analyse ``path`` in a process of its own. For a photo whose earlier attempt died with the
    process that made it: a crash (out of memory, a decoder's) or a kill -9 of the scan, which
    look the same from the next scan. Here the photo is the only work of a process the scan
    watches: dead of a crash signal, the photo is to blame (:class:`AnalysisDied`); stopped by
    a stop signal, or failing to start, nothing is known (:class:`AnalysisStopped`). A scan
    killed meanwhile takes the process with it and blames the photo for nothing."""
    context = get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (sender, path, worker_settings(settings, 1), library, *_worker_start_args())
    process = context.Process(target=_analyse_alone, args=args, name="facetags-alone", daemon=True)
    process.start()
    sender.close()
    try:
        while not receiver.poll(0.1):
            if not process.is_alive() and not receiver.poll(0):
                break
        else:
            try:
                kind, value = receiver.recv()
            except EOFError:  # died while it sent
                pass
            else:
                process.join()
                if kind == "error":
                    raise value
                return value
        process.join()
        code = process.exitcode
        if code is not None and code < 0 and -code in CRASH_SIGNALS:
            raise AnalysisDied(f"killed by {signal.Signals(-code).name}")
        stopped = f"stopped by {signal.Signals(-code).name}" if code and code < 0 else f"exit status {code}"
        raise AnalysisStopped(stopped)
    finally:
        receiver.close()
        if process.is_alive():  # interrupted: the photo's process ends with the scan's wait
            process.kill()
            process.join()


def _analyse_alone(
    sender: Any, path: str, settings: Settings, library: str | None, parent: int, level: int, fmt: str | None
) -> None:
    """Runs in the process of :func:`analyse_alone`: the result, or the error, through ``sender``."""
    _start_worker(parent, level, fmt)
    try:
        result: tuple[str, object] = ("ok", analyse_file(path, settings, library))
    except Exception as exc:  # a ModelError, say: the scan's to report
        result = ("error", exc)
    sender.send(result)
    sender.close()


__all__ = [
    "AHEAD_FOR_WRITER",
    "CRASH_SIGNALS",
    "PARALLEL_FROM",
    "PHOTOS_PER_TASK",
    "Analysers",
    "AnalysisDied",
    "AnalysisStopped",
    "Batch",
    "BatchResult",
    "Batching",
    "Part",
    "Pending",
    "PhotoPool",
    "ScanStopped",
    "analyse_alone",
    "analyse_file",
    "analyse_files",
    "portable",
    "worker_settings",
    "worker_threads",
]
