"""Library.undoable / undo (facetags.db.journal), split and move_faces, on a real library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetags.config import load_settings
from facetags.errors import FacetagsError
from facetags.library import Library
from tests.tui_helpers import DistinctEmbedder, build_library, copy_library


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, t1_path: Path, astronaut_path: Path) -> Path:
    return build_library(tmp_path_factory.mktemp("undo-lib"), [t1_path, astronaut_path], DistinctEmbedder())


@pytest.fixture
def lib(template: Path, tmp_path: Path) -> Iterator[Library]:
    db = copy_library(template, tmp_path)
    library = Library.open(db, load_settings(library=str(db)), embedder=DistinctEmbedder())
    try:
        yield library
    finally:
        library.close()


def state(lib: Library) -> tuple[object, ...]:
    faces = [(f.face_id, f.person_id, f.person_name, f.assigned_by) for f in lib.faces()]
    return tuple(lib.people()), tuple(faces)


def decisions(lib: Library) -> int:
    return int(lib.store.conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def test_each_kind_of_decision_is_undone(lib: Library) -> None:
    start, logged = state(lib), decisions(lib)
    steps = [
        ("name", lambda: lib.name(2, "Ada")),
        ("merge by name", lambda: lib.name(3, "ada")),
        ("merge", lambda: lib.merge([4, 5])),
        ("reject", lambda: lib.reject(6, 6)),
        ("not a face", lambda: lib.not_a_face(7)),
        ("hide", lambda: lib.hide(1)),
        ("split", lambda: lib.split(4, [5])),
        ("move", lambda: lib.move_faces([1], 2)),
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
    assert lib.store.rejected_people(6) == set()
    with pytest.raises(FacetagsError, match="nothing to undo"):
        lib.undo()


def test_a_step_groups_several_calls_and_a_failed_one_leaves_no_step(lib: Library) -> None:
    start = state(lib)
    with lib.undoable("move three"):
        for face in (3, 4, 5):
            lib.set_assignment(face, 2)
    assert lib.person(2).faces == 4
    with pytest.raises(FacetagsError), lib.undoable("bad merge"):
        lib.name(6, "Ada")
        lib.name(7, "Grace")
        lib.merge([6, 7])
    assert lib.undo_steps() == ["bad merge", "move three"]  # the names went through
    lib.undo()
    lib.undo()
    assert state(lib) == start


def test_changes_outside_a_step_are_not_journaled(lib: Library) -> None:
    lib.name(2, "Ada")
    assert lib.undo_steps() == []


def test_split_and_move_faces(lib: Library) -> None:
    merged = lib.merge([2, 3, 4])
    assert merged.faces == 3
    new = lib.split(2, [3, 4])
    assert new.faces == 2 and new.id not in (2, 3, 4)
    assert {f.assigned_by for f in lib.faces(new.id)} == {"user"}
    with pytest.raises(FacetagsError):
        lib.split(2, [5])  # face 5 is not in person 2
    moved = lib.move_faces([3], 2)
    assert moved.id == 2 and moved.faces == 2
    assert lib.face(3).assigned_by == "user"


def test_data_version_moves_when_another_connection_writes(lib: Library) -> None:
    before = lib.data_version()
    with Library.open(lib.path, lib.settings, create=False) as other:
        other.name(2, "Ada")
    assert lib.data_version() != before
