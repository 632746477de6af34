"""``facetags version [--json]``: the package, library schema, model and runtime versions."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def version(as_json: bool) -> None:
    """Versions for a bug report: facetags, the library schema, the shipped models (with their
    sha256), Python and the runtime packages. Opens no library and loads no model."""
    from facetags.library import Library

    report = Library.versions()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"facetags  {report['facetags']}")
    click.echo(f"schema    {report['schema']}")
    for model in report["models"]:
        click.echo(f"model     {model['version_id']}  sha256 {model['sha256']}")
    click.echo(f"python    {report['python']}")
    for name, installed in report["packages"].items():
        click.echo(f"{name:<9} {installed or 'not installed'}")
