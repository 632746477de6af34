"""``facetags find NAME...``: the photos that show all the named people."""

from __future__ import annotations

import json

import click

from facetags.commands import shown
from facetags.config import Settings


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of paths.")
@click.pass_obj
def find(settings: Settings, names: tuple[str, ...], as_json: bool) -> None:
    """Print the paths of photos showing every NAME (case and accents ignored).

    A NAME may be part of a person's name, whole words ('sheldon' for Sheldon Cooper), when it
    is part of only one person's.

    Exit status: 0 when a photo shows them all, 1 when none does or a name is unknown (both said
    on stderr; stdout stays empty, or '[]' with --json).
    """
    from facetags.errors import NotFoundError
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        try:
            paths = lib.find(list(names))
        except NotFoundError:  # an unknown or ambiguous name: said on stderr, [] for a script
            if as_json:
                click.echo("[]")
            raise
    if as_json:
        click.echo(json.dumps(paths, indent=2, ensure_ascii=False))
    else:
        for path in paths:
            click.echo(shown(path))
    if not paths:
        who = " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"
        click.echo(f"facetags: no photo shows {who}", err=True)
        raise click.exceptions.Exit(1)
