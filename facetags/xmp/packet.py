"""XMP I/O: load a file's XMP as flat Exiv2 keys, apply flat-key updates.

Exiv2 (pyexiv2) is used as the XMP parser and serialiser only. A photo's packet is found and
replaced by :mod:`facetags.xmp.container` (JPEG, PNG, WebP, TIFF), so writing changes nothing but
the XMP packet: Exiv2 never rewrites a photo's EXIF, IPTC or other metadata. Other formats are
read through Exiv2 and never written (the writer uses a sidecar for them).

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
import stat
import threading
from pathlib import Path
from typing import Any

from facetags.errors import FacetagsError
from facetags.xmp import container

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


class PacketTooLarge(XmpError):
    """The new packet does not fit where this photo format keeps XMP (a JPEG segment holds 64 KiB)."""


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
    """Refuse a sidecar that is not a plain file (a named pipe would block the read for ever, a
    device never end it), too large, or declares a DTD, before any XML parser sees it."""
    try:
        info = path.stat()
    except OSError as exc:
        raise XmpError(path, f"cannot read sidecar ({_describe(exc)})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise XmpError(path, "not a plain file (a pipe, a device or a folder); left as it is")
    if info.st_size > MAX_PACKET_BYTES:
        raise XmpError(
            path, f"XMP sidecar too large ({info.st_size} bytes, limit {MAX_PACKET_BYTES}); ignored"
        )
    try:
        with path.open("rb") as fh:  # at most the limit: the file may grow meanwhile
            data = fh.read(MAX_PACKET_BYTES + 1)
    except OSError as exc:
        raise XmpError(path, f"cannot read sidecar ({_describe(exc)})") from exc
    if len(data) > MAX_PACKET_BYTES:
        raise XmpError(path, f"XMP sidecar too large (over {MAX_PACKET_BYTES} bytes); ignored")
    check_packet(path, data)


def check_packet(path: object, data: bytes) -> None:
    """Refuse an XMP packet that is too large or declares a DTD/entities (XML bombs)."""
    if len(data) > MAX_PACKET_BYTES:
        raise XmpError(path, f"XMP packet too large ({len(data)} bytes, limit {MAX_PACKET_BYTES}); ignored")
    if _DTD.search(data):
        raise XmpError(path, "XMP declares a DOCTYPE/ENTITY (possible XML bomb); ignored")


def _read_flat(image: Any, path: object) -> Flat:
    try:
        detail = image.read_xmp_detail()
        return {k: (str(d.get("typeName", "")), d.get("value")) for k, d in detail.items()}
    except RuntimeError as exc:
        # Exiv2 cannot label some qualifiers (e.g. xml:lang on a Bag item); the plain reader
        # still works, only the array types are then unknown.
        log.debug("%s: XMP details unavailable (%s); reading plain values", path, _describe(exc))
        return {k: ("", v) for k, v in image.read_xmp().items()}


_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>")


def _as_sidecar(raw: bytes) -> bytes:
    """An embedded packet as a stand-alone XMP document Exiv2 recognises (with the wrapper)."""
    text = raw.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<?xpacket"):
        return text
    text = _XML_DECL.sub(b"", text).lstrip()
    return EMPTY_PACKET.split(b"\n", 1)[0] + b"\n" + text + b'\n<?xpacket end="w"?>'


def _image_data(path: object, raw: bytes) -> Any:
    pyexiv2 = _pyexiv2()
    try:
        image = pyexiv2.ImageData(_as_sidecar(raw))
    except RuntimeError as exc:
        raise XmpError(path, f"unreadable XMP ({_describe(exc)})") from exc
    # Exiv2 mirrors some XMP into in-memory IPTC/EXIF when it reads a packet and copies them back
    # when it writes, which resurrects deleted keys and breaks rewritten arrays: drop the mirrors.
    image.clear_iptc()
    image.clear_exif()
    return image


def parse_packet(path: object, raw: bytes | None) -> Flat:
    """The flat entries of one XMP packet (None: no packet). Raises :class:`XmpError`."""
    if raw is None:
        return {}
    check_packet(path, raw)
    with _lock:
        image = _image_data(path, raw)
        try:
            return _read_flat(image, path)
        except (RuntimeError, UnicodeError, ValueError) as exc:
            raise XmpError(path, f"unreadable XMP ({_describe(exc)})") from exc
        finally:
            _close(image)


def render(path: object, raw: bytes | None, updates: dict[str, Any]) -> bytes:
    """The packet ``raw`` (None: an empty one) with flat-key ``updates`` applied, serialised by
    Exiv2 with its ``<?xpacket?>`` wrapper. Raises :class:`XmpError`."""
    if raw is not None:
        check_packet(path, raw)
    with _lock:
        image = _image_data(path, raw if raw is not None else EMPTY_PACKET)
        try:
            image.modify_xmp(updates)
            out = bytes(image.get_bytes())
        except RuntimeError as exc:
            raise XmpError(path, f"cannot write XMP ({_describe(exc)})") from exc
        finally:
            _close(image)
    return _as_sidecar(out)


def _embedded(path: Path) -> tuple[bytes, bytes | None] | None:
    """The file's bytes and XMP packet when facetags can splice its XMP (JPEG, PNG, WebP, TIFF)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
            if container.kind(head) is None:
                return None
            data = head + fh.read()
    except OSError as exc:
        raise XmpError(path, f"cannot read ({exc.strerror or exc})") from exc
    try:
        return data, container.extract(data, max_bytes=MAX_PACKET_BYTES)
    except container.ContainerError as exc:
        raise XmpError(path, f"unreadable file structure ({exc})") from exc


#: A bare JPEG 2000 codestream (.j2k, .j2c) starts with SOC then SIZ: no box can hold XMP.
_CODESTREAM_START = b"\xff\x4f\xff\x51"


def _bare_codestream(path: Path) -> bool:
    """Whether ``path`` is a bare JPEG 2000 codestream: it has no XMP, and Exiv2 cannot open it."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _CODESTREAM_START
    except OSError as exc:
        raise XmpError(path, f"cannot read ({exc.strerror or exc})") from exc


def load(path: Path, *, sidecar: bool = False) -> tuple[Flat, bool]:
    """The XMP of ``path`` as flat entries, and whether facetags can write XMP into it.

    ``sidecar`` marks an ``.xmp`` file (checked before parsing). Raises :class:`XmpError`.
    """
    if sidecar:
        check_sidecar_file(path)
    else:
        found = _embedded(path)
        if found is not None:
            return parse_packet(path, found[1]), True
        if _bare_codestream(path):
            return {}, False
    pyexiv2 = _pyexiv2()
    with _lock:
        try:
            image = pyexiv2.Image(os.fspath(path))
        except RuntimeError as exc:
            raise XmpError(path, f"unreadable metadata ({_describe(exc)})") from exc
        try:
            raw = image.read_raw_xmp()
            check_packet(path, raw.encode("utf-8", "surrogatepass"))
            flat = _read_flat(image, path)
        except (RuntimeError, UnicodeError, ValueError) as exc:
            raise XmpError(path, f"unreadable XMP ({_describe(exc)})") from exc
        finally:
            _close(image)
    return flat, sidecar


#: Whitespace left in an embedded packet so that other tools can edit it in place.
PADDING = 2048


def apply(path: Path, updates: dict[str, Any], *, sidecar: bool = False) -> None:
    """Write flat-key ``updates`` (value None deletes the key) into ``path`` in place.

    Callers pass a temporary copy (see :mod:`facetags.xmp.safefile`), never the user's file. In
    a photo only the XMP packet changes (:mod:`facetags.xmp.container`); a sidecar is rewritten.
    Raises :class:`XmpError` (:class:`PacketTooLarge` when the packet cannot be embedded).
    """
    if sidecar:
        check_sidecar_file(path)
        new = render(path, path.read_bytes(), updates)
        _write(path, new)
        return
    found = _embedded(path)
    if found is None:
        raise XmpError(path, "facetags writes XMP only into JPEG, PNG, WebP and TIFF files")
    data, raw = found
    new = render(path, raw, updates)
    room = container.JPEG_MAX_PACKET - len(new) if container.kind(data) == "jpeg" else PADDING
    new = container.pad_to(new, len(new) + max(0, min(PADDING, room)))
    try:
        out = container.replace(data, new)
    except container.TooLarge as exc:
        raise PacketTooLarge(path, str(exc)) from exc
    except container.ContainerError as exc:
        raise XmpError(path, f"unreadable file structure ({exc})") from exc
    _write(path, out)


def _write(path: Path, data: bytes) -> None:
    try:
        with path.open("r+b") as fh:
            fh.write(data)
            fh.truncate()
    except OSError as exc:
        raise XmpError(path, f"cannot write ({exc.strerror or exc})") from exc


def _close(image: Any) -> None:
    # pyexiv2 re-raises a pending Exiv2 error on close; the first one has been reported already.
    try:
        image.close()
    except RuntimeError as exc:
        log.debug("pyexiv2 close: %s", _describe(exc))
