"""Clustering thresholds per embedder model.

A threshold is a cosine similarity: two faces at least this similar may be one person. It is a
property of the embedder, so it is stored per model file in ``thresholds.json``, each entry with
how it was calibrated (:mod:`facetags.evaluate.calibration` does the calibrating).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Calibrated thresholds, keyed "model id@first 12 hex of its sha256" (a retrained model keeps its
#: id) or a bare id for models that never change; each entry records how it was calibrated.
#: Written by ``python benchmarks/cluster_compare.py --save``; docs/clustering.md has the runs.
#: A model's spec may carry its own, ``extra["cluster_threshold"]``, which wins.
THRESHOLDS_FILE = Path(__file__).with_name("thresholds.json")
#: For a model nobody has calibrated: conservative (few merges).
FALLBACK = 0.6


@functools.cache
def _table() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: %s", THRESHOLDS_FILE, exc)
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def calibrated_threshold(
    model_id: str, extra: dict[str, object] | None = None, sha256: str = ""
) -> float | None:
    """The model's calibrated clustering threshold: its spec's ``cluster_threshold``, else the
    table's entry for that exact file, else for the id; None when nobody calibrated it.

    ``model_id`` may be bare or versioned (``id@<12 hex>``, what libraries store): the version
    names the file as well as ``sha256`` does."""
    value = (extra or {}).get("cluster_threshold")
    if isinstance(value, int | float):
        return float(value)
    table = _table()
    base, _, version = model_id.rpartition("@")
    if not base:
        base, version = model_id, ""
    keys = [f"{base}@{v}" for v in (sha256[:12], version) if v] + [base]
    for key in dict.fromkeys(keys):
        if key in table and isinstance(table[key].get("threshold"), int | float):
            return float(table[key]["threshold"])
    return None


def threshold_for(model_id: str, extra: dict[str, object] | None = None, sha256: str = "") -> float:
    """:func:`calibrated_threshold`, else :data:`FALLBACK` (with a warning)."""
    return or_fallback(calibrated_threshold(model_id, extra, sha256), model_id)


def or_fallback(found: float | None, model_id: str) -> float:
    """A calibrated threshold, or :data:`FALLBACK` (with a warning) when there is none."""
    if found is not None:
        return found
    log.warning("no calibrated clustering threshold for %s; using %.2f", model_id, FALLBACK)
    return FALLBACK


def save_threshold(key: str, threshold: float, **details: Any) -> None:
    """Record a calibrated threshold in :data:`THRESHOLDS_FILE` (keys sorted, one per model)."""
    data = dict(_table())
    data[key] = {"threshold": round(float(threshold), 4), **details}
    THRESHOLDS_FILE.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n", encoding="utf-8")
    _table.cache_clear()
