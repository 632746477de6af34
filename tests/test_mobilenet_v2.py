"""The opt-in preview of facetags' next own embedder (``embedder = "facetags-mobilenet-v2"``).

Its file is checked with the default's in tests/test_embed.py (spec, int8 with the flip pass,
unit vectors); here the Big Bang Theory group photos are scanned with it end to end: its own
calibrated threshold, and the people grouped better than the default groups them (BCubed F
0.805 with ``facetags-mobilenet-v1``, docs/clustering.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from facetags.config import Settings
from facetags.evaluate.labels import read_labels
from facetags.evaluate.library_clusters import _score
from facetags.library import Library
from facetags.people.calibrate import calibrated_threshold
from facetags.vision.embed import model_version

MODEL_ID = "facetags-mobilenet-v2"
LABELS = Path(__file__).parent / "data" / "labels"


def test_a_library_scanned_with_it_groups_the_group_photos(
    tmp_path: Path, models: tuple[Any, Any], shared_data: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((shared_data / "bbt" / "groups").glob("*.jpg")):
        shutil.copy2(p, photos / p.name)
    where = tmp_path / "library.db"
    with Library.open(where, Settings(library=where, embedder=MODEL_ID), detector=models[0]) as lib:
        report = lib.scan([photos])
        assert report.faces >= 20
        assert lib.store.embedding_models() == {model_version(MODEL_ID): report.faces}
        threshold = calibrated_threshold(model_version(MODEL_ID))
        assert threshold is not None and lib.clustering().threshold == threshold
        scores, detected, missed, _ = _score(lib, photos, read_labels(LABELS / "bbt_groups.csv"))
        assert detected == report.faces and missed <= 1
        assert scores.bcubed_precision >= 0.98 and scores.bcubed_f >= 0.9
