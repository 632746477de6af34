"""Issue 23 case 8: a file that gets the scanner killed (out of memory, a decoder crash) is not
retried at every restart. Real processes, a real ``kill -9`` while the scan decodes a slow,
large file: after two attempts that died, the third scan records it as failed without decoding
it, later scans skip it, and it is tried again once it changes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from tests.process_support import kill_when

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "crashed facetags 2 times while decoding; skipped until it changes"


def _slow_png(path: Path, side: int = 9000) -> None:
    """A 16-bit greyscale PNG of side x side pixels (a few hundred KB; seconds to decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"".join(struct.pack(">H", (x * 37) % 65536) for x in range(side))
    packer = zlib.compressobj(6)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _attempt(db: Path, path: Path) -> int | None:
    """The ``died`` count of the attempt noted for ``path``, None while there is none."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("SELECT died FROM attempts WHERE path = ?", (str(path),)).fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return None
    return None if row is None else int(row[0])


def _scan(env: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetags", "scan", "--json", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def _kill_while_decoding(env: dict[str, str], folder: Path, db: Path, big: Path, died: int) -> None:
    """Start a scan, wait until it notes its attempt at ``big`` (the ``died``-th after earlier
    ones), and ``kill -9`` it there, as the kernel's OOM killer would."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "scan", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    what = "the scan never noted its attempt at the file"
    kill_when(proc, lambda: _attempt(db, big) == died, what, timeout=120)


def test_a_file_that_killed_two_scans_is_skipped_until_it_changes(
    tmp_path: Path, astronaut_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    big = folder / "big.png"
    _slow_png(big)
    shutil.copy(astronaut_path, folder / "later.jpg")  # walked after big.png: never reached
    db = tmp_path / "lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "PYTHONPATH": str(ROOT)}

    _kill_while_decoding(env, folder, db, big, died=0)
    _kill_while_decoding(env, folder, db, big, died=1)

    third = _scan(env, folder)
    report = json.loads(third.stdout)
    assert report["failed"] == 1 and report["new"] == 1, report
    assert report["failures"] == [{"path": str(big), "error": MESSAGE}]
    assert f"skipped {big}: {MESSAGE}" in third.stderr
    assert _attempt(db, big) is None

    fourth = json.loads(_scan(env, folder).stdout)
    assert fourth["known_bad"] == 1 and fourth["failed"] == 0, fourth

    os.utime(big, ns=(time.time_ns(), time.time_ns()))  # it changed: one more try
    fifth = json.loads(_scan(env, folder).stdout)
    assert fifth["new"] == 1 and fifth["failed"] == 0, fifth
    assert _attempt(db, big) is None
