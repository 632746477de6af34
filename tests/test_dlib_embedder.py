"""The opt-in dlib embedder (``embedder = "dlib-resnet-v1"``) in a real library.

A user switches an existing library to it: the next scan re-embeds every face from its stored
thumbnail, the user's names and placements stay (every kind of decision: test_model_change.py),
and the people it then makes of the Big Bang Theory group photos reach the clustering goals
(BCubed precision >= 0.98, F >= 0.95; ``tests/data/labels/bbt_groups.csv``, per-face labels),
through the same clustering as the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facetags.config import Settings
from facetags.evaluate.labels import read_labels
from facetags.evaluate.library_clusters import _score
from facetags.library import Library
from tests.library_support import group_photos

LABELS = Path(__file__).parent / "data" / "labels"


def person_of(lib: Library, face_id: int) -> int:
    person = lib.face(face_id).person_id
    assert person is not None
    return lib._resolve(person)


def test_switching_a_library_to_dlib(tmp_path: Path, models: tuple[Any, Any], shared_data: Path) -> None:
    pytest.importorskip("dlib")
    from facetags.vision.dlib_teacher import MODEL_ID as DLIB
    from facetags.vision.embed import model_version

    detector = models[0]
    photos = group_photos(shared_data, tmp_path / "photos")
    where = tmp_path / "library.db"

    with Library.open(where, Settings(library=where), detector=detector, embedder=models[1]) as lib:
        first = lib.scan([photos])
        assert first.faces >= 20
        faces = [f.face_id for f in lib.photo_faces(photos / "bbt1.jpg")]
        named = lib.name(person_of(lib, faces[0]), "Alice").id
        lib.set_assignment(faces[0], named)  # the user confirms the face

    dlib_settings = Settings(library=where, embedder=DLIB)
    with Library.open(where, dlib_settings, detector=detector) as lib:
        assert lib.status().model == model_version(DLIB)
        assert lib.status().stale_faces == first.faces
        second = lib.scan([photos])
        assert second.reembedded == first.faces  # from the thumbnails: no photo decoded again
        # every face has a dlib vector; the default model's stay (switching back costs nothing)
        both = {model_version(DLIB): first.faces, models[1].model_id: first.faces}
        assert lib.store.embedding_models() == both
        assert lib.clustering().model_id == model_version(DLIB)
        assert 0.5 < lib.clustering().threshold < 1.0  # calibrated for this model file

        # the user's decisions survived the change of model ...
        assert person_of(lib, faces[0]) == named
        assert lib.face(faces[0]).assigned_by == "user"
        assert str(photos / "bbt1.jpg") in lib.find(["alice"])

        # ... and the people it makes are right (after the re-cluster a scan of this size runs)
        scores, detected, missed, _ = _score(lib, photos, read_labels(LABELS / "bbt_groups.csv"))
        assert detected == first.faces and missed <= 1
        assert scores.bcubed_precision >= 0.98
        assert scores.bcubed_f >= 0.95


def test_onnx_graph_is_dlibs_network(tmp_path: Path, shared_data: Path) -> None:
    """The graph built from the model file gives dlib's own vectors for real faces' chips."""
    dlib = pytest.importorskip("dlib")
    import numpy as np

    from facetags.errors import ModelError
    from facetags.image.decode import decode
    from facetags.train.data import FaceCropper
    from facetags.vision.dlib_onnx import build_graph, load_net
    from facetags.vision.dlib_teacher import MODEL_FILE, DlibTeacher, models_folder

    teacher, cropper = DlibTeacher(), FaceCropper()
    chips = []
    for name in ("George_W_Bush", "Serena_Williams", "Hugo_Chavez"):
        for path in sorted((shared_data / "lfw" / "images" / name).glob("*.jpg"))[:3]:
            image = decode(path).image
            face = cropper.central_face(image)
            assert face is not None, path
            chips.append(teacher.chip(image, face.box))
    chips_arr = np.stack(chips)
    model_file = models_folder() / MODEL_FILE
    own = dlib.face_recognition_model_v1(str(model_file))
    reference = np.asarray([np.asarray(v) for v in own.compute_face_descriptor(chips)], np.float32)
    ours = load_net(model_file).describe(chips_arr)
    assert ours.shape == reference.shape == (9, 128)
    assert np.max(np.abs(ours - reference)) <= 1e-4
    # the teacher (training targets, the opt-in embedder) uses it, normalised
    normalised = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.allclose(teacher.describe_chips(chips), normalised, atol=1e-5)

    # a damaged model file is a clear ModelError, not a crash or a wrong network
    damaged = tmp_path / MODEL_FILE
    data = model_file.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        build_graph(damaged)
    damaged.write_bytes(b"not a dlib network")
    with pytest.raises(ModelError, match="not dlib's face recognition network"):
        build_graph(damaged)
