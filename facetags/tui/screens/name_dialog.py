"""Ask for a person's name, completing the names the library already has.

Typing shows matching names below the input (and completes inline: → accepts). Choosing an
existing name for a cluster merges the cluster into that person; the hint line says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from facetags.people.names import name_key

MAX_CHOICES = 8


class NameDialog(ModalScreen[str | None]):
    """Returns the name typed or chosen, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "choices", "Pick a name", show=False),
    ]

    def __init__(
        self, title: str, names: Sequence[str], value: str = "", hint: str = "", allow_ids: bool = False
    ) -> None:
        super().__init__()
        self.title_text = title
        self.names = sorted(set(names), key=name_key)
        self.value = value
        self.hint = hint
        self.allow_ids = allow_ids

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(self.title_text, id="dialog-title")
            yield Input(
                value=self.value,
                placeholder="name" + (" or #id" if self.allow_ids else ""),
                suggester=SuggestFromList(self.names, case_sensitive=False),
                id="name-input",
            )
            yield OptionList(id="name-choices")
            yield Label(self.hint, id="dialog-hint")

    def on_mount(self) -> None:
        self._refresh_choices(self.value)

    def _matches(self, text: str) -> list[str]:
        key = name_key(text) if text.strip() else ""
        starts = [n for n in self.names if name_key(n).startswith(key)]
        inside = [n for n in self.names if key and key in name_key(n) and n not in starts]
        return (starts + inside)[:MAX_CHOICES]

    def _refresh_choices(self, text: str) -> None:
        choices = self.query_one("#name-choices", OptionList)
        choices.clear_options()
        matches = self._matches(text)
        choices.add_options([Option(n, id=n) for n in matches])
        choices.display = bool(matches)
        own = name_key(self.value) if self.value else None
        exact = [
            n for n in self.names if text.strip() and name_key(n) == name_key(text) and name_key(n) != own
        ]
        hint = self.query_one("#dialog-hint", Label)
        if exact:
            hint.update(f"{exact[0]} exists: this joins them")
        else:
            hint.update(self.hint)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refresh_choices(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self.dismiss(text)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(str(event.option.id))

    def action_choices(self) -> None:
        choices = self.query_one("#name-choices", OptionList)
        if choices.display and choices.option_count:
            choices.focus()
            choices.highlighted = 0

    def action_cancel(self) -> None:
        self.dismiss(None)
