"""facetags.image.decode: every format and pixel layout to upright RGB uint8; bad input fails cleanly.

All test images are built at test time from real photos that ship in dependencies
(scikit-image's astronaut, insightface's t1.jpg), written to tmp_path.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

from facetags.errors import DecodeError
from facetags.image import decode as decode_mod
from facetags.image.decode import Decoded, decode, image_size, read_orientation

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def upright(astronaut: np.ndarray) -> np.ndarray:
    """A portrait crop (512 high, 384 wide) so width/height swaps are visible."""
    return np.ascontiguousarray(astronaut[:, 64:448])


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def exif_with(value: object) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    return exif


# What a camera stores for each EXIF orientation, given the upright scene (EXIF 2.3, 0x0112):
# the 0th row / 0th column of the stored image are the visual ...
STORED: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,  # top / left
    2: lambda a: a[:, ::-1],  # top / right
    3: lambda a: a[::-1, ::-1],  # bottom / right
    4: lambda a: a[::-1, :],  # bottom / left
    5: lambda a: a.transpose(1, 0, 2),  # left / top
    6: lambda a: np.rot90(a, 1),  # right / top  (display: rotate 90 clockwise)
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # right / bottom
    8: lambda a: np.rot90(a, -1),  # left / bottom (display: rotate 90 counter-clockwise)
}


def write_oriented(upright: np.ndarray, orientation: int, path: Path, **save: object) -> Path:
    stored = np.ascontiguousarray(STORED[orientation](upright))
    Image.fromarray(stored).save(path, exif=exif_with(orientation), **save)
    return path


# --- orientation -------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_exif_orientation_is_applied(upright: np.ndarray, tmp_path: Path, orientation: int, ext: str) -> None:
    path = write_oriented(upright, orientation, tmp_path / f"o{orientation}.{ext}", quality=95)
    out = decode(path)
    assert isinstance(out, Decoded)
    assert out.image.dtype == np.uint8 and out.image.shape == upright.shape
    assert (out.width, out.height) == (384, 512)
    assert out.scale == 1.0
    tolerance = 3.0 if ext == "jpg" else 0.0
    assert mean_diff(out.image, upright) <= tolerance
    # Independent reference: Pillow's own exif_transpose agrees.
    with Image.open(path) as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert mean_diff(out.image, reference) <= 1.0
    assert read_orientation(path) == orientation
    stored_w, stored_h = (512, 384) if orientation >= 5 else (384, 512)
    assert image_size(path) == (stored_w, stored_h)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_with_max_side_keeps_full_upright_size(
    upright: np.ndarray, tmp_path: Path, orientation: int
) -> None:
    path = write_oriented(upright, orientation, tmp_path / "o.jpg", quality=95)
    out = decode(path, max_side=128)
    assert out.image.shape == (128, 96, 3)
    assert (out.width, out.height) == (384, 512)
    assert out.scale == pytest.approx(0.25)
    small = np.asarray(Image.fromarray(upright).resize((96, 128), Image.Resampling.LANCZOS))
    assert mean_diff(out.image, small) <= 4.0


def raw_orientation_exif(kind: int, count: int, inline: bytes) -> bytes:
    """An EXIF block whose one IFD entry is the orientation tag with any type and value."""
    entry = struct.pack("<HHI", ORIENTATION, kind, count) + inline.ljust(4, b"\x00")
    return b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


ODD_ORIENTATIONS = {
    "zero": raw_orientation_exif(3, 1, struct.pack("<H", 0)),
    "nine": raw_orientation_exif(3, 1, struct.pack("<H", 9)),
    "max-short": raw_orientation_exif(3, 1, struct.pack("<H", 65535)),
    "ascii": raw_orientation_exif(2, 2, b"6\x00"),
    "negative-long": raw_orientation_exif(9, 1, struct.pack("<i", -6)),
    "rational": raw_orientation_exif(5, 1, struct.pack("<I", 40)),  # offset past the end
}


@pytest.mark.parametrize("name", sorted(ODD_ORIENTATIONS))
def test_invalid_orientation_values_read_as_upright(
    upright: np.ndarray, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "odd.jpg"
    Image.fromarray(upright).save(path, exif=ODD_ORIENTATIONS[name], quality=95)
    with caplog.at_level(logging.DEBUG, logger="facetags.image.decode"):
        out = decode(path)
    assert mean_diff(out.image, upright) <= 3.0
    assert (out.width, out.height) == (384, 512)
    assert read_orientation(path) == 1
    logged = [r for r in caplog.records if str(path) in r.getMessage()]
    assert logged, "the oddity is logged"
    # 0 means "unknown" and is common in camera files: logged quietly, not warned about.
    expected = logging.DEBUG if name == "zero" else logging.WARNING
    assert {r.levelno for r in logged} == {expected}


@pytest.mark.parametrize(
    "blob",
    [
        b"Exif\x00\x00" + b"\xde\xad\xbe\xef" * 8,  # not a TIFF header at all
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01",  # cut short
    ],
)
def test_corrupt_exif_does_not_crash(upright: np.ndarray, tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "corrupt-exif.jpg"
    Image.fromarray(upright).save(path, exif=blob, quality=95)
    out = decode(path)
    assert mean_diff(out.image, upright) <= 3.0
    assert read_orientation(path) == 1


# --- formats and pixel layouts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "save", "tolerance"),
    [
        ("jpg", {"quality": 95}, 3.0),
        ("png", {}, 0.0),
        ("webp", {"lossless": True}, 0.0),
        ("webp", {"quality": 90}, 4.0),
        ("tif", {}, 0.0),
        ("tif", {"compression": "tiff_lzw"}, 0.0),
        ("bmp", {}, 0.0),
        ("gif", {}, 12.0),
    ],
)
def test_formats(
    upright: np.ndarray, tmp_path: Path, ext: str, save: dict[str, object], tolerance: float
) -> None:
    path = tmp_path / f"photo.{ext}"
    Image.fromarray(upright).save(path, **save)
    out = decode(path)
    assert out.image.dtype == np.uint8 and out.image.flags.c_contiguous
    assert (out.width, out.height) == (384, 512)
    assert mean_diff(out.image, upright) <= tolerance


def test_gif_gives_first_frame(upright: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    first = Image.fromarray(upright)
    second = Image.fromarray(255 - upright)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    out = decode(path)
    assert mean_diff(out.image, upright) <= 12.0
    assert mean_diff(out.image, 255 - upright) > 50.0


def _heif_writer() -> Any:
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):  # the HEVC encoder's name, or empty
        pytest.skip("this pillow-heif build has no HEVC encoder to write a test HEIC")
    return pillow_heif


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_heic(upright: np.ndarray, tmp_path: Path, orientation: int) -> None:
    pillow_heif = _heif_writer()
    stored = np.ascontiguousarray(STORED[orientation](upright))
    heif = pillow_heif.from_pillow(Image.fromarray(stored))
    heif.info["exif"] = exif_with(orientation).tobytes()  # libheif turns this into irot
    path = tmp_path / "photo.heic"
    heif.save(path, quality=90)
    out = decode(path)
    assert (out.width, out.height) == (384, 512)
    assert mean_diff(out.image, upright) <= 4.0
    small = decode(path, max_side=256)
    assert small.image.shape == (256, 192, 3) and (small.width, small.height) == (384, 512)


def test_pillow_heif_is_imported_only_for_heif(t1_path: Path) -> None:
    code = (
        "import sys\n"
        "from facetags.image.decode import decode\n"
        f"decode({str(t1_path)!r}, max_side=640)\n"
        "assert 'pillow_heif' not in sys.modules, 'pillow_heif imported for a JPEG'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _grey(upright: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(upright).convert("L"))


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_greyscale_is_scaled_not_clipped(upright: np.ndarray, tmp_path: Path, ext: str) -> None:
    grey = _grey(upright)
    path = tmp_path / f"grey16.{ext}"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)  # full 16-bit range
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    out = decode(path)
    assert out.image.shape == (*grey.shape, 3)
    for channel in range(3):
        assert mean_diff(out.image[..., channel], grey) == 0.0


def _png16(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16_bit_rgb_png_is_scaled(upright: np.ndarray, tmp_path: Path) -> None:
    # Low bytes carry different data, so clipping or byte-mixing would show.
    rgb16 = upright.astype(np.uint16) * 256 + (255 - upright).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png16(rgb16))
    out = decode(path)
    expected = np.rint(rgb16 / 257.0)
    assert np.abs(out.image.astype(np.float64) - expected).max() <= 1.0


def test_16_bit_rgb_tiff_is_scaled(upright: np.ndarray, tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rgb16 = upright.astype(np.uint16) * 257
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, rgb16, photometric="rgb")
    out = decode(path)
    assert mean_diff(out.image, upright) == 0.0


@pytest.mark.parametrize(("ext", "tolerance"), [("jpg", 4.0), ("tif", 0.0)])
def test_cmyk(upright: np.ndarray, tmp_path: Path, ext: str, tolerance: float) -> None:
    path = tmp_path / f"cmyk.{ext}"
    Image.fromarray(upright).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    out = decode(path)
    assert mean_diff(out.image, upright) <= tolerance
    assert decode(path, max_side=200).image.shape == (200, 150, 3)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel(upright: np.ndarray, tmp_path: Path, mode: str) -> None:
    source = Image.fromarray(upright).convert(mode)
    path = tmp_path / f"grey-{mode}.png"
    source.save(path)
    out = decode(path)
    expected = np.asarray(source.convert("RGB"))
    assert mean_diff(out.image, expected) == 0.0


def test_palette(upright: np.ndarray, tmp_path: Path) -> None:
    palette = Image.fromarray(upright).quantize(colors=200)
    path = tmp_path / "palette.png"
    palette.save(path)
    out = decode(path)
    assert mean_diff(out.image, np.asarray(palette.convert("RGB"))) == 0.0


def test_palette_transparency_becomes_white(upright: np.ndarray, tmp_path: Path) -> None:
    palette = Image.fromarray(upright).quantize(colors=200)
    index = int(np.asarray(palette)[0, 0])
    path = tmp_path / "palette-t.png"
    palette.save(path, transparency=index)
    out = decode(path)
    hole = np.asarray(palette) == index
    assert (out.image[hole] == 255).all()
    visible = np.asarray(palette.convert("RGB"))[~hole]
    assert mean_diff(out.image[~hole], visible) == 0.0


@pytest.mark.parametrize(("mode", "ext"), [("RGBA", "png"), ("LA", "png"), ("RGBA", "webp"), ("RGBA", "tif")])
def test_alpha_is_composited_onto_white(upright: np.ndarray, tmp_path: Path, mode: str, ext: str) -> None:
    height, width, _ = upright.shape
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, width // 2 :] = 0  # right half fully transparent
    alpha[: height // 4, : width // 2] = 128  # a half-transparent band
    colour = Image.fromarray(upright).convert(mode[:-1] if mode != "RGBA" else "RGB")
    image = colour.convert(mode)
    image.putalpha(Image.fromarray(alpha))
    path = tmp_path / f"alpha-{mode}.{ext}"
    image.save(path, lossless=True)
    out = decode(path)
    base = np.asarray(colour.convert("RGB")).astype(np.float64)
    a = alpha[..., None] / 255.0
    expected = base * a + 255.0 * (1 - a)
    assert np.abs(out.image - expected).max() <= 1.0
    assert (out.image[:, width // 2 :] == 255).all()


# --- draft mode --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(upright: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24 MP (6000x4000) JPEG: the astronaut scaled up, landscape."""
    landscape = np.ascontiguousarray(np.rot90(upright, 1))  # 384 x 512
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    Image.fromarray(landscape).resize((6000, 4000), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def test_draft_mode_decodes_a_large_jpeg_at_reduced_scale(
    big_jpeg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> object:
        result = original(self)
        loaded.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    out = decode(big_jpeg, max_side=1280)
    assert max(out.image.shape[:2]) == 1280
    assert out.image.shape == (853, 1280, 3)
    assert (out.width, out.height) == (6000, 4000)
    assert out.scale == pytest.approx(1280 / 6000)
    # libjpeg decoded at 1/4 scale (1500x1000), never the full 6000x4000.
    assert loaded and max(loaded[0]) < 6000
    assert loaded[0] == (1500, 1000)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", original)
    with Image.open(big_jpeg) as im:
        reference = np.asarray(im.convert("RGB").resize((1280, 853), Image.Resampling.LANCZOS))
    assert mean_diff(out.image, reference) <= 2.0


def test_max_side_larger_than_image_keeps_full_size(upright: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    Image.fromarray(upright).save(path, quality=95)
    out = decode(path, max_side=4000)
    assert out.image.shape == upright.shape and out.scale == 1.0


def test_max_side_must_be_positive(tmp_path: Path, upright: np.ndarray) -> None:
    path = tmp_path / "p.png"
    Image.fromarray(upright).save(path)
    with pytest.raises(ValueError):
        decode(path, max_side=0)


def test_real_group_photo(t1_path: Path) -> None:
    out = decode(t1_path, max_side=640)
    assert (out.width, out.height) == image_size(t1_path) == (1280, 886)
    assert out.image.shape == (443, 640, 3)
    assert out.scale == 0.5


# --- bad input ---------------------------------------------------------------------------------


def _jpeg_bytes(upright: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(upright).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _png_bytes(upright: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(upright).save(buffer, "PNG")
    return buffer.getvalue()


def _bomb_jpeg(upright: np.ndarray) -> bytes:
    """A real JPEG whose frame header claims 60000x60000 pixels (3.6 gigapixels)."""
    data = bytearray(_jpeg_bytes(upright))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


def _bomb_png() -> bytes:
    """A PNG header claiming 100000x100000 RGB pixels with a tiny body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


BAD_FILES: dict[str, Callable[[np.ndarray], bytes]] = {
    "empty.jpg": lambda a: b"",
    "truncated.jpg": lambda a: _jpeg_bytes(a)[: len(_jpeg_bytes(a)) // 2],
    "header-only.jpg": lambda a: _jpeg_bytes(a)[:40],
    "truncated.png": lambda a: _png_bytes(a)[: len(_png_bytes(a)) // 2],
    "text.jpg": lambda a: b"this is a shopping list, not a photo\n" * 20,
    "random.png": lambda a: np.random.default_rng(7).integers(0, 256, 5000, np.uint8).tobytes(),
    "bomb.jpg": _bomb_jpeg,
    "bomb.png": lambda a: _bomb_png(),
    "fake.heic": lambda a: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_raises_decode_error_naming_the_file(
    upright: np.ndarray, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name](upright))
    loads: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        loads.append(name)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    for call in (lambda: decode(path), lambda: decode(path, max_side=640)):
        with pytest.raises(DecodeError) as info:
            call()
        assert str(path) in str(info.value)
        assert info.value.path == str(path)
        assert not info.value.access, "read, and bad: skipped until it changes, not retried"
    if name.startswith("bomb"):
        assert "too large" in str(info.value) or "bomb" in str(info.value)
        assert not loads, "a decompression bomb must be refused before any pixel is decoded"
        with pytest.raises(DecodeError):
            image_size(path)


def test_pixel_limit_is_ours(upright: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.jpg"
    Image.fromarray(upright).save(path)
    monkeypatch.setattr(decode_mod, "MAX_PIXELS", 100_000)
    with pytest.raises(DecodeError, match="too large"):
        decode(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, words in ((tmp_path / "nope.jpg", "no such file"), (tmp_path, "directory")):
        for call in (decode, read_orientation, image_size):
            with pytest.raises(DecodeError, match=words) as info:
                call(path)
            assert str(path) in str(info.value)


def test_unreadable_file(upright: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.jpg"
    Image.fromarray(upright).save(path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: simulate the refusal instead

            def refuse(*args: object, **kwargs: object) -> object:
                raise PermissionError(13, "Permission denied", str(path))

            monkeypatch.setattr(decode_mod, "open", refuse, raising=False)
        with pytest.raises(DecodeError, match="Permission denied") as info:
            decode(path)
        assert str(path) in str(info.value)
        assert info.value.access, "not read at all: the next scan tries it again"
    finally:
        path.chmod(0o644)


def test_only_system_errors_make_a_file_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow raises OSError for broken data too, with no errno or one of its own (a corrupt
    offset seeks before the start: EINVAL): those files are bad, not unreachable."""
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    for exc, unreachable in (
        (OSError(errno.EIO, "Input/output error"), True),
        (OSError(errno.EINVAL, "Invalid argument"), False),
        (OSError("image file is truncated"), False),
    ):

        def fail(self: ImageFile.ImageFile, exc: OSError = exc) -> object:
            raise exc

        monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
        with pytest.raises(DecodeError) as info:
            decode(path)
        assert info.value.access is unreachable, exc


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    with pytest.raises(DecodeError, match="not a regular file"):
        decode(path)


def test_a_png_with_a_large_compressed_xmp_packet_is_read(upright: np.ndarray, tmp_path: Path) -> None:
    """A PNG whose compressed XMP unpacks to 2 MB (within the 4 MiB facetags reads) failed
    ('cannot read image header': Pillow's 1 MiB limit on one text chunk): never indexed."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    packet = '<x:xmpmeta xmlns:x="adobe:ns:meta/">' + "<!-- history -->" * 130_000 + "</x:xmpmeta>"
    info.add_itxt("XML:com.adobe.xmp", packet, zip=True)
    path = tmp_path / "big-xmp.png"
    Image.fromarray(upright).save(path, pnginfo=info)
    decoded = decode(path)
    assert decoded.image.shape[:2] == upright.shape[:2]
