"""Peak memory of `facetags scan` on very large images just under the pixel limit.

Makes one file per pixel layout that costs the decoder most (16-bit grey, 16-bit RGB(A) PNG
and TIFF, palette with transparency, CMYK JPEG, a huge JPEG, a huge WebP, a float TIFF) and
per other format (JPEG 2000, BMP, GIF, HEIC), each about 169 MP (13000 x 13000; the limit is
facetags.image.decode.MAX_PIXELS, ~179 MP) in a temporary folder (most compress well: a few
MB each; the BMP is 0.5 GB), then runs `facetags scan` on each in a fresh library under
`/usr/bin/time -v` and prints the peak resident memory of the process.

HEIC is made at most 11941 x 11941 (142 MP: x265 encodes no more luma samples) and only
where pillow-heif is installed. The JPEG 2000 photo is a real face photo (deepface's, from
../shared/data, else the test pattern) three times on a 13000 x 13000 canvas, so the scan's
face count shows the faces are still found; making it holds ~6 GB (OpenJPEG's encoder). The
RGBA JPEG 2000 is one tile up to 46 MP (OpenJPEG encodes no larger tile), in tiles above.

    python benchmarks/decode_memory.py                 # every case, 13000 x 13000
    python benchmarks/decode_memory.py --side 4000 grey16-png cmyk-jpg
    python benchmarks/decode_memory.py --side 7070 rgba-jp2   # the largest full JPEG 2000 decode

Needs GNU time (`apt-get install time`). Numbers quoted in docs/library.md come from here.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"
STRIP = 256  # rows made at a time, so making a file never holds the whole image


def _ramp(width: int, channels: int, dtype: type[np.generic], top: int, row: int) -> np.ndarray:
    """One row: steps 256 pixels wide, shifted per row and per channel (not a flat image, and
    it compresses well)."""
    x = (np.arange(width, dtype=np.int64) // 256 * 7919 + row * 13)[:, None] + np.arange(channels) * 4099
    return (x % (top + 1)).astype(dtype)


def _rows(width: int, height: int, channels: int, bits: int) -> Iterator[np.ndarray]:
    dtype = np.uint16 if bits == 16 else np.uint8
    for y in range(height):
        yield _ramp(width, channels, dtype, (1 << bits) - 1, y)


def write_png(path: Path, width: int, height: int, channels: int, bits: int) -> None:
    """A PNG written row by row (Pillow cannot write 16-bit colour PNGs)."""
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(6)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)))
        for row in _rows(width, height, channels, bits):
            data = row.astype(">u2" if bits == 16 else np.uint8).tobytes()
            out = packer.compress(b"\x00" + data)
            if out:
                fh.write(chunk(b"IDAT", out))
        fh.write(chunk(b"IDAT", packer.flush()))
        fh.write(chunk(b"IEND", b""))


def write_tiff(path: Path, width: int, height: int, channels: int, dtype: str) -> None:
    """A deflate-compressed TIFF written strip by strip (tifffile)."""
    import tifffile

    def strips() -> Iterator[bytes]:  # each strip deflated here, as tifffile takes them
        for y0 in range(0, height, STRIP):
            rows = [_ramp(width, channels, np.uint16, 65535, y) for y in range(y0, min(height, y0 + STRIP))]
            strip = np.stack(rows)
            if dtype == "float32":
                strip = strip.astype(np.float32) / np.float32(65535)
            yield zlib.compress(strip.astype(dtype).tobytes(), 6)

    shape = (height, width) if channels == 1 else (height, width, channels)
    photometric = "minisblack" if channels == 1 else "rgb"
    extra = {"extrasamples": ["unassalpha"]} if channels == 4 else {}
    tifffile.imwrite(
        path,
        data=strips(),
        shape=shape,
        dtype=dtype,
        photometric=photometric,
        compression="zlib",
        rowsperstrip=STRIP,
        **extra,  # type: ignore[arg-type]
    )


def pillow_image(mode: str, width: int, height: int) -> Image.Image:
    """A full-size Pillow image made strip by strip (the writer needs it whole)."""
    bands = len(Image.new(mode, (1, 1)).getbands()) if mode != "P" else 1
    im = Image.new(mode, (width, height))
    for y0 in range(0, height, STRIP):
        rows = np.stack([_ramp(width, bands, np.uint8, 255, y) for y in range(y0, min(height, y0 + STRIP))])
        im.paste(
            Image.fromarray(rows.squeeze(-1) if bands == 1 else rows, mode="L" if bands == 1 else mode),
            (0, y0),
        )
    return im


def write_palette_alpha(path: Path, width: int, height: int) -> None:
    im = pillow_image("P", width, height)
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)])
    im.save(path, transparency=bytes(range(256)), optimize=False)


def write_pillow(path: Path, width: int, height: int, mode: str, **options: Any) -> None:
    pillow_image(mode, width, height).save(path, **options)


SHARED_DATA = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))
FACE_PHOTO = SHARED_DATA / "deepface" / "photos" / "img1.jpg"  # one face
JP2_OPTIONS: dict[str, Any] = {"quality_mode": "rates", "quality_layers": [40], "irreversible": True}


def write_photo_jp2(path: Path, width: int, height: int) -> None:
    """A real face photo three times along the diagonal of a grey canvas, as a lossy JPEG 2000
    in one tile (as an export writes it; OpenJPEG's worst case to decode)."""
    if not FACE_PHOTO.is_file():
        print(f"({FACE_PHOTO} not found: the JPEG 2000 photo is the test pattern)", file=sys.stderr)
        write_pillow(path, width, height, "RGB", **JP2_OPTIONS)
        return
    canvas = Image.new("RGB", (width, height), (120, 130, 140))
    with Image.open(FACE_PHOTO) as im:
        side = min(width, height) // 3
        photo = im.convert("RGB")
        photo = photo.resize((side * photo.width // photo.height, side), Image.Resampling.BICUBIC)
    for i in range(3):
        canvas.paste(photo, (i * (width - photo.width) // 2, i * (height - photo.height) // 2))
    del photo
    canvas.save(path, **JP2_OPTIONS)


def write_rgba_jp2(path: Path, width: int, height: int) -> None:
    """A lossy RGBA JPEG 2000: one tile where OpenJPEG can encode it so (under 2 GiB of 32-bit
    samples; the costliest to decode in full), else 4096 x 4096 tiles."""
    tiles = {} if width * height * 4 * 4 < 2**31 else {"tile_size": (4096, 4096)}
    write_pillow(path, width, height, "RGBA", **tiles, **JP2_OPTIONS)


#: x265 encodes at most this many luma samples (HEVC level 7.2): HEIC is made no larger.
HEIC_MAX_PIXELS = 142_606_336


def heic_available() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def write_heic(path: Path, width: int, height: int) -> None:
    while width * height > HEIC_MAX_PIXELS:
        width, height = width * 999 // 1000, height * 999 // 1000
    write_pillow(path, width, height, "RGB", quality=50)


CASES: dict[str, Callable[[Path, int, int], None]] = {
    "grey16-png": lambda p, w, h: write_png(p, w, h, 1, 16),
    "greyalpha16-png": lambda p, w, h: write_png(p, w, h, 2, 16),
    "rgb16-png": lambda p, w, h: write_png(p, w, h, 3, 16),
    "rgba16-png": lambda p, w, h: write_png(p, w, h, 4, 16),
    "rgba8-png": lambda p, w, h: write_png(p, w, h, 4, 8),
    "palette-alpha-png": write_palette_alpha,
    "grey16-tif": lambda p, w, h: write_tiff(p, w, h, 1, "uint16"),
    "rgb16-tif": lambda p, w, h: write_tiff(p, w, h, 3, "uint16"),
    "rgba16-tif": lambda p, w, h: write_tiff(p, w, h, 4, "uint16"),
    "float-tif": lambda p, w, h: write_tiff(p, w, h, 1, "float32"),
    "rgb-jpg": lambda p, w, h: write_pillow(p, w, h, "RGB", quality=50),
    "cmyk-jpg": lambda p, w, h: write_pillow(p, w, h, "CMYK", quality=50),
    # lossless: libwebp's lossy encoder cannot fit this many macroblocks in its first partition
    "rgb-webp": lambda p, w, h: write_pillow(p, w, h, "RGB", lossless=True, quality=0, method=0),
    "rgba-webp": lambda p, w, h: write_pillow(p, w, h, "RGBA", lossless=True, quality=0, method=0),
    "photo-jp2": write_photo_jp2,
    "rgba-jp2": write_rgba_jp2,
    "rgb-bmp": lambda p, w, h: write_pillow(p, w, h, "RGB"),
    "palette-gif": lambda p, w, h: write_pillow(p, w, h, "P"),
    "rgb-heic": write_heic,
}
EXTENSIONS = {"png": ".png", "tif": ".tif", "jpg": ".jpg", "webp": ".webp", "jp2": ".jp2"}
EXTENSIONS.update({"bmp": ".bmp", "gif": ".gif", "heic": ".heic"})


def measure(folder: Path, library: Path) -> tuple[int, float, int, str]:
    """(peak RSS in KiB, seconds, exit status, last stderr line) of `facetags scan folder`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [TIME, "-v", sys.executable, "-m", "facetags", "--library", str(library), "scan", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"no peak memory in the output of {TIME} -v:\n{done.stderr}")
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("\t")]
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return int(match.group(1)), seconds, done.returncode, (summary or (lines[-1] if lines else ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument("--side", type=int, default=13000, help="width and height in pixels")
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None  # the files made here are big on purpose
    if not os.path.exists(TIME):
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    cases = args.cases or list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; known: {', '.join(CASES)}")
    with tempfile.TemporaryDirectory(prefix="facetags-decode-memory-") as tmp:
        work = Path(tmp)
        # The floor: the same scan of a small photo (the interpreter, the models, the library).
        (work / "small").mkdir()
        Image.new("RGB", (640, 480), (90, 120, 150)).save(work / "small" / "small.jpg")
        floor, _, _, _ = measure(work / "small", work / "small.db")
        print(
            f"{args.side} x {args.side} = {args.side**2 / 1e6:.0f} MP per file;"
            f" floor (640x480 JPEG) {floor / 1024:.0f} MiB"
        )
        print(f"{'case':<18} {'pixels':>7} {'file':>9} {'peak RSS':>10} {'time':>7}  scan")
        for name in cases:
            if name == "rgb-heic" and not heic_available():
                print(f"{name:<18} skipped: pillow-heif is not installed", flush=True)
                continue
            folder = work / name
            folder.mkdir()
            path = folder / ("image" + EXTENSIONS[name.rsplit("-", 1)[1]])
            CASES[name](path, args.side, args.side)
            with Image.open(path) as im:
                pixels = im.width * im.height
            peak, seconds, code, summary = measure(folder, work / f"{name}.db")
            size = path.stat().st_size
            status = summary if code == 0 else f"exit {code}: {summary}"
            print(
                f"{name:<18} {pixels / 1e6:>5.0f}MP {size / 1e6:>7.1f}MB {peak / 1024:>7.0f}MiB"
                f" {seconds:>6.1f}s  {status}",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
