"""Every key binding the app defines, screen by screen (the help screen and docs/tui.md show
them; a test checks the document lists each one)."""

from __future__ import annotations

from facetags.tui.bindings import KeyHelp, key_help


def sections() -> list[tuple[str, type]]:
    """Each part of the app (the app, its screens and widgets) with the class holding its keys."""
    from facetags.tui.app import key_sections

    return key_sections()


def all_keys() -> list[KeyHelp]:
    return key_help(sections())


def markdown_table() -> str:
    """The key table of docs/tui.md (``python -m facetags.tui.keys`` prints it)."""
    lines = ["| Where | Keys | Does |", "|---|---|---|"]
    for k in all_keys():
        lines.append(f"| {k.section} | `{k.keys}` | {k.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table())
