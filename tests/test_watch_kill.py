"""``kill -9`` in the middle of indexing, then a restart: the work is finished with nothing
lost and nothing done twice (each photo is stored whole, as one savepoint of the scan's transactions)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facetags.library import Library
from tests.process_support import kill_when
from tests.process_support import photo_count as _photos

N_PHOTOS = 14


def _variants(src: Path, folder: Path, n: int) -> list[Path]:
    """n real photos with distinct pixels: crops of one photo at different offsets."""
    folder.mkdir(parents=True, exist_ok=True)
    image = np.asarray(Image.open(src).convert("RGB"))
    h, w = image.shape[:2]
    paths = []
    for i in range(n):
        dy, dx = (i * 7) % 40, (i * 11) % 40
        crop = image[dy : h - 40 + dy, dx : w - 40 + dx]
        path = folder / f"photo-{i:02d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=90)
        paths.append(path)
    return paths


def _snapshot(db: Path) -> tuple[int, int, int, list[tuple[str, int]]]:
    with Library.open(db) as lib:
        st = lib.status()
        per_photo = sorted((Path(f.path).name, 1) for f in lib.faces())
        people = sum(p.faces for p in lib.people())
        assert people == st.faces, "a face without a person, or in two"
        assert st.queue == 0 and st.failures == []
        return st.photos, st.files, st.faces, per_photo


@pytest.mark.slow
@pytest.mark.parametrize("command", ["scan", "watch"])
def test_kill_9_then_restart_finishes_without_duplicates(command: str, tmp_path: Path, t1_path: Path) -> None:
    folder = tmp_path / "photos"
    _variants(t1_path, folder, N_PHOTOS)
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "killed.db")}
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", command, str(folder)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_when(proc, lambda: _photos(db) >= 3, "indexing did not start")
    done_before = _photos(db)
    assert 3 <= done_before < N_PHOTOS, f"killed too late to prove anything ({done_before})"

    subprocess.run(
        [sys.executable, "-m", "facetags", "scan", str(folder)], env=env, check=True, capture_output=True
    )
    killed = _snapshot(db)

    clean_env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "clean.db")}
    subprocess.run(
        [sys.executable, "-m", "facetags", "scan", str(folder)],
        env=clean_env,
        check=True,
        capture_output=True,
    )
    clean = _snapshot(tmp_path / "clean.db")
    assert killed == clean
    assert killed[0] == N_PHOTOS and killed[1] == N_PHOTOS


@pytest.mark.slow
def test_sigterm_stops_the_watcher_cleanly(tmp_path: Path, astronaut_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetags", "watch", str(folder)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "lib.db").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        (folder / "a.jpg").write_bytes(astronaut_path.read_bytes())
        while _photos(tmp_path / "lib.db") < 1:
            assert time.monotonic() < deadline, "the photo was not indexed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert "Traceback" not in err
