"""Stopping ``scan`` and ``watch`` on a signal (facetags.commands.signals), in real processes with
real signals.

A watcher once hung on SIGINT: its handler called ``stop.set()`` while the main thread, which
runs handlers, was inside ``stop.wait()`` holding the event's lock. The first test puts the main
thread in exactly that place (the lock held) when the signal comes: the old handler deadlocks
there every time.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_signal_while_the_main_thread_holds_the_events_lock_still_stops() -> None:
    done = run(
        """
        import os, signal, threading
        from facetags.commands.signals import stopping

        stop = threading.Event()
        said = []
        with stopping(stop, (signal.SIGINT, signal.SIGTERM), lambda s: said.append(s.name)):
            with stop._cond:  # held, as Event.wait() holds it between two waits
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10_000):  # bytecodes: the handler runs among them
                    pass
            print(stop.wait(20), said)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "['SIGTERM']"]


def test_a_second_signal_stops_at_once_and_the_old_handlers_come_back() -> None:
    done = run(
        """
        import os, signal, threading, time
        from facetags.commands.signals import stopping

        def again():
            raise KeyboardInterrupt

        stop = threading.Event()
        before = signal.getsignal(signal.SIGINT)
        try:
            with stopping(stop, (signal.SIGINT,), lambda s: None, again):
                os.kill(os.getpid(), signal.SIGINT)
                assert stop.wait(20)  # the first: stop between two photos
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(20)  # the second: at once, here
                print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
        restored = signal.getsignal(signal.SIGINT) is before
        fd = signal.set_wakeup_fd(-1)
        alive = [t.name for t in threading.enumerate() if t.name == "facetags-signals"]
        print(restored, fd, alive)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted", "True -1 []"]
