"""Clustering scores and label matching on examples small enough to check by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetags.evaluate.clustering import agreement, contingency, score_clustering
from facetags.evaluate.labels import (
    DetectedFace,
    LabelError,
    LabelledFace,
    Labels,
    iou,
    lfw_library_rows,
    match_labels,
    read_labels,
)

LABELS = Path(__file__).parent / "data" / "labels"


def test_perfect_clustering_scores_one() -> None:
    s = score_clustering(["a", "a", "b", "c"], [7, 7, 3, 9])
    assert (s.pairwise_precision, s.pairwise_recall, s.bcubed_precision, s.bcubed_recall) == (1, 1, 1, 1)
    assert (s.clusters, s.people, s.faces) == (3, 3, 4)
    assert s.singleton_share == pytest.approx(2 / 4)


def test_hand_checked_example() -> None:
    # truth: a a a b b ; predicted: {0,1} {2,3} {4}
    s = score_clustering(["a", "a", "a", "b", "b"], [1, 1, 2, 2, 3])
    # same-cluster pairs: (0,1) right, (2,3) wrong -> precision 1/2
    # same-person pairs: a: 3, b: 1 -> 4; found together: (0,1) -> recall 1/4
    assert s.pairwise_precision == pytest.approx(1 / 2)
    assert s.pairwise_recall == pytest.approx(1 / 4)
    assert s.pairwise_f == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    # BCubed precision per face: 1, 1, 1/2, 1/2, 1 -> 4/5
    # BCubed recall per face: 2/3, 2/3, 1/3, 1/2, 1/2 -> (2/3+2/3+1/3+1/2+1/2)/5 = 8/15
    assert s.bcubed_precision == pytest.approx(4 / 5)
    assert s.bcubed_recall == pytest.approx(8 / 15)
    assert s.bcubed_f == pytest.approx(2 * (4 / 5) * (8 / 15) / (4 / 5 + 8 / 15))
    assert (s.clusters, s.people) == (3, 2)
    assert s.singleton_share == pytest.approx(1 / 5)


def test_all_in_one_cluster_and_all_alone() -> None:
    truth = ["a", "a", "b", "b"]
    merged = score_clustering(truth, [0, 0, 0, 0])
    assert merged.bcubed_recall == 1 and merged.bcubed_precision == pytest.approx(0.5)
    assert merged.pairwise_precision == pytest.approx(2 / 6)
    alone = score_clustering(truth, [0, 1, 2, 3])
    assert alone.bcubed_precision == 1 and alone.bcubed_recall == pytest.approx(0.5)
    assert alone.pairwise_precision == 1 and alone.pairwise_recall == 0 and alone.pairwise_f == 0
    assert alone.singleton_share == 1


def test_contingency_and_agreement() -> None:
    assert contingency(["a", "b", "a"], [1, 1, 2]).tolist() == [[1, 1], [1, 0]]
    assert agreement([1, 1, 2], ["x", "x", "y"]) == 1.0
    assert agreement([1, 1, 2, 2], [1, 2, 1, 2]) == pytest.approx(agreement([1, 2, 1, 2], [1, 1, 2, 2]))
    with pytest.raises(ValueError):
        score_clustering(["a"], [1, 2])


def test_iou() -> None:
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1
    assert iou((0, 0, 2, 1), (1, 0, 2, 1)) == pytest.approx(1 / 3)
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0


def test_photo_labels_go_to_the_largest_face() -> None:
    labels = Labels((LabelledFace("p.jpg", "ann"), LabelledFace("q.jpg", "bob")), per_face=False)
    faces = [
        DetectedFace(1, "p.jpg", (0.0, 0.0, 0.1, 0.1)),
        DetectedFace(2, "p.jpg", (0.5, 0.5, 0.3, 0.3)),
        DetectedFace(3, "other.jpg", (0.0, 0.0, 0.5, 0.5)),
    ]
    m = match_labels(labels, faces)
    assert (m.face_ids, m.identities, m.missed) == ([2], ["ann"], 1)


def test_face_labels_match_by_iou_one_to_one() -> None:
    labels = Labels(
        (
            LabelledFace("p.jpg", "ann", (0.10, 0.10, 0.20, 0.20)),
            LabelledFace("p.jpg", "bob", (0.60, 0.10, 0.20, 0.20)),
            LabelledFace("p.jpg", "cy", (0.40, 0.70, 0.10, 0.10)),
        ),
        per_face=True,
    )
    faces = [
        DetectedFace(10, "p.jpg", (0.62, 0.08, 0.20, 0.24)),  # bob
        DetectedFace(11, "p.jpg", (0.08, 0.12, 0.22, 0.20)),  # ann
        DetectedFace(12, "p.jpg", (0.90, 0.90, 0.05, 0.05)),  # nobody labelled
    ]
    m = match_labels(labels, faces)
    assert sorted(zip(m.face_ids, m.identities, strict=True)) == [(10, "bob"), (11, "ann")]
    assert (m.missed, m.unlabelled) == (1, 1)


def test_read_label_files_in_the_repo() -> None:
    bbt = read_labels(LABELS / "bbt_groups.csv")
    assert bbt.per_face and len(bbt.faces) == 23 and len(bbt.photos) == 5
    assert {"sheldon", "leonard", "raj", "howard", "penny", "amy", "bernadette"} <= bbt.identities
    for f in bbt.faces:
        assert f.box is not None and all(0 <= v <= 1 for v in f.box)
    deep = read_labels(LABELS / "deepface.csv")
    assert not deep.per_face and len(deep.faces) == 61 and len(deep.identities) == 13
    assert "couple.jpg" not in deep.photos


def test_bad_label_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image,name\na.jpg,x\n")
    with pytest.raises(LabelError):
        read_labels(bad)


def test_lfw_library_labels_match_the_committed_file(shared_data: Path) -> None:
    rows = lfw_library_rows(shared_data / "lfw")
    committed = read_labels(LABELS / "lfw_devtest.csv")
    assert [(f.photo, f.identity) for f in committed.faces] == rows
    counts: dict[str, int] = {}
    for _, name in rows:
        counts[name] = counts.get(name, 0) + 1
    assert min(counts.values()) >= 2 and len(counts) == 496
