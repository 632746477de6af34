"""Stopping a long command (``scan``, ``watch``) on a signal, without ever hanging.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: inside ``threading.Event.wait()`` too, while it holds the event's own lock. A handler that
calls ``stop.set()`` there waits for that lock forever (``facetags watch`` could hang on Ctrl-C
this way). So the handler installed here takes no lock: the interpreter's C-level handler
writes the signal's number to a pipe (:func:`signal.set_wakeup_fd`), and a thread of its own
reads it, says so and sets ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

#: How long leaving :func:`stopping` waits for its thread.
JOIN_TIMEOUT_S = 5.0


@contextlib.contextmanager
def stopping(
    stop: threading.Event,
    signals: Sequence[signal.Signals],
    said: Callable[[signal.Signals], None],
    again: Callable[[], None] | None = None,
) -> Iterator[None]:
    """While inside, each of ``signals`` sets ``stop`` (from another thread, after calling
    ``said`` with the signal there). ``again``: called in the signal handler itself when
    ``stop`` is set already, where it may raise (``KeyboardInterrupt``: stop at once). Must be
    entered in the main thread; the previous handlers are put back on the way out."""
    wanted = {int(s) for s in signals}
    read, write = os.pipe()
    os.set_blocking(write, False)

    def relay() -> None:
        while True:
            try:
                data = os.read(read, 64)
            except OSError:
                return
            for number in data:
                if number == 0:  # written on the way out
                    return
                if number in wanted:
                    said(signal.Signals(number))
                    stop.set()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        # the number is in the pipe already; here nothing may take a lock
        if again is not None and stop.is_set():
            again()

    thread = threading.Thread(target=relay, name="facetags-signals", daemon=True)
    thread.start()
    previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(previous_fd)
        with contextlib.suppress(OSError):
            os.write(write, b"\0")
        thread.join(JOIN_TIMEOUT_S)
        os.close(write)
        os.close(read)
