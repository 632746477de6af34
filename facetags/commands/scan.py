"""``facetags scan PATHS...``: index photo folders (progress on stderr, summary on stdout)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from facetags.commands import plural, say_new_library, shown
from facetags.commands.signals import stopping, suspending
from facetags.config import Settings
from facetags.errors import NotFoundError

if TYPE_CHECKING:
    from facetags.library import ScanReport


class ProgressLine:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    WIDTH = 90  # columns the line takes, cleared by the next one

    def __init__(self, stream: TextIO | None = None, every: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.every = every
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int, path: str) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.every and done < total):
            return
        self._last = now
        width = 30
        filled = int(width * done / max(total, 1))
        name = shown(os.path.basename(path))[:40]
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {name:<40}")
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        """``text`` in place of the bar (what the scan does now that every photo is done)."""
        if self.enabled:
            self.stream.write(f"\r{shown(text):<{self.WIDTH}}")
            self.stream.flush()
            self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * self.WIDTH + "\r")
            self.stream.flush()


def summary(report: ScanReport) -> str:
    return report.describe()


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Photos analysed at once, each in its own process (setting workers; default: one per core).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=None,
    help="onnxruntime threads in all, shared out among the workers (setting threads; default 0: automatic).",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    default=None,
    help="Analyse the photos on the workers of this Dask scheduler, tcp://host:8786 (setting cluster).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Try the files recorded as failed again, though unchanged (status lists them).",
)
@click.pass_obj
def scan(
    settings: Settings,
    paths: tuple[Path, ...],
    as_json: bool,
    workers: int | None,
    threads: int | None,
    cluster: str | None,
    retry_failed: bool,
) -> None:
    """Index photo folders: new, changed, moved, duplicated and missing photos.

    PATHS may be folders or single photos. Bad files are reported on stderr and skipped.
    Ctrl-C (or SIGTERM) stops after the photo being indexed: the work done is kept, and the
    same command finishes it.
    """
    from facetags.library import Library

    if workers is not None:
        settings = dataclasses.replace(settings, workers=workers)
    if threads is not None:
        settings = dataclasses.replace(settings, threads=threads)
    if cluster is not None:
        settings = dataclasses.replace(settings, cluster=cluster.strip())
    here = Path(settings.library).expanduser().absolute()
    given = here != Path(Settings().library).expanduser()  # not the default library: say which
    library = f" --library {shlex.quote(str(here))}" if given else ""
    folders = " ".join(shlex.quote(str(p.absolute())) for p in paths)  # from any folder
    flags = (("--workers", workers), ("--threads", threads), ("--cluster", cluster))
    options = "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in flags if value is not None)
    resume = shown(f"run 'facetags{library} scan{options} {folders}' again to finish")
    stop = threading.Event()
    came: list[signal.Signals] = []  # the signal that stopped the scan: its exit status

    def _said(signum: signal.Signals) -> None:
        came.append(signum)
        why = "Ctrl-C" if signum == signal.SIGINT else signum.name
        click.echo(f"\nfacetags: {why}: stopping after the current photo (again: at once)", err=True)

    def _status() -> int:
        return 128 + int(came[0] if came else signal.SIGINT)  # 130 after Ctrl-C, 143 after SIGTERM

    def _again() -> None:
        raise KeyboardInterrupt  # a second Ctrl-C: at once (the photo being indexed is rolled back)

    for given_path in paths:  # before the library is opened: a mistyped folder makes no new library
        if not os.path.exists(given_path):
            raise NotFoundError(f"{shown(str(given_path.absolute()))}: No such file or directory")
    progress = ProgressLine()
    try:
        with (
            stopping(stop, (signal.SIGINT, signal.SIGTERM), _said, _again),
            Library.open(settings.library, settings) as lib,
            suspending(lib.store.suspend),  # Ctrl-Z: once its photos are committed
        ):
            fresh, where = lib.created, lib.path
            said = not fresh

            def progressed(done: int, total: int, path: str) -> None:
                nonlocal said
                if not said:  # once the first photo is in: a mistyped --library shows then, not
                    said = True  # after a long scan; a scan that cannot start says only why
                    say_new_library(where)
                progress(done, total, path)

            try:
                grouping = functools.partial(progress.note, "grouping the faces into people...")
                report = lib.scan(
                    paths, progress=progressed, stop=stop, grouping=grouping, retry_failed=retry_failed
                )
            finally:
                progress.close()
    except KeyboardInterrupt:
        click.echo(f"facetags: interrupted: every photo indexed so far is kept; {resume}", err=True)
        raise click.exceptions.Exit(_status()) from None
    for path, error in report.failures:
        click.echo(shown(f"facetags: skipped {path}: {error}"), err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(summary(report))
    if not said:  # a scan of no photo
        say_new_library(where)
    if fresh and report.faces and not report.interrupted:  # a first scan: what to do next
        click.echo(shown(f"facetags: next, the people found:  facetags{library} people"), err=True)
        click.echo(shown(f"facetags: and to name them:  facetags{library} tui"), err=True)
    if report.interrupted:
        c = report.counts
        done = c["new"] + c["changed"] + c["duplicate"]
        if done:
            kept = f"the {plural(done, 'photo')} indexed so far {'is' if done == 1 else 'are'} kept"
        else:
            kept = "no photo was indexed yet"
        click.echo(f"facetags: interrupted: {kept}; {resume}", err=True)
        raise click.exceptions.Exit(_status())
