"""The default embedder, ``facetags-mobilenet-v2``, and the upgrade to it from the earlier
default, ``facetags-mobilenet-v1``.

Its file is checked with v1's in tests/test_embed.py (spec, int8 with the flip pass, unit
vectors); here the Big Bang Theory group photos are scanned with it end to end (its own
calibrated threshold, the clustering goal), and a library v1 made is opened with the new
default, as every existing library is after an upgrade: the next scan re-embeds its faces from
their thumbnails, keeps the user's names, merges and confirmations, and groups the people
better than v1 did (BCubed F 0.805 with v1, docs/clustering.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from facetags.config import Settings
from facetags.evaluate.labels import DetectedFace, match_labels, read_labels
from facetags.evaluate.library_clusters import _score
from facetags.library import Library
from facetags.vision.embed import model_version
from tests.library_support import group_photos
from tests.test_mobilefacenet import group_photos_library

MODEL_ID = "facetags-mobilenet-v2"
V1 = "facetags-mobilenet-v1"
LABELS = Path(__file__).parent / "data" / "labels" / "bbt_groups.csv"


def person_of(lib: Library, face_id: int) -> int:
    person = lib.face(face_id).person_id
    assert person is not None
    return lib._resolve(person)


def test_it_is_the_default() -> None:
    assert Settings().embedder == MODEL_ID


def test_a_library_scanned_with_it_groups_the_group_photos(
    tmp_path: Path, models: tuple[Any, Any], shared_data: Path
) -> None:
    with group_photos_library(tmp_path, shared_data, models[0], MODEL_ID) as (_, _, scores):
        assert scores.bcubed_precision >= 0.98 and scores.bcubed_f >= 0.95


def test_a_v1_library_upgrades_keeping_every_decision(
    tmp_path: Path, models: tuple[Any, Any], shared_data: Path
) -> None:
    detector = models[0]
    photos = group_photos(shared_data, tmp_path / "photos")
    where = tmp_path / "library.db"
    labels = read_labels(LABELS)

    # -- the library as the earlier default made it, with a user's work in it ------------------
    with Library.open(where, Settings(library=where, embedder=V1), detector=detector) as lib:
        first = lib.scan([photos])
        assert lib.store.embedding_models() == {model_version(V1): first.faces}
        faces = lib.faces()
        matched = match_labels(labels, [DetectedFace(f.face_id, Path(f.path).name, f.box) for f in faces])
        identity = dict(zip(matched.face_ids, matched.identities, strict=True))
        # v1 splits people (13 clusters for 8): the user merges one person's clusters and names it
        clusters: dict[str, set[int]] = {}
        for face_id, who in identity.items():
            clusters.setdefault(who, set()).add(person_of(lib, face_id))
        who, split = max(clusters.items(), key=lambda kv: len(kv[1]))
        assert len(split) >= 2, "v1 no longer splits anyone on these photos: pick another case"
        merged = lib.merge(sorted(split)).id
        lib.name(merged, who)
        theirs = sorted(f for f, w in identity.items() if w == who)
        lib.set_assignment(theirs[0], merged)  # and confirms a face
        # says a face of someone else is not the person it was put in, and hides a third person
        others = sorted({w for w in identity.values() if w != who})
        rejected = min(f for f, w in identity.items() if w == others[0])
        rejected_from = person_of(lib, rejected)
        lib.reject(rejected, rejected_from)
        hidden = person_of(lib, min(f for f, w in identity.items() if w == others[1]))
        lib.hide(hidden)
        v1_scores, _, _, _ = _score(lib, photos, labels)

    # -- before a scan: reading commands work and say what waits ------------------------------
    (tmp_path / "config.toml").write_text("", encoding="utf-8")  # the defaults, not the user's
    env = {k: v for k, v in os.environ.items() if k != "FACETAGS_EMBEDDER"}
    env["FACETAGS_CONFIG"] = str(tmp_path / "config.toml")
    done = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(where), "suggest", str(merged)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    assert f"the embedder changed: {first.faces} faces to re-embed" in done.stderr
    assert "Traceback" not in done.stderr

    # -- the same library opened with today's default -----------------------------------------
    with Library.open(where, Settings(library=where), detector=detector) as lib:
        assert lib.status().model == model_version(MODEL_ID)
        assert lib.status().stale_faces == first.faces
        assert [p.name for p in lib.people() if p.name] == [who]  # readable before re-embedding
        second = lib.scan([photos])
        assert second.reembedded == first.faces and second.counts.get("new", 0) == 0
        # every face has a v2 vector; v1's stay, so going back costs nothing
        assert lib.store.embedding_models() == {
            model_version(MODEL_ID): first.faces,
            model_version(V1): first.faces,
        }
        assert lib.clustering().model_id == model_version(MODEL_ID)

        # the user's merge, name and confirmation survived the change of model ...
        assert {person_of(lib, f) for f in theirs} == {merged}
        assert lib.face(theirs[0]).assigned_by == "user"
        assert set(lib.find([who])) >= {f.path for f in lib.faces() if f.face_id in theirs}
        assert person_of(lib, rejected) != rejected_from
        assert (rejected, rejected_from) in lib.store.all_rejections()
        assert lib.person(hidden).hidden
        # ... and v2 groups the rest better than v1 did
        scores, detected, missed, _ = _score(lib, photos, labels)
        assert detected == first.faces and missed <= 1
        assert scores.bcubed_precision >= 0.98
        assert scores.bcubed_f > v1_scores.bcubed_f
