"""A yes/no question for changes that touch many faces or photos (a merge, XMP for everyone).

The question says what the change will touch (``details``: one line each, the first few shown)
before anything happens; y answers yes, n or escape no. The No button has the focus, so a stray
enter changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from facetags.tui.plain import plain, plain_lines

MAX_DETAILS = 8


class ConfirmDialog(ModalScreen[bool]):
    AUTO_FOCUS = "#no"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, details: Sequence[str] = ()) -> None:
        super().__init__()
        self.question = question
        self.details = list(details)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(plain(self.question), id="dialog-title")
            if self.details:
                shown = [f"  {line}" for line in self.details[:MAX_DETAILS]]
                if len(self.details) > MAX_DETAILS:
                    shown.append(f"  … and {len(self.details) - MAX_DETAILS} more")
                yield Label(plain_lines(shown), id="dialog-details")
            with Horizontal(id="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="primary")
                yield Button("No (n / esc)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
