"""File names that carry terminal escape sequences and newlines (issue 23, case 11).

Real photos are copied under hostile names (ESC colour and title sequences, a screen clear, a
newline, a tab) and run through the real CLI in subprocesses: every line a person reads shows
such a name escaped (``\\x1b``, ``\\n``) and on one line, while ``--json`` keeps the real path.
Before the fix the raw bytes reached the terminal and a newline split a row in two.
``detect --crops`` writes the crops (faces) readable by their owner only.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facetags.text import shown

ROOT = Path(__file__).resolve().parents[1]
# what each hostile part would do on a terminal: colour, set the window title, clear the screen
COLOUR = "group \x1b[31mred\x1b[0m\x1b]0;owned\x07.jpg"
SPLIT = "two\nlines\tand a tab.jpg"
BROKEN = "broken\x1b[2J.jpg"
RAW = ("\x1b", "\x07", "\n")  # nothing of a name may reach stdout or stderr unescaped


def run(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "facetags", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stderr[-2000:]
    return done


def clean(text: str) -> None:
    """No raw control character but the line ends; no line a name split."""
    body = text.replace("\n", "")
    assert not [c for c in RAW if c in body], repr(text)


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, t1_path: Path, astronaut_path: Path
) -> tuple[dict[str, str], Path]:
    """A library scanned from a folder whose own name and files' names hold escapes."""
    tmp = tmp_path_factory.mktemp("hostile")
    folder = tmp / "photos \x1b[1mbold"
    folder.mkdir()
    shutil.copyfile(t1_path, folder / COLOUR)
    shutil.copyfile(astronaut_path, folder / SPLIT)
    (folder / BROKEN).write_bytes(b"not a photo")
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp / "lib.db"), "PYTHONPATH": str(ROOT)}
    scan = run(env, "scan", str(folder))
    clean(scan.stdout)
    clean(scan.stderr)
    assert shown(str(folder / BROKEN)) in scan.stderr  # the failure, escaped
    assert "2 new" in scan.stdout and "1 failed" in scan.stdout
    return env, folder


def test_people_faces_find_status_show_names_escaped(hostile: tuple[dict[str, str], Path]) -> None:
    env, folder = hostile
    faces = json.loads(run(env, "faces", "--json").stdout)
    # --json keeps the real paths
    assert {f["path"] for f in faces} == {str(folder / COLOUR), str(folder / SPLIT)}
    split = next(f for f in faces if f["path"].endswith(SPLIT))
    run(env, "name", str(split["person_id"]), "Eileen")

    rows = run(env, "faces").stdout
    clean(rows)
    assert len(rows.splitlines()) == len(faces)  # one row a face: the newline did not split one
    assert all(len(row.split("\t")) == 6 for row in rows.splitlines())  # nor the tab a column
    assert shown(str(folder / COLOUR)) in rows and "\\n" in rows and "\\x1b]0;owned\\x07" in rows

    found = run(env, "find", "eileen").stdout
    assert found.splitlines() == [shown(str(folder / SPLIT))]
    assert json.loads(run(env, "find", "--json", "eileen").stdout) == [str(folder / SPLIT)]

    status = run(env, "status").stdout
    clean(status)
    assert f"  {shown(str(folder / BROKEN))}: " in status
    assert str(folder / BROKEN) in {
        f["path"] for f in json.loads(run(env, "status", "--json").stdout)["failures"]
    }

    people = run(env, "people").stdout
    clean(people)
    suggest = run(env, "suggest", str(split["person_id"])).stdout
    clean(suggest)


def test_xmp_write_shows_names_escaped(hostile: tuple[dict[str, str], Path]) -> None:
    env, folder = hostile
    written = run(env, "xmp", "write", "--sidecar", "--all-faces")
    clean(written.stdout)
    clean(written.stderr)
    assert shown(str(folder / COLOUR)) in written.stdout
    assert (folder / f"{COLOUR}.xmp").is_file() and (folder / f"{SPLIT}.xmp").is_file()


def test_detect_shows_names_escaped_and_keeps_json_real(tmp_path: Path, t1_path: Path) -> None:
    photo = tmp_path / COLOUR
    shutil.copyfile(t1_path, photo)
    (tmp_path / BROKEN).write_bytes(b"not a photo")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    text = run(env, "detect", str(photo), str(tmp_path / BROKEN), code=1)
    clean(text.stdout)
    clean(text.stderr)
    assert text.stdout.startswith(f"{shown(str(photo))}: ")
    assert shown(str(tmp_path / BROKEN)) in text.stderr
    assert json.loads(run(env, "detect", "--json", str(photo)).stdout)["path"] == str(photo)


def test_a_bad_path_on_the_command_line_is_shown_escaped(tmp_path: Path) -> None:
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db"), "PYTHONPATH": str(ROOT)}
    missing = str(tmp_path / "gone\x1b[2J\nfolder")
    for args in (("scan", missing), ("xmp", "import", missing)):  # ours, and click's own check
        failed = run(env, *args, code=1 if args[0] == "scan" else 2)
        clean(failed.stderr)
        assert "gone\\x1b[2J\\nfolder" in failed.stderr, failed.stderr


def test_scan_progress_on_a_terminal_shows_names_escaped(tmp_path: Path, t1_path: Path) -> None:
    """The progress line is drawn only on a terminal: stderr is a real pseudo-terminal here."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(t1_path, folder / "p\x1b[2Jq.jpg")
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db"), "PYTHONPATH": str(ROOT)}
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "facetags", "scan", str(folder)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=300,
        )
    finally:
        os.close(slave)
        reader.join(30)
        os.close(master)
    drawn = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "p\\x1b[2Jq.jpg" in drawn, repr(drawn)  # the bar was drawn, with the name escaped
    assert "\x1b" not in drawn, repr(drawn)
    # then what it does once every photo is in (a large library's re-cluster takes a while),
    # after the new library was named, at the start
    order = [drawn.index(s) for s in ("new library", "p\\x1b[2Jq.jpg", "grouping the faces into people")]
    assert order == sorted(order), repr(drawn)


def test_the_watchers_log_shows_names_escaped(tmp_path: Path, t1_path: Path, astronaut_path: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db"), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "watch.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facetags", "-vv", "watch", "--settle", "0.3", str(folder)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 120
        while "catch-up scan" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        shutil.copyfile(astronaut_path, folder / SPLIT)
        shutil.copyfile(t1_path, folder / COLOUR)
        while log.read_text().count(": new") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    clean(text)
    assert f"{shown(str(folder / SPLIT))}: " in text and f"{shown(str(folder / COLOUR))}: " in text


def test_detect_crops_are_the_owners_only(tmp_path: Path, t1_path: Path) -> None:
    crops = tmp_path / "crops"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run(env, "detect", "--crops", str(crops), str(t1_path))
    written = sorted(crops.iterdir())
    assert len(written) >= 6
    assert stat.S_IMODE(crops.stat().st_mode) == 0o700  # a folder detect made
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o600}

    # a crop left by an earlier run with wider rights is narrowed when written again
    written[0].chmod(0o644)
    run(env, "detect", "--crops", str(crops), str(t1_path))
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o600


def test_names_in_any_script_line_up_in_the_people_list() -> None:
    """A CJK character takes two columns in a terminal, a combining accent none: the counts after
    a name padded with ljust_columns start in the same column whatever the script."""
    from facetags.text import ljust_columns

    padded = [ljust_columns(name, 20) for name in ("Ada Lovelace", "江泽民 Jiang", "Zoe\u0308 Smith")]
    assert [len(padded[0]), len(padded[1]), len(padded[2])] == [20, 17, 21]  # characters
    assert ljust_columns("x" * 25, 20) == "x" * 25  # a longer name is kept whole
