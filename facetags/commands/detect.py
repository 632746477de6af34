"""``facetags detect PHOTO...``: find the faces in photos (no library needed).

Without ``--json``, one line per photo: ``PATH: N face(s) in WxH`` followed by each face's box
and score. With ``--json``, JSON Lines: one object per photo, in the order given::

    {"path": "...", "width": W, "height": H,
     "faces": [{"box": [x, y, w, h], "score": s, "landmarks": [[x, y], ...5]}]}

Coordinates are pixels of the upright (EXIF-orientation-applied) full-size photo; landmarks
are left eye, right eye, nose, left and right mouth corner (left = image-left). A file that
cannot be read gives one error line on stderr; the others are still processed and the exit
status is 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import click

from facetags.commands import shown
from facetags.config import Settings
from facetags.errors import DecodeError


@click.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="JSON Lines: one object per photo.")
@click.option(
    "--crops",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each face, aligned to 112x112, as DIR/<photo>_<n>.png.",
)
@click.option(
    "--min-face",
    type=click.IntRange(min=1),
    default=None,
    help="Smallest face in pixels of the analysed image (setting min_face).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Minimum face score, 0..1 (setting score_threshold).",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=1),
    default=None,
    help="Analyse photos with their long side at most N pixels (setting detect_max_side).",
)
@click.pass_context
def detect(
    ctx: click.Context,
    photos: tuple[str, ...],
    as_json: bool,
    crops: Path | None,
    min_face: int | None,
    threshold: float | None,
    max_side: int | None,
) -> None:
    """Find the faces in each PHOTO and print their boxes, scores and landmarks."""
    from facetags.library import Library

    settings: Settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings()
    overrides: dict[str, Any] = {
        "min_face": min_face,
        "score_threshold": threshold,
        "detect_max_side": max_side,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    detect_faces = Library.detector(settings)
    if crops is not None:
        crops.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder: the owner's only
    used_names: set[str] = set()
    failed = 0
    for photo in photos:
        try:
            if Path(photo).is_dir():
                raise DecodeError(photo, "is a folder, not a photo")
            found = detect_faces(photo, crops=crops is not None)
        except DecodeError as exc:
            failed += 1
            click.echo(f"facetags: error: {shown(str(exc))}", err=True)
            continue
        faces = found.faces
        if as_json:
            record = {
                "path": photo,
                "width": found.width,
                "height": found.height,
                "faces": [face.to_json() for face in faces],
            }
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            boxes = "  ".join(
                "[{:.0f},{:.0f} {:.0f}x{:.0f} {:.3f}]".format(*face.box, face.score) for face in faces
            )
            noun = "face" if len(faces) == 1 else "faces"
            line = f"{shown(photo)}: {len(faces)} {noun} in {found.width}x{found.height}"
            click.echo(f"{line}  {boxes}" if faces else line)
        if crops is not None:
            for index, crop in enumerate(found.crops):
                name = _unique(f"{Path(photo).stem}_{index}", used_names)
                _save_png(crops / f"{name}.png", crop)
    if failed:
        ctx.exit(1)


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... if an earlier photo of this run used it."""
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


def _save_png(path: Path, pixels: Any) -> None:
    """Write a face crop readable by its owner only (0600, like the library): it is a face."""
    from PIL import Image

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # a file of an earlier run may have had wider rights
    with os.fdopen(fd, "wb") as out:
        Image.fromarray(pixels).save(out, format="PNG")
