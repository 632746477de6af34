"""Stopping a long command (``scan``, ``watch``) on a signal, without ever hanging.

Python runs a signal handler in the main thread between two bytecodes, wherever that thread
is: inside ``threading.Event.wait()`` too, while it holds the event's own lock. A handler that
calls ``stop.set()`` there waits for that lock forever (``facetags watch`` could hang on Ctrl-C
this way). So the handler installed here takes no lock: it writes the signal's number to a pipe,
and a thread of its own reads it, sets ``stop`` and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: How long leaving :func:`stopping` waits for its thread.
JOIN_TIMEOUT_S = 5.0


@contextlib.contextmanager
def stopping(
    stop: threading.Event,
    signals: Sequence[signal.Signals],
    said: Callable[[signal.Signals], None],
    again: Callable[[], None] | None = None,
) -> Iterator[None]:
    """While inside, the first of ``signals`` to come sets ``stop`` and calls ``said`` with the
    signal (from another thread). ``again``: called in the signal handler itself for each signal
    after the first, where it may raise (``KeyboardInterrupt``: stop at once). Must be entered
    in the main thread; the previous handlers are put back on the way out."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be set in the main thread")
    read, write = os.pipe()
    os.set_blocking(write, False)
    seen = False

    def handler(signum: int, _frame: FrameType | None) -> None:
        # here nothing may take a lock: a byte on the pipe, a flag only this thread touches
        nonlocal seen
        if seen:
            if again is not None:
                again()
            return
        seen = True
        with contextlib.suppress(OSError):
            os.write(write, bytes([signum]))

    def relay() -> None:
        try:
            data = os.read(read, 1)
        except OSError:
            return
        if data and data[0]:  # 0: written on the way out
            stop.set()
            try:
                said(signal.Signals(data[0]))
            except Exception:  # saying so (on a closed stderr, say) must not cost the stop
                log.debug("after %s", data[0], exc_info=True)

    thread = threading.Thread(target=relay, name="facetags-signals", daemon=True)
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
        thread.start()
        yield
    finally:
        try:
            for sig, old in previous.items():
                signal.signal(sig, old)
        finally:
            with contextlib.suppress(OSError):
                os.write(write, b"\0")
            if thread.is_alive():
                thread.join(JOIN_TIMEOUT_S)
            os.close(write)
            if not thread.is_alive():  # else it still reads: the fd must not be reused under it
                os.close(read)


@contextlib.contextmanager
def suspending(suspend: Callable[[], None]) -> Iterator[None]:
    """While inside, Ctrl-Z (SIGTSTP) calls ``suspend``, which stops the process when it holds
    no lock another program waits for (the library's: facetags.db.store.Store.suspend), instead
    of stopping it wherever it is. ``suspend`` runs in the signal handler: it may take no lock.
    Nothing changes outside the main thread or where there is no SIGTSTP."""
    tstp = getattr(signal, "SIGTSTP", None)
    if tstp is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(tstp, lambda _signum, _frame: suspend())
    try:
        yield
    finally:
        signal.signal(tstp, previous)
