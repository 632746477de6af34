"""Ask for a person's name, completing the names the library already has.

Typing shows matching names below the input (and completes inline: → accepts). Choosing an
existing name for a cluster merges the cluster into that person; the hint line says so. Enter on
the start of someone else's name (``Pen`` while ``Penny`` is completed) asks first: enter again
takes the name as typed (a new person, in the move dialog), → takes the completion. A name
with control characters (another tool may have written one) is shown escaped; entered unchanged,
it is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from facetags.names import name_key
from facetags.text import shown
from facetags.tui.plain import plain

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
        self.shown_value = shown(value)  # what the input shows of it
        self.hint = hint
        self.allow_ids = allow_ids
        # Keys that arrive before the input has focus (a paste or tmux send-keys right after the
        # key that opened the dialog): kept and typed into the input once it is ready.
        self._early: list[events.Key] = []
        self._ready = False
        self._new_asked: str | None = None  # the text Enter was pressed on once (_submit)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Label(plain(self.title_text), id="dialog-title")
            yield Input(
                value=self.shown_value,
                placeholder="name" + (" or #id" if self.allow_ids else ""),
                # completing inline types the name: only names that are shown as they are
                suggester=SuggestFromList([n for n in self.names if shown(n) == n], case_sensitive=False),
                id="name-input",
            )
            yield OptionList(id="name-choices")
            yield Label(plain(self.hint), id="dialog-hint")
            yield Label("enter: ok  ·  ↓: pick a name  ·  esc: cancel", id="dialog-keys")

    def on_mount(self) -> None:
        self._refresh_choices(self.shown_value)
        self.call_after_refresh(self._take_early_keys)

    def on_key(self, event: events.Key) -> None:
        # before _take_early_keys runs, keys reach this screen (they were sent to it while it had
        # no focused widget): keep them; later, the input takes keys itself
        if self._ready:
            return
        self._early.append(event)
        event.stop()
        event.prevent_default()

    def _take_early_keys(self) -> None:
        """Focus the input and replay what was typed before it could take it: the text replaces
        the proposed value (as typing into the focused, selected input does); enter submits,
        escape cancels."""
        self._ready = True
        field = self.query_one("#name-input", Input)
        field.focus()
        typed: list[str] = []
        for key in self._early:
            if key.key == "escape":
                self.action_cancel()
                return
            if key.key == "enter":
                text = "".join(typed).strip() or field.value.strip()
                if text:
                    field.value = text
                    field.cursor_position = len(text)
                    if self._submit(text):
                        return
                    typed = []
            elif key.key == "backspace":
                if typed:
                    typed.pop()
            elif key.is_printable and key.character:
                typed.append(key.character)
        if typed:
            field.value = "".join(typed)
            field.cursor_position = len(field.value)

    def _matches(self, text: str) -> list[str]:
        key = name_key(text) if text.strip() else ""
        starts = [n for n in self.names if name_key(n).startswith(key)]
        inside = [n for n in self.names if key and key in name_key(n) and n not in starts]
        return (starts + inside)[:MAX_CHOICES]

    def _refresh_choices(self, text: str) -> None:
        choices = self.query_one("#name-choices", OptionList)
        choices.clear_options()
        matches = self._matches(text)
        choices.add_options([Option(plain(n), id=n) for n in matches])
        choices.display = bool(matches)
        own = name_key(self.value) if self.value else None
        exact = [
            n for n in self.names if text.strip() and name_key(n) == name_key(text) and name_key(n) != own
        ]
        hint = self.query_one("#dialog-hint", Label)
        if exact:
            hint.update(plain(f"{exact[0]} exists: this joins them"))
        else:
            hint.update(plain(self.hint))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refresh_choices(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self._submit(text)

    def _submit(self, text: str) -> bool:
        """Dismiss with ``text``, unless it is the start of an existing name and Enter was not
        pressed on it before (then say so, and wait). Whether it dismissed."""
        if text == self.shown_value != self.value:
            self.dismiss(None)  # the escaped form of a name, unchanged: nothing to rename
            return True
        completion = self._completes(text)
        if completion is not None and self._new_asked != text:
            self._new_asked = text
            # the move dialog (ids allowed) makes a new person of the name; naming renames
            then = "a new person" if self.allow_ids else "this name"
            self.query_one("#dialog-hint", Label).update(
                plain(f"no one is {text}: enter: {then} · →: {completion}")
            )
            return False
        self.dismiss(text)
        return True

    def _completes(self, text: str) -> str | None:
        """The existing name ``text`` is the start of, if it is no one's whole name (the name
        being changed left out: shortening one's own name asks nothing)."""
        key = name_key(text)
        if any(name_key(n) == key for n in self.names) or (self.allow_ids and text.startswith("#")):
            return None
        own = name_key(self.value) if self.value else None
        return next((n for n in self.names if name_key(n).startswith(key) and name_key(n) != own), None)

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
