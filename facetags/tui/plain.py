"""User text on screen: file, folder and person names (and messages that quote them) shown as
the text they are.

Textual reads a plain ``str`` as markup: ``a[/b].jpg`` would raise (and end the session),
``[red]`` would colour the rest, and an ESC or a newline would reach the terminal or split the
line. :func:`plain` makes a :class:`~textual.content.Content` that is never parsed, with control
characters escaped as the CLI prints them (:func:`facetags.text.shown`).
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content

from facetags.text import shown


def plain(text: str) -> Content:
    """``text`` as a widget, a prompt or a table cell shows it: literally, on one line."""
    return Content(shown(text))


def plain_lines(lines: Iterable[str]) -> Content:
    """Several lines of user text, each shown as :func:`plain` shows it, one below the other."""
    return Content("\n".join(shown(line) for line in lines))
