"""``facetags watch DIR...``: keep the library in step with folders until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from facetags.commands import say_new_library, shown
from facetags.commands.signals import stopping, suspending
from facetags.config import Settings

log = logging.getLogger(__name__)


@click.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path, file_okay=False)
)
@click.option("--settle", type=float, default=0.5, show_default=True, help="Seconds a file must be quiet.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Look for changes every SECONDS instead of waiting for filesystem events; 0: always "
    "events. Default: events, except on network filesystems (NFS, SMB, sshfs), which send none "
    "for other machines' changes: polled every 30 s.",
)
@click.pass_obj
def watch(settings: Settings, paths: tuple[Path, ...], settle: float, poll: float | None) -> None:
    """Index folders now, then follow every change until Ctrl-C or SIGTERM.

    Logs one line on stderr for each batch of changes: photos new, changed, moved, gone,
    failed (with the reason), folders that came, went or were renamed (-v: more, -vv: each file).
    """
    from facetags.library import Library
    from facetags.watch import Watcher
    from facetags.watch import log as watch_log

    if watch_log.getEffectiveLevel() > logging.INFO:
        watch_log.setLevel(logging.INFO)  # a daemon's log says what it did, without -v
    stop = threading.Event()

    def _said(signum: signal.Signals) -> None:
        log.info("%s: stopping", signum.name)

    ready = threading.Event()
    with (
        stopping(stop, (signal.SIGINT, signal.SIGTERM), _said),
        Library.open(settings.library, settings) as lib,
        suspending(lib.store.suspend),  # Ctrl-Z: once its photos are committed
    ):
        if lib.created:
            say_new_library(lib.path)
        watcher = Watcher(lib, [str(p) for p in paths], settle=settle, poll=poll)
        click.echo(f"facetags: watching {', '.join(shown(str(p)) for p in paths)}", err=True)
        watcher.run(stop, ready)
    click.echo("facetags: stopped", err=True)
