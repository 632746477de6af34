"""End to end in a real terminal: `facetags tui` in a tmux pane, named with send-keys.

The library is indexed by the real pipeline (detector and embedder). The test reads the screen
with capture-pane, names the first cluster by keyboard, types `/` and a filter in one send-keys
burst (keys that are also actions on the list must land in the filter), quits, and checks with
`facetags find` (another process) that the name reached the library file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tui_helpers import build_library, separate

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"
)

ROOT = Path(__file__).resolve().parents[1]


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20, check=False
        )
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui")

    def alive(self) -> bool:
        return "tui" in self("list-sessions", "-F", "#{session_name}")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if check(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{text}")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    t = Tmux(f"facetags-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield t
    finally:
        t("kill-server")


def test_name_a_person_in_a_real_terminal(
    tmux: Tmux, tmp_path: Path, t1_path: Path, astronaut_path: Path
) -> None:
    db = build_library(tmp_path, [t1_path, astronaut_path])
    separate(db)  # cluster 1 is t1's first face, whatever the model makes of the faces
    env_prefix = f"cd {ROOT} && PYTHONPATH={ROOT} FACETAGS_LIBRARY={db}"
    command = f"{env_prefix} {sys.executable} -m facetags tui --poll 0.5 --images halfcell"
    tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)

    # the footer fits 80 columns: the list's keys, then Help, Undo and Quit
    screen = tmux.wait_for(
        lambda s: "cluster 1" in s and "n Name" in s and "q Quit" in s, "the people screen"
    )
    assert "facetags" in screen and "? Help" in screen
    assert "7 clusters" in screen  # the side panel counts them

    tmux("send-keys", "-t", "tui", "n")
    tmux.wait_for(lambda s: "Name cluster 1" in s, "the name dialog")
    tmux("send-keys", "-t", "tui", "-l", "Muhammad Ali")
    tmux("send-keys", "-t", "tui", "Enter")
    tmux.wait_for(lambda s: "Muhammad Ali" in s and "Name cluster" not in s, "the new name in the list")

    # one burst: `m` (merge), `u` (undo), `h` (hide) and `a` must all reach the filter box
    tmux("send-keys", "-t", "tui", "-l", "/muhammad")
    screen = tmux.wait_for(lambda s: "muhammad" in s and "cluster 2" not in s, "the filtered list")
    assert "Muhammad Ali" in screen and "Undone" not in screen and "hidden" not in screen
    tmux("send-keys", "-t", "tui", "Enter")  # back to the list, where q quits
    time.sleep(0.5)

    tmux("send-keys", "-t", "tui", "q")
    deadline = time.monotonic() + 20
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "the app did not quit on q"

    found = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(db), "find", "muhammad ali"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert found.stdout.strip().splitlines() == [str(tmp_path / "photos" / t1_path.name)]
