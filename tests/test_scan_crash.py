"""A file that gets the scanner killed (out of memory, a decoder crash) is not retried at every
restart, and a good file is never blamed for a scan the user killed. Real processes, a real
``kill -9`` while a slow, large file is decoded: the scan after an attempt that died analyses
the file in a process of its own; if that process dies, the file is recorded as failed and
skipped until it changes; if the scan itself is killed meanwhile, nothing is blamed and the next
scan tries again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from tests.process_support import kill_when

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = "skipped until it changes (scan --retry-failed tries it again)"
MESSAGE = f"crashed the process analysing it (killed by SIGKILL); {SKIPPED}"


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


def _scan(env: dict[str, str], folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetags", "scan", "--json", *options, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def _kill_while_decoding(env: dict[str, str], folder: Path, db: Path, big: Path, died: int) -> None:
    """Start a scan, wait until it notes its attempt at ``big`` (the ``died``-th after earlier
    ones), and ``kill -9`` it there, as the kernel's OOM killer or a power cut would."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "scan", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    what = "the scan never noted its attempt at the file"
    kill_when(proc, lambda: _attempt(db, big) == died and _analysing_alone(proc.pid) is not None, what)


def _analysing_alone(scan: int) -> int | None:
    """The process a scan started to analyse one photo on its own, once it runs (a spawned
    multiprocessing worker), or None."""
    try:
        kids = Path(f"/proc/{scan}/task/{scan}/children").read_text().split()
    except OSError:
        return None
    for kid in kids:
        try:
            command = Path(f"/proc/{kid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            return int(kid)
    return None


def _decoding(pid: int, big: Path) -> bool:
    """Whether process ``pid`` has ``big`` open (it is decoding it)."""
    try:
        return any(os.readlink(fd) == str(big) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def _alone_decoding(scan: subprocess.Popen[str], big: Path) -> int:
    """Wait until ``scan`` analyses ``big`` in a process of its own, decoding it: that process."""
    deadline = time.monotonic() + 120
    while (alone := _analysing_alone(scan.pid)) is None or not _decoding(alone, big):
        assert scan.poll() is None and time.monotonic() < deadline, scan.stderr
        time.sleep(0.01)
    return alone


def _scan_in_background(env: dict[str, str], folder: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facetags", "scan", "--json", *options, str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _folder(tmp_path: Path, astronaut_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    folder = tmp_path / "photos"
    folder.mkdir()
    big = folder / "big.png"
    _slow_png(big)
    shutil.copy(astronaut_path, folder / "later.jpg")  # walked after big.png
    db = tmp_path / "lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(db), "PYTHONPATH": str(ROOT)}
    return folder, big, db, env


def _kill_first_scan(env: dict[str, str], folder: Path, db: Path, big: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "scan", str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(
        proc, lambda: _attempt(db, big) == 0, "the scan never noted its attempt at the file", timeout=120
    )


def test_a_file_that_crashes_the_process_analysing_it_is_skipped_until_it_changes(
    tmp_path: Path, astronaut_path: Path
) -> None:
    folder, big, db, env = _folder(tmp_path, astronaut_path)
    _kill_first_scan(env, folder, db, big)  # the scan dies while decoding it: whose fault?

    # the next scan analyses it on its own; that process dies decoding it (the OOM killer)
    second = _scan_in_background(env, folder)
    os.kill(_alone_decoding(second, big), signal.SIGKILL)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    report = json.loads(out)
    assert report["failed"] == 1 and report["new"] == 1, report  # the scan went on
    assert report["failures"] == [{"path": str(big), "error": MESSAGE}]
    assert _attempt(db, big) is None

    third = json.loads(_scan(env, folder).stdout)
    assert third["known_bad"] == 1 and third["failed"] == 0, third

    # tried again on request: in a process of its own still, so that a crash is not the scan's
    retry = _scan_in_background(env, folder, "--retry-failed")
    os.kill(_alone_decoding(retry, big), signal.SIGKILL)
    out, err = retry.communicate(timeout=120)
    assert retry.returncode == 0, err
    assert json.loads(out)["failures"] == [{"path": str(big), "error": MESSAGE}]

    os.utime(big, ns=(time.time_ns(), time.time_ns()))  # it changed: one more try
    fourth = json.loads(_scan(env, folder).stdout)
    assert fourth["new"] == 1 and fourth["failed"] == 0, fourth
    assert _attempt(db, big) is None


def test_a_scan_killed_twice_on_a_good_file_blames_it_for_nothing(
    tmp_path: Path, astronaut_path: Path
) -> None:
    """The user's kill -9 (or a power cut) twice while the same photo is being decoded: the
    photo was recorded as crashing facetags and skipped for good; now the next scan indexes it."""
    folder, big, db, env = _folder(tmp_path, astronaut_path)
    _kill_first_scan(env, folder, db, big)
    _kill_while_decoding(env, folder, db, big, died=1)  # killed while it analyses the file alone

    third = json.loads(_scan(env, folder).stdout)
    assert third["new"] == 2 and third["failed"] == 0 and third["known_bad"] == 0, third
    assert _attempt(db, big) is None


def test_a_stopped_analysis_is_postponed_not_blamed(tmp_path: Path, astronaut_path: Path) -> None:
    """The process analysing the photo alone gets SIGTERM (a service stopped, a shutdown: the
    signal goes to every process of the group): the photo is tried again, not skipped."""
    folder, big, db, env = _folder(tmp_path, astronaut_path)
    _kill_first_scan(env, folder, db, big)
    second = _scan_in_background(env, folder)
    os.kill(_alone_decoding(second, big), signal.SIGTERM)
    out, _ = second.communicate(timeout=120)
    report = json.loads(out)
    assert report["postponed"] == 1 and report["failed"] == 0 and report["new"] == 1, report
    third = json.loads(_scan(env, folder).stdout)
    assert third["new"] == 1 and third["failed"] == 0, third  # big.png, this time
    assert _attempt(db, big) is None


def test_a_file_that_took_every_scan_down_is_skipped(tmp_path: Path, astronaut_path: Path) -> None:
    """Where the death of the process analysing it alone takes the scan too (an OOM killer that
    ends a whole service), attempts do not go on for ever: after four, it is skipped. Four kills
    of the scan at that photo leave the same trace, and a healthy photo was then skipped for
    good: `scan --retry-failed` tries it again."""
    folder, big, db, env = _folder(tmp_path, astronaut_path)
    _kill_first_scan(env, folder, db, big)
    with sqlite3.connect(db) as conn:  # three more attempts that died, as such scans leave them
        conn.execute("UPDATE attempts SET died = 3 WHERE path = ?", (str(big),))
    conn.close()
    report = json.loads(_scan(env, folder).stdout)
    message = f"crashed facetags 4 times while decoding; {SKIPPED}"
    assert report["failures"] == [{"path": str(big), "error": message}], report
    assert json.loads(_scan(env, folder).stdout)["known_bad"] == 1  # skipped, unchanged
    retried = json.loads(_scan(env, folder, "--retry-failed").stdout)
    assert retried["new"] == 1 and retried["failures"] == [] and retried["known_bad"] == 0, retried
    assert _attempt(db, big) is None
