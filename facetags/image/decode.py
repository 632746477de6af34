"""Decode a photo file into an upright RGB uint8 array.

Every supported file (JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF, AVIF, PPM, JPEG 2000) in
any of its pixel layouts (greyscale, palette, CMYK, 16 bit, with or without alpha) becomes an
``HxWx3`` ``uint8`` RGB array with the EXIF orientation applied. Alpha is composited onto
white (a transparent background reads as paper, not as black). 16-bit samples are scaled to
8 bits (``v / 257``), never clipped. GIFs and other multi-frame files give their first frame.

With ``max_side`` the image is reduced so its long side is at most ``max_side``; JPEGs are then
decoded at a reduced scale by libjpeg itself (draft mode), so a 24 MP photo costs a fraction of
a full decode, and very large JPEG 2000s without their finest resolution levels by OpenJPEG
(:data:`JPEG2000_PILLOW_MAX_PIXELS`). :attr:`Decoded.width` and :attr:`Decoded.height` are
always the full-size upright dimensions, so coordinates found in the reduced image map back
with :attr:`Decoded.scale`.

Any bad input (missing, unreadable, empty, truncated, not an image, too many pixels) raises
:class:`facetags.errors.DecodeError`, whose message names the file; nothing else escapes.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, Jpeg2KImagePlugin, PngImagePlugin

from facetags.errors import DecodeError
from facetags.image import jpeg2000

log = logging.getLogger(__name__)

#: Files with more pixels than this are refused before any pixel is decoded (a decompression
#: bomb, or a panorama too large to be worth it). Twice Pillow's own warning level: ~179 MP.
MAX_PIXELS = 178_956_970

#: The Pillow formats tried, in order. Formats that shell out (EPS) or are not photos are left out.
FORMATS = (
    "JPEG",
    "PNG",
    "HEIF",
    "WEBP",
    "TIFF",
    "BMP",
    "DIB",
    "GIF",
    "AVIF",
    "PPM",
    "JPEG2000",
)

#: Pillow reads a PNG's text chunks as it opens it, and refused a photo whose compressed XMP
#: unpacks to over 1 MiB: chunks up to the XMP packets facetags reads (4 MiB,
#: facetags.xmp.packet.MAX_PACKET_BYTES) are read (Pillow's limit on all of them, 64 MiB, stays).
PngImagePlugin.MAX_TEXT_CHUNK = max(PngImagePlugin.MAX_TEXT_CHUNK, 4 * 1024 * 1024)

#: EXIF orientation tag (0x0112) value -> the transpose that makes the stored image upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ORIENTATION_TAG = 0x0112
_ISOBMFF_BRAND = b"ftyp"  # bytes 4..8 of a HEIF/HEIC/AVIF file
_heif_lock = threading.Lock()
_warnings_lock = threading.Lock()
_heif_registered = False


@dataclass(frozen=True)
class Decoded:
    """A decoded photo."""

    image: np.ndarray  # HxWx3 uint8 RGB, upright (EXIF orientation applied), possibly reduced
    width: int  # upright full-size width in pixels
    height: int  # upright full-size height in pixels
    orientation: int = 1  # the EXIF orientation applied (facetags.orientation)

    @property
    def scale(self) -> float:
        """Pixels of :attr:`image` per pixel of the full-size upright photo."""
        return float(self.image.shape[1]) / float(self.width)


def decode(path: str | os.PathLike[str], max_side: int | None = None) -> Decoded:
    """Decode ``path`` to an upright RGB array whose long side is at most ``max_side``.

    Raises :class:`DecodeError` for any file that cannot be decoded; ``ValueError`` only for a
    ``max_side`` below 1 (a programming error, not bad input).
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    with _open(path) as im:
        stored_w, stored_h = im.size
        try:
            if max_side is not None and im.format == "JPEG":
                _draft(im, max_side)
            orientation = _orientation(im, path)
            if _large_webp(im, max_side):
                rgb = _webp_at_most(path, im, max_side)
            elif _large_jpeg2000(im, max_side):
                rgb = _jpeg2000_at_most(path, im, max_side)
            else:
                im.load()  # outside _logged_warnings: the slow part runs in parallel across threads
                rgb = _rgb_at_most(im, max_side)
            if orientation in _TRANSPOSE:
                rgb = rgb.transpose(_TRANSPOSE[orientation])
            # A copy, so the array owns its memory once the file is closed.
            array = np.array(rgb, dtype=np.uint8, order="C")
        except DecodeError:
            raise
        except Exception as exc:  # Pillow raises many types for broken data
            raise DecodeError(
                path, f"cannot decode image data ({_describe(exc)})", access=_unreachable(exc)
            ) from exc
    if orientation >= 5:
        stored_w, stored_h = stored_h, stored_w
    return Decoded(image=array, width=stored_w, height=stored_h, orientation=orientation)


def read_orientation(path: str | os.PathLike[str]) -> int:
    """The EXIF orientation (1..8) that :func:`decode` applies to ``path``.

    Missing or invalid values read as 1. For HEIF files the container's own rotation is
    already applied by the decoder, so they read as 1 too. Raises :class:`DecodeError`.
    """
    with _open(path) as im:
        try:
            return _orientation(im, path)
        except Exception as exc:  # e.g. PNG loads pixels to find a trailing eXIf chunk
            raise DecodeError(path, f"cannot read metadata ({_describe(exc)})") from exc


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The stored (not upright) ``(width, height)`` of ``path``, read from its header only.

    ``decode(path).width, .height`` equal this, swapped when :func:`read_orientation` is 5..8.
    """
    with _open(path) as im:
        width, height = im.size
        return int(width), int(height)


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """Open ``path`` lazily (header only) after checking it is a readable, sane image file."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise DecodeError(path, "no such file") from exc
    except OSError as exc:
        raise DecodeError(path, f"cannot access file ({_describe(exc)})", access=True) from exc
    if stat.S_ISDIR(info.st_mode):
        raise DecodeError(path, "is a directory, not a photo")
    if not stat.S_ISREG(info.st_mode):
        raise DecodeError(path, "not a regular file")
    if info.st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally below
    except OSError as exc:
        raise DecodeError(path, f"cannot open file ({_describe(exc)})", access=True) from exc
    try:
        try:
            head = fh.read(12)
            fh.seek(0)
        except OSError as exc:  # the first read of a failing disk or a share gone
            raise DecodeError(path, f"cannot read file ({_describe(exc)})", access=_unreachable(exc)) from exc
        if head[4:8] == _ISOBMFF_BRAND:
            _register_heif()
        im = _pil_open(fh, path)
        try:
            width, height = im.size
            if width < 1 or height < 1:
                raise DecodeError(path, f"image has no pixels ({width}x{height})")
            if width * height > MAX_PIXELS:
                raise DecodeError(
                    path,
                    f"image too large ({width}x{height} = {width * height} pixels, "
                    f"limit {MAX_PIXELS}); refusing a possible decompression bomb",
                )
            yield im
        finally:
            im.close()
    finally:
        fh.close()


def _pil_open(fh: Any, path: str | os.PathLike[str]) -> Image.Image:
    try:
        with _logged_warnings(path):
            return Image.open(fh, formats=_available_formats())
    except Image.DecompressionBombError as exc:
        raise DecodeError(path, f"refusing a possible decompression bomb ({exc})") from exc
    except Image.UnidentifiedImageError as exc:
        raise DecodeError(path, "not a recognised image format") from exc
    except Exception as exc:
        raise DecodeError(
            path, f"cannot read image header ({_describe(exc)})", access=_unreachable(exc)
        ) from exc


@contextmanager
def _logged_warnings(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn Pillow's warnings (corrupt EXIF, odd chunks) into log records that name the file.

    DecompressionBombWarning is dropped: MAX_PIXELS decides, not Pillow's lower warning level.
    ``catch_warnings`` swaps process-wide state, so callers are serialised by a lock; it only
    wraps header and metadata parsing (fast), never pixel decoding.
    """
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
    for warning in caught:
        log.warning("%s: %s", os.fspath(path), warning.message)


def _available_formats() -> tuple[str, ...]:
    Image.init()  # loads Pillow's plugins once; a no-op afterwards
    return tuple(name for name in FORMATS if name in Image.OPEN)


def _register_heif() -> None:
    """Make Pillow able to open HEIF/HEIC, once, on the first such file."""
    global _heif_registered
    with _heif_lock:
        if _heif_registered:
            return
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:
            log.warning("pillow-heif is not installed; HEIC/HEIF photos cannot be decoded")
        _heif_registered = True


def _draft(im: Image.Image, max_side: int) -> None:
    """Ask libjpeg to decode at the smallest 1/2, 1/4 or 1/8 scale still >= ``max_side``."""
    wanted = _wanted(im.size, max_side)
    if wanted is None:
        return
    mode = "RGB" if im.mode in ("RGB", "YCbCr") else im.mode
    im.draft(mode, wanted)


def _wanted(size: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    """The least size a reduced decode (JPEG draft, JPEG 2000 levels) must keep of an image
    of ``size`` for it to be shrunk to ``max_side`` afterwards; None when it is small enough."""
    width, height = size
    factor = max_side / max(width, height)
    if factor >= 1:
        return None
    return (max(1, int(width * factor + 0.999)), max(1, int(height * factor + 0.999)))


def _orientation(im: Image.Image, path: str | os.PathLike[str]) -> int:
    """The EXIF orientation of ``im``: 1..8, or 1 (logged) when missing, corrupt or invalid."""
    try:
        with _logged_warnings(path):
            value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception as exc:  # corrupt EXIF blocks raise all sorts of things
        log.warning("%s: unreadable EXIF (%s); assuming upright", os.fspath(path), _describe(exc))
        return 1
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    # 0 ("unknown") is common in camera files and harmless: not worth a warning.
    report = log.debug if value == 0 else log.warning
    report("%s: invalid EXIF orientation %r; assuming upright", os.fspath(path), value)
    return 1


def _rgb_at_most(im: Image.Image, max_side: int | None, size: tuple[int, int] | None = None) -> Image.Image:
    """``im`` as 8-bit RGB whose long side is at most ``max_side``, in bounded memory; shrunk
    to ``size`` instead when given (an image decoded reduced: the full size's target).

    The result is what converting the whole image (:func:`_to_rgb`) and then shrinking it
    (:func:`_shrink`) gives, bit for bit, but no full-size copy is made: the image is converted
    in strips and each strip box-reduced at once by the factor ``resize(reducing_gap=3)`` would
    use for its first step (the reduction of a strip whose height is a multiple of that factor
    is the reduction of those rows of the whole image), and the Lanczos step runs on the
    reduced image. The largest buffer besides the decoded file is then the reduced image.
    """
    size = size or _shrunk_size(im.size, max_side)
    if im.mode == "RGB":  # nothing to convert: Pillow's resize reduces first by itself
        return im if size is None else _shrink(im, size)
    width, height = im.size
    fx, fy = (1, 1) if size is None else _reduce_factors(im.size, size)
    top = _float_top(im)
    rows = fy * max(1, _STRIP_PIXELS // (width * fy))
    if rows >= height:  # a small image: one strip is the whole image
        rgb = _to_rgb(im, top)
        return rgb if size is None else _shrink(rgb, size)
    reduced = Image.new("RGB", (-(-width // fx), -(-height // fy)))
    for y0 in range(0, height, rows):
        strip = _to_rgb(im.crop((0, y0, width, min(height, y0 + rows))), top)
        if (fx, fy) != (1, 1):
            strip = strip.reduce((fx, fy))
        reduced.paste(strip, (0, y0 // fy))
        del strip
    if size is None:
        return reduced
    return reduced.resize(size, Image.Resampling.LANCZOS, box=(0, 0, width / fx, height / fy))


#: Pixels converted at a time by :func:`_rgb_at_most` (a strip of an RGBA image: 4 MB).
_STRIP_PIXELS = 1 << 20


#: A WebP with more pixels than this is decoded at a reduced size by libwebp itself
#: (:mod:`facetags.image.webp_scaled`): Pillow's way holds ~16 bytes per pixel (0.8 GB here).
WEBP_PILLOW_MAX_PIXELS = 50_000_000


def _large_webp(im: Image.Image, max_side: int | None) -> bool:
    width, height = im.size
    if (
        im.format != "WEBP"
        or _shrunk_size(im.size, max_side) is None
        or width * height <= WEBP_PILLOW_MAX_PIXELS
    ):
        return False
    if getattr(im, "n_frames", 1) > 1:
        return False  # animated: Pillow composes the first frame
    from facetags.image import webp_scaled

    if webp_scaled.available():
        return True
    log.warning("libwebp not found: decoding a %d MP WebP in full (high memory)", width * height // 10**6)
    return False


def _webp_at_most(path: str | os.PathLike[str], im: Image.Image, max_side: int | None) -> Image.Image:
    """A large still WebP scaled by libwebp to the size Pillow's box reduction would give
    (:func:`_reduce_factors`), then converted and shrunk like every other image."""
    from facetags.image import webp_scaled

    size = _shrunk_size(im.size, max_side)
    assert size is not None
    width, height = im.size
    fx, fy = _reduce_factors(im.size, size)
    with open(path, "rb") as fh:
        data = fh.read()
    scaled = webp_scaled.decode_scaled(data, (-(-width // fx), -(-height // fy)), im.mode == "RGBA")
    return _shrink(_to_rgb(scaled), size)


#: A JPEG 2000 with more pixels than this is decoded by OpenJPEG at a reduced resolution
#: (:mod:`facetags.image.jpeg2000`): a full decode holds ~18 bytes per pixel (3.1 GB at 169 MP).
#: Smaller ones decode in full, exactly as before, so their content hashes stay as they were.
JPEG2000_PILLOW_MAX_PIXELS = 50_000_000


def _large_jpeg2000(im: Image.Image, max_side: int | None) -> bool:
    width, height = im.size
    return (
        isinstance(im, Jpeg2KImagePlugin.Jpeg2KImageFile)
        and _shrunk_size(im.size, max_side) is not None
        and width * height > JPEG2000_PILLOW_MAX_PIXELS
    )


def _jpeg2000_at_most(path: str | os.PathLike[str], im: Image.Image, max_side: int | None) -> Image.Image:
    """A large JPEG 2000 decoded without the finest resolution levels it can spare (the
    smallest 1/2, 1/4, 1/8 ... scale still at least the detection size, as JPEG's draft mode
    does), then converted and shrunk like every other image. A file that cannot be decoded so
    (a tile-part that holds fewer levels than the main header says) is decoded in full; one
    cut short (no end-of-codestream marker) is not: it would fail in full too, after taking a
    full decode's memory."""
    assert isinstance(im, Jpeg2KImagePlugin.Jpeg2KImageFile) and max_side is not None
    size = _shrunk_size(im.size, max_side)  # of the full size: the shape a full decode gives
    wanted = _wanted(im.size, max_side)
    levels = 0 if wanted is None else jpeg2000.reduction(path, im.size, wanted)
    if levels == 0:
        log.debug("%s: JPEG 2000 with no resolution level to spare; decoding in full", os.fspath(path))
    try:
        jpeg2000.load_reduced(im, levels)
    except Exception as exc:
        if levels == 0 or not jpeg2000.is_whole(path):
            raise
        log.warning(
            "%s: cannot decode at 1/%d scale (%s); decoding in full (high memory)",
            os.fspath(path),
            1 << levels,
            _describe(exc),
        )
        with _open(path) as full:
            full.load()
            return _rgb_at_most(full, max_side).copy()  # a copy: it outlives the file
    return _rgb_at_most(im, max_side, size)


def _to_rgb(im: Image.Image, top: float | None = None) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; alpha composited onto white, 16 bit scaled (not clipped).
    ``top`` is the full scale of float samples (:func:`_float_top` of the whole image)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_8bit(np.asarray(im), top), mode="L").convert("RGB")
    if mode == "P":
        has_alpha = "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _float_top(im: Image.Image) -> float | None:
    """The full scale of a float image's samples: 1.0 when every finite sample is <= 1 (or
    there is none), else 65535. Found strip by strip; None for other modes."""
    if im.mode != "F":
        return None
    width, height = im.size
    rows = max(1, _STRIP_PIXELS // width)
    for y0 in range(0, height, rows):
        samples = np.asarray(im.crop((0, y0, width, min(height, y0 + rows))))
        finite = samples[np.isfinite(samples)]
        if finite.size and float(finite.max()) > 1.0:
            return 65535.0
    return 1.0


def _to_8bit(samples: np.ndarray, top: float | None = None) -> np.ndarray:
    """16-bit (or 32-bit integer / float) greyscale samples -> uint8 by scaling. Float samples
    are scaled by ``top`` (found from ``samples`` when not given)."""
    if samples.dtype.kind == "f":
        if top is None:
            finite = samples[np.isfinite(samples)]
            top = 1.0 if finite.size == 0 or float(finite.max()) <= 1.0 else 65535.0
        scaled = np.nan_to_num(samples.astype(np.float64) / top * 255.0)
    else:
        scaled = samples.astype(np.float64) / 257.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _shrunk_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int] | None:
    """The size :func:`decode` reduces an image of ``size`` to; None when it stays as it is."""
    width, height = size
    if max_side is None or max(width, height) <= max_side:
        return None
    factor = max_side / max(width, height)
    return (max(1, min(max_side, round(width * factor))), max(1, min(max_side, round(height * factor))))


#: resize(): a fast box reduction first, then Lanczos over the last factor of 3.
_REDUCING_GAP = 3.0


def _reduce_factors(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The box reduction ``Image.resize(target, reducing_gap=3)`` applies first (Pillow's rule)."""
    return (
        int(size[0] / target[0] / _REDUCING_GAP) or 1,
        int(size[1] / target[1] / _REDUCING_GAP) or 1,
    )


def _shrink(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)


#: Errors that say a file could not be reached, not what is in it.
_UNREACHABLE = {
    getattr(errno, name)
    for name in [
        "EACCES",
        "EPERM",
        "EIO",
        "ENXIO",
        "ENODEV",
        "ENOMEDIUM",
        "ESTALE",
        "ENOTCONN",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ETIMEDOUT",
        "ECONNRESET",
        "EAGAIN",
    ]
    if hasattr(errno, name)
}


def _unreachable(exc: BaseException) -> bool:
    """Whether reading failed in the system (EIO from a failing disk, a share gone, no
    permission) rather than in the data: Pillow reports broken data as OSError too, without an
    errno or with one of its own (a corrupt offset: EINVAL from a seek)."""
    return isinstance(exc, OSError) and exc.errno in _UNREACHABLE


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
