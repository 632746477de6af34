"""``facetags eval``: measure the recogniser on labelled data (verification pairs, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from facetags.commands.group import Group
from facetags.config import Settings


@click.group("eval", cls=Group)
def eval_group() -> None:
    """Evaluate face recognition on labelled data."""


@eval_group.command("verify")
@click.option(
    "--pairs",
    "pairs_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="LFW-format pairs file (with or without the '10 300' header).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Image root: DIR/Name/Name_0001.jpg.",
)
@click.option(
    "--embedder",
    default=None,
    help="Model id (default: the configured embedder), 'dlib-resnet-v1' (dlib's ResNet on facetags' "
    "aligned crops), 'insightface:<pack>', or 'dlib' (dlib's ResNet on its own chip cut from the "
    "photo, face_recognition's way); the dlib ones need the [dlib] extra.",
)
@click.option("--folds", type=int, default=10, show_default=True, help="Cross-validation folds.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def verify(
    settings: Settings | None, pairs_file: str, images: str, embedder: str | None, folds: int, as_json: bool
) -> None:
    """Face verification accuracy (10-fold CV threshold), ROC AUC and TAR at FAR 1e-3."""
    from facetags.evaluate.verification import make_detector, make_embedder, read_pairs
    from facetags.evaluate.verification import verify as run_verify

    settings = settings or Settings()
    name = embedder or settings.embedder
    pair_list = read_pairs(pairs_file)
    result = run_verify(pair_list, Path(images), make_embedder(name), make_detector(settings), folds=folds)
    if result.failed_images:
        click.echo(
            f"{len(result.failed_images)} image(s) without a face; {result.failed_pairs} pair(s) "
            "counted as errors",
            err=True,
        )
    if as_json:
        click.echo(json.dumps({"embedder": name, **result.to_json()}))
        return
    click.echo(f"embedder        {name}")
    click.echo(f"pairs           {result.pairs} ({result.failed_pairs} failed)")
    click.echo(
        f"accuracy        {result.accuracy:.4f} ± {result.accuracy_std:.4f} ({folds}-fold CV threshold)"
    )
    click.echo(f"ROC AUC         {result.auc:.4f}")
    click.echo(f"TAR @ FAR 1e-3  {result.tar_at_far_1e_3:.4f}")


from facetags.commands.eval_clusters import clusters as _clusters  # noqa: E402  (issue 5)

eval_group.add_command(_clusters)
