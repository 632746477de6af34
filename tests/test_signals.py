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
        alive = [t.name for t in threading.enumerate() if t.name == "facetags-signals"]
        print(restored, alive)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["interrupted", "True []"]


def test_one_signal_is_one_stop_however_busy_the_main_thread_is() -> None:
    """The first Ctrl-C of a scan stops it after the photo at hand, never at once: whether the
    main thread is asleep, waiting on a lock or running when it comes. A second signal to the
    watcher (no ``again``) is not said twice."""
    done = run(
        """
        import os, signal, threading, time
        from facetags.commands.signals import stopping

        def again():
            raise KeyboardInterrupt

        def ctrl_c():
            os.kill(os.getpid(), signal.SIGINT)

        at_once = 0
        for waiting in ("sleep", "lock", "run") * 10:
            stop = threading.Event()
            try:
                with stopping(stop, (signal.SIGINT,), lambda s: None, again):
                    threading.Timer(0.01, ctrl_c).start()  # from another thread, as a terminal's
                    if waiting == "sleep":
                        time.sleep(0.1)
                    elif waiting == "lock":
                        threading.Lock().acquire(timeout=0.1)
                    else:
                        sum(range(3_000_000))
                    assert stop.wait(20)
            except KeyboardInterrupt:
                at_once += 1

        said = []
        stop = threading.Event()
        with stopping(stop, (signal.SIGINT, signal.SIGTERM), lambda s: said.append(s.name)):
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.wait(20)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        print(at_once, said)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "['SIGTERM']"]


def test_outside_the_main_thread_it_says_so_and_leaves_nothing_open() -> None:
    done = run(
        """
        import os, signal, threading
        from facetags.commands.signals import stopping

        before = len(os.listdir("/proc/self/fd"))
        failed = []

        def other():
            try:
                with stopping(threading.Event(), (signal.SIGINT,), lambda s: None):
                    pass
            except RuntimeError as exc:
                failed.append(str(exc))

        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        left = len(os.listdir("/proc/self/fd")) - before
        print(failed == ["signal handlers can only be set in the main thread"], left)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0"]
