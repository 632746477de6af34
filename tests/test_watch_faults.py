"""``facetags watch`` as its own process, under what the kernel and the user do to a folder:
events the kernel drops (the watcher stopped with SIGSTOP while thousands of files pour in,
so inotify's queue overflows) and a photo that could not be read until ``chmod`` allowed it."""

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

from facetags.library import Library
from tests.process_support import photo_count, without_read_override

TIMEOUT = 60.0


class WatchProcess:
    """A running ``facetags watch``, its stderr collected line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not check():
            assert self.proc.poll() is None, f"the watcher ended: {self.lines[-20:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; stderr: {self.lines[-20:]}"
            time.sleep(0.05)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)


@contextmanager
def watch_process(db: Path, folder: Path, prefix: list[str] | None = None) -> Iterator[WatchProcess]:
    command = [*(prefix or []), sys.executable, "-m", "facetags", "--library", str(db), "watch", str(folder)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher = WatchProcess(proc)
    try:
        watcher.wait(lambda: watcher.said("catch-up scan of"), "the catch-up scan")
        yield watcher
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert not any("Traceback" in line for line in watcher.lines), watcher.lines


@pytest.mark.slow
def test_events_the_kernel_drops_are_caught_up(tmp_path: Path, t1_path: Path, astronaut_path: Path) -> None:
    queue_limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if queue_limit > 200_000:
        pytest.skip(f"fs.inotify.max_queued_events is {queue_limit}: too many files to overflow it")
    folder = tmp_path / "photos"
    folder.mkdir()
    db = tmp_path / "lib.db"
    with watch_process(db, folder) as watcher:
        os.kill(watcher.proc.pid, signal.SIGSTOP)  # it reads no events: the kernel queues them
        try:
            for i in range(queue_limit + 1000):  # at least two events each (created, closed)
                (folder / f"note-{i:06d}.txt").touch()
            shutil.copyfile(t1_path, folder / "t1.jpg")  # past the queue's end: dropped
            shutil.copyfile(astronaut_path, folder / "astronaut.jpg")
        finally:
            os.kill(watcher.proc.pid, signal.SIGCONT)
        watcher.wait(lambda: photo_count(db) == 2, "the two photos copied in while events were dropped")
        assert watcher.said("the system dropped file events")
    with Library.open(db, create=False) as lib:
        assert {Path(f.path).name for f in lib.faces()} == {"t1.jpg", "astronaut.jpg"}
        assert lib.status().failures == []


@pytest.mark.slow
def test_a_photo_is_indexed_once_chmod_makes_it_readable(tmp_path: Path, astronaut_path: Path) -> None:
    prefix = without_read_override()
    folder = tmp_path / "photos"
    folder.mkdir()
    db = tmp_path / "lib.db"
    locked = folder / "locked.jpg"
    outside = tmp_path / "locked.jpg"
    shutil.copyfile(astronaut_path, outside)
    outside.chmod(0)
    try:
        with watch_process(db, folder, prefix) as watcher:
            outside.rename(locked)  # arrives whole, and unreadable
            watcher.wait(lambda: watcher.said("Permission denied"), "the unreadable photo to be reported")
            assert photo_count(db) == 0
            locked.chmod(0o644)
            watcher.wait(lambda: photo_count(db) == 1, "the photo to be indexed after chmod")
    finally:
        for path in (outside, locked):
            if path.exists():
                path.chmod(0o644)
    with Library.open(db, create=False) as lib:
        assert lib.status().failures == []
        assert len(lib.faces()) == 1
