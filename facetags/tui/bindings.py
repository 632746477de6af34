"""Key bindings as the help shows them: display names and one row per binding of a class."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "space": "space",
    "escape": "esc",
    "backspace": "backspace",
    "enter": "enter",
    "right_square_bracket": "]",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
    "left_square_bracket": "[",
    "ctrl+z": "ctrl+z",
    "ctrl+r": "ctrl+r",
    "ctrl+p": "ctrl+p",
}


@dataclass(frozen=True)
class KeyHelp:
    section: str
    keys: str  # display form, e.g. "u / ctrl+z"
    description: str
    action: str


def key_display(key: str) -> str:
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(","))


def _bindings(cls: type) -> list[Binding]:
    out = []
    for item in cls.__dict__.get("BINDINGS", []):
        b: BindingType = item
        if isinstance(b, Binding):
            out.append(b)
        else:
            out.append(Binding(*b))
    return out


def key_help(sections: list[tuple[str, type]]) -> list[KeyHelp]:
    """The rows of the key table: the command palette, then every binding of each section's class."""
    out = [KeyHelp("Everywhere", "ctrl+p", "Command palette: every action by name", "command_palette")]
    for section, cls in sections:
        for b in _bindings(cls):
            out.append(KeyHelp(section, key_display(b.key), b.description or b.action, b.action))
    return out
