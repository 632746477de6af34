"""Issue 23 case 8: decoding a very large image costs bounded memory, and ordinary photos
decode (and hash) exactly as before.

The decoder converts in strips and reduces each strip at once; these tests check that this is
bit for bit what converting the whole image and shrinking it gives, that the content hash of
real photos (what a library keys its photos by) is unchanged, and, in a child process, that
the peak memory of a large decode stays near the size of the decoded file itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.image import decode as decode_mod
from facetags.image.decode import decode
from facetags.ingest.pipeline import content_hash

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
