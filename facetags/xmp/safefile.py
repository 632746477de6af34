"""Crash-safe file updates: temporary copy, modify, verify, fsync, atomic rename.

The user's file is never opened for writing. :func:`atomic_update` copies it to a hidden
temporary file in the same directory, lets the caller modify the copy, checks that the image
data did not change (JPEG: the compressed scan data byte for byte; other formats: the decoded
pixels), fsyncs the copy, renames it over the original (atomic on POSIX) and fsyncs the
directory. A crash or kill at any point leaves either the old file or the new one, never a mix;
at worst a stale ``.<name>.<host>-<pid>.*.facetags.tmp`` file remains beside it. The next
``xmp write`` over that folder removes it (:func:`remove_stale_temps_in`) once its writer is
gone: a process of this machine no longer running, or, for another machine's, an hour old (a
concurrent writer's copy is never touched).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from facetags.xmp.container import jpeg_walk
from facetags.xmp.packet import XmpError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".facetags.tmp"
STALE_TEMP_SECONDS = 3600.0  # a temporary copy this old belongs to a writer that was killed


def jpeg_scan_data(data: bytes) -> bytes:
    """The bytes of a JPEG from its first SOS marker to the end (the compressed image data).

    Raises ``ValueError`` if ``data`` is not a JPEG with a scan.
    """
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    sos = jpeg_walk(data)[1]  # a ContainerError is a ValueError
    if sos is None:
        raise ValueError("JPEG has no scan (SOS marker)")
    return data[sos:]


def _pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.mode, im.size, im.tobytes()


def verify_same_image(original: Path, candidate: Path) -> None:
    """Raise :class:`XmpError` unless ``candidate`` holds the same image data as ``original``."""
    head = original.open("rb").read(2)
    if head == b"\xff\xd8":
        try:
            same = jpeg_scan_data(original.read_bytes()) == jpeg_scan_data(candidate.read_bytes())
        except ValueError as exc:
            raise XmpError(original, f"rewritten JPEG is not valid ({exc}); original kept") from exc
        if not same:
            raise XmpError(original, "rewriting changed the JPEG image data; original kept")
        return
    try:
        same = _pixels(original) == _pixels(candidate)
    except Exception as exc:  # Pillow raises many types
        raise XmpError(original, f"cannot verify the rewritten image ({exc}); original kept") from exc
    if not same:
        raise XmpError(original, "rewriting changed the decoded pixels; original kept")


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some filesystems cannot open directories; the rename still happened
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _copy_mode(original: Path | None, temp: Path, like: Path | None) -> None:
    """Give ``temp`` the original's mode and owner; a new file takes ``like``'s read/write bits
    and group (a sidecar holds the names of the people in its photo: those who may read the
    photo may read it, no one else). Where that group cannot be given, the group gets nothing."""
    if original is None:
        if like is not None and like.exists():
            info = like.stat()
            mode = (stat.S_IMODE(info.st_mode) & 0o666) | stat.S_IRUSR | stat.S_IWUSR
            if info.st_gid != os.stat(temp).st_gid:
                try:
                    os.chown(temp, -1, info.st_gid)
                except OSError:  # not a group of the user's: its bits would go to another group
                    mode &= ~0o070
            os.chmod(temp, mode)
        else:
            os.chmod(temp, 0o644)
        return
    info = original.stat()
    os.chmod(temp, stat.S_IMODE(info.st_mode))
    if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # only root may give a file away
            os.chown(temp, info.st_uid, info.st_gid)


#: Bytes of the file's name a temporary copy's name keeps: with the owner, the random part and
#: the suffix it stays within the 255 bytes a file name may have.
TEMP_NAME_BYTES = 150


def _short(name: str) -> str:
    """``name``, cut to :data:`TEMP_NAME_BYTES` bytes (a whole character at the end)."""
    raw = os.fsencode(name)
    return name if len(raw) <= TEMP_NAME_BYTES else raw[:TEMP_NAME_BYTES].decode("utf-8", "ignore")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _owner() -> str:
    """What a temporary copy's name says of its writer: ``<host>-<pid>``."""
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: alive
        return True
    return True


def _stale(temp: Path, cutoff: float) -> bool:
    """Whether ``temp`` was left by a writer that is gone: a process of this machine that is no
    longer running, or (another machine's, or a copy named before owners were) older than
    ``cutoff``. A live writer's copy is never stale."""
    if not temp.is_file() or temp.is_symlink():
        return False
    parts = temp.name[: -len(TEMP_SUFFIX)].split(".")
    host, _, pid = parts[-2].rpartition("-") if len(parts) >= 2 else ("", "", "")
    if host == _host() and pid.isdigit():
        return int(pid) != os.getpid() and not _alive(int(pid))
    return temp.stat().st_mtime < cutoff


def _remove(temps: list[Path], older_than: float) -> list[Path]:
    removed = []
    cutoff = time.time() - older_than
    for temp in temps:
        with contextlib.suppress(OSError):
            if _stale(temp, cutoff):
                temp.unlink()
                removed.append(temp)
                log.info("removed %s, left by a writer that was stopped", temp)
    return removed


def remove_stale_temps_in(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete every temporary copy in ``folder`` that a killed writer left: one listing of the
    folder for a whole ``xmp write`` (facetags.xmp.sync.write_photos), not one per photo written
    (a folder of 10,000 photos listed 10,000 times), and a photo already up to date, never
    written again, does not keep its leftover."""
    try:
        with os.scandir(folder) as entries:
            temps = [Path(e.path) for e in entries if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return []
    return _remove(temps, older_than)


def _identity(info: os.stat_result) -> tuple[int, ...]:
    """What says a file is the one it was: a save by another program (in place, or a new file
    renamed over it) changes one of these. The change time comes last: :func:`file_identity`
    leaves it out."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def file_identity(path: Path) -> tuple[int, ...] | None:
    """:func:`_identity` of ``path`` but its change time (a ``chmod`` of the photo is no new
    picture); None if it cannot be read. What ``atomic_update``'s ``still`` compares a photo by."""
    try:
        return _identity(os.stat(path))[:-1]
    except OSError:
        return None


def atomic_update(
    target: Path,
    modify: Callable[[Path], None],
    *,
    initial: bytes | None = None,
    verify_image: bool = False,
    mode_like: Path | None = None,
    still: Callable[[], str | None] | None = None,
) -> None:
    """Replace ``target`` by a modified copy, crash-safely.

    ``modify(temp)`` edits the temporary copy in place. A missing ``target`` starts from
    ``initial`` (e.g. an empty XMP packet for a new sidecar), with ``mode_like``'s read/write
    permissions (its photo's). With ``verify_image`` the copy must hold the same image data as
    the original. An existing file's mode and ownership are kept where permitted.

    Another program's save meanwhile is never undone: if ``target`` is not the file that was
    copied when the copy is about to replace it (changed, replaced, or created), nothing is
    replaced; nor if ``still()`` says why not (the photo changed since the caller looked at it),
    asked when the copy is made and again just before the replace.
    Raises :class:`XmpError`; on any failure the original is untouched and the copy removed.
    """
    real = Path(os.path.realpath(target))  # write through a symlink, don't replace the link
    directory = real.parent
    exists = real.exists()
    if not exists and initial is None:
        raise XmpError(target, "no such file")
    with contextlib.suppress(OSError):  # the bits, not only access: root passes every access check
        if not directory.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise XmpError(target, "its folder is read-only (no write permission bits); left as it is")
    try:
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{_short(real.name)}.{_owner()}.", suffix=TEMP_SUFFIX, dir=directory
        )
    except OSError as exc:
        raise XmpError(target, f"cannot create a temporary file beside it ({exc.strerror or exc})") from exc
    temp = Path(temp_name)
    done = False
    copied: tuple[int, ...] | None = None  # the file copied, as it was
    saved = "changed while facetags was writing it (another program saved it meanwhile); left as it is"
    try:
        if still is not None and (why := still()) is not None:
            raise XmpError(target, why)
        with os.fdopen(fd, "wb") as out:
            if exists:
                with real.open("rb") as src:
                    copied = _identity(os.fstat(src.fileno()))
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                    if _identity(os.fstat(src.fileno())) != copied:
                        raise XmpError(target, saved)
            else:
                assert initial is not None
                out.write(initial)
        modify(temp)
        if verify_image and exists:
            verify_same_image(real, temp)
        _copy_mode(real if exists else None, temp, mode_like)
        _fsync_path(temp)
        # the last look, a moment before the rename (what another program saves between the two
        # is lost, as with any two programs writing one file: the window is this short)
        try:
            now: tuple[int, ...] | None = _identity(os.stat(real))
        except FileNotFoundError:
            now = None
        if now != copied:
            raise XmpError(
                target, saved if copied is not None else "created by another program meanwhile; left as it is"
            )
        if still is not None and (why := still()) is not None:
            raise XmpError(target, why)
        os.replace(temp, real)
        done = True
        _fsync_path(directory, directory=True)
    except OSError as exc:
        raise XmpError(target, f"cannot write ({exc.strerror or exc})") from exc
    finally:
        if not done:
            with contextlib.suppress(OSError):
                temp.unlink()
