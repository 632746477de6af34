"""Helpers for the XMP tests: oriented copies of real photos, exiftool, JPEG scan data, faces."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

# EXIF orientation -> the Pillow transpose that makes the stored image upright (EXIF 2.32 §4.6.4).
TO_UPRIGHT = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# ... and its inverse, which turns an upright picture into what a camera would store.
TO_STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def need_exiftool() -> str:
    exe = shutil.which("exiftool")
    if exe is None:
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    return exe


def exiftool(*args: str | Path) -> list[dict[str, Any]]:
    """Run exiftool with ``-j`` and return its parsed JSON."""
    exe = need_exiftool()
    out = subprocess.run([exe, "-j", *map(str, args)], capture_output=True, text=True, check=False)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else []


def exiftool_write(*args: str | Path) -> None:
    exe = need_exiftool()
    out = subprocess.run([exe, "-q", "-overwrite_original", *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def oriented_copy(upright: Image.Image, orientation: int, path: Path, **save: Any) -> Path:
    """Save ``upright`` as a file whose stored pixels carry EXIF ``orientation`` and whose
    upright view is ``upright`` again."""
    op = TO_STORED[orientation]
    stored = upright if op is None else upright.transpose(op)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), **save)
    return path


def stored_box_of(upright_box: tuple[float, float, float, float], size: tuple[int, int], orientation: int):
    """Where a normalised upright box lies in the stored image, found by transposing a mask with
    Pillow (independent of facetags.xmp.regions). Returns a normalised (x, y, w, h)."""
    width, height = size
    mask = np.zeros((height, width), dtype=np.uint8)
    x, y, w, h = upright_box
    x0, y0 = round(x * width), round(y * height)
    x1, y1 = round((x + w) * width), round((y + h) * height)
    mask[y0:y1, x0:x1] = 255
    image = Image.fromarray(mask)
    op = TO_STORED[orientation]
    stored = np.asarray(image if op is None else image.transpose(op))
    ys, xs = np.nonzero(stored)
    sh, sw = stored.shape
    return (xs.min() / sw, ys.min() / sh, (xs.max() + 1 - xs.min()) / sw, (ys.max() + 1 - ys.min()) / sh)


def jpeg_scan(data: bytes) -> bytes:
    """A JPEG's bytes from its first SOS marker to its EOI, found by walking the segments."""
    assert data[:2] == b"\xff\xd8"
    pos = 2
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        if marker == 0xDA:
            end = data.rindex(b"\xff\xd9")
            return data[pos : end + 2]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length


def detected_faces(path: Path) -> list[tuple[float, float, float, float]]:
    """Normalised upright boxes of the faces facetags' detector finds in ``path``, best first."""
    from facetags.config import Settings
    from facetags.vision.detect import detect_photo

    decoded, faces = detect_photo(path, _detector(Settings))
    w, h = decoded.width, decoded.height
    return [(f.box[0] / w, f.box[1] / h, f.box[2] / w, f.box[3] / h) for f in faces]


_DETECTOR: list[Any] = []


def _detector(settings_cls: Any) -> Any:
    if not _DETECTOR:
        from facetags.vision.detect import Detector

        _DETECTOR.append(Detector(settings_cls()))
    return _DETECTOR[0]


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2] / 2, box[1] + box[3] / 2)


#: The astronaut's face in tests' photo_dir (normalised upright box), where another tool's region goes.
ASTRONAUT_FACE = (0.352, 0.127, 0.165, 0.21)


def tag_astronaut(photo_dir: Path, name: str) -> Path:
    """Write an MWG face region named ``name`` over the astronaut's face with exiftool, as
    another tool would. Returns the photo."""
    from facetags.xmp.regions import to_mwg_area

    astronaut = photo_dir / "astronaut.jpg"
    x, y, w, h = to_mwg_area(ASTRONAUT_FACE)
    exiftool_write(
        "-RegionInfo={AppliedToDimensions={W=512,H=512,Unit=pixel},"
        f"RegionList=[{{Area={{X={x},Y={y},W={w},H={h},Unit=normalized}},Type=Face,Name={name}}}]}}",
        astronaut,
    )
    return astronaut


def shipped_opener(request: pytest.FixtureRequest) -> Any:
    """The open_library fixture, or a skip when the shipped models are not available."""
    from facetags.errors import FacetagsError

    try:
        return request.getfixturevalue("open_library")
    except FacetagsError as exc:
        pytest.skip(f"the shipped models are not available here: {exc}")
