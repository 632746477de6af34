"""XMP I/O through Exiv2 (pyexiv2): load a file's XMP as flat keys, apply flat-key updates.

Exiv2 presents XMP as flat keys: ``Xmp.dc.subject`` for a simple array (a list value),
``Xmp.mwg-rs.Regions/mwg-rs:RegionList[2]/mwg-rs:Area/stArea:x`` for a field inside an array of
structures, with the containers themselves as text values ``type="Bag"``/``type="Struct"``.
Prefixes are Exiv2's registered ones whatever prefix the file used, so matching on them is safe.

Hostile input is refused here, before anything else looks at it: a sidecar over
:data:`MAX_PACKET_BYTES` is not parsed at all; an embedded packet over that size, any DOCTYPE or
ENTITY declaration (XML bombs), and anything Exiv2's XMP toolkit rejects raise
:class:`XmpError`. pyexiv2 calls are serialised by a lock (Exiv2's XMP toolkit keeps global
state).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from facetags.errors import FacetagsError

log = logging.getLogger(__name__)

#: Packets (and sidecar files) larger than this are refused unread. Real ones are a few KiB;
#: a Lightroom sidecar with a long develop history is well under 1 MiB.
MAX_PACKET_BYTES = 4 * 1024 * 1024

#: An empty XMP sidecar: what a new ``photo.jpg.xmp`` starts from.
EMPTY_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_lock = threading.RLock()
_configured = False

#: One flat XMP entry: (Exiv2 type name, value). Values are str, list[str] or dict[str, str].
Entry = tuple[str, Any]
Flat = dict[str, Entry]


class XmpError(FacetagsError):
    """A photo's or sidecar's XMP cannot be read or written safely. The message names the file."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _pyexiv2() -> Any:
    global _configured
    try:
        import pyexiv2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FacetagsError("pyexiv2 is not installed; it is needed to read and write XMP") from exc
    if not _configured:
        # Errors only: pyexiv2 raises for what Exiv2 logs at error level, so muting it entirely
        # would turn a failed XMP encode into a silent no-op. Warnings reach us as exceptions.
        pyexiv2.set_log_level(3)
        _configured = True
    return pyexiv2


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def check_sidecar_file(path: Path) -> None:
    """Refuse a sidecar that is too large or declares a DTD, before any XML parser sees it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise XmpError(path, f"cannot read sidecar ({_describe(exc)})") from exc
    if size > MAX_PACKET_BYTES:
        raise XmpError(path, f"XMP sidecar too large ({size} bytes, limit {MAX_PACKET_BYTES}); ignored")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XmpError(path, f"cannot read sidecar ({_describe(exc)})") from exc
    check_packet(path, data)


def check_packet(path: object, data: bytes) -> None:
    """Refuse an XMP packet that is too large or declares a DTD/entities (XML bombs)."""
    if len(data) > MAX_PACKET_BYTES:
        raise XmpError(path, f"XMP packet too large ({len(data)} bytes, limit {MAX_PACKET_BYTES}); ignored")
    if _DTD.search(data):
        raise XmpError(path, "XMP declares a DOCTYPE/ENTITY (possible XML bomb); ignored")


def load(path: Path, *, sidecar: bool = False) -> tuple[Flat, bool]:
    """The XMP of ``path`` as flat entries, and whether Exiv2 can write XMP into it.

    ``sidecar`` marks an ``.xmp`` file (checked before parsing). Raises :class:`XmpError`.
    """
    if sidecar:
        check_sidecar_file(path)
    pyexiv2 = _pyexiv2()
    with _lock:
        try:
            image = pyexiv2.Image(os.fspath(path))
        except RuntimeError as exc:
            raise XmpError(path, f"unreadable metadata ({_describe(exc)})") from exc
        try:
            raw = image.read_raw_xmp()
            check_packet(path, raw.encode("utf-8", "surrogatepass"))
            try:
                detail = image.read_xmp_detail()
                flat: Flat = {k: (str(d.get("typeName", "")), d.get("value")) for k, d in detail.items()}
            except RuntimeError as exc:
                # Exiv2 cannot label some qualifiers (e.g. xml:lang on a Bag item); the plain
                # reader still works, only the array types are then unknown.
                log.debug("%s: XMP details unavailable (%s); reading plain values", path, _describe(exc))
                flat = {k: ("", v) for k, v in image.read_xmp().items()}
            writable = "write" in (image.get_access_mode().get("xmp") or "")
        except (RuntimeError, UnicodeError, ValueError) as exc:
            raise XmpError(path, f"unreadable XMP ({_describe(exc)})") from exc
        finally:
            _close(image)
    return flat, writable


def apply(path: Path, updates: dict[str, Any], *, sidecar: bool = False) -> None:
    """Write flat-key ``updates`` (value None deletes the key) into ``path`` in place.

    Callers pass a temporary copy (see :mod:`facetags.xmp.safefile`), never the user's file.
    """
    pyexiv2 = _pyexiv2()
    with _lock:
        try:
            image = pyexiv2.Image(os.fspath(path))
        except RuntimeError as exc:
            raise XmpError(path, f"unreadable metadata ({_describe(exc)})") from exc
        try:
            if sidecar:
                # Exiv2 mirrors a sidecar's dc:subject etc. into in-memory IPTC/EXIF when it reads
                # it and copies them back when it writes, which resurrects deleted keys and
                # breaks rewritten arrays. The sidecar has no real IPTC/EXIF: drop the mirrors.
                image.clear_iptc()
                image.clear_exif()
            image.modify_xmp(updates)
        except RuntimeError as exc:
            raise XmpError(path, f"cannot write XMP ({_describe(exc)})") from exc
        finally:
            _close(image)


def _close(image: Any) -> None:
    # pyexiv2 re-raises a pending Exiv2 error on close; the first one has been reported already.
    try:
        image.close()
    except RuntimeError as exc:
        log.debug("pyexiv2 close: %s", _describe(exc))
