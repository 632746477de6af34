"""``facetags people | faces | name | merge | move | reject | suggest``: list and organise people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from facetags.commands import plural, shown
from facetags.config import Settings
from facetags.text import ljust_columns


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def people(settings: Settings, as_json: bool) -> None:
    """List people and unnamed clusters: id, name, faces, photos."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        found = lib.people()
    if as_json:
        click.echo(json.dumps([p.to_json() for p in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("facetags: no people yet: 'facetags scan FOLDER' finds the faces in your photos", err=True)
    for p in found:
        name = shown(p.name) if p.name is not None else "(unnamed)"
        hidden = "  [hidden]" if p.hidden else ""
        faces = "face " if p.faces == 1 else "faces"
        photos = "photo " if p.photos == 1 else "photos"
        click.echo(
            f"{p.id:>6}  {ljust_columns(name, 30)} {p.faces:>5} {faces} {p.photos:>5} {photos}{hidden}"
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--person", "person_id", type=int, help="Only the faces of this person or cluster.")
@click.pass_obj
def faces(settings: Settings, as_json: bool, person_id: int | None) -> None:
    """List every face: its photo, box (normalised x y w h), score and person."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        found = lib.faces(person_id)
    if as_json:
        click.echo(json.dumps([f.to_json() for f in found], indent=2, ensure_ascii=False))
        return
    _header(found, "face", "photo", "box (x y w h)", "score", "person", "name")
    for f in found:
        box = " ".join(f"{v:.4f}" for v in f.box)
        who = shown(f.person_name) if f.person_name is not None else "(unnamed)"
        click.echo(f"{f.face_id}\t{shown(f.path)}\t{box}\t{f.score:.3f}\t{f.person_id}\t{who}")


@click.command()
@click.argument("person_id", type=int)
@click.argument("name", nargs=-1, required=True)
@click.option("--merge", is_flag=True, help="NAME is someone's already: merge ID into them.")
@click.pass_obj
def name(settings: Settings, person_id: int, name: tuple[str, ...], merge: bool) -> None:
    """Name person or cluster ID. A name someone already has is refused unless --merge (then
    the two are merged): naming a second cluster after a wrong first is how people get mixed."""
    from facetags.errors import FacetagsError, NameTaken
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        try:
            person = lib.name(person_id, " ".join(name), merge=merge)
        except NameTaken as exc:
            raise FacetagsError(
                f"{exc}: add --merge to merge {person_id} into them, or rename {exc.other_id} first"
            ) from None
        merged = f" (merged into {person.id})" if person.id != person_id else ""
        click.echo(f"{person.id}\t{shown(person.name or '')}\t{plural(person.faces, 'face')}{merged}")
        if merged:
            _warn_more_than_once(lib, person)


@click.command()
@click.argument("ids", nargs=-1, required=True, type=int)
@click.pass_obj
def merge(settings: Settings, ids: tuple[int, ...]) -> None:
    """Merge the people or clusters IDS into the first of them."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        person = lib.merge(list(ids))
        _echo_person(person)
        _warn_more_than_once(lib, person)


def _echo_person(person: Any) -> None:
    label = shown(person.name) if person.name is not None else "(unnamed)"
    click.echo(f"{person.id}\t{label}\t{plural(person.faces, 'face')}")


def _warn_more_than_once(lib: Any, person: Any) -> None:
    """After a merge or move: the photos now showing the person twice (one face is wrong)."""
    twice = lib.more_than_once(person.id)
    if not twice:
        return
    who = shown(person.name) if person.name else f"cluster {person.id}"
    listed = "; ".join(
        f"{shown(path)}: faces {', '.join(map(str, ids))}" for path, ids in sorted(twice.items())[:3]
    )
    more = f"; and {len(twice) - 3} more" if len(twice) > 3 else ""
    click.echo(
        f"facetags: warning: {who} is now more than once in {plural(len(twice), 'photo')}: {listed}{more}."
        f" One face a photo can be theirs: `facetags reject {person.id} FACE_ID` takes a wrong one out.",
        err=True,
    )


def _person_and_faces(f: Any) -> Any:
    """A command taking PERSON_ID FACE_ID... and the settings."""
    f = click.pass_obj(f)
    f = click.argument("face_ids", nargs=-1, required=True, type=int)(f)
    return click.argument("person_id", type=int)(f)


@click.command()
@_person_and_faces
def move(settings: Settings, person_id: int, face_ids: tuple[int, ...]) -> None:
    """Put the faces FACE_IDS into person or cluster PERSON_ID; your decision, kept by every re-cluster."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        person = lib.move_faces(list(face_ids), person_id)
        _echo_person(person)
        _warn_more_than_once(lib, person)


@click.command()
@_person_and_faces
def reject(settings: Settings, person_id: int, face_ids: tuple[int, ...]) -> None:
    """Say the faces FACE_IDS are not PERSON_ID: never put there again; each finds a new place now.

    Prints each face and its new place: face, person or cluster, its name, its size."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        target = lib.person(person_id).id
        for face_id in face_ids:
            before = lib.face(face_id).person_id
            placed = lib.reject(face_id, person_id)
            if placed:  # the face, then where it went: as 'move' and 'merge' print a person
                now = lib.person(placed)
                label = shown(now.name) if now.name is not None else "(unnamed)"
                click.echo(f"{face_id}\t{now.id}\t{label}\t{plural(now.faces, 'face')}")
            else:
                click.echo(f"{face_id}\t-\t(in no cluster)")
            if before is None or lib.person(before).id != target:
                where = f"it is in {placed}" if placed else "it is in no cluster"
                click.echo(
                    f"facetags: face {face_id} was not in {person_id} ({where}); it will never be put there",
                    err=True,
                )


@click.command()
@click.argument("person_id", type=int)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def suggest(settings: Settings, person_id: int, limit: int, as_json: bool) -> None:
    """The faces in unnamed clusters most like PERSON_ID, best first.

    Prints face, its cluster and that cluster's size, similarity, photo. Answer with 'move',
    'merge' (a whole cluster) or 'reject'."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        found = lib.suggested_faces(person_id, limit)
        stale = lib.stale_faces()
        who = lib.person(person_id)
    if stale:
        click.echo(
            f"the embedder changed: {plural(stale, 'face')} to re-embed; suggestions leave those "
            "out until 'facetags scan' has done it",
            err=True,
        )
    if as_json:
        click.echo(json.dumps([s.to_json() for s in found], indent=2, ensure_ascii=False))
        return
    _header(found, "face", "cluster", "its faces", "similarity", "photo")
    for s in found:
        click.echo(f"{s.face_id}\t{s.cluster_id}\t{s.cluster_faces}\t{s.score:.3f}\t{shown(s.path)}")
    if not found:
        label = shown(who.name) if who.name else f"cluster {who.id}"
        click.echo(f"facetags: no face in an unnamed cluster looks like {label} ({who.id})", err=True)


def _header(rows: Sequence[object], *columns: str) -> None:
    """Name the tab-separated columns, on a terminal only (a pipe or a file gets the rows alone)."""
    if rows and sys.stdout.isatty():
        click.echo("\t".join(columns), err=True)
