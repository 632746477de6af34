"""``facetags status``: what the library holds and what is left to do."""

from __future__ import annotations

import json
import time

import click

from facetags.commands import plural, shown
from facetags.config import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Photos, faces, people, queued work, failed files and names not yet written to XMP."""
    from facetags.library import Library

    with Library.open(settings.library, settings, create=False) as lib:
        st = lib.status()
    if as_json:
        click.echo(json.dumps(st.to_json(), indent=2, ensure_ascii=False))
        return
    click.echo(f"library   {shown(str(st.library))} ({st.bytes / 1e6:.1f} MB, schema {st.schema_version})")
    click.echo(f"photos    {st.photos} ({st.files} files)")
    click.echo(f"faces     {st.faces}")
    stale = f" ({plural(st.stale_faces, 'face')} to re-embed on the next scan)" if st.stale_faces else ""
    click.echo(f"model     {st.model}{stale}")
    click.echo(f"people    {st.people} named, {st.clusters} unnamed clusters")
    click.echo(f"queue     {st.queue}")
    click.echo(f"failures  {len(st.failures)}")
    for failure in st.failures:
        click.echo(shown(f"  {failure.path}: {failure.error}"))
    if st.unwritten_xmp_photos:
        click.echo(
            f"xmp       {plural(st.unwritten_xmp_photos, 'photo')} with names not yet written to XMP; "
            "'facetags xmp write' writes them"
        )
    for count, what, then in (
        (
            st.stale_xmp_photos - st.stale_xmp_read_only,
            "photo",
            "'facetags xmp write' brings them up to date",
        ),
        (st.stale_xmp_read_only, "read-only photo", "make them writable, then 'facetags xmp write'"),
    ):
        if count:
            click.echo(
                f"xmp       {plural(count, what)} still {'carries' if count == 1 else 'carry'} names "
                f"facetags wrote that you have changed since; {then}"
            )
    if st.missing:
        named = sum(m.named_faces for m in st.missing)
        click.echo(
            f"missing   {plural(len(st.missing), 'photo')} not on disk, kept with their faces"
            f" ({plural(named, 'face')} of named people) until they are back;"
            " 'facetags forget PATH' drops them"
        )
        for m in st.missing:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.since))
            why = "" if m.reason == "gone" else f" ({m.reason})"
            click.echo(shown(f"  {m.path}: since {when}{why}"))
    if st.lost_faces:
        click.echo(
            f"lost      {plural(len(st.lost_faces), 'decided face')} gone from edited photos"
            " (their people stay); 'facetags forget --lost' stops listing them"
        )
        for lost in st.lost_faces:
            click.echo(shown(f"  {lost.describe()}"))
