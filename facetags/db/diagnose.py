"""Say in one line what is wrong when SQLite refuses the library, and what to do about it.

SQLite's own words ("unable to open database file", "disk I/O error") do not say that the
disk is full or that the library's folder is read-only (in WAL mode SQLite must create
``<library>-wal`` and ``<library>-shm`` beside the file, even to read). After an error the
file system is asked directly: free space, a read-only mount, whether the file and the folder
can be written.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

from facetags.errors import LibraryError

# Primary SQLite result codes (the low byte of an extended code).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26

#: What a library another process holds too long is.
BUSY = (
    "library is busy: another program held it too long (a facetags scan, the watcher, the TUI, "
    "or a tool that opened the file); try again"
)

#: Less free space than this on the library's disk reads as "full" after an I/O error.
NEARLY_FULL_BYTES = 1 << 20
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def library_error(path: str | os.PathLike[str], exc: sqlite3.Error) -> LibraryError:
    """A :class:`LibraryError` for ``exc``, raised by SQLite on the library at ``path``."""
    path = Path(path)
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return LibraryError(f"{path}: {BUSY} ({exc})")
    if primary == SQLITE_CORRUPT:
        return LibraryError(
            f"{path}: the library file is damaged ({exc}); restore it from a backup, or move it "
            "aside and scan again (names written into photos come back with `facetags xmp import`)"
        )
    if primary == SQLITE_NOTADB:
        return LibraryError(
            f"{path}: not a library SQLite can read ({exc}): another kind of file, or a library "
            "damaged at its start; restore it from a backup, or give --library another file"
        )
    folder = path.parent
    free = _free_bytes(folder)
    if primary == SQLITE_FULL or (
        primary in (SQLITE_IOERR, SQLITE_CANTOPEN) and free is not None and free < NEARLY_FULL_BYTES
    ):
        shown = f"{free // 1024} KB free" if free is not None else "no space left"
        return LibraryError(
            f"{path}: the disk is full ({shown}); free some space and run the command again "
            "(the change in progress was not saved, earlier ones are kept)"
        )
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_IOERR):
        problem = _not_writable(path)
        if problem is not None:
            return LibraryError(f"{path}: {problem}")
    if primary == SQLITE_IOERR:
        return LibraryError(f"{path}: disk I/O error on the library ({exc}); check the disk")
    return LibraryError(f"{path}: cannot use the library ({exc})")


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return st.f_bavail * st.f_frsize


def marked_read_only(path: str | os.PathLike[str]) -> bool:
    """Whether the library file's mode has no write bit (``chmod a-w``): the user's word that it
    is not to be changed. Root may write such a file, and facetags does not: it opens it to read
    only, as it leaves a read-only photo alone (facetags.xmp.write)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    return stat.S_ISREG(st.st_mode) and st.st_size > 0 and not st.st_mode & writable


def _not_writable(path: Path) -> str | None:
    """Why the library at ``path`` cannot be written, or None when nothing says it cannot."""
    folder = path.parent
    try:
        read_only_mount = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only_mount = False
    if read_only_mount:
        return (
            "the library is on a read-only file system; mount it read-write, or use --library "
            "(or FACETAGS_LIBRARY) to choose a library on a writable disk"
        )
    if marked_read_only(path):
        return (
            "the library file is read-only (no write permission); make it writable "
            "(chmod u+w), or use --library to choose another library"
        )
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        if exc.errno in _DENIED:
            return (
                f"the library file is read-only ({exc.strerror}); make it writable "
                f"(chmod u+w, or chattr -i), or use --library to choose another library"
            )
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".facetags-probe-"):
            pass
    except OSError as exc:
        if exc.errno in _DENIED:
            return (
                f"cannot create files in the library's folder {folder} ({exc.strerror}); SQLite "
                f"keeps {path.name}-wal and {path.name}-shm beside the library, even to read it: "
                "make the folder writable, or move the library to a writable folder"
            )
    return None
