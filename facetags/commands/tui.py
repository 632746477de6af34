"""``facetags tui``: review, name and fix people in the terminal (Textual)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from facetags.commands import shown
from facetags.config import Settings


@click.command()
@click.option(
    "--images",
    type=click.Choice(["auto", "halfcell", "unicode", "none"]),
    default="auto",
    show_default=True,
    help="How to draw faces: auto (Kitty/Sixel graphics where the terminal has them, else "
    "coloured half blocks), halfcell, unicode, or none (text only, for slow links).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between checks for changes made by other processes (facetags watch); 0: never.",
)
@click.pass_obj
def tui(settings: Settings, images: str, poll: float) -> None:
    """Browse people and clusters, name, merge, split and fix them, and write XMP tags."""
    from facetags.errors import LibraryError
    from facetags.library import Library, scan_first

    path = Path(settings.library).expanduser()
    if not path.exists():
        raise LibraryError(f"{path}: no library here ({scan_first(path)})")
    try:
        library = Library.open(path, settings, create=False)
    except LibraryError:
        raise
    except Exception as exc:  # sqlite3 errors on unreadable or foreign files
        raise LibraryError(f"{path}: cannot open library ({exc})") from exc

    from facetags.tui.app import FacetagsApp, NotifyHandler  # imports textual; asks the terminal

    app = FacetagsApp(library, images=images, poll_seconds=poll, read_only=library.read_only)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [NotifyHandler(app)]  # stderr is the screen while the app runs
    try:
        app.run()
    finally:
        root.handlers = saved
        library.close()
    for line in app.farewell:  # what the last changes said as the app quit
        click.echo(shown(f"facetags: {line}"), err=True)
