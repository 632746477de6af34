"""The opt-in preview of facetags' next own embedder (``embedder = "facetags-mobilenet-v2"``).

Its file is checked with the default's in tests/test_embed.py (spec, int8 with the flip pass,
unit vectors); here the Big Bang Theory group photos are scanned with it end to end: its own
calibrated threshold, and the people grouped better than the default groups them (BCubed F
0.805 with ``facetags-mobilenet-v1``, docs/clustering.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.test_mobilefacenet import group_photos_library

MODEL_ID = "facetags-mobilenet-v2"


def test_a_library_scanned_with_it_groups_the_group_photos(
    tmp_path: Path, models: tuple[Any, Any], shared_data: Path
) -> None:
    with group_photos_library(tmp_path, shared_data, models[0], MODEL_ID) as (_, _, scores):
        assert scores.bcubed_precision >= 0.98 and scores.bcubed_f >= 0.9
