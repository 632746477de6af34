"""How the TUI picks and describes faces and people: the best face of a person, a face's one-line
caption, a person's label."""

from __future__ import annotations

import os
from collections.abc import Sequence

from facetags.db.records import FaceRecord, Person


def face_pixels(face: FaceRecord) -> float:
    """The face's area in pixels of the full-size photo (normalised area when the size is unknown)."""
    _x, _y, w, h = face.box
    return w * h * max(face.width, 1) * max(face.height, 1)


def best_face(faces: Sequence[FaceRecord]) -> FaceRecord | None:
    """The face to show for a person: one the user placed there (the surest it is them), the
    largest in pixels among those (the most detail), then the detector's surest."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.assigned_by == "user", face_pixels(f), f.score, -f.face_id))


def face_caption(face: FaceRecord, size: bool = True) -> str:
    """``#12 · t1.jpg · 64x80 px · placed by you``: what tells one face from another."""
    _x, _y, w, h = face.box
    parts = [f"#{face.face_id}", os.path.basename(face.path)]
    if size and face.width and face.height:
        parts.append(f"{round(w * face.width)}x{round(h * face.height)} px")
    if face.assigned_by == "user":
        parts.append("placed by you")
    return " · ".join(parts)


def person_label(person: Person) -> str:
    return person.name if person.name else f"cluster {person.id}"


def twice_note(twice: int) -> str:
    """What a merge, naming or move that put ``twice`` photos' faces in one person more than
    once says (one face there is someone else's: the clustering never does this)."""
    if not twice:
        return ""
    return f". In {twice} photo{'s' if twice != 1 else ''} more than once: reject the wrong face there"
