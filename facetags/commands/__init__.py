"""The CLI's sub-commands, one module per command or small family (see facetags/cli.py)."""


def plural(n: int, word: str) -> str:
    """``1 face``, ``2 faces``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
