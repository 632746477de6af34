"""Keep a library in step with folders as they change: a catch-up scan, then file events.

* The watchdog handler only filters (photo names, no hidden folders) and enqueues.
* The loop (the caller's thread) debounces: a path is handled once no event has touched it for
  ``settle`` seconds (a shorter wait once the writer closed it, a longer one while it holds it
  open: :data:`OPEN_SETTLE_S`) and its size and mtime held still, so a photo still being
  copied is read once, complete.
* Every photo is stored whole, and committed within a second, so a killed watcher loses
  nothing: the catch-up scan of the next start finishes the work, and content hashes keep it
  from doing anything twice.
* The catch-up scan of a large folder can take hours; photos copied in meanwhile are handled
  between the scan's photos (:meth:`Watcher._during_catch_up`), so they are indexed within a
  second or two, not after the catch-up. Only new and written files are handled then: the
  first rename, deletion or folder event waits, with everything after it, for the scan's end.
* ``stop`` (set by SIGINT/SIGTERM in the command) ends the loop between photos; the observer
  thread is stopped and joined in ``finally``.
* The log says what was done, one INFO line per batch of events (what the loop handled before
  it fell idle, or every :data:`BATCH_LOG_S` seconds while busy): photos new, changed, moved,
  gone (kept as missing), failed (with the reason), folders that came, went or were renamed. Each path's
  outcome is logged at DEBUG.
* A change of permissions (``chmod``) is an event too: a photo that could not be read is
  indexed once it can be. When the system drops events (more changes at once than the kernel
  queues, ``fs.inotify.max_queued_events``), every folder is scanned again, so nothing that
  changed meanwhile is missed.
* Where the system's inotify limits are reached (watches, instances), at the start or as a
  folder comes in, that folder is polled instead (:data:`FALLBACK_POLL_S`).
* Network folders (NFS, SMB, sshfs...) send no inotify events for changes made by other
  machines, so a folder on one is polled instead (watchdog's PollingObserver, every
  :data:`NETWORK_POLL_S` seconds), detected from ``/proc/self/mountinfo``; ``poll`` forces
  either way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import re
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from facetags.ingest.scan import absolute, is_hidden, is_photo_name, printable, storable
from facetags.text import plural

if TYPE_CHECKING:
    from facetags.library import Library

log = logging.getLogger(__name__)

SETTLE_S = 0.5  # quiet time before a file that was written to is read
CLOSED_SETTLE_S = 0.05  # ... once its writer closed it
#: ... while its writer still holds it open (a slow copy over a network, paused): read earlier,
#: it was recorded (and logged) as failed, half written, once or several times
OPEN_SETTLE_S = 5.0
POLL_S = 0.05
JOIN_TIMEOUT_S = 10.0
#: While events keep coming, what was done is logged at least this often, seconds.
BATCH_LOG_S = 10.0
#: Photo outcomes worth a line in the log, in its order (unchanged and touched are not).
LOGGED = ("new", "changed", "moved", "restored", "duplicate", "deleted", "copy_gone", "failed")
#: ... in the words the scan's summary uses: a deleted photo is gone from disk, not forgotten
SAID = {
    "deleted": "gone",
    "restored": "back",
    "copy_gone": "gone, copies of photos still at another path",
}
#: ... and what is said after the paths named, for one photo and for several
AFTER = {
    "deleted": (
        "kept with its faces and names until back or forgotten",
        "kept with their faces and names until back or forgotten",
    ),
    "restored": ("with its faces and names", "with their faces and names"),
}
#: Seconds between looks at whether each watched folder is still the one watched: a folder
#: renamed or moved away raises no event of its own, and its events go on under the old path.
ROOT_CHECK_S = 1.0
#: Photos of each outcome (new, moved, failed...) named in one line, at most.
NAMED_SHOWN = 3
#: How often a folder on a network filesystem is polled for changes, seconds.
NETWORK_POLL_S = 30.0
#: ... and a folder the system's inotify limits leave without events.
FALLBACK_POLL_S = NETWORK_POLL_S
#: Filesystems whose changes from other machines raise no inotify events.
NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "ncpfs", "davfs"}
)
NETWORK_FUSE = ("sshfs", "rclone", "s3fs", "gvfsd-fuse", "smbnetfs", "davfs2")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str, mountinfo: str) -> str:
    """The type of the filesystem ``path`` (absolute, resolved) is on, from the text of
    ``/proc/self/mountinfo`` ("" when no mount matches)."""
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or not rest:
            continue
        point = _unescape(fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the innermost (latest, for equal points) mount
            best, fstype = point, rest[0]
    return fstype


def is_network_fs(fstype: str) -> bool:
    if fstype in NETWORK_FS:
        return True
    kind, _, sub = fstype.partition(".")
    return kind == "fuse" and sub in NETWORK_FUSE


def poll_interval(root: str) -> float:
    """0 (filesystem events) for a local folder, :data:`NETWORK_POLL_S` for a network one."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            fstype = filesystem_type(os.path.realpath(root), fh.read())
    except OSError:  # not Linux: watchdog's native observer (FSEvents, ReadDirectoryChangesW)
        return 0.0
    if is_network_fs(fstype):
        log.info("%s is on %s, a network filesystem: polling every %.0f s", root, fstype, NETWORK_POLL_S)
        return NETWORK_POLL_S
    return 0.0


@dataclass(frozen=True)
class Event:
    kind: str  # created, modified, closed, attrib, deleted, moved; lost: events were dropped;
    # unwatched: a folder inotify could not watch (error: the errno)
    path: str
    dest: str | None
    is_dir: bool
    error: int = 0


class _WatchdogLog(logging.Filter):
    """What watchdog only logs, turned into events for the watcher, which says it once itself:
    a folder left without inotify watches (the system's limits reached as it came in, or when
    the watches were rebuilt after an overflow) and the overflow's own two lines (one with the
    folder as bytes). Attached to watchdog's inotify loggers while a watcher runs."""

    LOGGERS = ("watchdog.observers.inotify", "watchdog.observers.inotify_c")

    def __init__(self, events: queue.Queue[Event], roots: Sequence[str]) -> None:
        super().__init__()
        self.events = events
        self.roots = roots

    def filter(self, record: logging.LogRecord) -> bool:
        msg, args = str(record.msg), record.args if isinstance(record.args, tuple) else ()
        if msg.startswith("Inotify queue overflowed"):
            return False
        if msg == "Unable to watch %r: %s" and len(args) == 2:
            exc = args[1]
        elif msg.startswith("Unable to rebuild recursive inotify watches") and len(args) == 1:
            exc = record.exc_info[1] if record.exc_info else None
        else:
            return True
        folder = os.fsdecode(args[0])  # type: ignore[arg-type]
        if not isinstance(exc, OSError) or not _inside(folder, self.roots):
            return True  # not a limit, or another watcher's folder
        self.events.put(Event("unwatched", folder, None, True, exc.errno or 0))
        return False

    def __enter__(self) -> _WatchdogLog:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _inside(path: str, folders: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or under one."""
    return any((path + os.sep).startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _no_events(folders: Sequence[str], error: int, every: float) -> None:
    """Say that ``folders`` are polled for want of inotify resources, and how to raise the limit."""
    name = "max_user_watches" if error == errno.ENOSPC else "max_user_instances"
    try:
        with open(f"/proc/sys/fs/inotify/{name}") as current:
            now = int(current.read())
    except (OSError, ValueError):
        now = 8192
    what = "no inotify watch left" if error == errno.ENOSPC else "no inotify instance left"
    log.warning(
        "%s: %s (fs.inotify.%s is %d): polling every %.0f s instead. To see changes at once, raise"
        " it and restart the watcher: echo fs.inotify.%s=%d | sudo tee -a"
        " /etc/sysctl.d/90-inotify.conf && sudo sysctl --system",
        ", ".join(folders),
        what,
        name,
        now,
        every,
        name,
        2 * now,
    )


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
        if kind == "events_lost":  # the kernel's queue overflowed (watchdog >= 7.1.1)
            self.events.put(Event("lost", os.fsdecode(event.src_path), None, True))
            return
        if kind not in ("created", "modified", "closed", "attrib", "deleted", "moved"):
            return
        if kind in ("modified", "attrib") and event.is_directory:
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
    #: written to (created or modified) since its writer last closed it: the writer may still be
    #: at it. Polled folders send no close, and their events are a poll interval apart anyway.
    open: bool = False


@dataclass
class Batch:
    """What the watcher did since it last said so."""

    since: float = 0.0
    photos: Counter[str] = field(default_factory=Counter)
    named: dict[str, list[str]] = field(default_factory=dict)  # outcome -> the first paths
    folders: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.folders or any(self.photos[k] for k in LOGGED))

    def add(self, outcome: str, path: str) -> None:
        self.photos[outcome] += 1
        if outcome in LOGGED and len(self.named.setdefault(outcome, [])) < NAMED_SHOWN:
            self.named[outcome].append(path)

    def describe(self) -> str:
        """'2 new (/p/a.jpg; /p/b.jpg), 1 gone (/p/c.jpg: kept with its faces and names until back
        or forgotten), 1 failed (/p/x.jpg: not a photo); folder /p/trip came in or changed: 3 new'."""
        parts = []
        for outcome in LOGGED:
            count = self.photos[outcome]
            if count:
                after = AFTER.get(outcome)
                listed = _listed(self.named.get(outcome, []), count, after[count > 1] if after else "")
                parts.append(f"{count} {SAID.get(outcome, outcome)}{listed}")
        return "; ".join(([", ".join(parts)] if parts else []) + self.folders)


def _listed(items: Sequence[str], count: int | None = None, after: str = "") -> str:
    """' (a: why; b: why; 2 more)', at most NAMED_SHOWN of ``count`` (default: all of
    ``items``) named, then ``after``; '' for none."""
    if not items:
        return ""
    more = (len(items) if count is None else count) - min(len(items), NAMED_SHOWN)
    text = "; ".join(items[:NAMED_SHOWN]) + (f"; {more} more" if more > 0 else "")
    return f" ({text}{f': {after}' if after else ''})"


def _identity(folder: str) -> tuple[int, int] | None:
    """(device, inode) of the folder at ``folder``; None if there is none."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


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
        poll: float | None = None,
    ) -> None:
        """``poll``: seconds between polls of the folders, 0 for filesystem events, None to
        choose per folder (polling only on network filesystems)."""
        self.library = library
        self.roots = [absolute(r) for r in roots]
        self.settle = settle
        self.poll = poll
        self.on_done = on_done  # (path, outcome) after each path handled; for tests and logs
        self.events: queue.Queue[Event] = queue.Queue()
        self.observers: dict[float, BaseObserver] = {}  # by poll interval (0: events), while running
        self._files: dict[str, _Pending] = {}
        self._dirs: dict[str, float] = {}
        #: folders to check for news, logged (with these words) only if there is some
        self._check: dict[str, str] = {}
        self._held: deque[Event] = deque()  # events kept, in order, until the catch-up ends
        self._handler = _Handler(self.events, self.roots)
        #: folders polled (network, or for want of inotify watches), with their observer and watch
        self._polled: dict[str, tuple[BaseObserver, ObservedWatch]] = {}
        #: each watched folder's (device, inode) as watched; None while it is away (moved, removed)
        self._root_ids: dict[str, tuple[int, int] | None] = {}
        self._roots_checked = 0.0
        self.batch = Batch()

    @property
    def pending(self) -> int:
        return len(self._files) + len(self._dirs) + len(self._held) + self.events.qsize()

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Watch until ``stop`` is set. ``ready`` is set once the catch-up scan is done."""
        for root in self.roots:
            if not os.path.isdir(root):
                from facetags.errors import NotFoundError

                raise NotFoundError(f"{root}: not a folder")
        self._root_ids = {root: _identity(root) for root in self.roots}
        folders: dict[float, list[str]] = {}
        for root in self.roots:
            folders.setdefault(self._interval(root), []).append(root)
        with _WatchdogLog(self.events, self.roots):
            # before the catch-up scan: nothing that changes meanwhile is missed
            observers = self.observers = self._start(folders, self._handler)
            self._polled = {
                e.watch.path: (o, e.watch) for k, o in observers.items() if k > 0 for e in o.emitters
            }
            self._watch(stop, ready, observers)

    def _watch(
        self, stop: threading.Event, ready: threading.Event | None, observers: dict[float, BaseObserver]
    ) -> None:
        """The catch-up scan, then the event loop; the observers are stopped on the way out."""
        try:
            report = self.library.scan(self.roots, stop=stop, between=lambda: self._during_catch_up(stop))
            failed = _listed([f"{p}: {e}" for p, e in report.failures])
            log.info("catch-up scan of %s: %s%s", ", ".join(self.roots), report.describe(), failed)
            if ready is not None:
                ready.set()
            last_work = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - self._roots_checked >= ROOT_CHECK_S:
                    self._check_roots()
                self._drain()
                did = self._handle_ripe(stop)
                now = time.monotonic()
                last_work = now if did else last_work
                self._log_batch(quiet=not self.pending and now - last_work >= self.settle)
                if not did:
                    stop.wait(POLL_S)
        finally:
            self._log_batch(quiet=True)
            for observer in observers.values():
                observer.stop()
            for observer in observers.values():
                observer.join(JOIN_TIMEOUT_S)
                if observer.is_alive():
                    log.warning("the file observer did not stop within %.0f s", JOIN_TIMEOUT_S)

    @staticmethod
    def _start(folders: dict[float, list[str]], handler: FileSystemEventHandler) -> dict[float, BaseObserver]:
        """An observer for each poll interval (0: filesystem events) watching its folders,
        started. Where the system's inotify limits are reached (a large tree, or other programs
        holding the watches), those folders are polled instead, and the log says how to raise
        the limit."""
        folders = {interval: list(roots) for interval, roots in folders.items()}
        observers: dict[float, BaseObserver] = {}
        followed = folders.pop(0.0, [])
        if followed:
            events = Observer()
            try:
                for root in followed:  # no inotify instance left: raised here (EMFILE)
                    events.schedule(handler, root, recursive=True, follow_symlink=os.path.islink(root))
                events.start()  # no watch left for a folder: raised here (ENOSPC)
                observers[0.0] = events
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                events.stop()  # gives back its watches and closes its inotify instance
                _no_events(followed, exc.errno, FALLBACK_POLL_S)
                folders.setdefault(FALLBACK_POLL_S, []).extend(followed)
        for interval, roots in folders.items():
            poller = observers[interval] = PollingObserver(timeout=interval)
            for root in roots:
                poller.schedule(handler, root, recursive=True, follow_symlink=os.path.islink(root))
            poller.start()
        return observers

    def _during_catch_up(self, stop: threading.Event) -> None:
        """Between two photos of the catch-up scan: note file events and index the files that
        have settled. A rename, a deletion or a folder event could touch photos the scan has
        still to commit, so from the first of those on, events are held, in their order, for
        the loop after the scan."""
        now = time.monotonic()
        while not self._held:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event.is_dir or event.kind not in ("created", "modified", "closed", "attrib"):
                self._held.append(event)
            else:
                self._note(event, now)
        self._handle_ripe(stop, folders=False)

    def _drain(self) -> None:
        now = time.monotonic()
        while self._held:
            self._note(self._held.popleft(), now)
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._note(event, now)

    def _note(self, event: Event, now: float) -> None:
        if event.kind == "unwatched":
            self._poll_instead(event.path, event.error)
            return
        if event.kind == "lost":  # each watched root of the overflowing observer gets one
            roots = [event.path] if event.path in self.roots else self.roots
            log.warning(
                "the system dropped file events (more changes at once than"
                " fs.inotify.max_queued_events allows): scanning %s again",
                ", ".join(roots),
            )
            for root in roots:
                self._dirs[root] = now
                self._check[root] = "scanned again after dropped events"
            return
        dest_ok = event.dest is not None and not is_hidden(event.dest, self.roots)
        if event.kind == "moved" and not dest_ok:  # moved out of sight (e.g. into .trash)
            if event.is_dir:
                self._dirs[event.path] = now
            else:
                self._files[event.path] = _Pending(now, None)
            return
        if event.is_dir:
            if event.kind in ("deleted", "moved"):
                self._unpoll(event.path)
            if event.kind == "moved" and event.dest is not None:
                self._flush_under(event.path)
                moved = self.library.folder_moved(event.path, event.dest)
                self._folder(f"folder {event.path} renamed to {event.dest} ({plural(moved, 'file')} kept)")
                self._dirs[event.dest] = now
                self._check[event.dest] = "came in or changed"
            elif event.kind in ("created", "deleted"):
                self._dirs[event.path] = now
            return
        if event.kind == "moved" and event.dest is not None:
            if not is_photo_name(event.path):  # a temporary file renamed over a photo (an
                # editor's save, facetags' own XMP writer): never indexed, nothing to forget
                self._files.pop(event.path, None)
                if is_photo_name(event.dest):
                    self._files[event.dest] = _Pending(now, _stat(event.dest))
            else:  # a photo renamed, maybe written to just before (edited, then renamed: the
                # library indexes the new path again as that photo, edited)
                self._files.pop(event.path, None)
                self._done(event.dest, self.library.moved(event.path, event.dest))
            return
        pending = self._files.get(event.path)
        if pending is None or event.kind not in ("closed", "attrib"):
            pending = _Pending(now, _stat(event.path), closed=pending.closed if pending else False)
            self._files[event.path] = pending
        pending.since = now
        if event.kind == "closed":
            pending.closed, pending.open = True, False
        elif event.kind in ("created", "modified"):
            pending.closed, pending.open = False, True

    def _poll_instead(self, folder: str, error: int) -> None:
        """Poll ``folder``, which inotify could not watch (``error``: why), if nothing does."""
        if _inside(folder, self._polled) or not os.path.isdir(folder):
            return  # polled already (or the folder above it), or gone
        _no_events([folder], error, FALLBACK_POLL_S)
        self._poll(folder, FALLBACK_POLL_S)
        self._dirs.setdefault(folder, time.monotonic())  # what came in before the poller looked
        self._check.setdefault(folder, "came in or changed")

    def _interval(self, root: str) -> float:
        """Seconds between polls of ``root``; 0: filesystem events."""
        return poll_interval(root) if self.poll is None else self.poll

    def _check_roots(self) -> None:
        """A watched folder renamed or moved away raises no event, and the system goes on
        reporting what happens inside it under the old path: photos copied into it were looked
        for where they are not, and never indexed. Such a folder is let go (its photos are kept
        as missing, as a scan finds them) and looked for at its path every :data:`ROOT_CHECK_S`;
        once a folder is there again (the same, moved back, or another), it is watched and
        scanned."""
        self._roots_checked = time.monotonic()
        for root in self.roots:
            now = _identity(root)
            was = self._root_ids.get(root)
            if now == was:
                continue
            self._root_ids[root] = now
            if was is not None:
                self._let_go(root)
            if now is None:
                log.warning(
                    "watched folder %s was moved or removed: its photos are kept as missing, and it "
                    "is watched again once it is back",
                    root,
                )
                self._dirs[root] = time.monotonic()  # (not a folder: kept as missing)
                continue
            if was is None:
                log.warning("watched folder %s is back: watching it again", root)
            else:
                log.warning("watched folder %s was replaced by another folder: watching that one", root)
            self._follow(root)
            self._dirs[root] = time.monotonic()
            self._check[root] = "is back" if was is None else "was replaced"

    def _let_go(self, root: str) -> None:
        """Stop following ``root``'s old folder; what is pending under it is void."""
        self._unpoll(root)
        for observer in self.observers.values():
            for emitter in list(observer.emitters):
                if emitter.watch.path == root:
                    with contextlib.suppress(KeyError, OSError):
                        observer.unschedule(emitter.watch)
        prefix = root.rstrip(os.sep) + os.sep
        for path in [p for p in self._files if p.startswith(prefix)]:
            del self._files[path]
        for folder in [f for f in self._dirs if f == root or f.startswith(prefix)]:
            del self._dirs[folder]

    def _follow(self, root: str) -> None:
        """Watch (or poll) the folder now at ``root``."""
        interval = self._interval(root)
        if interval == 0:
            observer = self.observers.get(0.0)
            if observer is None:
                observer = self.observers[0.0] = Observer()
                observer.start()
            try:
                observer.schedule(self._handler, root, recursive=True, follow_symlink=os.path.islink(root))
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                self._poll_instead(root, exc.errno)
            return
        self._poll(root, interval)

    def _poll(self, folder: str, interval: float) -> None:
        """Poll ``folder`` every ``interval`` seconds (its poller started if there is none)."""
        poller = self.observers.get(interval)
        if poller is None:
            poller = self.observers[interval] = PollingObserver(timeout=interval)
            poller.start()
        watch = poller.schedule(self._handler, folder, recursive=True, follow_symlink=os.path.islink(folder))
        self._polled[folder] = (poller, watch)

    def _unpoll(self, folder: str) -> None:
        """A polled folder was deleted or renamed: its poller stops following it (a folder made
        at that path again is watched, or polled, afresh)."""
        polled = self._polled.pop(folder, None)
        if polled is not None:
            observer, watch = polled
            with contextlib.suppress(KeyError):
                observer.unschedule(watch)

    def _flush_under(self, folder: str) -> None:
        """Handle pending files inside a folder that is about to be renamed."""
        prefix = folder.rstrip(os.sep) + os.sep
        for path in [p for p in self._files if p.startswith(prefix)]:
            del self._files[path]
            self._files[path] = _Pending(0.0, None)

    def _handle_ripe(self, stop: threading.Event, folders: bool = True) -> bool:
        """Handle every path that has settled (``folders``: folders too). Returns whether
        anything was done."""
        now = time.monotonic()
        did = False
        for path, pending in list(self._files.items()):
            if stop.is_set():
                break
            wait = self.settle
            if pending.closed:
                wait = CLOSED_SETTLE_S
            elif pending.open:
                wait = max(self.settle, OPEN_SETTLE_S)
            if now - pending.since < wait:
                continue
            current = _stat(path)
            if current != pending.stat and current is not None and pending.stat is not None:
                pending.stat, pending.since = current, now  # still growing: wait again
                continue
            del self._files[path]
            self._done(path, self.library.index_photo(path))
            did = True
        for folder, since in list(self._dirs.items()) if folders else []:
            if stop.is_set() or now - since < self.settle:
                continue
            del self._dirs[folder]
            quiet = self._check.pop(folder, None)  # say only what it finds
            if storable(folder) is None:  # the library keeps paths as text: nothing in it is indexed
                self._folder(f"folder {printable(folder)} skipped: its name is not valid UTF-8; rename it")
            elif os.path.isdir(folder):
                report = self.library.scan([folder], stop=stop)
                found = ", ".join(f"{report.counts[k]} {SAID.get(k, k)}" for k in LOGGED if report.counts[k])
                failed = _listed([f"{p}: {e}" for p, e in report.failures])
                if found or failed or quiet is None:
                    what = quiet or "came in or changed"
                    self._folder(f"folder {folder} {what}{': ' + found if found else ''}{failed}")
                self._done(folder, f"scanned: {report.describe()}", count=False)
            else:
                gone = self.library.folder_deleted(folder)
                self._folder(
                    f"folder {folder} gone"
                    + (
                        f" ({plural(gone, 'file')}; photos not on disk elsewhere are kept with their faces"
                        " and names until back or forgotten)"
                        if gone
                        else ""
                    )
                )
                self._done(folder, f"deleted {gone}", count=False)
            did = True
        return did

    def _folder(self, note: str) -> None:
        if not self.batch:
            self.batch.since = time.monotonic()
        self.batch.folders.append(note)

    def _done(self, path: str, outcome: str, count: bool = True) -> None:
        """One path handled: logged at DEBUG, counted in the batch (``count``: a photo's outcome)."""
        log.debug("%s: %s", path, outcome)
        if count:
            if not self.batch:
                self.batch.since = time.monotonic()
            said = printable(path)
            if outcome == "failed" and storable(path) is None:  # not recorded: it cannot be
                said = f"{printable(path)}: file name is not valid UTF-8; rename the file"
            elif outcome == "failed":
                failure = self.library.store.failure(path)
                said = f"{path}: {failure.error if failure else 'failed'}"
            self.batch.add(outcome, said)
        if self.on_done is not None:
            self.on_done(path, outcome)

    def _log_batch(self, quiet: bool) -> None:
        """Say what was done: once quiet, or every BATCH_LOG_S seconds while busy."""
        if not self.batch:
            if self.batch.photos:
                self.batch = Batch()  # unchanged or touched photos only: nothing worth a line
            return
        if quiet or time.monotonic() - self.batch.since >= BATCH_LOG_S:
            log.info("%s", self.batch.describe())
            self.batch = Batch()
