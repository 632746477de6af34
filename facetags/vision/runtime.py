"""onnxruntime, loaded one way for all of facetags: with its telemetry off.

onnxruntime's wheel carries Microsoft's 1DS telemetry. On import it writes a device id and an
event queue under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` and, some seconds later,
looks up ``mobile.events.data.microsoft.com`` to upload them. ``disable_telemetry_events()``
called after the import stops neither; only ``ORT_DISABLE_TELEMETRY=1`` in the environment
before the library loads does. Every session facetags opens (detector, embedders, training's
checks and quantizer) goes through :func:`onnxruntime`, which sets it first; the variable is
inherited by child processes too.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"
#: onnxruntime threads a process uses in all when the ``threads`` setting is 0 (automatic): its
#: cores, up to this many
AUTO_THREADS_MAX = 4


def disable_telemetry() -> None:
    """Turn onnxruntime's telemetry off for this process and its children; a no-op once done.
    Call before anything imports onnxruntime (facetags' own imports all come through here)."""
    if os.environ.get(TELEMETRY_ENV) != "1":
        os.environ[TELEMETRY_ENV] = "1"
        if "onnxruntime" in sys.modules:  # loaded by someone else first: too late for its start-up
            log.warning("onnxruntime was loaded before facetags could turn its telemetry off")


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, its telemetry off before it loads."""
    disable_telemetry()
    import onnxruntime as ort

    ort.disable_telemetry_events()  # the documented switch too, for builds that honour only it
    return ort


def session_threads(threads: int) -> int:
    """onnxruntime threads in all for the ``threads`` setting ``threads``: itself, or for 0
    (automatic) the cores, at most :data:`AUTO_THREADS_MAX`."""
    if threads > 0:
        return threads
    return max(1, min(AUTO_THREADS_MAX, os.cpu_count() or 1))
