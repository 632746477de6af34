"""The CLI's sub-commands, one module per command or small family (see facetags/cli.py)."""

from __future__ import annotations

import os

import click

from facetags.text import plural, shown


def say_new_library(path: str | os.PathLike[str]) -> None:
    """A library a command just made (``Library.created``) is named on stderr: a mistyped
    ``--library`` shows."""
    click.echo(f"facetags: new library {shown(str(path))}", err=True)


__all__ = ["plural", "say_new_library", "shown"]
