"""Open a library file: created private (0600), WAL, foreign keys, a generous busy timeout.

Writes go through :func:`transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``)
so two processes never deadlock upgrading a read to a write; with WAL, readers never wait.
SQLite's errors in opening and writing (a full disk, a read-only file, folder or mount) become
a :class:`LibraryError` that says what is wrong and what to do (:mod:`facetags.db.diagnose`).
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from facetags.db.diagnose import BUSY, library_error, marked_read_only
from facetags.errors import LibraryError

log = logging.getLogger(__name__)

#: How long a writer waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 60.0
FILE_MODE = 0o600
DIR_MODE = 0o700


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 before SQLite opens it (SQLite gives its -wal and
    -shm files the database file's mode)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise LibraryError(f"{path}: cannot create library file ({exc.strerror})") from exc
    os.close(fd)
    os.chmod(path, FILE_MODE)  # the umask may have removed bits; never added any


def scan_first(path: Path) -> str:
    """What to run to make the library at ``path``: with ``--library`` unless it is the default."""
    import shlex

    from facetags.paths import default_library

    here = path.expanduser().absolute()
    given = (
        "" if here == default_library().expanduser().absolute() else f" --library {shlex.quote(str(here))}"
    )
    return f"run `facetags{given} scan DIR` first"


def connect(path: str | os.PathLike[str], *, create: bool = True) -> sqlite3.Connection:
    """An open connection to the library at ``path`` in autocommit mode (use :func:`transaction`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise LibraryError(f"{path}: is a directory, not a library file")
    if not path.exists():
        if not create:
            raise LibraryError(f"{path}: no library here ({scan_first(path)})")
        _create_private(path)
    _companions_private(path)  # before SQLite maps a read-only -shm left from before
    read_only = marked_read_only(path)  # opened to read even by root, whom SQLite would let write
    try:
        conn = sqlite3.connect(
            _to_read(path) if read_only else path,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
        )
    except sqlite3.Error as exc:
        raise library_error(path, exc) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _ours(conn, path, create)  # before anything is changed in the file
        mode = _journal_wal(conn)
        if str(mode).lower() != "wal":
            log.warning("%s: journal mode is %s, not WAL (a network file system?)", path, mode)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as exc:
        conn.close()
        if _locked(exc):
            raise LibraryError(f"{path}: {BUSY} ({exc})") from exc
        raise library_error(path, exc) from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise library_error(path, exc) from exc
    except LibraryError:
        conn.close()
        raise
    _companions_private(path)
    return conn


def _ours(conn: sqlite3.Connection, path: Path, create: bool) -> None:
    """Refuse another program's SQLite database (a mistyped ``--library``: migrating it would
    add facetags' tables to it) and, unless ``create``, an empty file. An empty file that is to
    become a library is made private like a new one."""
    tables = {
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if tables and "schema_migrations" not in tables:
        listed = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise LibraryError(
            f"{path}: not a facetags library (another program's database, with tables {listed}); "
            "left as it is: give --library a new file or a facetags library"
        )
    if not tables and not create:
        raise LibraryError(f"{path}: no library here, an empty file ({scan_first(path)})")
    st = path.stat()
    if not tables and stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid():  # never /dev/null
        os.chmod(path, FILE_MODE)


def _companions_private(path: Path) -> None:
    """Give the library's ``-wal`` and ``-shm`` files mode 0600. SQLite gives them the library
    file's mode when it makes them: a read-only library (0444) opened to read leaves a read-only
    ``-shm`` that no later write can use, even once the library is writable again."""
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        try:
            st = companion.stat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o777 != FILE_MODE:
                os.chmod(companion, FILE_MODE)
        except OSError:  # gone, or not ours to change: SQLite says what it needs
            continue


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _journal_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL. The switch needs the database to itself, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection opens or switches the
    same new file (several processes starting on a fresh library): retry for the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.
    SQLite's errors (a full disk, a read-only library) leave it as a :class:`LibraryError`."""
    _begin(conn)
    try:
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise library_error(_path_of(conn), exc) from exc
    except BaseException:
        _rollback(conn)
        raise


class GroupedWrites:
    """Many writes in one transaction, for a writer that makes many small ones in a row (a scan
    stores each photo in a write of its own). Each :meth:`write` is a savepoint of the open
    transaction, begun by the first; the transaction commits at :meth:`commit` (before the
    writer pauses), and once it has been open ``max_s`` at the end of a write. A commit writes
    every page it changed to the WAL: one a photo wrote ~100 KB a photo (4,069 photos: 385 MB;
    grouped, 135 MB).

    - A write that fails is undone alone, as its own transaction would have been; one that
      leaves SQLite no transaction (a full disk) loses the group's earlier writes too, and a
      write cut short before its savepoint was undone (an interrupt) makes the group roll back
      instead of committing: never half a write. ``on_rollback`` is told of each (what the
      caller keeps in memory may be ahead of the library). A process killed loses the writes
      since the last commit.
    - Other connections wait for the lock in SQLite's busy handler, which tries again at most
      every 100 ms and would rarely find the lock free between two groups of a busy writer: a
      transaction that stayed open ``max_s`` (the writer never paused) leaves the lock free for
      ``gap_s`` after it commits."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        max_s: float,
        gap_s: float = 0.0,
        on_rollback: Callable[[], None] | None = None,
    ) -> None:
        self.conn = conn
        self.max_s = max_s
        self.gap_s = gap_s
        self.on_rollback = on_rollback
        self._began: float | None = None  # when the open transaction began
        self._depth = 0  # writes open (nested ones are savepoints too)
        self._broken = False  # a write ended with its savepoint neither released nor undone
        self._suspend = False  # Ctrl-Z came while the transaction was open: stop once committed

    def suspend(self) -> None:
        """Ctrl-Z (SIGTSTP): stop this process now, or once the open transaction is committed (at
        the end of the write under way at most): stopped, it must not hold the library's lock
        another program waits for. Runs in a signal handler: takes no lock."""
        if self.conn.in_transaction:
            self._suspend = True
        else:
            stop_process()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        if self._broken:
            self._abandon()
        if self._began is None or not conn.in_transaction:
            if self._began is not None:  # ended outside a write (an interrupt at its commit)
                self._rolled_back()
            _begin(conn)
            self._began = time.monotonic()
        conn.execute("SAVEPOINT facetags_write")
        self._depth += 1
        closed = False  # released or undone: nothing half written is left in the transaction
        try:
            try:
                yield conn
                conn.execute("RELEASE facetags_write")
                closed = True
            except BaseException as exc:
                self._undo()
                closed = True
                if isinstance(exc, sqlite3.Error):
                    raise library_error(_path_of(conn), exc) from exc
                raise
        finally:
            self._depth -= 1
            if not closed:  # cut short (an interrupt while undoing): never committed
                self._broken = True
        if self._depth == 0 and self._began is not None:
            if self._suspend:
                self.commit()  # and stops
            elif time.monotonic() - self._began >= self.max_s:
                self.commit()
                time.sleep(self.gap_s)  # the lock is free: another connection's turn

    def commit(self) -> None:
        """Commit what the group wrote so far (nothing if it wrote nothing)."""
        if self._depth:
            raise RuntimeError("a commit inside a write would commit half of it")
        if self._began is None:
            return
        if self._broken or not self.conn.in_transaction:
            self._abandon()
            return
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abandon()
            raise library_error(_path_of(self.conn), exc) from exc
        self._began = None
        self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        if self._suspend:
            self._suspend = False
            stop_process()

    def _undo(self) -> None:
        """Undo the failed write: back to its savepoint, or the whole transaction where SQLite
        ended it or the savepoint cannot be rolled back to."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK TO facetags_write")
                self.conn.execute("RELEASE facetags_write")
            except sqlite3.Error as exc:  # the error being raised says more
                log.debug("rollback to the savepoint failed: %s", exc)
            else:
                self._rolled_back()
                return
        self._abandon()

    def _abandon(self) -> None:
        """Roll the whole transaction back."""
        _rollback(self.conn)
        self._began = None
        self._broken = False
        self._rolled_back()
        self._stop_if_asked()

    def _rolled_back(self) -> None:
        if self.on_rollback is not None:
            self.on_rollback()


def stop_process() -> None:
    """Stop this process as Ctrl-Z would have (the shell's ``fg`` continues it)."""
    os.kill(os.getpid(), signal.SIGSTOP)


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _locked(exc):
            raise LibraryError(f"{_path_of(conn)}: {BUSY} ({exc})") from exc
        raise library_error(_path_of(conn), exc) from exc


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the error being raised says more
            log.debug("rollback failed: %s", exc)


def _path_of(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "library"
    return str(row[2]) if row and row[2] else "library"


def _to_read(path: str | os.PathLike[str]) -> str:
    """The URI that opens the library at ``path`` to read only."""
    return Path(path).expanduser().resolve().as_uri() + "?mode=ro"


def connect_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to an existing library (a worker process looking photos up while
    another process writes: WAL lets it read without waiting)."""
    try:
        conn = sqlite3.connect(_to_read(path), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    except sqlite3.Error as exc:
        raise LibraryError(f"{path}: cannot open library to read ({exc})") from exc
    return conn


def database_file(conn: sqlite3.Connection) -> str | None:
    """The file behind ``conn``'s main database (None in memory)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row is not None and row[2] else None
