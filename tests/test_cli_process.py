"""The long-running commands as a user meets them, in real processes with real signals: what the
watcher's log says, and Ctrl-C in the middle of a scan."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_watch_kill import _photos, _variants


class Lines:
    """A process's stderr, read line by line on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        self.thread = threading.Thread(
            target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True
        )
        self.thread.start()

    def wait_for(self, found: Callable[[str], bool], what: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found(line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line for {what}: {self.lines}")


@contextmanager
def facetags(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, Lines(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}


@pytest.mark.slow
def test_the_watcher_says_what_it_did(
    env: dict[str, str], tmp_path: Path, astronaut_path: Path, t1_path: Path
) -> None:
    """One INFO line per batch, without -v: new, failed with the reason, moved, a folder moved
    in, deleted, back again, a folder gone; readable, no Python dict."""
    watched, outside = tmp_path / "watched", tmp_path / "outside" / "trip"
    watched.mkdir()
    outside.mkdir(parents=True)
    shutil.copyfile(t1_path, outside / "group.jpg")
    with facetags(env, "watch", str(watched)) as (proc, log):
        log.wait_for(lambda s: "catch-up scan of" in s and "0 new" in s, "the catch-up scan")
        shutil.copyfile(astronaut_path, watched / "a.jpg")
        log.wait_for(lambda s: s.startswith("facetags: INFO: 1 new"), "the new photo")
        (watched / "bad.jpg").write_bytes(b"not a photo at all")
        bad = log.wait_for(lambda s: "1 failed" in s, "the bad file")
        assert f"{watched / 'bad.jpg'}: " in bad and "image" in bad  # the reason
        os.rename(watched / "a.jpg", watched / "b.jpg")
        log.wait_for(lambda s: f"INFO: 1 moved ({watched / 'b.jpg'})" in s, "the rename")
        os.rename(outside, watched / "trip")
        log.wait_for(lambda s: f"folder {watched / 'trip'} came in" in s, "the folder moved in")
        (watched / "b.jpg").unlink()
        gone = f"INFO: 1 gone ({watched / 'b.jpg'}: kept with its faces and names until back or forgotten)"
        log.wait_for(lambda s: gone in s, "the deletion")
        shutil.copyfile(astronaut_path, watched / "b.jpg")  # from a backup
        back = f"INFO: 1 back ({watched / 'b.jpg'}: with its faces and names)"
        log.wait_for(lambda s: back in s, "the photo back")
        shutil.rmtree(watched / "trip")
        log.wait_for(lambda s: f"folder {watched / 'trip'} gone" in s, "the folder deleted")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    log.thread.join(10)
    assert log.lines[-1] == "facetags: stopped\n"
    text = "".join(log.lines)
    assert "{" not in text and "Traceback" not in text, text
    assert len([s for s in log.lines if "INFO" in s]) <= 9, text  # one line per batch, not per file


@pytest.mark.slow
def test_watch_verbose_is_readable(env: dict[str, str], tmp_path: Path, astronaut_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    shutil.copyfile(astronaut_path, watched / "a.jpg")
    with facetags(env, "watch", str(watched), "-v") as (proc, log):
        line = log.wait_for(lambda s: "catch-up scan of" in s, "the catch-up scan")
        assert "1 new" in line and "1 face found" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    log.thread.join(10)
    text = "".join(log.lines)
    assert "{" not in text and "Traceback" not in text, text


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_in_scan_keeps_the_work_and_says_how_to_resume(
    env: dict[str, str], tmp_path: Path, t1_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C, or SIGTERM (a service manager stopping facetags, ``kill``), in the middle of a
    scan: it stops after the photo it is on, keeps the work and says how to finish it."""
    folder = tmp_path / "photos"
    _variants(t1_path, folder, 14)
    db = tmp_path / "lib.db"
    options = ["--workers", "1"] if sig == signal.SIGTERM else []  # kept in the resume hint
    with facetags(env, "scan", *options, "photos", cwd=tmp_path) as (proc, log):  # a folder given relative
        deadline = time.monotonic() + 240
        while _photos(db) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "indexing did not start"
            time.sleep(0.05)
        proc.send_signal(sig)
        # not communicate(): it would read stderr too, racing the log's thread for the last lines
        proc.wait(timeout=60)  # stdout is one summary line: it cannot fill the pipe
        assert proc.stdout is not None
        out = proc.stdout.read()
    log.thread.join(10)
    err = "".join(log.lines)
    kept = _photos(db)
    assert proc.returncode == 128 + sig, err  # 130, 143: the shell's status for the signal
    assert "stopping after the current photo" in err
    assert 2 <= kept < 14, f"interrupted too late to prove anything ({kept})"
    assert "Traceback" not in err and "Aborted" not in err
    assert "(interrupted)" in out and f"{kept} new" in out  # the summary of what was done
    assert f"{kept} photos indexed so far are kept" in err
    # how to resume, in the same library, from any folder
    assert f"facetags --library {db} scan {' '.join([*options, str(folder)])}' again" in err
    again = subprocess.run(
        [sys.executable, "-m", "facetags", "scan", str(folder)], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and f"{14 - kept} new" in again.stdout, again.stdout + again.stderr


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.slow
def test_ctrl_z_stops_a_scan_only_once_its_photos_are_committed(
    env: dict[str, str], tmp_path: Path, t1_path: Path, astronaut_path: Path
) -> None:
    """Ctrl-Z on a scan (SIGTSTP), at any moment: stopped, it holds no lock on the library, so
    another program (the TUI naming someone) can write meanwhile; ``fg`` (SIGCONT) and it ends
    as if nothing happened. It stopped in the middle of its grouped writes before, and a change
    made meanwhile failed after a minute with "library is busy"."""
    import sqlite3

    folder = tmp_path / "photos"
    _variants(t1_path, folder, 40)  # (40 distinct: the crops' offsets repeat after 40)
    for i, path in enumerate(_variants(astronaut_path, tmp_path / "more", 40)):
        path.rename(folder / f"more-{i:02d}.jpg")
    db = tmp_path / "lib.db"
    with facetags(env, "scan", "--workers", "2", str(folder)) as (proc, _log):
        deadline = time.monotonic() + 240
        while _photos(db) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "indexing did not start"
            time.sleep(0.02)
        stops = 0
        while proc.poll() is None and stops < 20:
            proc.send_signal(signal.SIGTSTP)
            waited = time.monotonic() + 10
            while not _stopped(proc.pid) and proc.poll() is None:
                assert time.monotonic() < waited, "Ctrl-Z did not stop the scan"
                time.sleep(0.005)
            if proc.poll() is not None:
                break
            stops += 1
            other = sqlite3.connect(db, timeout=0.5, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # "database is locked" after 0.5 s if it held it
                other.execute("ROLLBACK")
            finally:
                other.close()
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.02 + 0.03 * (stops % 5))  # the next Ctrl-Z at another point of its work
        assert proc.wait(timeout=240) == 0
    assert stops >= 5, f"the scan ended too soon to prove anything ({stops} stops)"
    assert _photos(db) == 80
