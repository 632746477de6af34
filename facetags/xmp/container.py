"""Find and replace the XMP packet inside a JPEG, PNG, WebP or TIFF file, touching nothing else.

Only the bytes that hold the XMP packet change; every other segment, chunk or tag (EXIF, IPTC,
ICC profiles, thumbnails, maker data, the image data) stays byte for byte as it was:

- JPEG: the APP1 segment ``http://ns.adobe.com/xap/1.0/`` is replaced, or inserted after the
  last APP0/APP1 segment (JFIF, EXIF). Extended XMP segments are left as they are.
- PNG: the ``iTXt`` chunk ``XML:com.adobe.xmp`` is replaced, or inserted before the first IDAT.
- WebP: the ``XMP `` chunk is replaced, or appended; the VP8X header's XMP flag is set (a simple
  WebP gets the VP8X header that the extended format needs to carry metadata).
- TIFF: tag 700 in IFD0. A new packet that fits in the old one's space is written in place;
  otherwise it is appended at the end of the file and the tag entry points there (a new tag
  makes a copy of IFD0 with the entry added, at the end of the file, and the header points to it).

:func:`kind` names the container, :func:`extract` returns the packet bytes (None when there are
none), :func:`replace` returns the whole file with a new packet. Malformed files raise
:class:`ContainerError`; a packet too large for the format raises :class:`TooLarge`.
"""

from __future__ import annotations

import struct
import zlib

JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
#: The largest standard XMP packet one JPEG APP1 segment can hold.
JPEG_MAX_PACKET = 0xFFFF - 2 - len(JPEG_XMP)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
TIFF_XMP_TAG = 700
WEBP_XMP_FLAG = 0x04
WEBP_ALPHA_FLAG = 0x10

_JPEG_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}


class ContainerError(ValueError):
    """The file's structure cannot be followed safely."""


class TooLarge(ContainerError):
    """The packet does not fit in the place this format has for it."""


def kind(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"webp"`` or ``"tiff"`` from the file's first bytes; None otherwise."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def extract(data: bytes, *, max_bytes: int | None = None) -> bytes | None:
    """The XMP packet stored in ``data`` (a whole file), or None when it has none."""
    found = kind(data)
    if found == "jpeg":
        segment = _jpeg_xmp_segment(data)
        return None if segment is None else data[segment[0] + 4 + len(JPEG_XMP) : segment[1]]
    if found == "png":
        chunk = _png_xmp_chunk(data)
        return None if chunk is None else _itxt_text(data[chunk[0] + 8 : chunk[1] - 4], max_bytes)
    if found == "webp":
        for fourcc, start, size in _webp_chunks(data):
            if fourcc == b"XMP ":
                return data[start + 8 : start + 8 + size]
        return None
    if found == "tiff":
        entry = _tiff_xmp_entry(data)
        return None if entry is None else data[entry.offset : entry.offset + entry.count]
    raise ContainerError("not a JPEG, PNG, WebP or TIFF file")


def replace(data: bytes, packet: bytes) -> bytes:
    """``data`` (a whole file) with its XMP packet replaced by ``packet`` (or added)."""
    found = kind(data)
    if found == "jpeg":
        return _jpeg_replace(data, packet)
    if found == "png":
        return _png_replace(data, packet)
    if found == "webp":
        return _webp_replace(data, packet)
    if found == "tiff":
        return _tiff_replace(data, packet)
    raise ContainerError("not a JPEG, PNG, WebP or TIFF file")


# -- JPEG ---------------------------------------------------------------------------------------


def jpeg_walk(data: bytes) -> tuple[list[tuple[int, int, int]], int | None]:
    """The (start, end, marker) of each marker segment before the first scan, and where that
    scan's SOS marker starts (None when the image ends first). The one JPEG marker walker:
    :func:`facetags.xmp.safefile.jpeg_scan_data` uses it too."""
    out: list[tuple[int, int, int]] = []
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise ContainerError(f"bad JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return out, pos
        if marker == 0xD9:
            return out, None
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if end > size:
            raise ContainerError(f"JPEG segment at byte {pos} runs past the end of the file")
        out.append((pos, end, marker))
        pos = end
    raise ContainerError("JPEG has no scan (SOS marker)")


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, marker) of each marker segment before the first scan."""
    return jpeg_walk(data)[0]


def _jpeg_xmp_segment(data: bytes) -> tuple[int, int] | None:
    for start, end, marker in _jpeg_segments(data):
        if marker == 0xE1 and data[start + 4 : start + 4 + len(JPEG_XMP)] == JPEG_XMP:
            return start, end
    return None


def _jpeg_replace(data: bytes, packet: bytes) -> bytes:
    if len(packet) > JPEG_MAX_PACKET:
        raise TooLarge(f"XMP packet of {len(packet)} bytes is over the JPEG limit of {JPEG_MAX_PACKET}")
    segment = b"\xff\xe1" + (2 + len(JPEG_XMP) + len(packet)).to_bytes(2, "big") + JPEG_XMP + packet
    segments = _jpeg_segments(data)
    for start, end, marker in segments:
        if marker == 0xE1 and data[start + 4 : start + 4 + len(JPEG_XMP)] == JPEG_XMP:
            return data[:start] + segment + data[end:]
    # After the last APP0/APP1 segment (JFIF, EXIF), where readers look first: nothing before
    # it moves, so offsets into the EXIF block (its thumbnail) stay where they were.
    at = max((end for _start, end, marker in segments if marker in (0xE0, 0xE1)), default=2)
    return data[:at] + segment + data[at:]


# -- PNG ----------------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk; end includes the CRC."""
    out: list[tuple[bytes, int, int]] = []
    pos, size = len(PNG_SIGNATURE), len(data)
    while pos + 12 <= size:
        length = int.from_bytes(data[pos : pos + 4], "big")
        ctype = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > size:
            raise ContainerError(f"PNG chunk {ctype!r} at byte {pos} runs past the end of the file")
        out.append((ctype, pos, end))
        pos = end
        if ctype == b"IEND":
            return out
    raise ContainerError("PNG has no IEND chunk")


def _png_xmp_chunk(data: bytes) -> tuple[int, int] | None:
    for ctype, start, end in _png_chunks(data):
        if (
            ctype == b"iTXt"
            and data[start + 8 : start + 8 + len(PNG_XMP_KEYWORD) + 1] == PNG_XMP_KEYWORD + b"\0"
        ):
            return start, end
    return None


def _itxt_text(body: bytes, max_bytes: int | None) -> bytes:
    """The text of an iTXt chunk's data (keyword, flags, language, translated keyword, text)."""
    try:
        keyword_end = body.index(b"\0")
        compressed, method = body[keyword_end + 1], body[keyword_end + 2]
        lang_end = body.index(b"\0", keyword_end + 3)
        text_start = body.index(b"\0", lang_end + 1) + 1
    except (ValueError, IndexError) as exc:
        raise ContainerError("malformed PNG iTXt chunk") from exc
    text = body[text_start:]
    if not compressed:
        return text
    if method != 0:
        raise ContainerError(f"unknown PNG iTXt compression method {method}")
    limit = max_bytes + 1 if max_bytes is not None else 0
    try:
        out = zlib.decompressobj().decompress(text, limit)
    except zlib.error as exc:
        raise ContainerError(f"corrupt compressed PNG iTXt chunk ({exc})") from exc
    return out


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + ctype + body + zlib.crc32(ctype + body).to_bytes(4, "big")


def _png_replace(data: bytes, packet: bytes) -> bytes:
    chunk = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\0\0\0\0\0" + packet)
    chunks = _png_chunks(data)
    existing = _png_xmp_chunk(data)
    if existing is not None:
        return data[: existing[0]] + chunk + data[existing[1] :]
    at = next((start for ctype, start, _end in chunks if ctype in (b"IDAT", b"IEND")), None)
    if at is None or chunks[0][0] != b"IHDR":
        raise ContainerError("PNG has no IHDR/IDAT chunks")
    return data[:at] + chunk + data[at:]


# -- WebP ---------------------------------------------------------------------------------------


def _webp_end(data: bytes) -> int:
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data) or end < 12:
        raise ContainerError("WebP RIFF size does not match the file")
    return end


def _webp_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, start, payload size) of each chunk of the RIFF container."""
    out: list[tuple[bytes, int, int]] = []
    pos, end = 12, _webp_end(data)
    while pos + 8 <= end:
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > end:
            raise ContainerError(f"WebP chunk {fourcc!r} at byte {pos} runs past the RIFF end")
        out.append((fourcc, pos, size))
        pos += 8 + size + (size & 1)
    if not out:
        raise ContainerError("WebP has no chunks")
    return out


def _webp_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + len(payload).to_bytes(4, "little") + payload + (b"\0" if len(payload) & 1 else b"")


def _webp_vp8x(data: bytes, fourcc: bytes, start: int, size: int) -> bytes:
    """The VP8X chunk a simple (VP8/VP8L) WebP needs before it can carry XMP."""
    body = data[start + 8 : start + 8 + size]
    flags = WEBP_XMP_FLAG
    if fourcc == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(body[6:8], "little") & 0x3FFF
        height = int.from_bytes(body[8:10], "little") & 0x3FFF
    elif fourcc == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if (bits >> 28) & 1:
            flags |= WEBP_ALPHA_FLAG
    else:
        raise ContainerError(f"WebP starts with an unknown chunk {fourcc!r}")
    payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _webp_chunk(b"VP8X", payload)


def _webp_replace(data: bytes, packet: bytes) -> bytes:
    end = _webp_end(data)
    chunks = _webp_chunks(data)
    body = data[12:end]
    new = _webp_chunk(b"XMP ", packet)
    existing = [(start, size) for fourcc, start, size in chunks if fourcc == b"XMP "]
    if existing:
        start, size = existing[0]
        start -= 12
        body = body[:start] + new + body[start + 8 + size + (size & 1) :]
    else:
        body = body + new
    fourcc, start, size = chunks[0]
    if fourcc == b"VP8X":
        flags_at = start + 8 - 12
        body = body[:flags_at] + bytes([body[flags_at] | WEBP_XMP_FLAG]) + body[flags_at + 1 :]
    else:
        body = _webp_vp8x(data, fourcc, start, size) + body
    riff = b"WEBP" + body
    return b"RIFF" + len(riff).to_bytes(4, "little") + riff + data[end:]


# -- TIFF ---------------------------------------------------------------------------------------


class _Entry:
    def __init__(self, at: int, tag: int, type_: int, count: int, offset: int) -> None:
        self.at, self.tag, self.type, self.count, self.offset = at, tag, type_, count, offset


def _tiff_ifd0(data: bytes) -> tuple[str, int, list[_Entry], int]:
    """Byte order, IFD0 position, its entries and the next-IFD offset."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd < 8 or ifd + 2 > len(data):
        raise ContainerError("TIFF IFD0 offset points outside the file")
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    end = ifd + 2 + 12 * count
    if count == 0 or end + 4 > len(data):
        raise ContainerError("TIFF IFD0 runs past the end of the file")
    entries = []
    for n in range(count):
        at = ifd + 2 + 12 * n
        tag, type_, number = struct.unpack(order + "HHI", data[at : at + 8])
        (offset,) = struct.unpack(order + "I", data[at + 8 : at + 12])
        entries.append(_Entry(at, tag, type_, number, offset))
    (following,) = struct.unpack(order + "I", data[end : end + 4])
    return order, ifd, entries, following


def _tiff_xmp_entry(data: bytes) -> _Entry | None:
    _order, _ifd, entries, _next = _tiff_ifd0(data)
    for entry in entries:
        if entry.tag == TIFF_XMP_TAG:
            if entry.type not in (1, 7) or entry.count <= 4 or entry.offset + entry.count > len(data):
                raise ContainerError("TIFF XMP tag (700) is malformed")
            return entry
    return None


def pad_to(packet: bytes, size: int) -> bytes:
    """``packet`` grown to exactly ``size`` bytes with whitespace padding (before the trailer)."""
    extra = size - len(packet)
    if extra < 0:
        raise ValueError("packet is larger than the space")
    trailer = packet.rfind(b"<?xpacket end")
    at = trailer if trailer >= 0 else len(packet)
    fill = bytearray(b" " * extra)
    for n in range(99, extra - 1, 100):
        fill[n] = 0x0A
    return packet[:at] + bytes(fill) + packet[at:]


def _tiff_replace(data: bytes, packet: bytes) -> bytes:
    order, _ifd, entries, following = _tiff_ifd0(data)
    existing = _tiff_xmp_entry(data)
    if existing is not None and len(packet) <= existing.count:
        start = existing.offset
        return data[:start] + pad_to(packet, existing.count) + data[start + existing.count :]
    if existing is not None and existing.offset + existing.count >= len(data) - 1:
        out = bytearray(data[: existing.offset])  # the old packet ends the file: reuse its place
    else:
        out = bytearray(data)
        if len(out) & 1:
            out += b"\0"
    at = len(out)
    out += packet
    if existing is not None:
        out[existing.at + 4 : existing.at + 12] = struct.pack(order + "II", len(packet), at)
        return bytes(out)
    if len(out) & 1:
        out += b"\0"
    new_ifd = len(out)
    rows = [(e.tag, data[e.at : e.at + 12]) for e in entries]
    rows.append((TIFF_XMP_TAG, struct.pack(order + "HHII", TIFF_XMP_TAG, 1, len(packet), at)))
    rows.sort(key=lambda row: row[0])
    out += struct.pack(order + "H", len(rows)) + b"".join(raw for _tag, raw in rows)
    out += struct.pack(order + "I", following)
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)
