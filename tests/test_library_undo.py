"""Library.undoable / undo (facetags.db.journal), split and move_faces, on a real library
indexed by the shipped models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from facetags.errors import FacetagsError
from facetags.library import Library

if TYPE_CHECKING:
    from tests.library_support import OpenLibrary


@dataclass
class Indexed:
    lib: Library
    F: list[int]  # face ids: t1's six faces, then the astronaut
    P: list[int]  # P[i]: the person of face F[i], all different


@pytest.fixture
def ix(open_library: OpenLibrary, photo_dir: Path) -> Indexed:
    """t1 (6 faces, never one person twice: one photo) and the astronaut, each face a person of
    its own whatever the model thinks (the astronaut is split off if the model joined it to
    someone, as a user would)."""
    lib = open_library()
    lib.scan([photo_dir / "t1.jpg"])
    lib.scan([photo_dir / "astronaut.jpg"])
    faces = lib.photo_faces(photo_dir / "t1.jpg") + lib.photo_faces(photo_dir / "astronaut.jpg")
    assert len(faces) == 7
    astro = faces[-1]
    if len(lib.faces(astro.person_id or 0)) > 1:
        lib.split(astro.person_id or 0, [astro.face_id])
    records = [lib.face(f.face_id) for f in faces]
    people = [r.person_id or 0 for r in records]
    assert len(set(people)) == 7
    return Indexed(lib, [r.face_id for r in records], people)


def state(lib: Library) -> tuple[object, ...]:
    faces = [(f.face_id, f.person_id, f.person_name, f.assigned_by) for f in lib.faces()]
    return tuple(lib.people()), tuple(faces)


def decisions(lib: Library) -> int:
    return int(lib.store.conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def test_each_kind_of_decision_is_undone(ix: Indexed) -> None:
    lib, F, P = ix.lib, ix.F, ix.P
    start, logged = state(lib), decisions(lib)
    steps = [
        ("name", lambda: lib.name(P[1], "Ada")),
        ("merge by name", lambda: lib.name(P[2], "ada")),
        ("merge", lambda: lib.merge([P[3], P[4]])),
        ("reject", lambda: lib.reject(F[5], P[5])),
        ("not a face", lambda: lib.not_a_face(F[6])),
        ("hide", lambda: lib.hide(P[0])),
        ("split", lambda: lib.split(P[3], [F[4]])),
        ("move", lambda: lib.move_faces([F[0]], P[1])),
    ]
    seen = [state(lib)]
    for label, do in steps:
        with lib.undoable(label):
            do()
        seen.append(state(lib))
    assert lib.undo_steps() == [label for label, _ in reversed(steps)]
    for label, _ in reversed(steps):
        seen.pop()
        assert lib.undo() == label
        assert state(lib) == seen[-1], label
    assert state(lib) == start
    assert decisions(lib) == logged  # undone decisions leave the log (no replay brings them back)
    assert lib.store.rejected_people(F[5]) == set()
    with pytest.raises(FacetagsError, match="nothing to undo"):
        lib.undo()


def test_a_step_groups_several_calls_and_a_failed_one_leaves_no_step(ix: Indexed) -> None:
    lib, F, P = ix.lib, ix.F, ix.P
    start = state(lib)
    with lib.undoable("move three"):
        for face in F[2:5]:
            lib.set_assignment(face, P[1])
    assert lib.person(P[1]).faces == 4
    with pytest.raises(FacetagsError), lib.undoable("bad merge"):
        lib.name(P[5], "Ada")
        lib.name(P[6], "Grace")
        lib.merge([P[5], P[6]])
    assert lib.undo_steps() == ["bad merge", "move three"]  # the names went through
    lib.undo()
    lib.undo()
    assert state(lib) == start


def test_changes_outside_a_step_are_not_journaled(ix: Indexed) -> None:
    lib = ix.lib
    lib.name(ix.P[1], "Ada")
    assert lib.undo_steps() == []


def test_split_and_move_faces(ix: Indexed) -> None:
    lib, F, P = ix.lib, ix.F, ix.P
    merged = lib.merge([P[1], P[2], P[3]])
    assert merged.faces == 3
    new = lib.split(P[1], [F[2], F[3]])
    assert new.faces == 2 and new.id not in P[1:4]
    assert {f.assigned_by for f in lib.faces(new.id)} == {"user"}
    with pytest.raises(FacetagsError):
        lib.split(P[1], [F[4]])  # that face is not in that person
    moved = lib.move_faces([F[2]], P[1])
    assert moved.id == P[1] and moved.faces == 2
    assert lib.face(F[2]).assigned_by == "user"


def test_data_version_moves_when_another_connection_writes(ix: Indexed) -> None:
    lib = ix.lib
    before = lib.data_version()
    with Library.open(lib.path, lib.settings, create=False) as other:
        other.name(ix.P[1], "Ada")
    assert lib.data_version() != before
