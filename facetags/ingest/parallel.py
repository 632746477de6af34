"""Analyse several photos at once in worker processes; the scanning process stays the library's
one writer (facetags.ingest.indexer commits each result in its own transaction, in walk order).

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
than committing the photo did. A task not yet full is sent as soon as a worker would otherwise
wait (a scan's first photos, a small scan) or the scan waits for one of its photos.

An executor is anything with the :class:`Analysers` interface; :mod:`facetags.ingest.cluster`
is the other one (a Dask cluster's workers), and the scan loop does not know which it has.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import socket
import stat
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Protocol

from facetags.config import Settings
from facetags.db.connect import connect_readonly
from facetags.db.store import Store
from facetags.ingest.pipeline import Pipeline, Processed, Timings

log = logging.getLogger(__name__)

#: Fewer photos to analyse than this are done in the scanning process: starting workers (each
#: loads the models) costs more than it saves.
PARALLEL_FROM = 8
#: Photos submitted ahead per worker (the bounded window).
AHEAD_PER_WORKER = 2
#: ... and at least this many: when storing results is the slower half (placing faces in a
#: library of millions), finished results wait, and the faces of all of them are compared with
#: the library in one pass (facetags.people.incremental). A waiting result is a few kB.
AHEAD_FOR_WRITER = 32
#: Photos analysed per task at most (:class:`Batching`).
PHOTOS_PER_TASK = 8


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


def analyse_files(
    paths: list[str], settings: Settings, library: str | None = None
) -> list[Processed | Exception]:
    """:func:`analyse_file` for each of ``paths`` (one task of :class:`PhotoPool`); a photo's error
    is its own result, raised again for that photo alone in the scanning process."""
    results: list[Processed | Exception] = []
    for path in paths:
        try:
            results.append(analyse_file(path, settings, library))
        except Exception as exc:
            results.append(exc)
    return results


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
    """A photo being analysed: :meth:`result` waits for it (a ``concurrent.futures.Future``,
    or an engine's own future); :meth:`done` says whether it would wait."""

    def result(self) -> Processed: ...

    def done(self) -> bool: ...


class Analysers(Protocol):
    """Where :func:`analyse_file` runs: ``workers`` at once, at most ``ahead`` photos in flight."""

    workers: int
    ahead: int
    #: What :meth:`submit` or a result raises when a worker (or the engine) is gone: the scan
    #: then analyses the photo itself.
    lost: tuple[type[BaseException], ...]

    def submit(self, path: str) -> Pending: ...

    def close(self) -> None: ...


class Batch:
    """Photos sent to the workers as one task (or still gathering: ``future`` None)."""

    def __init__(self, pool: Batching) -> None:
        self.pool = pool
        self.paths: list[str] = []
        self.future: Any = None
        self._results: list[Processed | Exception] | None = None

    def results(self) -> list[Processed | Exception]:
        """The task's results, fetched once (from a cluster, each ``Future.result()`` is a round
        trip that sends all of them again) and kept until its last photo is committed."""
        if self._results is None:
            if self.future is None:  # the scan waits for a photo of this batch: send it as it is
                self.pool.send(self)
            self._results = self.future.result()
        return self._results


class BatchResult:
    """One photo of a :class:`Batch` (a :class:`Pending`)."""

    def __init__(self, path: str, batch: Batch, index: int) -> None:
        self.path = path
        self.batch = batch
        self.index = index

    def done(self) -> bool:
        return self.batch.future is not None and bool(self.batch.future.done())

    def result(self) -> Processed:
        outcome = self.batch.results()[self.index]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Batching:
    """Gathers submitted photos into tasks of up to :attr:`batch`; a task not yet full is sent
    when fewer tasks than :attr:`workers` are out (a worker would wait) or when the scan waits
    for one of its photos. Subclasses say how a task is sent (:meth:`_task`) and may wrap each
    photo's result (:attr:`result_type`)."""

    workers: int
    batch: int = PHOTOS_PER_TASK
    result_type: type[BatchResult] = BatchResult

    def _start_batches(self) -> None:
        self._gathering = Batch(self)
        self._out: list[Batch] = []  # sent, maybe not finished

    def submit(self, path: str) -> Pending:
        batch = self._gathering
        batch.paths.append(path)
        result = self.result_type(path, batch, len(batch.paths) - 1)
        if len(batch.paths) >= self.batch or self._queued() < self.workers:
            self.send(batch)  # full, or a worker would wait for it
        return result

    def _queued(self) -> int:
        """Tasks sent and not finished."""
        self._out = [b for b in self._out if not b.future.done()]
        return len(self._out)

    def send(self, batch: Batch) -> None:
        """Send ``batch`` as one task (raises one of the pool's ``lost`` if its workers are gone)."""
        if batch is self._gathering:
            self._gathering = Batch(self)
        batch.future = self._task(batch.paths)
        self._out.append(batch)

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


def _start_worker(parent: int, level: int, fmt: str | None) -> None:
    """Runs first in each worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scanning process's to handle
    if fmt is not None:
        logging.basicConfig(level=level, format=fmt)
    threading.Thread(target=_exit_with, args=(parent,), name="facetags-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this worker once the scanning process is gone (killed: nothing else would)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


class PhotoPool(Batching):
    """``workers`` processes on this machine running :func:`analyse_files`."""

    lost: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def __init__(self, settings: Settings, workers: int, library: str | None) -> None:
        self.settings = worker_settings(settings, workers)  # what each worker analyses with
        self.library = library
        self.workers = workers
        self.ahead = max(AHEAD_PER_WORKER * workers * self.batch, AHEAD_FOR_WRITER)
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=_worker_start_args(),
        )
        self._start_batches()
        log.info("analysing with %d worker processes", workers)

    def _task(self, paths: list[str]) -> Any:
        return self._executor.submit(analyse_files, paths, self.settings, self.library)

    def close(self) -> None:
        """Stop: photos not started are dropped, those being analysed are waited for."""
        self._executor.shutdown(wait=True, cancel_futures=True)


#: How a process analysing one photo can die of the photo: the kernel's OOM killer (SIGKILL) or a
#: decoder's crash. SIGTERM, SIGINT or SIGHUP mean facetags is being stopped: no one's fault.
CRASH_SIGNALS = frozenset(
    {signal.SIGKILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE}
)


class AnalysisDied(Exception):
    """The process analysing a photo on its own died of it (a crash signal: :data:`CRASH_SIGNALS`)."""


class AnalysisStopped(Exception):
    """The process analysing a photo on its own was stopped (a stop signal), or never started:
    nothing is known about the photo."""


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
    "Pending",
    "PhotoPool",
    "analyse_alone",
    "analyse_file",
    "analyse_files",
    "worker_settings",
    "worker_threads",
]
