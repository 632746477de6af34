"""The CLI's sub-commands, one module per command or small family (see facetags/cli.py)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from facetags.text import plural, shown


def new_library(path: str | os.PathLike[str]) -> bool:
    """Whether the library at ``path`` is yet to be made (by ``scan`` or ``watch``)."""
    return not Path(path).expanduser().exists()


def say_new_library(path: str | os.PathLike[str]) -> None:
    """A library a command just made is named on stderr: a mistyped ``--library`` shows."""
    click.echo(f"facetags: new library {shown(str(Path(path).expanduser()))}", err=True)


__all__ = ["new_library", "plural", "say_new_library", "shown"]
