"""Help: every key binding, screen by screen, from the bindings themselves.

The table wraps its text to the dialog's width (nothing is cut off, whatever the terminal's
size) and scrolls with the arrows, page keys and the mouse.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from facetags.tui.bindings import KeyHelp

TITLE = "Keys  (esc closes; ctrl+p lists every action by name)"


def key_table(keys: list[KeyHelp]) -> Table:
    table = Table(box=None, expand=True, show_edge=False, pad_edge=False)
    table.add_column("Where", style="bold", ratio=2, overflow="fold")
    table.add_column("Keys", style="bold", ratio=2, overflow="fold")
    table.add_column("Does", ratio=5, overflow="fold")
    section = None
    for k in keys:
        if k.section != section:
            if section is not None:
                table.add_row()  # a blank line between screens
            section = k.section
            table.add_row(k.section, k.keys, k.description)
        else:
            table.add_row("", k.keys, k.description)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close help"),
    ]

    def __init__(self, keys: list[KeyHelp]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Label(TITLE, id="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(key_table(self.keys), id="help-keys")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
