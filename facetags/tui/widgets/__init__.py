"""Widgets of the facetags TUI."""
