"""``facetags scan DIR...``: index photo folders (progress on stderr, summary on stdout)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from facetags.commands import plural, shown
from facetags.config import Settings

if TYPE_CHECKING:
    from facetags.ingest.indexer import ScanReport


class ProgressLine:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

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

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


def summary(report: ScanReport) -> str:
    c = report.counts
    parts = [
        f"{c['new']} new",
        f"{c['changed']} changed",
        f"{c['moved']} moved",
        f"{c['duplicate']} duplicates",
        f"{c['unchanged'] + c['touched']} unchanged",
        f"{c['deleted']} deleted",
        f"{c['failed']} failed",
    ]
    if c["known_bad"]:
        parts.append(f"{c['known_bad']} known bad skipped")
    tail = " (interrupted)" if report.interrupted else ""
    if report.reembedded:
        tail += f"; {plural(report.reembedded, 'face')} re-embedded (the embedder changed)"
    return f"{', '.join(parts)}; {plural(report.faces, 'face')} found in {report.seconds:.1f} s{tail}"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def scan(settings: Settings, paths: tuple[Path, ...], as_json: bool) -> None:
    """Index photo folders: new, changed, moved, duplicated and deleted photos.

    DIR may be folders or single photos. Bad files are reported on stderr and skipped.
    """
    from facetags.library import Library

    progress = ProgressLine()
    with Library.open(settings.library, settings) as lib:
        try:
            report = lib.scan(paths, progress=progress)
        finally:
            progress.close()
    for path, error in report.failures:
        click.echo(shown(f"facetags: skipped {path}: {error}"), err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(summary(report))
