"""Score the product's people on a labelled folder: index it into a temporary library, as a user
would, and compare the people the library made with the labels (``facetags eval clusters``)."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetags.config import Settings
from facetags.evaluate.clustering import ClusterScores, score_clustering
from facetags.evaluate.labels import DetectedFace, Labels, match_labels, read_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryClusterResult:
    scores: ClusterScores  # after the scan's re-cluster: what the user sees
    incremental: ClusterScores  # face by face as photos arrived, before the re-cluster
    model_id: str
    threshold: float
    photos: int
    faces_detected: int
    labels_missed: int  # labelled faces (or photos) no detected face matched
    faces_unlabelled: int  # detected faces in labelled photos that matched no label
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            **self.scores.to_json(),
            "incremental": self.incremental.to_json(),
            "model_id": self.model_id,
            "threshold": self.threshold,
            "photos": self.photos,
            "faces_detected": self.faces_detected,
            "labels_missed": self.labels_missed,
            "faces_unlabelled": self.faces_unlabelled,
            "seconds": round(self.seconds, 3),
        }


def _score(lib: Any, folder: Path, labels: Labels) -> tuple[ClusterScores, int, int, int]:
    records = lib.faces()
    by_id = {}
    detected = []
    for r in records:
        rel = Path(os.path.relpath(r.path, folder)).as_posix()
        detected.append(DetectedFace(r.face_id, rel, r.box))
        by_id[r.face_id] = r.person_id
    m = match_labels(labels, detected)
    if not m.face_ids:
        raise ValueError("no labelled face was found in the folder")
    predicted = [by_id[f] if by_id[f] is not None else -f for f in m.face_ids]
    return score_clustering(m.identities, predicted), len(records), m.missed, m.unlabelled


def evaluate_folder(
    labels_path: str | Path,
    folder: str | Path,
    settings: Settings | None = None,
    detector: Any = None,
    embedder: Any = None,
    only_labelled: bool = False,
) -> LibraryClusterResult:
    """Index ``folder`` (or only its labelled photos) into a throw-away library and score its
    people against the labels."""
    from facetags.library import Library

    labels = read_labels(labels_path)
    folder = Path(folder).resolve()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facetags-eval-") as tmp:
        where = Path(tmp) / "library.db"
        temp_settings = dataclasses.replace(settings or Settings(), library=where)
        with Library.open(where, temp_settings, detector=detector, embedder=embedder) as lib:
            targets = [folder / p for p in sorted(labels.photos)] if only_labelled else [folder]
            report = lib.scan(targets)
            log.info("indexed %s: %s", folder, dict(report.counts))
            incremental, _, _, _ = _score(lib, folder, labels)
            lib.recluster()
            scores, detected, missed, unlabelled = _score(lib, folder, labels)
            assigner = lib.clustering()
            model_id, threshold = assigner.model_id, assigner.threshold
            photos = int(lib.status().photos)
    return LibraryClusterResult(
        scores=scores,
        incremental=incremental,
        model_id=model_id,
        threshold=threshold,
        photos=photos,
        faces_detected=detected,
        labels_missed=missed,
        faces_unlabelled=unlabelled,
        seconds=time.perf_counter() - start,
    )
