"""Help: every key binding, screen by screen, from the bindings themselves."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close help"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Label("Keys  (ctrl+p lists every action by name; esc closes)", id="dialog-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        from facetags.tui.keys import all_keys

        table = self.query_one(DataTable)
        table.add_columns("Where", "Keys", "Does")
        for k in all_keys():
            table.add_row(k.section, k.keys, k.description)
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
