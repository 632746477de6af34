"""``facetags eval clusters``: how well the library groups faces into people, on labelled photos."""

from __future__ import annotations

import json

import click

from facetags.config import Settings


@click.command("clusters")
@click.option(
    "--labels",
    "labels_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV: photo,identity (largest face) or photo,x,y,w,h,identity (one row per face).",
)
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--only-labelled", is_flag=True, help="Index only the photos the labels name (e.g. LFW's images folder)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.pass_obj
def clusters(
    settings: Settings | None, labels_file: str, folder: str, only_labelled: bool, as_json: bool
) -> None:
    """Index FOLDER into a temporary library and score its people against the labels."""
    from facetags.evaluate.library_clusters import evaluate_folder

    result = evaluate_folder(labels_file, folder, settings or Settings(), only_labelled=only_labelled)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    s, inc = result.scores, result.incremental
    click.echo(f"model           {result.model_id} (threshold {result.threshold:.3f})")
    click.echo(f"photos          {result.photos}, faces detected {result.faces_detected}")
    click.echo(f"labelled faces  {s.faces} scored, {result.labels_missed} not detected")
    click.echo(f"people          {s.people} labelled, {s.clusters} clusters")
    click.echo(f"BCubed          P {s.bcubed_precision:.4f}  R {s.bcubed_recall:.4f}  F {s.bcubed_f:.4f}")
    click.echo(
        f"pairwise        P {s.pairwise_precision:.4f}  R {s.pairwise_recall:.4f}  F {s.pairwise_f:.4f}"
    )
    click.echo(f"singletons      {s.singleton_share:.1%} of faces alone in a cluster")
    click.echo(f"incremental     BCubed F {inc.bcubed_f:.4f} before the re-cluster")
