"""Bad files are recorded with their error, reported and skipped; a later scan retries one only
when it changed, and one that could not be read at all every time. Odd but valid names are
indexed like any other."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.process_support import without_read_override

if TYPE_CHECKING:
    from tests.library_support import OpenLibrary


def _png_bomb(path: Path, side: int = 40_000) -> None:
    """A tiny PNG whose header claims side x side pixels (1.6 gigapixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def bad_dir(photo_dir: Path) -> Path:
    good = (photo_dir / "astronaut.jpg").read_bytes()
    (photo_dir / "empty.jpg").write_bytes(b"")
    (photo_dir / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (photo_dir / "not-an-image.jpg").write_text("<html>a web page saved as .jpg</html>")
    _png_bomb(photo_dir / "bomb.png")
    os.mkfifo(photo_dir / "pipe.jpg")
    os.symlink(photo_dir / "nowhere.jpg", photo_dir / "broken-link.jpg")
    os.symlink("self-loop.jpg", photo_dir / "self-loop.jpg")
    (photo_dir / "sub").mkdir()
    os.symlink("..", photo_dir / "sub" / "loop")  # a folder loop: walked once
    os.close(os.open(os.path.join(os.fsencode(photo_dir), b"latin1-\xe9t\xe9.jpg"), os.O_CREAT | os.O_WRONLY))
    return photo_dir


def test_bad_files_are_recorded_reported_and_skipped(open_library: OpenLibrary, bad_dir: Path) -> None:
    lib = open_library()
    report = lib.scan([bad_dir])
    assert report.counts["new"] == 2
    failed = dict(report.failures)
    expected = {
        "empty.jpg": "empty",
        "truncated.jpg": "",
        "not-an-image.jpg": "not a recognised image",
        "bomb.png": "bomb",
        "pipe.jpg": "not a regular file",
        "broken-link.jpg": "broken symbolic link",
        "self-loop.jpg": "loop",
        "latin1-\\xe9t\\xe9.jpg": "UTF-8",
    }
    for name, words in expected.items():
        path = str(bad_dir / name)
        assert path in failed, f"{name} not reported: {sorted(failed)}"
        assert words in failed[path], (name, failed[path])
    assert report.counts["failed"] == len(expected)
    status = lib.status()
    assert {f.path for f in status.failures} == {str(bad_dir / n) for n in expected}
    assert status.photos == 2 and status.queue == 0
    # The folder loop was walked once: no duplicate paths through sub/loop.
    assert status.files == 2

    again = lib.scan([bad_dir])
    assert again.counts["failed"] == 0 and again.counts["known_bad"] == len(expected)
    assert all(f.attempts == 1 for f in lib.status().failures)


def test_a_bad_file_is_retried_once_it_changes(open_library: OpenLibrary, bad_dir: Path) -> None:
    lib = open_library()
    lib.scan([bad_dir])
    shutil.copyfile(bad_dir / "t1.jpg", bad_dir / "truncated.jpg")  # the copy finished
    report = lib.scan([bad_dir])
    assert report.counts["duplicate"] == 1 and report.counts["failed"] == 0
    assert str(bad_dir / "truncated.jpg") not in {f.path for f in lib.status().failures}
    (bad_dir / "not-an-image.jpg").unlink()
    lib.scan([bad_dir])
    assert str(bad_dir / "not-an-image.jpg") not in {f.path for f in lib.status().failures}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_recorded(open_library: OpenLibrary, photo_dir: Path) -> None:
    locked = photo_dir / "locked.jpg"
    shutil.copyfile(photo_dir / "astronaut.jpg", locked)
    locked.chmod(0)
    try:
        report = open_library().scan([photo_dir])
    finally:
        locked.chmod(0o644)
    assert str(locked) in dict(report.failures)


@pytest.mark.skipif(os.geteuid() != 0, reason="test_unreadable_file_is_recorded covers an ordinary user")
def test_unreadable_file_is_recorded_as_root_without_dac_override(photo_dir: Path, tmp_path: Path) -> None:
    """Root (CI) reads any file; the same scan in a process without CAP_DAC_OVERRIDE /
    CAP_DAC_READ_SEARCH meets a real EACCES, as an ordinary user's scan would."""
    prefix = without_read_override()
    locked = photo_dir / "locked.jpg"
    shutil.copyfile(photo_dir / "astronaut.jpg", locked)
    locked.chmod(0)
    library = tmp_path / "lib.db"
    try:
        out = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "facetags",
                "--library",
                str(library),
                "scan",
                "--json",
                str(photo_dir),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        locked.chmod(0o644)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["failed"] == 1, report
    (failure,) = report["failures"]
    assert failure["path"] == str(locked) and "ermission" in failure["error"], failure
    assert "locked.jpg" in out.stderr  # reported on stderr too
    assert report["new"] >= 1  # the readable photos were still indexed


def test_odd_but_valid_names_are_indexed(open_library: OpenLibrary, photo_dir: Path) -> None:
    names = [
        "with space.jpg",
        "-rf.jpg",
        "ünïcødé 😀.jpeg",
        "new\nline.jpg",
        "semi;colon'quote\".JPG",
        "a%b_c.png",
    ]
    src = photo_dir / "astronaut.jpg"
    for name in names:
        shutil.copyfile(src, photo_dir / name)
    lib = open_library()
    report = lib.scan([photo_dir])
    assert report.counts["failed"] == 0
    # the PNG has different pixels from the JPEG only if re-encoded; here the bytes are a JPEG
    assert report.counts["new"] + report.counts["duplicate"] == len(names) + 2
    (face,) = lib.photo_faces(src)
    lib.name(face.person_id or 0, "Eileen")
    found = lib.find(["eileen"])
    assert sorted(found) == sorted([str(src)] + [str(photo_dir / n) for n in names])


@pytest.mark.slow
def test_a_photo_that_could_not_be_read_is_indexed_by_the_next_scan(photo_dir: Path, tmp_path: Path) -> None:
    """No permission is no verdict on the photo: once ``chmod`` lets facetags read it, the next
    scan indexes it (its size and mtime did not change, so a bad file would stay skipped)."""
    prefix = without_read_override()
    locked = photo_dir / "locked.jpg"
    shutil.copyfile(photo_dir / "astronaut.jpg", locked)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "facetags",
        "--library",
        str(tmp_path / "lib.db"),
        "scan",
        "--json",
    ]
    locked.chmod(0)
    try:
        first = subprocess.run([*command, str(photo_dir)], capture_output=True, text=True, timeout=600)
    finally:
        locked.chmod(0o644)
    assert first.returncode == 0, first.stderr[-2000:]
    assert [f["path"] for f in json.loads(first.stdout)["failures"]] == [str(locked)]
    second = subprocess.run([*command, str(photo_dir)], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    report = json.loads(second.stdout)
    assert report["failures"] == [] and report["known_bad"] == 0, report
    assert report["duplicate"] == 1, report  # the astronaut's pixels, now at a second path
    status = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(tmp_path / "lib.db"), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "locked.jpg" not in status.stdout, status.stdout


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)")
@pytest.mark.parametrize("error", ["EIO", "ENXIO"])
def test_an_io_error_on_a_photo_s_first_read_skips_that_photo(
    photo_dir: Path, tmp_path: Path, error: str
) -> None:
    """A failing disk's I/O error on the very first read of a photo (its format check) ended the
    scan with a traceback, every time, at the same photo, and the watcher's catch-up scan with
    it. It is recorded and skipped now, like an error later in the file, and the next scan
    reads it (a failing read says nothing of the photo)."""
    sick = photo_dir / "sick.jpg"
    shutil.copyfile(photo_dir / "t1.jpg", sick)
    library = tmp_path / "lib.db"
    scan = [sys.executable, "-m", "facetags", "--library", str(library), "scan", "--json", str(photo_dir)]
    tracer = [shutil.which("strace") or "strace", "-f", "-o", os.devnull, "-P", str(sick)]
    tracer += ["-e", "trace=read", "-e", f"inject=read:error={error}"]
    first = subprocess.run([*tracer, *scan], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert [f["path"] for f in report["failures"]] == [str(sick)], report
    assert "cannot read file (OSError: " in report["failures"][0]["error"], report
    assert report["new"] == len(list(photo_dir.glob("*.jpg"))) - 1, report
    second = subprocess.run(scan, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    again = json.loads(second.stdout)
    assert again["failures"] == [] and again["known_bad"] == 0 and again["duplicate"] == 1, again


def test_a_folder_that_cannot_be_read_is_listed_until_a_scan_reads_it(
    photo_dir: Path, tmp_path: Path
) -> None:
    """A folder the scan could not list (permissions) was a warning in the scan's output and
    nowhere after: status listed nothing, so its photos were quietly never indexed. It is listed
    with the failures until a scan can read it."""
    prefix = without_read_override()
    locked = photo_dir / "locked"
    locked.mkdir()
    shutil.copyfile(photo_dir / "astronaut.jpg", locked / "a.jpg")
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}

    def facetags(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", "facetags", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    locked.chmod(0)
    try:
        assert facetags("scan", str(photo_dir)).returncode == 0
    finally:
        locked.chmod(0o755)
    failures = {f["path"]: f["error"] for f in json.loads(facetags("status", "--json").stdout)["failures"]}
    assert "cannot read this folder" in failures.get(str(locked), ""), failures
    assert facetags("scan", str(photo_dir)).returncode == 0
    assert json.loads(facetags("status", "--json").stdout)["failures"] == []
