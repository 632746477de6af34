"""Issue 23 case 8: decoding a very large image costs bounded memory, and ordinary photos
decode (and hash) exactly as before.

The decoder converts in strips and reduces each strip at once; these tests check that this is
bit for bit what converting the whole image and shrinking it gives, that the content hash of
real photos (what a library keys its photos by) is unchanged, and, in a child process, that
the peak memory of a large decode stays near the size of the decoded file itself.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from facetags.errors import DecodeError
from facetags.image import decode as decode_mod
from facetags.image import jpeg2000
from facetags.image.decode import decode
from facetags.ingest.pipeline import content_hash

if TYPE_CHECKING:
    from facetags.library import Library
    from tests.library_support import OpenLibrary

ROOT = Path(__file__).resolve().parents[1]

# Content hashes at the detection size (1280) that libraries made before the strip decoder
# hold: an 8-bit JPEG reduced to 1280, small JPEGs, RGBA PNGs, greyscale PNGs.
EXAMPLES = "face_recognition_examples"
KNOWN_HASHES = {
    "bbt/groups/bbt1.jpg": "1280:be4f8e888e4d038ddbc5b7eda0f8d77b10e5fda3",
    "bbt/groups/bbt2.jpg": "1280:920482c328988d289d2003ce70cd7e7babfb0618",
    f"{EXAMPLES}/examples/lin-manuel-miranda.png": "1280:20b7dc0cd77120afe38e64ac40002cb433b21c1e",
    f"{EXAMPLES}/tests/test_images/32bit.png": "1280:1262b1cb9358cac6a7ad9a4afd7f0b81a6290bc5",
    "bbt/people/raj/raj1.png": "1280:acec4da10f0c615516d89e5ab59113fccb5d5cad",
}


def test_ordinary_photos_keep_their_content_hash(shared_data: Path) -> None:
    for name, expected in KNOWN_HASHES.items():
        decoded = decode(shared_data / name, max_side=1280)
        assert content_hash(decoded.image, decoded.width, decoded.height, 1280) == expected, name


def _whole_image(path: Path, max_side: int | None) -> np.ndarray:
    """The reference: the whole image converted to RGB at full size, then shrunk."""
    with Image.open(path) as im:
        im.load()
        rgb = decode_mod._to_rgb(im)
        size = decode_mod._shrunk_size(rgb.size, max_side)
        return np.asarray(rgb if size is None else decode_mod._shrink(rgb, size))


def _layouts(photo: np.ndarray) -> dict[str, Image.Image]:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    rgba = np.dstack([photo, grey[::-1]])
    palette = Image.fromarray(photo).convert("P")
    palette.info["transparency"] = bytes(range(0, 256))
    return {
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257 + 100),
        "grey16.tif": Image.fromarray(grey.astype(np.uint16) * 250),
        "float.tif": Image.fromarray(grey.astype(np.float32) / 255),
        "float65535.tif": Image.fromarray(grey.astype(np.float32) * 200),
        "la.png": Image.fromarray(np.dstack([grey, grey[:, ::-1]]), "LA"),
        "rgba.png": Image.fromarray(rgba),
        "rgba.webp": Image.fromarray(rgba),
        "palette-alpha.png": palette,
        "cmyk.tif": Image.fromarray(rgba, "CMYK"),
        "grey.png": Image.fromarray(grey),
        "rgb.png": Image.fromarray(photo),
        "rgba.jp2": Image.fromarray(rgba),  # under JPEG2000_PILLOW_MAX_PIXELS: decoded in full
    }


@pytest.fixture(scope="module")
def layouts(t1_path: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real group photo, enlarged to an odd size, saved in every pixel layout."""
    with Image.open(t1_path) as im:
        photo = np.asarray(im.convert("RGB").resize((1999, 1333), Image.Resampling.BICUBIC))
    folder = tmp_path_factory.mktemp("layouts")
    paths = []
    for name, image in _layouts(photo).items():
        paths.append(folder / name)
        image.save(paths[-1], quality=90)
    return paths


@pytest.mark.parametrize("max_side", [None, 1280, 500, 97])
def test_strips_give_the_whole_image_result_bit_for_bit(
    layouts: list[Path], monkeypatch: pytest.MonkeyPatch, max_side: int | None
) -> None:
    """Every pixel layout, decoded strip by strip (small strips: many of them, the last one
    short), equals converting the whole image and shrinking it, at every reduction."""
    monkeypatch.setattr(decode_mod, "_STRIP_PIXELS", 100_000)
    for path in layouts:
        got = decode(path, max_side=max_side).image
        want = _whole_image(path, max_side)
        assert got.shape == want.shape, path.name
        assert np.array_equal(got, want), (path.name, int(np.abs(got.astype(int) - want).max()))


_CHILD = """
import json, sys
from PIL import Image
from facetags.image.decode import decode

def peak():  # this process's own high-water mark (ru_maxrss would include the parent's)
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmHWM:"))

Image.init()
before = peak()
decoded = decode(sys.argv[1], max_side=640)
print(json.dumps({"grown": peak() - before, "shape": list(decoded.image.shape)}))
"""


def _peak_growth(path: Path) -> int:
    """Bytes the peak memory of a fresh process grew by while decoding ``path`` at 640 (a
    reduction by more than 3 x 3, as a scan's 1280 is for the images that matter here)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(done.stdout)
    assert max(result["shape"]) == 640
    return int(result["grown"])


@pytest.mark.parametrize(
    ("name", "mode", "bytes_per_pixel"),
    [
        ("grey16.png", "I;16", 2),  # the case: was ~27 bytes per pixel (float64 copies)
        ("palette-alpha.png", "P", 1),  # was RGBA + white background + RGB at full size
        ("rgba.png", "RGBA", 4),
        ("float.tif", "F", 4),
    ],
)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_large_decode_costs_little_more_than_the_decoded_file(
    tmp_path: Path, name: str, mode: str, bytes_per_pixel: int
) -> None:
    """A 6000x6000 image: the peak grows by the decoded file (what Pillow must hold), 1 byte
    per pixel of margin and a fixed 64 MiB for one strip's work, never by full-size float64
    or RGBA copies (before the strip decoder: 968, 584, 549 and 1242 MiB)."""
    side = 6000
    ramp = (
        np.arange(side, dtype=np.uint32)[None, :] * 7 + np.arange(side, dtype=np.uint32)[:, None] * 3
    ) % 65536
    path = tmp_path / name
    if mode == "I;16":
        Image.fromarray(ramp.astype(np.uint16)).save(path)
    elif mode == "F":
        Image.fromarray(ramp.astype(np.float32) / 65535).save(path)
    elif mode == "P":
        im = Image.fromarray((ramp % 256).astype(np.uint8)).convert("P")
        im.save(path, transparency=bytes(range(256)))
    else:
        Image.fromarray(np.dstack([(ramp >> s) % 256 for s in (0, 3, 6, 9)]).astype(np.uint8)).save(path)
    del ramp
    with Image.open(path) as im:
        assert im.mode == mode
    grown = _peak_growth(path)
    limit = side * side * (bytes_per_pixel + 1) + 64 * 2**20
    assert grown <= limit, f"{name}: peak grew by {grown / 2**20:.0f} MiB, limit {limit / 2**20:.0f} MiB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_large_webp_is_scaled_by_libwebp(
    t1_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WebP over WEBP_PILLOW_MAX_PIXELS: libwebp scales while decoding (Pillow's way held
    ~16 bytes per pixel: 2.6 GB at 169 MP); the result matches Pillow's full decode closely."""
    from facetags.image import webp_scaled

    if not webp_scaled.available():
        pytest.skip("libwebp cannot be loaded here")
    with Image.open(t1_path) as im:
        photo = im.convert("RGB").resize((7300, 7100), Image.Resampling.BICUBIC)
    path = tmp_path / "large.webp"
    photo.save(path, quality=80)
    del photo
    assert decode_mod.WEBP_PILLOW_MAX_PIXELS < 7300 * 7100
    grown = _peak_growth(path)
    assert grown <= 64 * 2**20, f"peak grew by {grown / 2**20:.0f} MiB"
    scaled = decode(path, max_side=1280).image
    monkeypatch.setattr(decode_mod, "WEBP_PILLOW_MAX_PIXELS", 10**12)  # Pillow's full decode
    full = decode(path, max_side=1280).image
    assert scaled.shape == full.shape
    assert float(np.abs(scaled.astype(np.int16) - full).mean()) < 1.0


#: A real group photo (t1: 6 faces) enlarged to 51 MP, just over JPEG2000_PILLOW_MAX_PIXELS.
LARGE_JP2 = (8600, 5954)


@pytest.fixture(scope="module")
def large_jp2(t1_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """t1 enlarged to LARGE_JP2 and saved as a lossy JPEG 2000 in one tile (OpenJPEG's worst
    case: the whole image is one block of work), as a scanner or an export would."""
    with Image.open(t1_path) as im:
        photo = im.convert("RGB").resize(LARGE_JP2, Image.Resampling.BICUBIC)
    path = tmp_path_factory.mktemp("jp2") / "t1-large.jp2"
    photo.save(path, quality_mode="rates", quality_layers=[40], irreversible=True)
    return path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_large_jpeg2000_is_decoded_at_a_reduced_resolution(
    large_jp2: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JPEG 2000 over JPEG2000_PILLOW_MAX_PIXELS: OpenJPEG skips the finest resolution
    levels (Pillow's full decode held ~18 bytes per pixel: 944 MiB for this file, 3.1 GB at
    169 MP); the result has the full decode's shape and nearly its pixels, and the photo's
    size is still its full stored size."""
    assert LARGE_JP2[0] * LARGE_JP2[1] > decode_mod.JPEG2000_PILLOW_MAX_PIXELS
    grown = _peak_growth(large_jp2)
    assert grown <= 64 * 2**20, f"peak grew by {grown / 2**20:.0f} MiB"
    reduced = decode(large_jp2, max_side=1280)
    assert (reduced.width, reduced.height) == LARGE_JP2
    monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 10**12)  # Pillow's full decode
    full = decode(large_jp2, max_side=1280)
    assert reduced.image.shape == full.image.shape == (886, 1280, 3)
    assert float(np.abs(reduced.image.astype(np.int16) - full.image).mean()) < 3.0


#: Reduced JPEG 2000 layouts: an odd size (Pillow and OpenJPEG round 1001 / 8 differently),
#: tiles that do not divide it, few levels, a raw codestream, grey, alpha, 16 bit. Each with
#: the resolution levels its decode at 640 and at 100 can discard.
JP2_SIZE = (1499, 1001)
JP2_LAYOUTS = {
    "odd.jp2": ("RGB", {}, (1, 3)),
    "tiled.jp2": ("RGB", {"tile_size": (700, 300)}, (1, 3)),
    "one-level.jp2": ("RGB", {"num_resolutions": 2}, (1, 1)),
    "no-level.jp2": ("RGB", {"num_resolutions": 1}, (0, 0)),
    "raw.j2k": ("RGB", {}, (1, 3)),
    "grey.jp2": ("L", {}, (1, 3)),
    "rgba.jp2": ("RGBA", {}, (1, 3)),
    "grey16.jp2": ("I;16", {}, (1, 3)),
}


@pytest.fixture(scope="module")
def jp2_layouts(t1_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Image.open(t1_path) as im:
        photo = im.convert("RGB").resize(JP2_SIZE, Image.Resampling.BICUBIC)
    grey = photo.convert("L")
    images = {
        "RGB": photo,
        "L": grey,
        "RGBA": Image.merge("RGBA", (*photo.split(), grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT))),
        "I;16": Image.fromarray(np.asarray(grey).astype(np.uint16) * 257),
    }
    folder = tmp_path_factory.mktemp("jp2-layouts")
    for name, (mode, options, _) in JP2_LAYOUTS.items():
        images[mode].save(folder / name, irreversible=True, **options)
    return folder


@pytest.mark.parametrize("name", list(JP2_LAYOUTS))
def test_reduced_jpeg2000_is_the_full_decode_at_a_lower_resolution(
    jp2_layouts: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """Decoded without its finest levels (the pixel threshold lowered to reach them at this
    size), each layout decodes reduced, with the full decode's shape and full size, and nearly its pixels: a
    one-pixel shift is 7 to 20 levels off on average, a black edge over 50, not under 5."""
    path = jp2_layouts / name
    for max_side, levels in zip((640, 100), JP2_LAYOUTS[name][2], strict=True):
        wanted = decode_mod._wanted(JP2_SIZE, max_side)
        assert wanted is not None
        assert jpeg2000.reduction(path, JP2_SIZE, wanted) == levels, max_side
        monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 10**12)
        full = decode(path, max_side=max_side)
        monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 0)
        with caplog.at_level("WARNING", logger="facetags.image.decode"):
            reduced = decode(path, max_side=max_side)
        assert "decoding in full" not in caplog.text  # the reduced decode itself worked
        assert (reduced.width, reduced.height) == (full.width, full.height) == JP2_SIZE
        assert reduced.image.shape == full.image.shape, max_side
        diff = np.abs(reduced.image.astype(np.int16) - full.image)
        assert float(diff.mean()) < 5, (max_side, float(diff.mean()))
        assert float(diff[-1].mean()) < 10 and float(diff[:, -1].mean()) < 10, max_side


def _segments(codestream: bytes) -> dict[int, tuple[int, int]]:
    """Marker -> (start, end) of the main header's segments, the first tile-part's SOT last."""
    found = {}
    pos = 2  # after SOC
    while True:
        marker, length = struct.unpack(">HH", codestream[pos : pos + 4])
        found[marker] = (pos, pos + 2 + length)
        if marker == 0xFF90:
            return found
        pos += 2 + length


def test_jpeg2000_whose_tiles_hold_fewer_levels_is_decoded_in_full(
    jp2_layouts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A codestream whose main header says 5 levels and whose tile-part header (which wins)
    says 1: the reduced decode fails, and the photo is decoded in full instead of failing."""
    data = bytearray((jp2_layouts / "one-level.jp2").read_bytes())
    data = data[data.index(b"\xff\x4f\xff\x51") :]  # the codestream inside the jp2c box
    segments = _segments(bytes(data))
    cod_start, cod_end = segments[0xFF52]
    sot_start, sot_end = segments[0xFF90]
    cod = bytes(data[cod_start:cod_end])
    assert cod[9] == 1  # SPcod: the number of decomposition levels
    (tile_part,) = struct.unpack(">I", data[sot_start + 6 : sot_start + 10])
    data[sot_end:sot_end] = cod  # the tile-part's own COD: 1 level
    if tile_part:
        data[sot_start + 6 : sot_start + 10] = struct.pack(">I", tile_part + len(cod))
    data[cod_start + 9] = 5  # the main header's: 5
    path = tmp_path / "tile-part-cod.j2k"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 10**12)
    full = decode(path, max_side=100)
    assert np.array_equal(full.image, decode(jp2_layouts / "one-level.jp2", max_side=100).image)
    monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 0)
    with caplog.at_level("WARNING", logger="facetags.image.decode"):
        fallback = decode(path, max_side=100)
    assert np.array_equal(fallback.image, full.image)
    assert "cannot decode at 1/8 scale" in caplog.text and "decoding in full" in caplog.text


def test_jpeg2000_cut_short_fails_without_a_full_decode(
    jp2_layouts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A JPEG 2000 cut short (a copy not finished) fails its reduced decode; decoding it in full
    would fail too, after holding ~18 bytes a pixel (3.1 GB at 169 MP), so it is not tried."""
    for name in JP2_LAYOUTS:
        assert jpeg2000.is_whole(jp2_layouts / name), name
    data = (jp2_layouts / "odd.jp2").read_bytes()
    monkeypatch.setattr(decode_mod, "JPEG2000_PILLOW_MAX_PIXELS", 0)
    for kept in (0.5, 0.95):
        path = tmp_path / f"cut-{kept}.jp2"
        path.write_bytes(data[: int(len(data) * kept)])
        assert not jpeg2000.is_whole(path)
        with caplog.at_level("WARNING", logger="facetags.image.decode"), pytest.raises(DecodeError):
            decode(path, max_side=100)
        assert "decoding in full" not in caplog.text


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _same_faces(lib: Library, jpeg: Path, jp2: Path) -> None:
    """``jp2`` shows as many faces as ``jpeg``, in the same places (boxes are normalised)."""
    want = sorted(f.box for f in lib.photo_faces(jpeg))
    got = sorted(f.box for f in lib.photo_faces(jp2))
    assert len(want) > 0
    assert len(got) == len(want), (jp2.name, len(got), len(want))
    for a, b in zip(want, got, strict=True):
        assert _iou(a, b) >= 0.8, (jp2.name, a, b)


def test_large_jpeg2000_shows_the_faces_of_the_original(
    open_library: OpenLibrary, t1_path: Path, large_jp2: Path, tmp_path: Path
) -> None:
    """Scanned, the 51 MP JPEG 2000 decoded at a reduced resolution has t1's faces, where
    they are in the original JPEG, and its full size."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy2(t1_path, folder / "t1.jpg")
    shutil.copy2(large_jp2, folder / "t1-large.jp2")
    lib = open_library()
    report = lib.scan([folder])
    assert (report.counts["new"], report.counts["failed"]) == (2, 0)
    _same_faces(lib, folder / "t1.jpg", folder / "t1-large.jp2")
    (face, *_) = lib.photo_faces(folder / "t1-large.jp2")
    assert (face.width, face.height) == LARGE_JP2


@pytest.mark.parametrize("suffix", [".jp2", ".j2k", ".JPX"])
def test_jpeg2000_photo_shows_the_faces_of_the_jpeg(
    open_library: OpenLibrary, shared_data: Path, tmp_path: Path, suffix: str
) -> None:
    """A deepface photo saved as JPEG 2000 (decoded in full: under the pixel threshold) is
    scanned and found with the faces of the JPEG it was made from: a JP2 file, a bare
    codestream (Pillow writes one for .j2k) and a JPX name."""
    folder = tmp_path / "photos"
    folder.mkdir()
    jpeg = shutil.copy2(shared_data / "deepface" / "photos" / "couple.jpg", folder / "couple.jpg")
    jp2 = folder / f"couple{suffix}"
    with Image.open(jpeg) as im:
        im.save(jp2, "JPEG2000", quality_mode="rates", quality_layers=[20], irreversible=True)
    codestream = jp2.read_bytes()[:4] == b"\xff\x4f\xff\x51"
    assert codestream == (suffix.lower() == ".j2k")
    lib = open_library()
    report = lib.scan([folder])
    assert (report.counts["new"], report.counts["failed"]) == (2, 0)
    _same_faces(lib, Path(jpeg), jp2)
