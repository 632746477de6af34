"""Keep a library in step with folders as they change: a catch-up scan, then file events.

* The watchdog handler only filters (photo names, no hidden folders) and enqueues.
* The loop (the caller's thread) debounces: a path is handled once no event has touched it for
  ``settle`` seconds (a shorter wait once the writer closed it) and its size and mtime held
  still, so a photo still being copied is read once, complete.
* Every photo is committed on its own, so a killed watcher loses nothing: the catch-up scan of
  the next start finishes the work, and content hashes keep it from doing anything twice.
* ``stop`` (set by SIGINT/SIGTERM in the command) ends the loop between photos; the observer
  thread is stopped and joined in ``finally``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from facetags.ingest.scan import absolute, is_hidden, is_photo_name

if TYPE_CHECKING:
    from facetags.library import Library

log = logging.getLogger(__name__)

SETTLE_S = 0.5  # quiet time before a file that was written to is read
CLOSED_SETTLE_S = 0.05  # ... once its writer closed it
POLL_S = 0.05
JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Event:
    kind: str  # created, modified, closed, deleted, moved
    path: str
    dest: str | None
    is_dir: bool


class _Handler(FileSystemEventHandler):
    """Filters events and puts them on a queue; does nothing else."""

    def __init__(self, events: queue.Queue[Event], roots: Sequence[str]) -> None:
        self.events = events
        self.roots = list(roots)

    def _wanted(self, path: str, is_dir: bool) -> bool:
        if is_hidden(path, self.roots):
            return False
        return is_dir or is_photo_name(path)

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind not in ("created", "modified", "closed", "deleted", "moved"):
            return
        if kind == "modified" and event.is_directory:
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        if kind == "moved" and dest is not None:
            if not (self._wanted(src, event.is_directory) or self._wanted(dest, event.is_directory)):
                return
        elif not self._wanted(src, event.is_directory):
            return
        self.events.put(Event(kind, src, dest, event.is_directory))


@dataclass
class _Pending:
    since: float
    stat: tuple[int, int] | None
    closed: bool = False


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class Watcher:
    def __init__(
        self,
        library: Library,
        roots: Sequence[str | os.PathLike[str]],
        settle: float = SETTLE_S,
        on_done: Callable[[str, str], None] | None = None,
    ) -> None:
        self.library = library
        self.roots = [absolute(r) for r in roots]
        self.settle = settle
        self.on_done = on_done  # (path, outcome) after each path handled; for tests and logs
        self.events: queue.Queue[Event] = queue.Queue()
        self._files: dict[str, _Pending] = {}
        self._dirs: dict[str, float] = {}

    @property
    def pending(self) -> int:
        return len(self._files) + len(self._dirs) + self.events.qsize()

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Watch until ``stop`` is set. ``ready`` is set once the catch-up scan is done."""
        for root in self.roots:
            if not os.path.isdir(root):
                from facetags.errors import NotFoundError

                raise NotFoundError(f"{root}: not a folder")
        observer = Observer()
        handler = _Handler(self.events, self.roots)
        for root in self.roots:
            observer.schedule(handler, root, recursive=True)
        observer.start()  # before the catch-up scan: nothing that changes meanwhile is missed
        try:
            report = self.library.scan(self.roots, stop=stop)
            log.info("catch-up scan: %s", report.to_json())
            if ready is not None:
                ready.set()
            while not stop.is_set():
                self._drain()
                if not self._handle_ripe(stop):
                    stop.wait(POLL_S)
        finally:
            observer.stop()
            observer.join(JOIN_TIMEOUT_S)
            if observer.is_alive():
                log.warning("the file observer did not stop within %.0f s", JOIN_TIMEOUT_S)

    def _drain(self) -> None:
        now = time.monotonic()
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._note(event, now)

    def _note(self, event: Event, now: float) -> None:
        dest_ok = event.dest is not None and not is_hidden(event.dest, self.roots)
        if event.kind == "moved" and not dest_ok:  # moved out of sight (e.g. into .trash)
            if event.is_dir:
                self._dirs[event.path] = now
            else:
                self._files[event.path] = _Pending(now, None)
            return
        if event.is_dir:
            if event.kind == "moved" and event.dest is not None:
                self._flush_under(event.path)
                self.library.folder_moved(event.path, event.dest)
                self._dirs[event.dest] = now
            elif event.kind in ("created", "deleted"):
                self._dirs[event.path] = now
            return
        if event.kind == "moved" and event.dest is not None:
            if event.path in self._files or not is_photo_name(event.path):
                self._files.pop(event.path, None)
                if is_photo_name(event.path) and not is_hidden(event.path, self.roots):
                    self._files[event.path] = _Pending(now, None)  # forget it if it was indexed
                # else a temporary file renamed over a photo (an editor's save, facetags' own
                # XMP writer): never indexed, so there is nothing to forget
                if is_photo_name(event.dest):
                    self._files[event.dest] = _Pending(now, _stat(event.dest))
            else:
                self._done(event.dest, self.library.moved(event.path, event.dest))
            return
        pending = self._files.get(event.path)
        if pending is None or event.kind != "closed":
            pending = _Pending(now, _stat(event.path), closed=pending.closed if pending else False)
            self._files[event.path] = pending
        pending.since = now
        if event.kind == "closed":
            pending.closed = True
        elif event.kind == "modified":
            pending.closed = False

    def _flush_under(self, folder: str) -> None:
        """Handle pending files inside a folder that is about to be renamed."""
        prefix = folder.rstrip(os.sep) + os.sep
        for path in [p for p in self._files if p.startswith(prefix)]:
            del self._files[path]
            self._files[path] = _Pending(0.0, None)

    def _handle_ripe(self, stop: threading.Event) -> bool:
        """Handle every path that has settled. Returns whether anything was done."""
        now = time.monotonic()
        did = False
        for path, pending in list(self._files.items()):
            if stop.is_set():
                break
            wait = CLOSED_SETTLE_S if pending.closed else self.settle
            if now - pending.since < wait:
                continue
            current = _stat(path)
            if current != pending.stat and current is not None and pending.stat is not None:
                pending.stat, pending.since = current, now  # still growing: wait again
                continue
            del self._files[path]
            self._done(path, self.library.index_photo(path))
            did = True
        for folder, since in list(self._dirs.items()):
            if stop.is_set() or now - since < self.settle:
                continue
            del self._dirs[folder]
            if os.path.isdir(folder):
                report = self.library.scan([folder], stop=stop)
                self._done(folder, f"scanned {report.to_json()}")
            else:
                self._done(folder, f"deleted {self.library.folder_deleted(folder)}")
            did = True
        return did

    def _done(self, path: str, outcome: str) -> None:
        log.info("%s: %s", path, outcome)
        if self.on_done is not None:
            self.on_done(path, outcome)
