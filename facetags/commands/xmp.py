"""``facetags xmp write | import``: face tags into photos' XMP, and other tools' tags into facetags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from facetags.commands import plural, shown
from facetags.commands.group import Group
from facetags.config import Settings

if TYPE_CHECKING:
    from facetags.library import WriteResult


@click.group(name="xmp", cls=Group)
def xmp_group() -> None:
    """Write people into photos' XMP metadata, or read names other tools wrote.

    Regions follow the MWG rule (stored-image coordinates); see docs/xmp.md.
    """


@xmp_group.command("write")
@click.option(
    "--sidecar/--embed",
    "sidecar",
    default=None,
    help="Write photo.jpg.xmp sidecars, or embed in the photos (default: setting xmp_mode).",
)
@click.option("--person", "person", metavar="NAME", help="Only this person's faces.")
@click.option("--all-faces", is_flag=True, help="Also write regions for faces that have no name.")
@click.option(
    "--replace-names",
    is_flag=True,
    help="Rename a region another tool named differently at the place of one of our faces.",
)
@click.option(
    "--schemas",
    metavar="LIST",
    help="Comma-separated: mwg,mp,iptc,digikam,lightroom,dc (default: setting xmp_schemas).",
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per photo.")
@click.pass_obj
def write(
    settings: Settings,
    sidecar: bool | None,
    person: str | None,
    all_faces: bool,
    replace_names: bool,
    schemas: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Write the library's people into their photos: regions, names and keywords."""
    from facetags.library import Library

    overrides: dict[str, Any] = {"include_unnamed": all_faces, "replace_names": replace_names}
    if sidecar is not None:
        overrides["mode"] = "sidecar" if sidecar else "embed"
    if schemas is not None:
        overrides["schemas"] = frozenset(s.strip().lower() for s in schemas.split(",") if s.strip())

    def show(result: Any) -> None:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "photo": str(result.photo),
                        "target": str(result.target) if result.target else None,
                        "mode": result.mode,
                        "written": result.written,
                        "changes": result.changes,
                        "warnings": result.warnings,
                        "error": result.error,
                        "kept": result.kept,
                    },
                    ensure_ascii=False,
                )
            )
            return
        said = result.warnings
        if result.fallback and result.changes and not result.error and said[:1] and "sidecar" in said[0]:
            said = said[1:]  # why a sidecar: said on the photo's line
        for warning in said:
            click.echo(shown(f"facetags: warning: {warning}"), err=True)
        if result.error:
            click.echo(shown(f"facetags: error: {result.error}"), err=True)
        elif result.changes:
            verb = "would change" if dry_run else "changed"
            changes = "; ".join(shown(change) for change in result.changes)
            mode = f"{result.mode} ({result.fallback})" if result.fallback else result.mode
            click.echo(f"{shown(str(result.target))}\t{mode}\t{verb}: {changes}")

    with Library.open(settings.library, settings, create=False) as lib:
        options = lib.xmp_options(**overrides)
        person_id = lib.person_named(person).id if person else None
        results = lib.write_xmp(options, person_id, dry_run=dry_run, progress=show)
        waiting = [m for m in lib.missing() if m.named_faces] if person_id is None else []
    click.echo(write_summary(results, dry_run), err=True)
    if waiting:  # not visited, so in no count above
        click.echo(
            f"facetags: {plural(len(waiting), 'photo')} with named faces not written: missing or "
            "unreadable since the last scan ('facetags status' lists them; written once back)",
            err=True,
        )
    if any(r.error for r in results):
        raise SystemExit(1)


def write_summary(results: Sequence[WriteResult], dry_run: bool = False) -> str:
    """One line on what an ``xmp write`` did: photos changed, up to date, failed, and those where
    a face keeps another tool's name (the warnings above say which; no longer "up to date")."""
    from facetags.library import WriteTally

    tally = WriteTally.of(results)
    verb = "would change" if dry_run else "changed"
    text = (
        f"{plural(len(results), 'photo')}: {len(tally.changed)} {verb}, {len(tally.current)} up to date, "
        f"{len(tally.failed)} failed"
    )
    if tally.kept:
        text += (
            f"; in {plural(len(tally.kept), 'photo')} another tool named a face otherwise and its name was "
            "kept (the warnings say which; --replace-names writes facetags' names)"
        )
    return text


@xmp_group.command("import")
@click.argument("directory", required=False, default=".", type=click.Path(exists=True, file_okay=True))
@click.option("--dry-run", is_flag=True, help="Show which faces would be named; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per named face.")
@click.pass_obj
def import_(settings: Settings, directory: str, dry_run: bool, as_json: bool) -> None:
    """Name detected faces from the MWG/MP regions other tools wrote (photos under DIRECTORY).

    The photos must be indexed first (facetags scan). Names become your decisions; a face you
    already named differently in facetags keeps your name.
    """
    from facetags.library import Library

    def show(one: Any) -> None:
        for warning in one.found.warnings:
            click.echo(shown(f"facetags: warning: {warning}"), err=True)
        for face_id, name in one.applied.assigned:
            if as_json:
                click.echo(
                    json.dumps({"photo": one.photo, "face_id": face_id, "name": name}, ensure_ascii=False)
                )
            else:
                click.echo(f"{shown(one.photo)}\t{face_id}\t{shown(name)}")
        for conflict in one.applied.conflicts:
            click.echo(shown(f"facetags: warning: {conflict}"), err=True)

    with Library.open(settings.library, settings, create=False) as lib:
        run = lib.import_xmp(directory, dry_run=dry_run, progress=show)
    if not run.photos:
        click.echo(
            f"facetags: no indexed faces under {shown(directory)}; run 'facetags scan' first", err=True
        )
        return
    named = sum(len(one.applied.assigned) for one in run.done)
    conflicts = sum(len(one.applied.conflicts) for one in run.done)
    unmatched = sum(len(one.found.unmatched) for one in run.done)
    stale = sum(len(one.applied.stale) for one in run.done)
    verb = "would name" if dry_run else "named"
    ours = f"; {stale} stale names of facetags' own ignored ('xmp write' takes them back)" if stale else ""
    click.echo(
        f"{plural(run.photos, 'photo')}: {verb} {plural(named, 'face')}; {conflicts} conflicts kept; "
        f"{unmatched} named regions on no detected face{ours}",
        err=True,
    )
