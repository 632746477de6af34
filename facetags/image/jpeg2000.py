"""Decode a very large JPEG 2000 at a reduced resolution, in a fraction of the memory.

Pillow's JPEG 2000 decoder (OpenJPEG) builds the whole image before anything else can happen:
about 18 bytes per pixel, 3.1 GB for a 169 MP photo. Discarding ``r`` resolution levels
(Pillow's ``reduce``, set before ``load()``) halves both sides ``r`` times and skips the finer
levels' data altogether. Two things Pillow leaves to its caller: ``r`` cannot exceed the
wavelet levels the codestream holds (OpenJPEG refuses the file), which only the codestream's
header says (:func:`read_codestream`); and Pillow rounds the reduced size to the nearest pixel
where OpenJPEG rounds up, refusing the image when the two differ (:func:`load_reduced`).
:mod:`facetags.image.decode` uses this for JPEG 2000 photos too large for a full decode within
its memory bound.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Jpeg2KImagePlugin

_SIGNATURE_BOX = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # a .jp2/.jpx file starts with this box
_SOC, _SIZ, _COD, _COC, _SOT, _EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF53, 0xFF90, 0xFFD9
_MAX_STEPS = 1000  # boxes before the codestream, marker segments in its main header


@dataclass(frozen=True)
class Codestream:
    """The facts of a codestream's main header that decide how it can be reduced."""

    size: tuple[int, int]  # image width and height (Xsiz - XOsiz, Ysiz - YOsiz)
    offset: tuple[int, int]  # XOsiz, YOsiz: where the image starts on the reference grid
    subsampled: bool  # a component is sampled more coarsely than the grid (XRsiz or YRsiz > 1)
    levels: int  # the fewest wavelet decomposition levels of any component (COD, COC)


def read_codestream(fh: BinaryIO) -> Codestream | None:
    """The main header of the codestream in ``fh`` (a raw .j2k codestream, or a .jp2/.jpx
    file's ``jp2c`` box), read from the start of ``fh``; None when it cannot be read."""
    try:
        span = _codestream_span(fh)
        return None if span is None else _main_header(fh, span[0])
    except (OSError, struct.error, ValueError, IndexError):
        return None


def is_whole(path: str | os.PathLike[str]) -> bool:
    """Whether the codestream in ``path`` ends with its end-of-codestream marker (EOC) where
    the file (or its ``jp2c`` box) ends: False for a file cut short (a copy not finished, a
    broken download), which no decode of it completes, or one whose header is not understood."""
    try:
        with open(path, "rb") as fh:
            span = _codestream_span(fh)
            if span is None:
                return False
            start, end = span
            if end is None:
                end = fh.seek(0, os.SEEK_END)
            if end - start < 4:
                return False
            fh.seek(end - 2)
            return fh.read(2) == _EOC.to_bytes(2, "big")
    except (OSError, struct.error, ValueError):
        return False


def reduction(path: str | os.PathLike[str], size: tuple[int, int], wanted: tuple[int, int]) -> int:
    """The most resolution levels that can be discarded when decoding ``path`` (stored ``size``,
    as Pillow read it) while keeping at least ``wanted`` pixels across and down; 0 when none
    can (a small image, no levels) or the header is not understood (unreadable, or an image
    offset or subsampled components, rare in photos, whose reduced sizes are not worked out
    here: such files decode in full)."""
    try:
        with open(path, "rb") as fh:
            header = read_codestream(fh)
    except OSError:
        return 0
    if header is None or header.size != size or header.offset != (0, 0) or header.subsampled:
        return 0
    for levels in range(header.levels, 0, -1):
        reduced = reduced_size(size, levels)
        if reduced[0] >= wanted[0] and reduced[1] >= wanted[1]:
            return levels
    return 0


def reduced_size(size: tuple[int, int], levels: int) -> tuple[int, int]:
    """The size OpenJPEG decodes an image of ``size`` to without ``levels`` resolution levels
    (it rounds up: an image that starts at the grid's origin)."""
    return (-(-size[0] >> levels), -(-size[1] >> levels))


def load_reduced(im: Jpeg2KImagePlugin.Jpeg2KImageFile, levels: int) -> None:
    """``im.load()`` without ``levels`` resolution levels (from :func:`reduction`).

    ``Jpeg2KImageFile.load`` divides the size by ``2**levels`` rounding halves up (a 2001-pixel
    side at 1/4 is 500), OpenJPEG rounds up (501), and Pillow refuses a decoded image larger
    than the one it made room for. Starting it from a multiple of ``2**levels`` (2004; Pillow's
    ``_size``, which its plugins set) makes any rounding give OpenJPEG's size, so every level the
    codestream holds can be used, whatever the photo's size. Raises what ``load()`` raises, or
    ``OSError`` if the size still came out wrong.
    """
    expected = reduced_size(im.size, levels)
    im.reduce = levels
    if levels:
        im._size = (expected[0] << levels, expected[1] << levels)
    im.load()
    if im.size != expected:
        raise OSError(f"decoded at {im.size[0]}x{im.size[1]}, expected {expected[0]}x{expected[1]}")


def _codestream_span(fh: BinaryIO) -> tuple[int, int | None] | None:
    """Where the codestream starts in ``fh`` (its SOC marker) and where it ends (the end of
    its ``jp2c`` box; None: at the end of the file)."""
    fh.seek(0)
    head = fh.read(12)
    if head[:2] == _SOC.to_bytes(2, "big"):
        return 0, None
    if head != _SIGNATURE_BOX:
        return None
    position = 0
    for _ in range(_MAX_STEPS):
        fh.seek(position)
        box = fh.read(16)
        if len(box) < 8:
            return None
        length, kind = struct.unpack(">I4s", box[:8])
        header = 8
        if length == 1:  # a 64-bit length follows
            (length,) = struct.unpack(">Q", box[8:16])
            header = 16
        if kind == b"jp2c":
            return position + header, (position + length if length else None)
        if length < header:  # 0: the box runs to the end of the file, and it is not the codestream
            return None
        position += length
    return None


def _main_header(fh: BinaryIO, start: int) -> Codestream | None:
    """Walk the marker segments from SOC to the first tile-part (SOT)."""
    fh.seek(start)
    if _u16(fh.read(2)) != _SOC:
        return None
    size = offset = None
    components = 0
    subsampled = False
    levels: list[int] = []
    for _ in range(_MAX_STEPS):
        marker = _u16(fh.read(2))
        if marker in (_SOT, _EOC):
            break
        if marker >> 8 != 0xFF:
            return None
        length = _u16(fh.read(2))
        if length < 2:
            return None
        if marker not in (_SIZ, _COD, _COC):
            fh.seek(length - 2, os.SEEK_CUR)
            continue
        data = fh.read(length - 2)
        if marker == _SIZ:
            x1, y1, x0, y0 = struct.unpack(">IIII", data[2:18])
            components = _u16(data[34:36])
            size, offset = (x1 - x0, y1 - y0), (x0, y0)
            sampling = data[36 : 36 + 3 * components]
            if len(sampling) != 3 * components:
                return None
            subsampled = any(sampling[i] != 1 or sampling[i + 1] != 1 for i in range(1, len(sampling), 3))
        elif marker == _COD:
            levels.append(data[5])  # Scod, SGcod (4 bytes), then SPcod's decomposition levels
        elif components:  # COC: Ccoc (1 byte, 2 when there are over 256 components), Scoc, SPcoc
            levels.append(data[(1 if components < 257 else 2) + 1])
        else:
            return None  # COC before SIZ
    if size is None or offset is None or not levels:
        return None
    return Codestream(size=size, offset=offset, subsampled=subsampled, levels=min(levels))


def _u16(data: bytes) -> int:
    if len(data) != 2:
        raise ValueError("truncated codestream header")
    return int.from_bytes(data, "big")
