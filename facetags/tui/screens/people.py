"""The people screen: named people and unnamed clusters, largest first, with a sample face.
While another process (a scan, the watcher) changes the library, rows keep their places.

Type ``/`` and a few letters to filter; hidden strangers come back with ``H``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static

from facetags.db.records import Person
from facetags.names import name_key
from facetags.text import plural, shown
from facetags.tui.faces import best_face, person_label, twice_note
from facetags.tui.messages import ActionFailed
from facetags.tui.plain import plain_lines
from facetags.tui.screens.base import LibraryScreen, footer
from facetags.tui.screens.confirm import ConfirmDialog
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.widgets.picture import Picture, decode

if TYPE_CHECKING:
    from facetags.library import Library


class FilterBox(Input):
    """The filter: ↓ (like Enter) goes on to the list it filters."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("down", "to_list", "To the list", show=False)]

    def action_to_list(self) -> None:
        self.screen.query_one(DataTable).focus()


MAX_ROWS = 1000  # more would only slow the table down; typing finds the rest


def merge_label(person: Person, faces: bool = True) -> str:
    """How a merge names whom it touches: "Ada (3 faces)", "cluster #12 (8 faces)"."""
    who = person.name if person.name else f"cluster #{person.id}"
    return f"{who} ({plural(person.faces, 'face')})" if faces else who


def sort_people(people: list[Person]) -> list[Person]:
    """Largest first; named before unnamed at equal size; then by id (stable on screen)."""
    return sorted(people, key=lambda p: (-p.faces, p.name is None, p.id))


class PeopleScreen(LibraryScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        # show=False: the footer of an 80-column terminal keeps room for Help, Undo and Quit;
        # every key is still in Help (?) and the command palette
        Binding("enter,o", "open", "Open", show=False),
        Binding("n", "name", "Name", priority=True),  # keys typed right behind go to the dialog
        Binding("space", "mark", "Mark"),
        Binding("m", "merge", "Merge"),
        Binding("h", "hide", "Hide stranger", show=False),
        Binding("H", "toggle_hidden", "Show hidden", show=False),
        Binding("s", "suggest", "Suggest"),
        Binding("x", "write_xmp", "XMP person", show=False),
        # priority: runs as the key arrives, before the keys behind it in a burst (a paste, tmux
        # send-keys) are handed to the list; the filter box takes focus at once, so they land in it
        Binding("slash", "filter", "Filter", priority=True, show=False),  # the filter box says so
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="people")
        self.people: list[Person] = []
        self.shown: list[Person] = []
        self.marked: set[int] = set()
        self.show_hidden = False
        self._sample_for: int | None = None
        #: the name just given stays listed though the filter does not match it (a merge too)
        self._pinned: str | None = None
        self._sample_timer: Timer | None = None
        self._rows: list[tuple[Any, ...]] | None = None
        self._sorted = True  # the rows are in size order (not kept in place: changed_elsewhere)
        self._sort_asked = False  # a sorted load is on its way: a later stable one sorts too
        #: what the side says until the people are read (an empty list is not an empty library)
        self._unread: str | None = "Reading the library..."

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="people-body"):
            with Vertical(id="people-left"):
                yield FilterBox(placeholder="/ to filter people by name", id="filter")
                yield DataTable(id="people-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="people-side"):
                yield Picture(placeholder="", id="sample")
                yield Static("", id="person-info")
        yield footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column(" ", key="mark", width=1)
        table.add_column("Name", key="name")
        table.add_column("Faces", key="faces", width=6)
        table.add_column("Photos", key="photos", width=6)
        table.focus()

    # -- data ---------------------------------------------------------------------------------

    def reload(self) -> None:
        self._sort_asked = True
        self.load("people", lambda lib: lib.people(), self._show_people)

    def changed_elsewhere(self) -> None:
        """A scan or the watcher changed the library: the rows on screen stay where they are
        (counts change in place; new clusters come after them, before any row past the
        :data:`MAX_ROWS` cut), so that a key pressed meanwhile (down, then n) acts on the row
        the user saw there. Sorted again by ctrl+r, the user's own changes, and on coming back
        from another screen or dialog."""
        stable = not self._sort_asked  # a sorted load asked for first still sorts
        self.load("people", lambda lib: lib.people(), partial(self._show_people, stable=stable))

    def _show_people(self, people: list[Person], stable: bool = False) -> None:
        self._unread = None
        if stable and self.people:
            place = {p.id: i for i, p in enumerate(self.people)}
            on_screen = {p.id for p in self.shown}
            kept = [p for p in people if p.id in on_screen]
            past = [p for p in people if p.id in place and p.id not in on_screen]  # hidden, past the cut
            self.people = (
                sorted(kept, key=lambda p: place[p.id])
                + sort_people([p for p in people if p.id not in place])
                + sorted(past, key=lambda p: place[p.id])
            )
            self._sorted = False
        else:
            self.people = sort_people(list(people))
            self._sorted, self._sort_asked = True, False
        self.facetags.people_cache = self.people
        ids = {p.id for p in self.people}
        self.marked &= ids
        self._fill()

    def _show_sample(self, sample: tuple[int, bytes | None]) -> None:
        person_id, thumb = sample
        if person_id == self._sample_for:
            self.query_one("#sample", Picture).show(decode(thumb), text="no face")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(DataTable)

    def _visible(self) -> list[Person]:
        text = self.query_one("#filter", Input).value
        key = name_key(text) if text.strip() else ""
        out = []
        for p in self.people:
            if p.hidden and not self.show_hidden:
                continue
            pinned = self._pinned is not None and p.name is not None and name_key(p.name) == self._pinned
            if key and key not in name_key(person_label(p)) and key != str(p.id) and not pinned:
                continue
            out.append(p)
        return out

    def on_resize(self, event: events.Resize) -> None:
        self._fill()  # names are cut to the new width

    def _name_width(self) -> int:
        """Room for the names: what the table's width leaves beside the mark and the counts (a
        long name would push the counts of every row out of sight)."""
        table = self.table
        others = sum(
            c.width + 2 * table.cell_padding for c in table.columns.values() if c.key.value != "name"
        )
        return max(12, (table.size.width or 80) - others - 2 * table.cell_padding - 2)  # 2: the scrollbar

    def _best_match(self) -> int:
        """The row the filter's text names exactly (a cluster's id, a whole name), else the
        first: `/9` then Enter is on cluster #9, not on whichever row the cursor was at."""
        text = self.query_one("#filter", Input).value.strip()
        key = name_key(text) if text else ""
        for i, p in enumerate(self.shown):
            if key and (key == str(p.id) or (p.name is not None and name_key(p.name) == key)):
                return i
        return 0

    def _fill(self, refiltered: bool = False) -> None:
        """(Re)draw the list; ``refiltered``: the filter's text changed to something (the cursor
        goes to its best match)."""
        table = self.table
        current = self.current
        row, scrolled = table.cursor_row, table.scroll_offset
        visible = self._visible()
        self.shown = visible[:MAX_ROWS]
        more = len(visible) - len(self.shown)
        width = self._name_width()
        rows: list[tuple[Any, ...]] = [
            (p.id, p.name, p.faces, p.photos, p.hidden, p.id in self.marked) for p in self.shown
        ]
        rows.append(("more", more, width))
        if rows != self._rows:
            self._rows = rows
            table.clear()
            for p in self.shown:
                label = Text(shown(person_label(p)), style="" if p.name else "italic dim")
                label.truncate(width - (len("  hidden") if p.hidden else 0), overflow="ellipsis")
                if p.hidden:  # after the cut: the mark always shows
                    label.append("  hidden", style="red")
                mark = "●" if p.id in self.marked else " "
                table.add_row(mark, label, str(p.faces), str(p.photos), key=str(p.id))
            if more:
                which = "smaller" if self._sorted else "more"
                hint = Text(f"… {more} {which} clusters: type / to find them", style="dim")
                hint.truncate(width, overflow="ellipsis")  # wider, it pushed the counts out of sight
                table.add_row(" ", hint, "", "", key="more")
            if not self._sorted:  # rows in place: the view too (clear() scrolled to the top),
                # once the table knows its new height
                self.call_after_refresh(table.scroll_to, x=scrolled.x, y=scrolled.y, animate=False)
        if refiltered and self.shown:  # the filter changed: its best match, not the old height
            table.move_cursor(row=self._best_match(), animate=False, scroll=True)
        elif current is not None:
            here = next((i for i, p in enumerate(self.shown) if p.id == current.id), None)
            if here is None:  # its row went (merged, hidden, re-clustered elsewhere): stay at the
                here = min(row, len(self.shown) - 1)  # same height, not at the top of the list
            if here >= 0:
                table.move_cursor(row=here, animate=False, scroll=self._sorted)
        self._describe()

    @property
    def current(self) -> Person | None:
        table = self.table
        if not self.shown or table.row_count == 0:
            return None
        row = table.cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    def on_action_failed(self, message: ActionFailed) -> None:
        """Says why the list is empty (Textual then calls LibraryScreen's, which notifies)."""
        if message.label == "loading people" and self._unread is not None:
            self._unread = "The library could not be read."
            self._describe()

    def _describe(self) -> None:
        info = self.query_one("#person-info", Static)
        if self._unread is not None:  # not "No one here yet" for a large library still being read
            info.update(self._unread)
            return
        person = self.current
        named = sum(1 for p in self.people if p.name)
        clusters = len(self.people) - named
        total = f"{named} {'person' if named == 1 else 'people'}, {plural(clusters, 'cluster')}"
        if person is None:
            text = self.query_one("#filter", Input).value.strip()
            if self.shown:  # on the "… smaller clusters" line
                info.update(f"{total}\n\nType / and a name or an id\nto find the others.")
            elif not self.people:
                info.update(f"No one here yet.\n\n{total}\n\nScan photos with\n`facetags scan DIR`.")
            elif text:
                info.update(f"No one matches\n{shown(text)!r}.\n\n{total}\n\nEsc clears the filter.")
            else:
                info.update(f"Everyone here is a hidden\nstranger.\n\n{total}\n\nH shows them.")
            self.query_one("#sample", Picture).show(None, text="")
            self._sample_for = None
            return
        lines = [
            person_label(person),
            f"{plural(person.faces, 'face')} in {plural(person.photos, 'photo')}",
            "hidden stranger" if person.hidden else "",
            f"{len(self.marked)} marked" if self.marked else "",
            "",
            total,
        ]
        info.update(plain_lines(lines))
        if self._sample_for != person.id:
            self._sample_for = person.id
            self.query_one("#sample", Picture).show(None, text="")
            if self._sample_timer is not None:
                self._sample_timer.stop()
            # after a pause: scrolling past people (or opening one) costs no library reads
            delay = self.facetags.sample_delay
            if delay > 0:
                self._sample_timer = self.set_timer(delay, partial(self._load_sample, person.id))
            else:
                self._load_sample(person.id)

    def _load_sample(self, pid: int) -> None:
        if pid != self._sample_for or not self.is_current:
            return
        client = self.facetags.client

        def sample(lib: Library) -> tuple[int, bytes | None]:
            face_id = client.sample_face(pid)
            if face_id is None:
                best = best_face(lib.faces(pid))
                face_id = best.face_id if best else None
                client.remember_sample(pid, face_id)
            return pid, (client.thumbnail(face_id) if face_id is not None else None)

        self.load("sample", sample, self._show_sample)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._describe()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._pinned = None
        self._fill(refiltered=bool(event.value.strip()))  # cleared: stay on the one found

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    # -- actions ------------------------------------------------------------------------------

    def action_filter(self) -> None:
        # Screen.set_focus, not Input.focus(): the latter waits a message-queue round, and keys
        # typed right behind the `/` would reach the list first (`u` would undo, `h` hide).
        box = self.query_one("#filter", Input)
        if self.focused is box:
            raise SkipAction()  # a `/` typed into the filter is a character of it
        self.set_focus(box)

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        self.table.focus()

    def action_open(self) -> None:
        person = self.current
        if person is not None:
            self.facetags.open_person(person.id)

    def action_mark(self) -> None:
        """Mark or unmark the highlighted row; the cursor stays on it (arrows move on)."""
        person = self.current
        if person is None:
            return
        self.marked ^= {person.id}
        self._fill()

    def merge_choice(self) -> list[Person]:
        """Whom ``m`` merges: the marked ones; with one marked, it and the highlighted one."""
        person = self.current
        ids = set(self.marked)
        if len(ids) < 2 and person is not None:
            ids.add(person.id)
        chosen = [p for p in self.people if p.id in ids]
        # the survivor first: a named one if any, else the largest
        return sorted(chosen, key=lambda p: (p.name is None, -p.faces, p.id))

    def action_merge(self) -> None:
        chosen = self.merge_choice()
        if len(chosen) < 2:
            self.notify("Mark the clusters to merge with space, then press m.", severity="warning")
            return
        order = [p.id for p in chosen]
        into = merge_label(chosen[0], faces=False)
        question = f"Merge {len(chosen)} into {into}?"
        if self.current is not None and self.current.id not in order:  # the marked ones, not it
            question += f" Not {merge_label(self.current, faces=False)}: highlighted, not marked."

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            self.marked.difference_update(order)

            def merged(lib: Library) -> tuple[Person, int]:
                person = lib.merge(order)
                return person, len(lib.more_than_once(person.id))

            def summary(done: tuple[Person, int]) -> str:
                person, twice = done
                merged = f"Merged {len(order)} into {person_label(person)} ({person.faces} faces)"
                return merged + twice_note(twice)

            self.facetags.perform(f"merge {len(order)}", merged, summary=summary)
            self._fill()

        self.app.push_screen(ConfirmDialog(question, [merge_label(p) for p in chosen]), answered)

    def action_name(self) -> None:
        if isinstance(self.focused, Input):
            raise SkipAction()  # an `n` typed into the filter is a character of it
        person = self.current
        if person is None:
            return
        names = [p.name for p in self.people if p.name]

        def named(text: str | None) -> None:
            if text and text.strip():
                self._pinned = name_key(text)
            self.facetags.name_person(person, text)

        dialog = NameDialog(f"Name {person_label(person)}", names, value=person.name or "")
        self.app.push_screen(dialog, named)

    def action_hide(self) -> None:
        if self.current is not None:
            self.facetags.toggle_hidden(self.current)

    def action_toggle_hidden(self) -> None:
        self.show_hidden = not self.show_hidden
        hidden = sum(1 for p in self.people if p.hidden)
        strangers = plural(hidden, "hidden stranger")
        self.notify(f"{'Showing' if self.show_hidden else 'Hiding'} {strangers}", timeout=3)
        self._fill()

    def action_suggest(self) -> None:
        if self.current is not None:
            self.facetags.suggest(self.current)

    def action_write_xmp(self) -> None:
        person = self.current
        if person is not None:
            self.facetags.write_xmp(person.id, person_label(person))
