"""Shared by the TUI tests: small real libraries indexed from real photos by the real pipeline.

Faces are found, aligned, cut and embedded by the models the product ships (MTCNN and the
bundled embedder): no stand-ins. The tests must not depend on what one model version makes of
the faces (a better model with the same id lands later), so where a test needs a fixed grouping
it gets it from the data and from the user's decisions, made through the library API as the CLI
and the TUI make them: two faces of one photo are never one person (the clustering's rule), and
:func:`separate` splits off any face the model placed with someone else, as a user would.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path
from typing import Any

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key


def build_library(folder: Path, photos: list[Path]) -> Path:
    """Copy ``photos`` into ``folder/photos`` and index them, in the order given, into
    ``folder/library.db``. Faces get ids in that order (within a photo, as detected)."""
    from facetags.config import load_settings
    from facetags.library import Library

    (folder / "photos").mkdir(parents=True, exist_ok=True)
    db = folder / "library.db"
    with Library.open(db, load_settings(library=str(db))) as lib:
        for photo in photos:
            copy = folder / "photos" / photo.name
            shutil.copy2(photo, copy)
            report = lib.scan([copy])
            assert report.faces > 0, (photo, report)
    return db


def separate(db: Path) -> None:
    """Every face a person of its own, person id = face id, each placement the user's decision.

    Only faces of different photos can share a person, and a library built by
    :func:`build_library` creates its people in face order, so splitting off every face the model
    put with an earlier one (and confirming the rest) makes the ids stable whatever the model."""
    from facetags.config import load_settings
    from facetags.library import Library

    with Library.open(db, load_settings(library=str(db)), create=False) as lib:
        for face in sorted(lib.faces(), key=lambda f: f.face_id):
            assert face.person_id is not None
            if face.person_id != face.face_id:
                lib.split(face.person_id, [face.face_id])
            lib.set_assignment(face.face_id, face.face_id)
        placed = {f.face_id: f.person_id for f in lib.faces()}
        assert all(face == person for face, person in placed.items()), placed


def copy_library(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            shutil.copy2(src, dest / f"library.db{suffix}")
    return dest / "library.db"


def key_event(key: str) -> events.Key:
    """The Key event a terminal sends for ``key`` (a character or a key name), as the Pilot makes it."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    name = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(name))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


def burst(app: Any, keys: str | list[str]) -> None:
    """Keys arriving in one burst (a paste, tmux send-keys): all queued before the app handles any.

    ``Pilot.press`` waits for the app to go idle after each key, so it cannot show what happens
    when keys arrive faster than focus moves."""
    for key in keys:
        app.post_message(key_event(key))
