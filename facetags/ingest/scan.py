"""Walk photo folders: one ``stat`` per file, hidden folders and non-photo files skipped.

Symbolic links to folders are followed once (a link loop is noticed and skipped); a link to a
file is indexed at the link's path. Files that cannot be stat'ed (broken links, link loops),
that are not regular files, or whose names are not valid UTF-8 come out as entries with an
``error``, to be recorded as failures. The diff against the index lives in
:mod:`facetags.ingest.indexer`.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from facetags.db.records import FileStat
from facetags.errors import NotFoundError

log = logging.getLogger(__name__)

#: Extensions of the files facetags indexes (lower case). Sidecars (.xmp, .aae, .thm), raw
#: files and videos are not photos facetags can decode.
PHOTO_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".gif",
        ".heic",
        ".heif",
        ".avif",
        ".ppm",
        # JPEG 2000: the JP2/JPX file formats and the bare codestream (.j2k, .j2c, .jpc)
        ".jp2",
        ".jpx",
        ".jpf",
        ".j2k",
        ".j2c",
        ".jpc",
    }
)


def is_photo_name(path: str) -> bool:
    """Whether a file name is one facetags looks at (a photo extension, not hidden)."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_EXTENSIONS


def is_hidden(path: str, roots: Iterable[str] = ()) -> bool:
    """Whether ``path`` lies in a hidden folder (below one of ``roots``) or is hidden itself."""
    rel = path
    for root in roots:
        if path.startswith(root.rstrip(os.sep) + os.sep):
            rel = path[len(root.rstrip(os.sep)) + 1 :]
            break
    return any(part.startswith(".") for part in rel.split(os.sep) if part)


def storable(path: str) -> str | None:
    """``path`` if it can be stored as text; None for names that are not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return path


def printable(path: str) -> str:
    """A text form of any path (undecodable bytes shown as \\xNN), for failures and messages."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Entry:
    path: str
    stat: FileStat | None = None
    error: str | None = None


@dataclass
class Walk:
    """What a walk found besides the entries: folders it could not read (their indexed files
    must not be taken as deleted)."""

    unreadable: list[str] = field(default_factory=list)


def absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def walk(roots: Iterable[str | os.PathLike[str]], info: Walk | None = None) -> Iterator[Entry]:
    """Every photo file under ``roots`` (folders or single files), depth first, sorted by name."""
    info = info if info is not None else Walk()
    visited: set[tuple[int, int]] = set()
    for raw in roots:
        root = absolute(raw)
        try:
            st = os.stat(root)
        except OSError as exc:
            raise NotFoundError(f"{printable(root)}: {exc.strerror or 'cannot access'}") from exc
        if stat_mod.S_ISDIR(st.st_mode):
            visited.add((st.st_dev, st.st_ino))
            yield from _walk_dir(root, visited, info)
        else:
            yield _file_entry(root, st)


def _file_entry(path: str, st: os.stat_result) -> Entry:
    text = storable(path)
    if text is None:
        return Entry(printable(path), error="file name is not valid UTF-8; rename the file")
    if not stat_mod.S_ISREG(st.st_mode):
        return Entry(text, FileStat.of(st), error="not a regular file")
    return Entry(text, FileStat.of(st))


def _walk_dir(top: str, visited: set[tuple[int, int]], info: Walk) -> Iterator[Entry]:
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.warning("%s: cannot read folder (%s)", printable(folder), exc.strerror)
            info.unreadable.append(folder)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino)
                if key in visited:
                    log.info("%s: already visited (a link loop?); skipped", printable(entry.path))
                    continue
                visited.add(key)
                subdirs.append(entry.path)
                continue
            if os.path.splitext(entry.name)[1].lower() not in PHOTO_EXTENSIONS:
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                reason = "symbolic link loop" if exc.errno == 40 else (exc.strerror or "cannot stat")
                if entry.is_symlink() and exc.errno != 40:
                    reason = f"broken symbolic link ({reason})"
                yield Entry(storable(entry.path) or printable(entry.path), error=reason)
                continue
            yield _file_entry(entry.path, st)
        stack.extend(reversed(subdirs))
