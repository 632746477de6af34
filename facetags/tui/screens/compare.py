"""One face large beside the person's best face, to judge whether it is them.

Opened with ``v`` on a face of a person's grid. The pictures fill the screen (as large as the
terminal allows); each says its photo's file name and its size. Arrows step through the person's
faces, ``r`` says "not them", enter opens the photo, escape goes back to the grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, Label, Static

from facetags.db.records import FaceRecord, Person
from facetags.tui.faces import best_face, face_caption
from facetags.tui.plain import plain
from facetags.tui.screens.base import PersonLoader, footer
from facetags.tui.widgets.picture import Picture, decode

if TYPE_CHECKING:
    from facetags.library import Library


def _who(person: Person) -> str:
    return person.name if person.name else f"cluster #{person.id}"


class CompareScreen(PersonLoader):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("left", "step(-1)", "Previous", key_display="←"),
        Binding("right", "step(1)", "Next", key_display="→"),
        Binding("r", "reject", "Not them"),
        Binding("enter", "open_photo", "Photo"),
    ]

    def __init__(self, person_id: int, face_id: int) -> None:
        super().__init__(person_id, id="compare")
        self.face_id = face_id
        self.faces: list[FaceRecord] = []
        self.best: FaceRecord | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-title")
        with Horizontal(id="compare-body"):
            with Vertical(classes="compare-face"):
                yield Label("", classes="compare-caption", id="best-caption")
                yield Picture(placeholder="", id="best-picture", classes="large-face")
                yield Label("", classes="compare-detail", id="best-detail")
            with Vertical(classes="compare-face"):
                yield Label("", classes="compare-caption", id="this-caption")
                yield Picture(placeholder="", id="this-picture", classes="large-face")
                yield Label("", classes="compare-detail", id="this-detail")
        yield footer()

    @property
    def face(self) -> FaceRecord | None:
        return next((f for f in self.faces if f.face_id == self.face_id), None)

    # -- data ---------------------------------------------------------------------------------

    def show_faces(self, faces: list[FaceRecord]) -> None:
        old = [f.face_id for f in self.faces]
        self.faces = faces
        if self.face is None and self.faces:  # the face left (not them): the next one
            at = old.index(self.face_id) if self.face_id in old else 0
            self.face_id = self.faces[min(at, len(self.faces) - 1)].face_id
        self.best = best_face(self.faces)
        self._show()

    def _show_pictures(self, data: tuple[tuple[int, int], Any, Any]) -> None:
        shown, best_image, this_image = data
        if shown == (self.best and self.best.face_id, self.face_id):
            self.query_one("#best-picture", Picture).show(best_image, text="no thumbnail")
            self.query_one("#this-picture", Picture).show(this_image, text="no thumbnail")

    def _show(self) -> None:
        face, best, person = self.face, self.best, self.person
        if person is None:
            return
        title = self.query_one("#compare-title", Static)
        if face is None or best is None:
            title.update(plain(f"No faces left in {_who(person)}. Esc to go back."))
            for part in ("best", "this"):
                self.query_one(f"#{part}-picture", Picture).show(None, text="")
                self.query_one(f"#{part}-caption", Label).update("")
                self.query_one(f"#{part}-detail", Label).update("")
            return
        at = self.faces.index(face)
        title.update(plain(f"Is this {_who(person)}?  ·  face {at + 1} of {len(self.faces)}"))
        self.query_one("#best-caption", Label).update(plain(f"{_who(person)}: the best face"))
        self.query_one("#best-detail", Label).update(plain(face_caption(best)))
        same = face.face_id == best.face_id
        self.query_one("#this-caption", Label).update("this face" + (" (the best one)" if same else ""))
        self.query_one("#this-detail", Label).update(plain(face_caption(face)))
        client, ids = self.facetags.client, (best.face_id, face.face_id)

        def pictures(_lib: Library) -> tuple[tuple[int, int], Any, Any]:
            return ids, decode(client.thumbnail(ids[0])), decode(client.thumbnail(ids[1]))

        self.load("pictures", pictures, self._show_pictures)

    # -- actions ------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_step(self, step: int) -> None:
        face = self.face
        if face is None:
            return
        at = (self.faces.index(face) + step) % len(self.faces)
        self.face_id = self.faces[at].face_id
        self._show()

    def action_reject(self) -> None:
        face, person = self.face, self.person
        if face is None or person is None:
            return
        fid, pid, who = face.face_id, person.id, _who(person)
        self.facetags.perform(
            f"reject face #{fid}", lambda lib: lib.reject(fid, pid), summary=lambda _r: f"#{fid} is not {who}"
        )

    def action_open_photo(self) -> None:
        face = self.face
        if face is not None:
            self.facetags.open_photo(face.path, face.face_id)
