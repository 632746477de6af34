"""Decode a very large WebP at a reduced size with libwebp's own scaler (through ctypes).

Pillow decodes a WebP through libwebp's animation decoder, which holds the full-size canvas,
a copy of it as bytes and the image made from those: about 16 bytes per pixel, 2.6 GB for a
169 MP file. libwebp can scale while it decodes (``WebPDecoderOptions.use_scaling``): a lossy
file then costs a few rows, a lossless one its full-size ARGB buffer (4 bytes per pixel),
whatever the output size. :mod:`facetags.image.decode` uses this only for WebPs too large
for Pillow's way within its memory bound, so ordinary WebPs decode exactly as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from functools import cache

from PIL import Image

log = logging.getLogger(__name__)

_ABI_VERSION = 0x0209  # WEBP_DECODER_ABI_VERSION of libwebp 0.5 .. 1.6
_MODE_RGB, _MODE_RGBA = 0, 1
_VP8_STATUS = {
    1: "out of memory",
    2: "invalid parameter",
    3: "bitstream error",
    4: "unsupported feature",
    5: "suspended",
    6: "user abort",
    7: "not enough data",
}


class _Features(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("width", "height", "has_alpha", "has_animation", "format")] + [
        ("pad", ctypes.c_uint32 * 5)
    ]


class _RGBA(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVA(ctypes.Structure):
    _fields_ = (
        [(n, ctypes.c_void_p) for n in ("y", "u", "v", "a")]
        + [(n, ctypes.c_int) for n in ("y_stride", "u_stride", "v_stride", "a_stride")]
        + [(n, ctypes.c_size_t) for n in ("y_size", "u_size", "v_size", "a_size")]
    )


class _Union(ctypes.Union):
    _fields_ = [("RGBA", _RGBA), ("YUVA", _YUVA)]


class _Buffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Union),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_int)
        for n in (
            "bypass_filtering",
            "no_fancy_upsampling",
            "use_cropping",
            "crop_left",
            "crop_top",
            "crop_width",
            "crop_height",
            "use_scaling",
            "scaled_width",
            "scaled_height",
            "use_threads",
            "dithering_strength",
            "flip",
            "alpha_dithering_strength",
        )
    ] + [("pad", ctypes.c_uint32 * 5)]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _Buffer), ("options", _Options)]


@cache
def _libwebp() -> ctypes.CDLL | None:
    """libwebp: the copy Pillow itself loaded (its wheel bundles one), else the system's."""
    candidates: list[str] = []
    try:
        import PIL._webp  # noqa: F401 - loads Pillow's libwebp into the process

        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                name = os.path.basename(line.split()[-1]) if "/" in line else ""
                if name.startswith("libwebp") and not name.startswith(("libwebpmux", "libwebpdemux")):
                    candidates.append(line.split()[-1])
    except (ImportError, OSError):
        pass
    found = ctypes.util.find_library("webp")
    if found:
        candidates.append(found)
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
            lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
            lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
            lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_Buffer)]
            return lib
        except (OSError, AttributeError):
            continue
    log.debug("libwebp not found (%s): very large WebPs cannot be decoded at a reduced size", sys.platform)
    return None


def available() -> bool:
    return _libwebp() is not None


def decode_scaled(data: bytes, size: tuple[int, int], alpha: bool) -> Image.Image:
    """``data`` (a still WebP) decoded and scaled by libwebp to ``size``: an RGBA image when
    ``alpha``, else RGB. Raises OSError when libwebp is missing or refuses the file."""
    lib = _libwebp()
    if lib is None:
        raise OSError("libwebp is not available")
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI_VERSION):
        raise OSError("libwebp's decoder ABI does not match")
    config.options.use_scaling = 1
    config.options.scaled_width, config.options.scaled_height = size
    config.output.colorspace = _MODE_RGBA if alpha else _MODE_RGB
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    try:
        if status != 0:
            raise OSError(f"libwebp: {_VP8_STATUS.get(status, f'status {status}')}")
        out = config.output
        mode = "RGBA" if alpha else "RGB"
        raw = ctypes.string_at(out.u.RGBA.rgba, out.u.RGBA.size)
        return Image.frombytes(mode, (out.width, out.height), raw, "raw", mode, out.u.RGBA.stride)
    finally:
        lib.WebPFreeDecBuffer(ctypes.byref(config.output))
