"""A photo: the whole picture with its face boxes drawn in, and the names beside it.

Boxes are drawn into the picture itself (numbered, the chosen face in yellow), so they show the
same with Kitty/Sixel graphics and with Unicode half blocks.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image as PILImage
from PIL import ImageDraw, ImageOps
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option

from facetags.db.records import FaceRecord, Person
from facetags.text import plural
from facetags.tui.plain import plain
from facetags.tui.screens.base import LibraryScreen, footer
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.widgets.picture import Picture

if TYPE_CHECKING:
    from facetags.library import Library

MAX_SIDE = 640
BOX = (230, 60, 60)
CHOSEN = (255, 220, 0)


def load_photo(path: str) -> PILImage.Image:
    """The photo upright (faces are stored in upright coordinates), at most MAX_SIDE pixels."""
    with PILImage.open(path) as img:
        img.draft("RGB", (MAX_SIDE, MAX_SIDE))
        upright = ImageOps.exif_transpose(img) or img
        photo = upright.convert("RGB")
    photo.thumbnail((MAX_SIDE, MAX_SIDE))
    return photo


def draw_boxes(photo: PILImage.Image, faces: list[FaceRecord], chosen: int | None) -> PILImage.Image:
    out = photo.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    width = max(2, round(max(w, h) / 200))
    for n, face in enumerate(faces, 1):
        x, y, bw, bh = face.box
        colour = CHOSEN if face.face_id == chosen else BOX
        rect = (x * w, y * h, (x + bw) * w, (y + bh) * h)
        draw.rectangle(rect, outline=colour, width=width)
        draw.text((rect[0] + width + 1, rect[1] + width), str(n), fill=colour)
    return out


class PhotoScreen(LibraryScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", key_display="esc"),
        Binding("n", "name", "Name", priority=True),  # keys typed right behind go to the dialog
        Binding("o", "open_person", "Open person"),
        Binding("r", "reject", "Not them"),
        Binding("d", "not_face", "Not a face"),
    ]

    def __init__(self, path: str, face_id: int | None = None) -> None:
        super().__init__(id="photo")
        self.path = path
        self.face_id = face_id
        self.faces: list[FaceRecord] = []
        self.people: list[Person] = []
        self.photo: PILImage.Image | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(plain(os.path.basename(self.path)), id="photo-title")
        with Horizontal(id="photo-body"):
            yield Picture(placeholder="loading…", id="photo-picture")
            with Vertical(id="photo-side"):
                yield OptionList(id="photo-faces")
        yield footer()

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
        self.load("image", self._read_photo, self._show_image)

    def _read_photo(self, lib: Library) -> PILImage.Image | str:
        """The photo, or why it cannot be shown: not on disk (kept as missing), unreadable."""
        missing = lib.missing_photo(self.path, self.face_id)
        if missing is not None:
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(missing.since))
            return (
                f"This photo is {missing.state()} since {since}. It is kept, with its faces and names, "
                "until it is back or you forget it ('facetags status' lists it)."
            )
        try:
            return load_photo(self.path)
        except OSError as exc:
            return f"This photo cannot be shown: {exc.strerror or exc}."

    def reload(self) -> None:
        path, face_id = self.path, self.face_id

        def faces(lib: Library) -> tuple[list[FaceRecord], list[Person]]:
            found = lib.photo_faces(path, face_id)
            ids = sorted({f.person_id for f in found if f.person_id is not None})
            return found, [lib.person(pid) for pid in ids]

        self.load("faces", faces, self._show_faces)

    def _show_image(self, photo: Any) -> None:
        if isinstance(photo, str):  # why it cannot be shown
            self.query_one(Picture).show(None, text=photo)
            return
        self.photo = photo
        self._draw()

    def _show_faces(self, data: tuple[list[FaceRecord], list[Person]]) -> None:
        self.faces, self.people = data
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        for n, face in enumerate(self.faces, 1):
            who = face.person_name or f"cluster {face.person_id}"
            options.add_option(Option(plain(f"{n}  {who}"), id=str(face.face_id)))
        index = next((i for i, f in enumerate(self.faces) if f.face_id == self.face_id), None)
        if index is None and highlighted is not None and highlighted < len(self.faces):
            index = highlighted
        if self.faces:
            options.highlighted = index or 0
        self.query_one("#photo-title", Static).update(
            plain(f"{os.path.basename(self.path)}  ·  {plural(len(self.faces), 'face')}")
        )
        self._draw()

    def _draw(self) -> None:
        if self.photo is not None:
            self.query_one(Picture).show(draw_boxes(self.photo, self.faces, self.face_id))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self.face_id = int(event.option.id)
            self._draw()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_open_person()

    @property
    def face(self) -> FaceRecord | None:
        return next((f for f in self.faces if f.face_id == self.face_id), None)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_open_person(self) -> None:
        face = self.face
        if face is not None and face.person_id is not None:
            self.facetags.open_person(face.person_id)

    def action_name(self) -> None:
        face = self.face
        if face is None or face.person_id is None:
            return
        person = next((p for p in self.people if p.id == face.person_id), None)
        if person is None:
            return
        names = [p.name for p in self.facetags.people_cache if p.name]
        self.app.push_screen(
            NameDialog(f"Name face {self.faces.index(face) + 1}", names, value=person.name or ""),
            lambda text: self.facetags.name_person(person, text),
        )

    def action_reject(self) -> None:
        face = self.face
        if face is None or face.person_id is None:
            return
        fid, pid = face.face_id, face.person_id
        who = face.person_name or f"cluster {pid}"
        self.facetags.perform(
            "reject face", lambda lib: lib.reject(fid, pid), summary=lambda _r: f"Not {who}"
        )

    def action_not_face(self) -> None:
        face = self.face
        if face is None:
            return
        fid = face.face_id
        self.facetags.perform(
            "not a face", lambda lib: lib.not_a_face(fid), summary=lambda _r: "Marked as not a face"
        )
