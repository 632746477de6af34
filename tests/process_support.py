"""Killing a real facetags process part-way, as the kernel's OOM killer or a power cut would."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def photo_count(db: Path) -> int:
    """Photos in the library file ``db`` now (0 before it exists or while it cannot be read)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def kill_when(
    proc: subprocess.Popen[Any], ready: Callable[[], bool], what: str, timeout: float = 240.0
) -> None:
    """``kill -9`` ``proc`` as soon as ``ready()`` holds. Fails with ``what`` if it never does,
    and with the process's stderr if the process ends first; the process is gone after."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, (
                f"it ended before it was killed: {proc.stderr.read() if proc.stderr else ''!r}"
            )
            assert time.monotonic() < deadline, what
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def without_read_override() -> list[str]:
    """The command prefix that makes a facetags process meet file permissions as a user's
    would: nothing for an ordinary user; for root (CI), ``setpriv`` without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, since root reads any file whatever its mode. Skips the calling test
    where that does not work (no ``setpriv``, or a container that keeps the capabilities)."""
    import pytest

    if os.geteuid() != 0:
        return []
    prefix = _dropping_read_override()
    if prefix is None:
        pytest.skip("root reads files whatever their mode, and setpriv cannot drop that here")
    return prefix


@functools.cache
def _dropping_read_override() -> list[str] | None:
    if shutil.which("setpriv") is None:
        return None
    caps = "-dac_override,-dac_read_search"
    prefix = ["setpriv", "--inh-caps", caps, "--bounding-set", caps]
    with tempfile.TemporaryDirectory() as folder:
        locked = Path(folder) / "locked"
        locked.write_bytes(b"x")
        locked.chmod(0)
        try:
            probe = subprocess.run([*prefix, "cat", str(locked)], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        finally:
            locked.chmod(0o600)
    return prefix if probe.returncode != 0 else None  # the read must be refused
