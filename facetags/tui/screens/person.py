"""A person or cluster: a grid of its faces as real thumbnails, with multi-select.

Space selects faces (or click them), c clears the selection; actions apply to the selected faces,
or to the face under the cursor when none is selected. Escape goes back, selection or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Header, Static

from facetags.db.records import FaceRecord, Person
from facetags.names import name_key
from facetags.text import plural
from facetags.tui.faces import person_label, twice_note
from facetags.tui.plain import plain
from facetags.tui.screens.base import PersonLoader, footer
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.widgets.face_grid import FaceGrid
from facetags.tui.widgets.picture import decode

if TYPE_CHECKING:
    from facetags.library import Library


def _faces_word(n: int) -> str:
    return f"{n} face" + ("" if n == 1 else "s")


def _not_faces(lib: Library, ids: list[int]) -> None:
    for face_id in ids:
        lib.not_a_face(face_id)


class PersonScreen(PersonLoader):
    BINDINGS: ClassVar[list[BindingType]] = [
        # escape always goes back, also with faces selected (c clears the selection)
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("v", "compare", "Zoom"),  # the face large, beside the person's best face
        Binding("n", "name", "Name", priority=True),  # keys typed right behind go to the dialog
        Binding("m", "move", "Move", priority=True),
        Binding("r", "reject", "Not them"),
        Binding("d", "not_face", "Not a face", show=False),  # rarer; Help lists it
        Binding("p", "split", "Split off", show=False),  # footer room at 80 columns
        Binding("h", "hide", "Hide stranger", show=False),  # footer room at 80 columns
        Binding("s", "suggest", "Suggest", show=False),
        Binding("x", "write_xmp", "XMP person", show=False),
    ]

    def __init__(self, person_id: int) -> None:
        super().__init__(person_id, id="person")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="person-title")
        yield FaceGrid(id="faces")
        yield footer()

    def on_mount(self) -> None:
        self.query_one(FaceGrid).focus()

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.facetags.people_cache if p.name]

    @property
    def grid(self) -> FaceGrid:
        return self.query_one(FaceGrid)

    # -- data ---------------------------------------------------------------------------------

    def show_faces(self, faces: list[FaceRecord]) -> None:
        self.grid.set_faces(faces)
        self._title()
        person = self.person
        if not faces and person is not None and not person.name and self.app.screen is self:
            # every face moved, rejected or marked: nothing left here (a named person stays)
            self.notify(f"{person_label(person)} has no faces left.")
            self.app.pop_screen()

    def _title(self) -> None:
        person = self.person
        if person is None:
            return
        grid = self.grid
        parts = [
            person_label(person),
            f"{_faces_word(person.faces)} in {plural(person.photos, 'photo')}",
        ]
        if person.hidden:
            parts.append("hidden stranger")
        if grid.selected:
            parts.append(f"{len(grid.selected)} selected")
        if grid.pages > 1:
            parts.append(f"page {grid.page + 1}/{grid.pages} ([ ])")
        self.query_one("#person-title", Static).update(plain("  ·  ".join(parts)))

    def on_face_grid_page_shown(self, event: FaceGrid.PageShown) -> None:
        client = self.facetags.client
        ids = list(event.face_ids)

        def thumbs(lib: Library) -> dict[int, Any]:
            return {fid: decode(client.thumbnail(fid)) for fid in ids}

        self.load("thumbs", thumbs, self.grid.set_thumbnails)
        self._title()

    def on_face_grid_selection_changed(self, event: FaceGrid.SelectionChanged) -> None:
        self._title()

    def on_face_grid_opened(self, event: FaceGrid.Opened) -> None:
        self.facetags.open_photo(event.face.path, event.face.face_id)

    # -- actions ------------------------------------------------------------------------------

    def _chosen(self, what: str) -> list[int]:
        ids = [f.face_id for f in self.grid.chosen()]
        if not ids:
            self.notify(f"No face to {what}.", severity="warning")
        return ids

    def _done(self, result: Any) -> None:
        for grid in self.query(FaceGrid):  # none once the screen has gone (a cluster left empty)
            grid.action_clear()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_compare(self) -> None:
        face = self.grid.current
        if face is not None:
            self.facetags.open_compare(self.person_id, face.face_id)

    def action_name(self) -> None:
        if self.person is not None:
            self.app.push_screen(
                NameDialog(f"Name {person_label(self.person)}", self.names, value=self.person.name or ""),
                lambda text: self.facetags.name_person(self.person, text) if self.person else None,
            )

    def action_move(self) -> None:
        ids = self._chosen("move")
        if not ids:
            return
        self.app.push_screen(
            NameDialog(
                f"Move {_faces_word(len(ids))} to:",
                self.names,
                hint="an existing name, #id of a cluster, or a new name",
                allow_ids=True,
            ),
            lambda text: self._move(ids, text),
        )

    def _move(self, ids: list[int], text: str | None) -> None:
        if not text:
            return
        target: int | None = None
        if text.startswith("#") and text[1:].isdigit():
            target = int(text[1:])
        word = _faces_word(len(ids))

        source = self.person_id

        def put(lib: Library) -> Person:
            if target is not None:
                return lib.move_faces(ids, target)
            named = [p for p in lib.people() if p.name and name_key(p.name) == name_key(text)]
            if named:
                return lib.move_faces(ids, named[0].id)
            return lib.name(lib.split(source, ids).id, text)  # a new person

        def move(lib: Library) -> tuple[Person, int]:
            person = put(lib)
            return person, len(lib.more_than_once(person.id))

        self.facetags.perform(
            f"move {word}",
            move,
            summary=lambda done: f"Moved {word} to {person_label(done[0])}{twice_note(done[1])}",
            then=self._done,
        )

    def action_reject(self) -> None:
        ids = self._chosen("reject")
        if not ids or self.person is None:
            return
        pid, label, word = self.person_id, person_label(self.person), _faces_word(len(ids))
        self.facetags.perform(
            f"reject {word}",
            lambda lib: [lib.reject(fid, pid) for fid in ids],
            summary=lambda _r: f"{word} are not {label}" if len(ids) > 1 else f"{word} is not {label}",
            then=self._done,
        )

    def action_not_face(self) -> None:
        ids = self._chosen("mark")
        if not ids:
            return
        word = _faces_word(len(ids))
        self.facetags.perform(
            f"not a face ×{len(ids)}",
            lambda lib: _not_faces(lib, ids),
            summary=lambda _r: f"{word} marked as not a face",
            then=self._done,
        )

    def action_split(self) -> None:
        ids = [f.face_id for f in self.grid.chosen()] if self.grid.selected else []
        if not ids:
            self.notify("Select the faces to split off with space first.", severity="warning")
            return
        pid, word = self.person_id, _faces_word(len(ids))
        self.facetags.perform(
            f"split {word}",
            lambda lib: lib.split(pid, ids),
            summary=lambda p: f"Split {word} into {person_label(p)}",
            then=self._done,
        )

    def action_hide(self) -> None:
        if self.person is not None:
            self.facetags.toggle_hidden(self.person)

    def action_suggest(self) -> None:
        if self.person is not None:
            self.facetags.suggest(self.person)

    def action_write_xmp(self) -> None:
        if self.person is not None:
            self.facetags.write_xmp(self.person.id, person_label(self.person))
