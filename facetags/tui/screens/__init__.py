"""Screens of the facetags TUI, one per file."""
