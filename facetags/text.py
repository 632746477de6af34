"""Small text helpers every front end uses (a leaf: imports nothing of facetags)."""

from __future__ import annotations


def plural(n: int, word: str) -> str:
    """``1 face``, ``2 faces``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
