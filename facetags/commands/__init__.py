"""The CLI's sub-commands, one module per command or small family (see facetags/cli.py)."""

from facetags.text import plural, shown

__all__ = ["plural", "shown"]
