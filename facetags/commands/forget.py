"""``facetags forget``: drop photos that are missing from disk, with their faces."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from facetags.commands import plural, shown
from facetags.config import Settings

if TYPE_CHECKING:
    from facetags.db.records import MissingPhoto


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--all", "everything", is_flag=True, help="Forget every missing photo.")
@click.option(
    "--lost",
    is_flag=True,
    help="Instead: stop listing the decided faces edits removed from photos (status's 'lost').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the photos (or lost faces) forgotten as JSON.")
@click.pass_obj
def forget(settings: Settings, paths: tuple[str, ...], everything: bool, lost: bool, as_json: bool) -> None:
    """Forget missing photos at or under PATHS (files or folders).

    A photo that vanishes from disk (deleted, moved out of the scanned folders, a drive or NAS
    offline) or stops reading is kept as missing, with its faces and every decision on them,
    until the same picture is back. `facetags status` lists them. Forgetting one drops its faces
    for good; photos still on disk are never forgotten. Indexed paths at or under PATHS that are
    gone from disk though no scan saw them go (a card or disk scanned once, since removed) are
    dropped first. Exits with status 1 when one of PATHS held nothing to forget.

    With --lost, `facetags status` and the TUI stop telling of the faces you had named or
    marked that edited photos no longer show; their people stay as they are.
    """
    from facetags.library import Library, on_disk

    if lost:
        if paths or everything:
            raise click.UsageError("--lost takes no PATHS and no --all")
        with Library.open(settings.library, settings, create=False) as lib:
            put_aside = lib.forget_lost_faces()
        if as_json:
            click.echo(json.dumps([f.to_json() for f in put_aside], indent=2, ensure_ascii=False))
        elif not put_aside:
            click.echo("facetags: no lost face to forget ('facetags status' lists them)", err=True)
        else:  # each named: one the watcher recorded since the user last looked is seen here
            for face in put_aside:
                click.echo(shown(f"  {face.describe()}"), err=True)
            click.echo(f"forgot {plural(len(put_aside), 'lost face')}: status no longer lists them", err=True)
        return
    if not paths and not everything:
        raise click.UsageError("name the missing photos or folders to forget, or give --all (or --lost)")
    gone: list[MissingPhoto] = []
    dropped = 0
    idle: list[str] = []  # PATHS that held nothing to forget
    with Library.open(settings.library, settings, create=False) as lib:
        if everything:
            dropped = lib.drop_gone(paths)  # any PATHS given too: gone from disk, never scanned again
            gone = lib.forget(None)
        else:
            for path in paths:  # one at a time: each says whether it held anything
                went = lib.drop_gone([path])  # indexed, gone from disk, never scanned again
                found = lib.forget([path])
                dropped, gone = dropped + went, gone + found
                if not went and not found:
                    idle.append(path)
    if dropped:
        click.echo(f"facetags: {plural(dropped, 'indexed path')} no longer on disk dropped", err=True)
    if as_json:
        click.echo(json.dumps([m.to_json() for m in gone], indent=2, ensure_ascii=False))
    else:
        for path in idle:  # say why nothing was forgotten there
            if os.path.isfile(path):
                why = "is on disk: only photos gone from disk are forgotten"
            elif on_disk(path) is None:
                why = "cannot be looked at (a folder on the way is not readable): it may still be on disk"
            else:
                why = "holds no missing photo ('facetags status' lists them)"
            click.echo(shown(f"facetags: {path} {why}"), err=True)
        faces = sum(m.faces for m in gone)
        named = sum(m.named_faces for m in gone)
        click.echo(
            f"forgot {plural(len(gone), 'missing photo')} ({plural(faces, 'face')}, {named} of named people)",
            err=True,
        )
    if idle:  # as rm does for a file that is not there: a script can tell
        raise click.exceptions.Exit(1)
