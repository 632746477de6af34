"""facetags: private, offline face tagging for personal photo libraries."""

__version__ = "0.1.0"
