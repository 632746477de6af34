"""End to end in a real terminal: `facetags tui` in a tmux pane, named with send-keys.

The library is indexed by the real pipeline (detector and embedder). The test reads the screen
with capture-pane, names the first cluster by keyboard, types `/` and a filter in one send-keys
burst (keys that are also actions on the list must land in the filter), quits, and checks with
`facetags find` (another process) that the name reached the library file. A second test walks a
newcomer's way: esc leaves every screen and dialog, and a merge names whom it merges (checked
with `facetags people`, another process, before and after the answer). A third opens the photo
screen of a file whose name holds unparseable markup and an ESC sequence: shown as text, escaped.
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


def _people(db: Path) -> dict[int, int]:
    """Person id -> faces, as another process (`facetags people --json`) sees the library."""
    import json

    done = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(db), "people", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return {p["id"]: p["faces"] for p in json.loads(done.stdout)}


def test_esc_leaves_every_screen_and_a_merge_names_whom_first(
    tmux: Tmux, tmp_path: Path, t1_path: Path, astronaut_path: Path
) -> None:
    """A newcomer in a real 80x24 terminal: esc gets out of every screen and dialog (the footer
    says so), and m asks before merging, naming the clusters it will merge."""
    db = build_library(tmp_path, [t1_path, astronaut_path])
    separate(db)  # clusters 1..7, one face each
    from facetags.config import load_settings
    from facetags.library import Library

    with Library.open(db, load_settings(library=str(db)), create=False) as lib:
        lib.merge([1, 7])
        lib.name(1, "Ada Lovelace")  # the first row: 2 faces
    env_prefix = f"cd {ROOT} && PYTHONPATH={ROOT} FACETAGS_LIBRARY={db}"
    command = f"{env_prefix} {sys.executable} -m facetags tui --poll 0.5 --images halfcell"
    tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)

    def keys(*names: str) -> None:
        tmux("send-keys", "-t", "tui", *names)

    def on_people() -> str:
        return tmux.wait_for(lambda s: "/ to filter" in s and "Ada Lovelace" in s, "the people list")

    on_people()
    keys("Enter")  # Ada's faces
    # the footer shows the way back
    tmux.wait_for(lambda s: "Ada Lovelace  ·  2 faces" in s and "esc Back" in s, "the person screen")
    keys("Space")
    tmux.wait_for(lambda s: "1 selected" in s and "c Clear" in s, "a selected face")
    keys("Escape")  # once, selection or not
    on_people()

    # every other screen and dialog, and the key that opens it from where the previous one left
    for opening, shows in (
        (["Enter", "Enter"], "o Open person"),  # a photo (its footer)
        (["Enter", "v"], "the best face"),  # zoom
        (["s"], "esc Done"),  # suggestions (its footer)
        (["?"], "esc closes"),  # help
        (["n"], "esc: cancel"),  # the name dialog
        (["X"], "No (n / esc)"),  # XMP for everyone asks first
    ):
        for key in opening:
            keys(key)
            time.sleep(0.4)
        tmux.wait_for(lambda s, shows=shows: shows in s, f"the screen that shows {shows!r}")
        for _ in opening:  # one esc a level
            keys("Escape")
            time.sleep(0.4)
        tmux.wait_for(
            lambda s, shows=shows: shows not in s and "/ to filter" in s and "n Name space Mark" in s,
            f"the people list again, after the screen that showed {shows!r}",
        )
    assert _people(db)[1] == 2  # nothing was named, merged or written on the way

    keys("-l", "/cluster")
    tmux.wait_for(lambda s: "cluster 2" in s and "Ada Lovelace  " not in s, "the clusters only")
    keys("Enter")  # back to the list
    time.sleep(0.5)
    keys("Space", "Down", "Space")  # marks cluster 2 and cluster 3
    tmux.wait_for(lambda s: "●  cluster 2" in s and "●  cluster 3" in s, "two clusters marked")
    before = _people(db)
    keys("m")
    screen = tmux.wait_for(lambda s: "Merge 2 into cluster #2?" in s, "the merge question")
    assert "cluster #2 (1 face)" in screen and "cluster #3 (1 face)" in screen
    assert _people(db) == before  # it asks before anything happens
    keys("Escape")
    tmux.wait_for(lambda s: "Merge 2" not in s, "the question gone")
    assert _people(db) == before
    keys("m")
    tmux.wait_for(lambda s: "Merge 2 into cluster #2?" in s, "the merge question again")
    keys("y")
    tmux.wait_for(lambda s: "Merged 2 into cluster 2" in s, "the merge done")
    after = _people(db)
    assert after[2] == 2 and 3 not in after

    keys("q")
    deadline = time.monotonic() + 20
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "the app did not quit on q"


def test_a_hostile_file_name_on_the_photo_screen(tmux: Tmux, tmp_path: Path, t1_path: Path) -> None:
    """A photo whose name holds markup Textual cannot parse and an ESC sequence: the photo screen
    shows the name as text, the sequence escaped (not a red screen, not a crash), and the app runs on."""
    name = 't1 [b="] \x1b[31m.jpg'
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(t1_path, src / name)
    db = build_library(tmp_path / "lib", [src / name])
    env_prefix = f"cd {ROOT} && PYTHONPATH={ROOT} FACETAGS_LIBRARY={db}"
    command = f"{env_prefix} {sys.executable} -m facetags tui --poll 0.5 --images halfcell"
    tmux("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)

    tmux.wait_for(lambda s: "/ to filter" in s and "cluster" in s, "the people list")
    tmux("send-keys", "-t", "tui", "Enter")  # the largest cluster's faces
    tmux.wait_for(lambda s: "esc Back" in s and "Zoom" in s, "the person screen")
    tmux("send-keys", "-t", "tui", "Enter")  # the photo of the first face
    shown = 't1 [b="] \\x1b[31m.jpg  ·  6 faces'
    tmux.wait_for(lambda s: shown in s and "o Open person" in s, "the photo's name, escaped")
    assert tmux.alive()
    tmux("send-keys", "-t", "tui", "Escape")
    tmux.wait_for(lambda s: "esc Back" in s and "Zoom" in s, "the person screen again")
    tmux("send-keys", "-t", "tui", "Escape")
    tmux.wait_for(lambda s: "/ to filter" in s, "the people list again")
    tmux("send-keys", "-t", "tui", "q")
    deadline = time.monotonic() + 20
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "the app did not quit on q"
