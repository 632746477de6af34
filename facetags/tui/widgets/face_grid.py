"""A page of face thumbnails with a cursor and multi-select (keyboard and mouse).

Only one page of tiles exists at a time, so a person with thousands of faces opens as fast as
one with ten; the screen loads the page's thumbnails in a worker and hands them to
:meth:`FaceGrid.set_thumbnails`. Tiles grow with the terminal (:func:`tile_width`): the largest
size that still shows four columns and two rows of faces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

from PIL import Image as PILImage
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Label

from facetags.db.records import FaceRecord
from facetags.tui.plain import plain
from facetags.tui.widgets.picture import Picture

PAGE_SIZE = 40
# tile widths in columns; a tile's picture is (width - 2) columns by half as many rows: square in
# half-block pixels (and near square in Kitty/Sixel cells); 14 fits five columns in 80
TILE_WIDTHS = (14, 20, 26, 34, 42, 52)
MIN_COLUMNS, MIN_ROWS = 4, 2


def picture_size(width: int) -> tuple[int, int]:
    """The picture of a tile ``width`` columns wide: (columns, rows)."""
    return width - 2, (width - 2) // 2


def tile_width(columns: int, rows: int) -> int:
    """The largest tile that shows MIN_COLUMNS x MIN_ROWS faces in a grid of this size."""
    best = TILE_WIDTHS[0]
    for width in TILE_WIDTHS:
        if columns // width >= MIN_COLUMNS and rows // (picture_size(width)[1] + 2) >= MIN_ROWS:
            best = width
    return best


def face_label(face: FaceRecord, file_name: bool = False) -> str:
    mark = "" if face.assigned_by != "user" else " ✓"
    return f"#{face.face_id}{mark}" + (f" {os.path.basename(face.path)}" if file_name else "")


class FaceTile(Widget):
    """One face: its thumbnail and its id (✓: placed by the user)."""

    class Clicked(Message):
        def __init__(self, tile: FaceTile, double: bool) -> None:
            super().__init__()
            self.tile = tile
            self.double = double

    def __init__(
        self, face: FaceRecord, index: int, selected: bool = False, width: int = 14, file_name: bool = False
    ) -> None:
        super().__init__(classes="face-tile -selected" if selected else "face-tile")
        self.face = face
        self.index = index
        self.file_name = file_name
        self._apply_width(width)

    def _label(self) -> Content:
        return plain(("● " if self.has_class("-selected") else "") + face_label(self.face, self.file_name))

    def compose(self) -> ComposeResult:
        columns, rows = picture_size(self.tile_width)
        picture = Picture(placeholder="face", classes="face-tile--picture")
        picture.styles.width, picture.styles.height = columns, rows
        yield picture
        label = Label(self._label(), classes="face-tile--label")
        label.styles.width = columns
        yield label

    def _apply_width(self, width: int) -> None:
        self.tile_width = width
        self.styles.width, self.styles.height = width, picture_size(width)[1] + 2

    def set_width(self, width: int) -> None:
        """Grow or shrink with the terminal."""
        if width == self.tile_width:
            return
        self._apply_width(width)
        if self.is_mounted:
            columns, rows = picture_size(width)
            picture = self.query_one(Picture)
            picture.styles.width, picture.styles.height = columns, rows
            self.query_one(Label).styles.width = columns

    def show_file_name(self, shown: bool) -> None:
        self.file_name = shown
        if self.is_mounted:
            self.query_one(Label).update(self._label())

    def set_image(self, image: PILImage.Image | None) -> None:
        self.query_one(Picture).show(image, text=None if image is not None else "no thumb")

    def set_selected(self, selected: bool) -> None:
        self.set_class(selected, "-selected")
        if self.is_mounted:  # before that, compose() writes the label
            self.query_one(Label).update(self._label())

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Clicked(self, double=event.chain >= 2))


class FaceGrid(VerticalScroll, can_focus=True):
    """Faces in pages; arrows move, space selects, ] and [ turn pages."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("space", "toggle_face", "Select", key_display="␣"),
        Binding("enter", "open", "Open photo", show=False),  # footer room at 80 columns
        Binding("a", "select_all", "Select page", show=False),  # footer room at 80 columns
        # not escape: escape always goes back (the screen's key); the footer shows this one
        # while faces are selected
        Binding("c", "clear", "Clear"),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),  # the title says [ ]
        Binding("left_square_bracket", "page(-1)", "Previous page", show=False),
        Binding("f", "file_names", "File names", show=False),
    ]

    class PageShown(Message):
        """A page of faces is on screen; the listener loads their thumbnails."""

        def __init__(self, grid: FaceGrid, face_ids: list[int]) -> None:
            super().__init__()
            self.grid = grid
            self.face_ids = face_ids

    class SelectionChanged(Message):
        def __init__(self, grid: FaceGrid) -> None:
            super().__init__()
            self.grid = grid

    class Opened(Message):
        """The user asked to open a face (enter or double click)."""

        def __init__(self, grid: FaceGrid, face: FaceRecord) -> None:
            super().__init__()
            self.grid = grid
            self.face = face

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.faces: list[FaceRecord] = []
        self.selected: set[int] = set()
        self.cursor = 0
        self.page = 0
        self.tile_width = TILE_WIDTHS[0]
        self.file_names = False
        self._tiles: list[FaceTile] = []

    # -- content ------------------------------------------------------------------------------

    def set_faces(self, faces: Sequence[FaceRecord]) -> None:
        """Show ``faces`` (keeping the page, cursor and selection where they still make sense)."""
        current = self.current
        self.faces = list(faces)
        ids = {f.face_id for f in self.faces}
        self.selected &= ids
        if current is not None and current.face_id in ids:
            self.cursor = next(i for i, f in enumerate(self.faces) if f.face_id == current.face_id)
        self.cursor = min(self.cursor, max(0, len(self.faces) - 1))
        self.page = self.cursor // PAGE_SIZE
        self._render_page()
        self._selection_changed()

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.faces) // PAGE_SIZE))

    @property
    def current(self) -> FaceRecord | None:
        return self.faces[self.cursor] if 0 <= self.cursor < len(self.faces) else None

    def chosen(self) -> list[FaceRecord]:
        """The selected faces, or the face under the cursor when none is selected."""
        if self.selected:
            return [f for f in self.faces if f.face_id in self.selected]
        return [self.current] if self.current is not None else []

    def _render_page(self) -> None:
        start = self.page * PAGE_SIZE
        page = self.faces[start : start + PAGE_SIZE]
        self.remove_children()
        # each tile is born with its selection: a second render before this one's refresh
        # (keys typed fast) must not reach into tiles that are not composed yet
        self._tiles = [
            FaceTile(face, start + i, face.face_id in self.selected, self.tile_width, self.file_names)
            for i, face in enumerate(page)
        ]
        if self._tiles:
            self.mount_all(self._tiles)
        self.call_after_refresh(self._after_mount)
        self.post_message(self.PageShown(self, [f.face_id for f in page]))

    def _after_mount(self) -> None:
        self._show_cursor()

    def set_thumbnails(self, images: dict[int, PILImage.Image | None]) -> None:
        for tile in self._tiles:
            if tile.face.face_id in images and tile.is_mounted:
                tile.set_image(images[tile.face.face_id])

    # -- cursor and selection ------------------------------------------------------------------

    @property
    def columns(self) -> int:
        return max(1, (self.scrollable_content_region.width or self.tile_width) // self.tile_width)

    def on_resize(self, event: events.Resize) -> None:
        region = self.scrollable_content_region
        width = tile_width(region.width, region.height)
        if width != self.tile_width:
            self.tile_width = width
            for tile in self._tiles:
                tile.set_width(width)
        self.styles.grid_size_columns = self.columns
        # rows as tall as a tile: left to the grid, rows share its height out and a page with
        # more rows than fit cuts every face and its label (the grid scrolls instead)
        self.styles.grid_rows = str(picture_size(self.tile_width)[1] + 2)
        self.call_after_refresh(self._show_cursor)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear":
            return bool(self.selected)  # in the footer only while there is a selection
        return True

    def _selection_changed(self) -> None:
        self.refresh_bindings()
        self.post_message(self.SelectionChanged(self))

    def _show_cursor(self) -> None:
        for tile in self._tiles:
            tile.set_class(tile.index == self.cursor, "-cursor")
            if tile.index == self.cursor and tile.is_mounted:
                self.scroll_to_widget(tile, animate=False)

    def _go(self, index: int) -> None:
        if not self.faces:
            return
        index = max(0, min(len(self.faces) - 1, index))
        self.cursor = index
        if index // PAGE_SIZE != self.page:
            self.page = index // PAGE_SIZE
            self._render_page()
        else:
            self._show_cursor()

    def action_move(self, dx: int, dy: int) -> None:
        self._go(self.cursor + dx + dy * self.columns)

    def action_page(self, step: int) -> None:
        page = max(0, min(self.pages - 1, self.page + step))
        if page != self.page:
            self._go(page * PAGE_SIZE)

    def action_toggle_face(self) -> None:
        face = self.current
        if face is None:
            return
        self.selected ^= {face.face_id}
        for tile in self._tiles:
            if tile.face.face_id == face.face_id:
                tile.set_selected(face.face_id in self.selected)
        self._selection_changed()

    def action_select_all(self) -> None:
        page_ids = {t.face.face_id for t in self._tiles}
        if page_ids <= self.selected:
            self.selected -= page_ids
        else:
            self.selected |= page_ids
        for tile in self._tiles:
            tile.set_selected(tile.face.face_id in self.selected)
        self._selection_changed()

    def action_file_names(self) -> None:
        """Show each face's photo file name under it (or only its id again)."""
        self.file_names = not self.file_names
        for tile in self._tiles:
            tile.show_file_name(self.file_names)

    def action_clear(self) -> None:
        self.selected.clear()
        for tile in self._tiles:
            tile.set_selected(False)
        self._selection_changed()

    def on_face_tile_clicked(self, event: FaceTile.Clicked) -> None:
        event.stop()
        self.focus()
        self._go(event.tile.index)
        self.action_toggle_face()  # a double click toggles twice: the selection is as it was
        if event.double:
            self.action_open()

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Opened(self, self.current))
