"""Issue 23 case 9 (and issue 24): a library that cannot be written is one clear line and a
non-zero exit from every command that writes, never a traceback.

Real conditions, made as root: a full disk (a small tmpfs mounted here), an immutable library
file (``chattr +i``), a library file marked read-only (``chmod 0444``: root could write it,
facetags does not), a folder where SQLite cannot create the
library's ``-wal`` and ``-shm`` files (``chattr +i`` on the folder), and a read-only mount (a
read-only bind mount). Each runs ``scan``, ``name``, ``merge``, ``xmp write`` and ``watch``
through the real CLI.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("chattr") and shutil.which("mount")),
    reason="needs root (tmpfs, bind mounts, chattr +i)",
)


def _cli(library: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACETAGS_LIBRARY": str(library), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "facetags", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def made(tmp_path: Path, t1_path: Path, astronaut_path: Path) -> tuple[Path, Path]:
    """A library (t1.jpg scanned, a person named) closed cleanly, so it is one file, and the
    photo folder, where a new photo waits for the next scan."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(t1_path, photos / "t1.jpg")
    library = tmp_path / "made" / "lib.db"
    assert _cli(library, "scan", str(photos)).returncode == 0
    assert _cli(library, "name", "1", "Ada").returncode == 0
    with sqlite3.connect(library) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{library}{suffix}").unlink(missing_ok=True)
    shutil.copy(astronaut_path, photos / "new.jpg")
    return library, photos


@contextmanager
def immutable_file(library: Path, where: Path) -> Iterator[Path]:
    target = where / "lib.db"
    where.mkdir()
    shutil.copy(library, target)
    _run(["chattr", "+i", str(target)])
    try:
        yield target
    finally:
        _run(["chattr", "-i", str(target)])


@contextmanager
def read_only_folder(library: Path, where: Path) -> Iterator[Path]:
    where.mkdir()
    shutil.copy(library, where / "lib.db")
    _run(["chattr", "+i", str(where)])
    try:
        yield where / "lib.db"
    finally:
        _run(["chattr", "-i", str(where)])


@contextmanager
def read_only_mount(library: Path, where: Path) -> Iterator[Path]:
    source = where.with_name(where.name + "-source")
    source.mkdir()
    shutil.copy(library, source / "lib.db")
    where.mkdir()
    _run(["mount", "--bind", str(source), str(where)])
    try:
        _run(["mount", "-o", "remount,bind,ro", str(where)])
        yield where / "lib.db"
    finally:
        _run(["umount", str(where)])


@contextmanager
def marked_read_only(library: Path, where: Path) -> Iterator[Path]:
    where.mkdir()
    target = where / "lib.db"
    shutil.copy(library, target)
    target.chmod(0o444)
    yield target


@contextmanager
def full_disk(library: Path, where: Path, leave: int = 0) -> Iterator[Path]:
    """The library on a 4 MB tmpfs filled up to ``leave`` bytes."""
    where.mkdir()
    _run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)])
    try:
        shutil.copy(library, where / "lib.db")
        st = os.statvfs(where)
        with open(where / "filler", "wb") as fh:
            os.posix_fallocate(fh.fileno(), 0, max(1, st.f_bavail * st.f_frsize - leave))
        yield where / "lib.db"
    finally:
        _run(["umount", str(where)])


PLACES: dict[str, tuple[Callable[[Path, Path], AbstractContextManager[Path]], str]] = {
    "disk full": (full_disk, "the disk is full"),
    "immutable file": (immutable_file, "the library file is read-only"),
    "file marked read-only": (marked_read_only, "the library file is read-only (no write permission)"),
    "read-only folder": (read_only_folder, "cannot create files in the library's folder"),
    "read-only mount": (read_only_mount, "the library is on a read-only file system"),
}


def _one_error_line(done: subprocess.CompletedProcess[str], says: str, command: str) -> None:
    assert done.returncode != 0, f"{command}: exit 0\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{command}:\n{done.stderr}"
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("facetags: error:")]
    others = [ln for ln in done.stderr.splitlines() if ln and not ln.startswith("facetags: error:")]
    assert len(errors) == 1 and says in errors[0], f"{command}:\n{done.stderr}"
    # watch announces what it watches before its catch-up scan meets the library's error
    assert all(ln.startswith("facetags: watching") for ln in others), f"{command}:\n{done.stderr}"


@pytest.mark.parametrize("place", list(PLACES))
def test_library_write_errors_are_one_line(made: tuple[Path, Path], tmp_path: Path, place: str) -> None:
    library, photos = made
    make, says = PLACES[place]
    with make(library, tmp_path / "place") as target:
        for command in (
            ["xmp", "write"],
            ["name", "2", "Grace"],
            ["merge", "3", "4"],
            ["scan", str(photos)],
            ["watch", "--poll", "1", str(photos)],
        ):
            _one_error_line(_cli(target, *command), says, " ".join(command))


def test_a_library_marked_read_only_is_read_and_left_as_it_is(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    """``chmod a-w`` on the library: the user's word that it is not to change. Root may write
    such a file; facetags reads it (people, status, find) and changes nothing in it."""
    library, _ = made
    with marked_read_only(library, tmp_path / "place") as target:
        before = target.read_bytes()
        for command in (["people"], ["status"], ["find", "Ada"]):
            done = _cli(target, *command)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr)
        assert "Ada" in _cli(target, "people").stdout
        assert _cli(target, "name", "1", "Grace").returncode == 1
        assert target.read_bytes() == before


def test_disk_filling_up_during_a_scan_is_one_line(
    made: tuple[Path, Path], tmp_path: Path, t1_path: Path
) -> None:
    """The disk fills while photos are being stored (SQLite's SQLITE_FULL at a commit): one
    line, and the photos stored before it stay."""
    from PIL import Image, ImageOps

    library, photos = made
    with Image.open(t1_path) as im:  # more photos with faces: new pixels, so each is analysed
        for i in range(6):
            ImageOps.mirror(im).crop((i * 8, 0, im.width - i * 8, im.height)).save(photos / f"v{i}.jpg")
    with full_disk(library, tmp_path / "place", leave=96 * 1024) as target:
        done = _cli(target, "scan", str(photos))
        _one_error_line(done, "the disk is full", "scan")
        assert "not saved, earlier ones are kept" in done.stderr
