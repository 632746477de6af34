"""``facetags detect``: JSON schema, aligned crops, bad files, option handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetags", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "not_a_photo.jpg"
    path.write_bytes(b"this is not a JPEG")
    return path


def test_json_crops_and_a_bad_file(
    tmp_path: Path, t1_path: Path, astronaut_path: Path, bad_file: Path
) -> None:
    crops = tmp_path / "crops"
    result = _run("detect", "--json", "--crops", str(crops), str(t1_path), str(bad_file), str(astronaut_path))
    # The bad file: one line on stderr naming it, a non-zero exit, the others still done.
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and str(bad_file) in errors[0]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(t1_path), str(astronaut_path)]
    t1, astro = records
    assert (t1["width"], t1["height"]) == (1280, 886)
    assert (astro["width"], astro["height"]) == (512, 512)
    assert len(t1["faces"]) == 6 and len(astro["faces"]) == 1
    for face in t1["faces"] + astro["faces"]:
        assert set(face) == {"box", "score", "landmarks"}
        assert len(face["box"]) == 4 and all(isinstance(v, float) for v in face["box"])
        assert 0.9 <= face["score"] <= 1.0
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
    scores = [f["score"] for f in t1["faces"]]
    assert scores == sorted(scores, reverse=True)
    # One aligned 112x112 PNG per face, named after the photo and the face's index.
    files = sorted(p.name for p in crops.iterdir())
    assert files == sorted([f"t1_{i}.png" for i in range(6)] + ["astronaut_0.png"])
    for name in files:
        with Image.open(crops / name) as im:
            assert im.size == (112, 112) and im.mode == "RGB"


def test_readable_output_and_options(t1_path: Path, astronaut_path: Path) -> None:
    result = _run(
        "detect",
        "--threshold",
        "0.999",
        "--max-side",
        "640",
        "--min-face",
        "40",
        str(t1_path),
        str(astronaut_path),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{t1_path}: ") and "in 1280x886" in lines[0]
    strict = int(lines[0].split(": ")[1].split()[0])
    assert 0 < strict < 6  # only t1's most confident faces pass 0.999
    assert lines[1].startswith(f"{astronaut_path}: 1 face in 512x512")


def test_missing_file_and_bad_option(tmp_path: Path, t1_path: Path) -> None:
    missing = tmp_path / "nowhere.jpg"
    result = _run("detect", "--json", str(missing), str(t1_path))
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert len(json.loads(result.stdout)["faces"]) == 6
    result = _run("detect", "--threshold", "2", str(t1_path))
    assert result.returncode != 0 and result.stdout == ""
