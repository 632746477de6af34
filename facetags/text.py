"""Small text helpers every front end uses (a leaf: imports nothing of facetags)."""

from __future__ import annotations

import logging
import unicodedata


def plural(n: int, word: str) -> str:
    """``1 face``, ``2 faces``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def ljust_columns(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns: a wide character (CJK, most emoji) takes
    two, a combining mark none, so names in any script line up in a column."""
    used = sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )
    return text + " " * max(0, width - used)


def _escapes() -> dict[int, str]:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    table = {c: named.get(c, f"\\x{c:02x}") for c in (*range(0x20), *range(0x7F, 0xA0))}
    # line and paragraph separators, bidi embeddings, overrides and isolates (they reorder the
    # rest of the line on screen)
    for c in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
        table[c] = f"\\u{c:04x}"
    # a file name's undecodable bytes (Python's surrogate escapes U+DC80..U+DCFF): the byte
    table.update({c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
    table.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000) if c not in table})
    return table


_ESCAPES = _escapes()


def shown(text: str) -> str:
    """``text`` safe to print on a terminal, on one line: control characters (ESC, newline,
    tab, C1), Unicode line separators and bidi overrides as ``\\x1b``, ``\\n``, ``\\u202e``;
    a file name's undecodable bytes as ``\\xNN``. Everything else, accents and scripts
    included, is left as it is. For what people read; ``--json`` output keeps the real text."""
    return text.translate(_ESCAPES)


class ShownFormatter(logging.Formatter):
    """Log lines with their messages passed through :func:`shown` (a path's ESC or newline
    cannot reach the terminal or split the line); a traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return shown(super().formatMessage(record))


class OwnDebug(logging.Filter):
    """Debug lines are facetags' own (``-vv``): a library's (Pillow's dump of every EXIF tag of
    every photo) says nothing to users. Their warnings and info lines pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or record.name.partition(".")[0] == "facetags"
