"""Every key binding the app defines, screen by screen (the help screen and docs/tui.md show
them; a test checks the document lists each one)."""

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


def sections() -> list[tuple[str, type]]:
    from facetags.tui.app import FacetagsApp
    from facetags.tui.screens.compare import CompareScreen
    from facetags.tui.screens.confirm import ConfirmDialog
    from facetags.tui.screens.help import HelpScreen
    from facetags.tui.screens.name_dialog import NameDialog
    from facetags.tui.screens.people import PeopleScreen
    from facetags.tui.screens.person import PersonScreen
    from facetags.tui.screens.photo import PhotoScreen
    from facetags.tui.screens.suggestions import SuggestionsScreen
    from facetags.tui.widgets.face_grid import FaceGrid

    return [
        ("Everywhere", FacetagsApp),
        ("People", PeopleScreen),
        ("Person (faces)", PersonScreen),
        ("Face grid", FaceGrid),
        ("Zoom", CompareScreen),
        ("Photo", PhotoScreen),
        ("Suggestions", SuggestionsScreen),
        ("Name dialog", NameDialog),
        ("Question", ConfirmDialog),
        ("Help", HelpScreen),
    ]


def all_keys() -> list[KeyHelp]:
    out = [KeyHelp("Everywhere", "ctrl+p", "Command palette: every action by name", "command_palette")]
    for section, cls in sections():
        for b in _bindings(cls):
            out.append(KeyHelp(section, key_display(b.key), b.description or b.action, b.action))
    return out


def markdown_table() -> str:
    """The key table of docs/tui.md (``python -m facetags.tui.keys`` prints it)."""
    lines = ["| Where | Keys | Does |", "|---|---|---|"]
    for k in all_keys():
        lines.append(f"| {k.section} | `{k.keys}` | {k.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table())
