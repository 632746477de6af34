"""Nothing leaves the machine (issue 23, case 1).

`facetags scan`, `watch`, `xmp write` and `tui` (in tmux) run on real photos under
`strace -f -e trace=network` with a fresh HOME. Before the fix onnxruntime's telemetry wrote a
device id and an event queue under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ as soon as it
loaded, and looked up mobile.events.data.microsoft.com about nine seconds later (the watcher
runs longer than that here). Now no process may create a socket other than AF_UNIX, connect or
send to anything else, or create ~/.cache/Microsoft.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace")
#: longer than onnxruntime's telemetry waited before its first upload (about 9 s after loading)
WATCH_S = 15.0
TIMEOUT = 120.0


NETWORK_CALL = re.compile(r"^\d+\s+(socket|socketpair|connect|sendto|sendmsg|sendmmsg|bind)\((.*)")


def network_use(trace: Path) -> list[str]:
    """The lines of an ``strace -f -e trace=network`` log that reach beyond the machine: a socket
    of any family but AF_UNIX, or an address of another family given to connect/send/bind."""
    wrong = []
    for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
        match = NETWORK_CALL.match(line)
        if match is None:
            continue
        call, args = match.groups()
        if call.startswith("socket"):
            if not args.startswith("AF_UNIX"):
                wrong.append(line)
        elif "sa_family=" in args and "sa_family=AF_UNIX" not in args:
            wrong.append(line)
    return wrong


def traced(trace: Path, *command: str) -> list[str]:
    assert STRACE is not None
    return [STRACE, "-f", "-e", "trace=network", "-o", str(trace), *command]


def clean_env(home: Path) -> dict[str, str]:
    """A fresh user: HOME in the test's folder, no XDG overrides, no telemetry switch of our own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    return env


def child_of(pid: int) -> int | None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            return int(stat.parent.name)
    return None


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def strace_works(tmp_path: Path) -> None:
    assert STRACE is not None
    done = subprocess.run(
        [STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()}")


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (.ci/run installs it)")
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
def test_no_process_reaches_for_the_network(strace_works: None, tmp_path: Path, shared_data: Path) -> None:
    home, traces, photos, watched = (tmp_path / n for n in ("home", "traces", "photos", "watched"))
    for folder in (home, traces, photos, watched):
        folder.mkdir()
    env = clean_env(home)
    groups = shared_data / "bbt" / "groups"
    for name in ("bbt1.jpg", "bbt2.jpg"):
        shutil.copyfile(groups / name, photos / name)
    db = tmp_path / "library.db"
    facetags = [sys.executable, "-m", "facetags", "--library", str(db)]

    def run(trace: str, *args: str) -> str:
        done = subprocess.run(
            traced(traces / trace, *facetags, *args),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    scanned = run("scan", "scan", "--json", str(photos))
    assert '"faces"' in scanned

    # the watcher (its own library) runs while the other commands do, and long enough to have
    # met onnxruntime's first upload
    log = tmp_path / "watch.log"
    watcher = [sys.executable, "-m", "facetags", "--library", str(tmp_path / "watch.db"), "-vv", "watch"]
    with log.open("w") as err:
        watch = subprocess.Popen(
            traced(traces / "watch", *watcher, "--settle", "0.3", str(watched)),
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    started = time.monotonic()
    tmux = ["tmux", "-L", f"facetags-privacy-{os.getpid()}-{time.monotonic_ns()}"]
    try:
        wait_for(lambda: "catch-up scan" in log.read_text(), "the watcher's catch-up scan")
        shutil.copyfile(groups / "bbt3.jpg", watched / "bbt3.jpg")

        subprocess.run(
            [*facetags, "name", "1", "Leonard"], env=env, cwd=ROOT, check=True, capture_output=True
        )
        written = run("xmp", "xmp", "write", "--json")
        assert '"written": true' in written, written

        command = shlex.join(
            traced(traces / "tui", *facetags, "tui", "--poll", "0.5", "--images", "halfcell")
        )
        subprocess.run(
            [
                *tmux,
                "new-session",
                "-d",
                "-s",
                "tui",
                "-x",
                "80",
                "-y",
                "24",
                f"cd {shlex.quote(str(ROOT))} && {command}",
            ],
            env=env,
            check=True,
            timeout=20,
        )

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True
            ).stdout

        wait_for(lambda: "Leonard" in screen() and "q Quit" in screen(), "the TUI's people screen")
        subprocess.run([*tmux, "send-keys", "-t", "tui", "q"], check=True)
        has_tui = [*tmux, "has-session", "-t", "tui"]
        wait_for(lambda: subprocess.run(has_tui, capture_output=True).returncode != 0, "the TUI to quit")

        wait_for(lambda: "bbt3.jpg: " in log.read_text(), "the watcher to index the copied photo")
        time.sleep(max(0.0, WATCH_S - (time.monotonic() - started)))
        pid = child_of(watch.pid)
        assert pid is not None, "the watcher is not running"
        os.kill(pid, signal.SIGINT)
        try:
            watch.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the watcher did not stop on SIGINT; its log: {log.read_text()[-2000:]}")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
        if watch.poll() is None:
            stray = child_of(watch.pid)
            if stray is not None:
                os.kill(stray, signal.SIGKILL)
            watch.kill()
            watch.wait()
    assert "facetags: stopped" in log.read_text(), log.read_text()[-2000:]

    for trace in ("scan", "watch", "xmp", "tui"):
        text = (traces / trace).read_text(encoding="utf-8", errors="replace")
        assert "+++ exited with 0 +++" in text, f"{trace}: strace saw no clean exit"
        assert network_use(traces / trace) == [], trace
    assert not (home / ".cache" / "Microsoft").exists(), sorted(str(p) for p in home.rglob("*"))


def test_telemetry_stays_off_even_when_the_environment_asks_for_it(tmp_path: Path) -> None:
    """Both models loaded (detector and embedder) with ORT_DISABLE_TELEMETRY=0 inherited: facetags
    still turns it off, and nothing appears under ~/.cache/Microsoft. No strace needed."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**clean_env(home), "ORT_DISABLE_TELEMETRY": "0"}
    code = (
        "import os\n"
        "from facetags.vision.mtcnn import load_net\n"
        "from facetags.config import Settings\n"
        "from facetags.vision.embed import load_embedder\n"
        "load_net('pnet'); load_embedder(Settings().embedder)\n"
        "print(os.environ['ORT_DISABLE_TELEMETRY'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1"]
    assert not (home / ".cache" / "Microsoft").exists(), sorted(str(p) for p in home.rglob("*"))
