"""Analyse photos on the workers of a Dask distributed cluster (``scan --cluster ADDRESS``).

One more executor behind :class:`facetags.ingest.parallel.Analysers`: the workers run the same
:func:`~facetags.ingest.parallel.analyse_file` on photos they read from storage they share with
the scanning process (the same absolute paths), and send back the small results; the scanning
process stays the library's one writer, with at most :attr:`ClusterPool.ahead` photos in flight.
Each task analyses several photos (:data:`PHOTOS_PER_TASK`, gathered as for local workers:
:class:`~facetags.ingest.parallel.Batching`), since the engine's own cost per
task (scheduler, client and worker bookkeeping, a round trip) is near that of a small photo; its
results come back in one transfer, kept until its last photo is committed. A worker that dies has its
batch re-run elsewhere by the scheduler; if that fails too (the engine gives up on it, or the
scheduler is gone) the scan analyses those photos itself.

``distributed`` is an optional extra (``pip install 'facetags[cluster]'``), imported only here
and only when a scan names a cluster.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import socket
import threading
import uuid
import warnings
from collections import Counter
from concurrent.futures import CancelledError
from typing import Any

from facetags.config import CLUSTER_ADDRESS, Settings, load_settings
from facetags.errors import ClusterError
from facetags.ingest.parallel import (
    Batching,
    BatchResult,
    analyse_file,
    portable,
    worker_settings,
)
from facetags.ingest.pipeline import Processed

log = logging.getLogger(__name__)

#: Photos analysed per task at most: twice a local worker's (the engine's cost per task is
#: larger; measured on 4,069 photos: 0.91x to 0.94x of 2 local workers' speed with 16, 0.85x with 8).
PHOTOS_PER_TASK = 16

#: Seconds to reach the scheduler and to wait for a first worker.
CONNECT_TIMEOUT_S = 10


class NotShared(Exception):
    """A worker cannot see a photo at the path the scanning process gave."""


def on_this_worker(settings: Settings, per_host: dict[str, int]) -> Settings:
    """Runs on a worker: ``settings`` with this worker's share of onnxruntime's threads, so that
    the analyses running at once on one machine (``per_host``: machine -> analyses at once)
    share its cores, as the local pool's workers do. The machine's own ``threads`` setting
    counts (its ``config.toml`` or ``FACETAGS_THREADS``; 0, the default: its cores), not the
    scanning machine's: a laptop's setting does not limit a big worker machine."""
    from distributed import get_worker

    here = get_worker().address.rsplit(":", 1)[0]
    own = dataclasses.replace(settings, threads=_own_threads())
    return worker_settings(own, per_host.get(here, 1))


@functools.cache
def _own_threads() -> int:
    return load_settings().threads


def analyse_batch_on_worker(
    paths: list[str], settings: Settings, library: str | None, host: str, per_host: dict[str, int]
) -> list[Processed | Exception]:
    """Runs on a worker: :func:`analyse_file` for each of ``paths``, with the settings of
    :func:`on_this_worker`; a photo's error is its own result (raised again for that photo alone
    in the scanning process)."""
    _keep_heap()
    here = on_this_worker(settings, per_host)
    results: list[Processed | Exception] = []
    for path in paths:
        try:
            if not os.path.lexists(path):
                raise NotShared(f"{socket.gethostname()}: {path} is not there")
            results.append(analyse_file(path, here, library, host))
        except Exception as exc:
            results.append(portable(exc))
    return results


@functools.cache
def _keep_heap() -> None:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes
    glibc's mmap threshold at 128 KiB: every image-sized array is then a fresh mmap, faulted in
    page by page and unmapped when freed. Measured: +10% CPU for the same photos (local workers
    given the same variable; docs/scale.md). Give this process glibc's usual ceilings back
    (32 MiB mmap threshold, trim above 64 MiB free), once; nothing on a system without glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class _Gone(FileNotFoundError):
    """A photo that went while a worker looked for it: the scan indexes it (as gone) itself."""


class _Result(BatchResult):
    """A photo on the cluster: one a worker cannot see is the scan's error, unless it is gone."""

    def result(self, stop: threading.Event | None = None) -> Processed:
        try:
            return super().result(stop)
        except NotShared as exc:
            if os.path.lexists(self.path):  # here but not there: the workers do not share it
                raise ClusterError(
                    f"a cluster worker cannot read {self.path} ({exc}): the workers must see the"
                    " photos at the same paths as this machine"
                ) from None
            raise _Gone(self.path) from None  # gone here too: the scan records it itself


class _OneLine(logging.Filter):
    """Dask's own warnings and errors (a lost connection) as one line, without its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def _quiet_dask() -> None:
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return  # -v: everything, tracebacks included
    one_line = _OneLine()
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _OneLine) for f in logger.filters):
                logger.addFilter(one_line)


#: Packages that must be the same version on this machine, the scheduler and the workers (Dask
#: sends pickled tasks and results between them; the versions Dask itself requires to match).
SAME_EVERYWHERE = ("python", "dask", "distributed", "cloudpickle", "msgpack")


def facetags_version() -> str:
    """Runs on each worker (:func:`check_software`)."""
    from facetags import __version__

    return __version__


def software_mismatches(versions: dict[str, Any]) -> list[str]:
    """What ``Client.get_versions()`` shows differing from this machine, one phrase each
    ("distributed 2025.5.1 on the scheduler and 2 workers, 2026.8.0 here")."""
    here = versions["client"]["packages"]
    others = [("the scheduler", versions["scheduler"])] + [
        ("worker", info) for info in versions.get("workers", {}).values()
    ]
    found = []
    for package in SAME_EVERYWHERE:
        want = _comparable(package, here.get(package))
        where: dict[str, Counter[str]] = {}
        for name, info in others:
            have = _comparable(package, (info or {}).get("packages", {}).get(package))
            if have != want:
                where.setdefault(str(have), Counter())[name] += 1
        for have, places in where.items():
            said = [_where(place, n) for place, n in places.items()]
            found.append(f"{package} {have} on {' and '.join(said)}, {want} here")
    return found


def _where(place: str, n: int) -> str:
    return place if place != "worker" else f"{n} worker{'s' * (n != 1)}"


def _comparable(package: str, version: str | None) -> str | None:
    """Python's major.minor (pickles travel between patch releases); other packages whole."""
    if package == "python" and version:
        return ".".join(version.split(".")[:2])
    return version


def check_software(client: Any, address: str) -> None:
    """Raise :class:`ClusterError` unless the scheduler and workers run the Dask, Python and
    facetags versions this machine runs (otherwise tasks fail in ways Dask reports with a
    traceback, or results differ)."""
    from facetags import __version__

    mismatches = software_mismatches(client.get_versions(check=False))
    if not mismatches:
        try:
            workers = client.run(facetags_version)
        except Exception as exc:  # the worker could not import facetags (or run anything)
            raise ClusterError(
                f"the workers of the cluster at {address} cannot run facetags ({type(exc).__name__}:"
                f" {exc}): pip install 'facetags[cluster]=={__version__}' on every worker machine"
            ) from None
        other = Counter(v for v in workers.values() if v != __version__)
        mismatches = [f"facetags {v} on {_where('worker', n)}, {__version__} here" for v, n in other.items()]
    if mismatches:
        raise ClusterError(
            f"the cluster at {address} runs other software than this machine: {'; '.join(mismatches)}."
            " Install the same versions on every machine"
            f" (pip install 'facetags[cluster]=={__version__}' in the same Python)"
        )


class ClusterPool(Batching):
    """The workers of the Dask cluster whose scheduler is at ``address``."""

    result_type = _Result
    batch = PHOTOS_PER_TASK

    def __init__(
        self,
        settings: Settings,
        address: str,
        library: str | None,
        photos: int | None = None,
        between: bool = False,
    ) -> None:
        try:
            from distributed import Client
            from distributed.client import ClosedClientError, FutureCancelledError
            from distributed.comm.core import CommClosedError
            from distributed.scheduler import KilledWorker
        except ImportError as exc:
            raise ClusterError(
                f"scanning on a cluster needs Dask distributed: pip install 'facetags[cluster]' ({exc})"
            ) from exc
        if re.fullmatch(CLUSTER_ADDRESS, address) is None:
            raise ClusterError(f"{address!r} is not a scheduler address (like tcp://nas.local:8786)")
        _quiet_dask()
        self.settings = settings
        self.address = address
        self.library = library
        self.host = socket.gethostname()
        self.lost: tuple[type[BaseException], ...] = (
            _Gone,
            KilledWorker,
            FutureCancelledError,
            ClosedClientError,
            CancelledError,
            CommClosedError,
            OSError,
            TimeoutError,
        )
        try:
            with warnings.catch_warnings():  # Dask's version table: check_software says it in a line
                warnings.simplefilter("ignore")
                # results come straight from the workers, not relayed by the scheduler (Dask's
                # default): half the traffic and less of the scheduler's CPU; a worker this
                # machine cannot reach is asked through the scheduler still (Dask falls back)
                self._client = Client(
                    address, timeout=CONNECT_TIMEOUT_S, set_as_default=False, direct_to_workers=True
                )
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise ClusterError(f"cannot reach the cluster scheduler at {address} ({exc})") from exc
        try:
            self._client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self._client.close()
            raise ClusterError(f"the cluster at {address} has no workers ({exc})") from exc
        try:
            check_software(self._client, address)
        except (OSError, TimeoutError) as exc:
            self._client.close()
            raise ClusterError(f"lost the cluster at {address} while checking its software ({exc})") from exc
        except ClusterError:
            self._client.close()
            raise
        slots = self._client.nthreads()  # worker address -> threads
        per_host: Counter[str] = Counter()
        for worker, threads in slots.items():
            per_host[worker.rsplit(":", 1)[0]] += threads
        self._per_host = dict(per_host)  # analyses at once on each machine
        self.workers = max(1, sum(slots.values()))
        self._start_batches(photos, between)
        self._scan = uuid.uuid4().hex  # the tasks' keys: facetags-analyse-<scan>-<n>
        self._sent = 0
        log.info("analysing on %d workers of the cluster at %s", self.workers, address)

    def _task(self, paths: list[str]) -> Any:
        args = (paths, self.settings, self.library, self.host, self._per_host)
        key = f"facetags-analyse-{self._scan}-{self._sent}"
        self._sent += 1
        return self._client.submit(analyse_batch_on_worker, *args, key=key, pure=False)

    def close(self, at_once: bool = False) -> None:
        """Stop: the photos not yet back are released (the scheduler drops them; a task running
        goes on to its end on its worker, unwaited); the workers stay up for the next scan."""
        self._client.close()


__all__ = [
    "CONNECT_TIMEOUT_S",
    "PHOTOS_PER_TASK",
    "SAME_EVERYWHERE",
    "ClusterPool",
    "NotShared",
    "analyse_batch_on_worker",
    "check_software",
    "facetags_version",
    "on_this_worker",
    "software_mismatches",
]
