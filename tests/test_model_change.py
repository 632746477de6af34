"""The embedder changes under the same id (retrained weights, an upgrade): every face is
re-embedded with the new file on the next scan, automatic assignments are redone around the
user's decisions, and no name, merge or rejection is lost.

The second model is real and genuinely different: the shipped ONNX with a fixed random rotation
of its 128-D output appended (as accurate, incompatible vectors), saved with its own spec under
the same id in a temporary models folder (``FACETAGS_MODELS_DIR``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facetags.config import Settings
from facetags.errors import ModelError
from facetags.library import Library, _threshold
from facetags.paths import models_dir
from facetags.people.calibrate import threshold_for
from facetags.vision.specs import ModelSpec, get_spec, sha256_file, split_version
from tests.library_support import copy, lfw

MODEL = Settings().embedder  # the default embedder, the one a library uses unless told


def rotation(dim: int = 128, seed: int = 7) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q.astype(np.float32)


def rotated_model(folder: Path) -> ModelSpec:
    """The shipped model followed by a MatMul with :func:`rotation`, with a spec of the same id."""
    import onnx
    from onnx import helper, numpy_helper

    shipped = get_spec(MODEL)
    model = onnx.load(str(shipped.path()))
    graph = model.graph
    out = graph.output[0].name
    inner = f"{out}_before_rotation"
    for node in graph.node:
        node.output[:] = [inner if o == out else o for o in node.output]
        node.input[:] = [inner if i == out else i for i in node.input]
    graph.initializer.append(numpy_helper.from_array(rotation(shipped.dim), "test_rotation"))
    graph.node.append(helper.make_node("MatMul", [inner, "test_rotation"], [out]))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL}.onnx"
    onnx.save(model, str(path))
    data = json.loads((models_dir() / f"{MODEL}.json").read_text(encoding="utf-8"))
    data.update(sha256=sha256_file(path), file=path.name)
    # a rotation keeps every cosine, so the shipped file's calibrated threshold is this one's too
    # (a retrained file would be calibrated; the uncalibrated fallback suits no particular model)
    data["extra"]["cluster_threshold"] = threshold_for(shipped.version_id)
    (folder / f"{MODEL}.json").write_text(json.dumps(data), encoding="utf-8")
    return get_spec(MODEL, folder)


def open_lib(where: Path, detector: Any) -> Library:
    """A library whose embedder is whatever ``FACETAGS_MODELS_DIR`` holds now (loaded on use)."""
    return Library.open(where, Settings(library=where), detector=detector)


def person_of(lib: Library, face_id: int) -> int:
    person = lib.face(face_id).person_id
    assert person is not None
    return lib._resolve(person)


def test_versioned_ids_resolve() -> None:
    spec = get_spec(MODEL)
    assert spec.version_id == f"{MODEL}@{spec.sha256[:12]}"
    assert split_version(spec.version_id) == (MODEL, spec.sha256[:12])
    assert split_version(MODEL) == (MODEL, "")
    assert get_spec(spec.version_id) == spec
    with pytest.raises(ModelError, match="not installed"):
        get_spec(f"{MODEL}@000000000000")
    # thresholds resolve for the current version, an older one and the bare id, never crash
    assert _threshold(spec.version_id) == _threshold(MODEL)
    assert 0 < _threshold(f"{MODEL}@000000000000") < 1


def test_model_change_keeps_decisions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    models: tuple[Any, Any],
    photo_dir: Path,
    shared_data: Path,
) -> None:
    pytest.importorskip("onnx")
    detector = models[0]
    shipped = get_spec(MODEL)
    copy(lfw(shared_data, "George_W_Bush", 1), photo_dir / "bush1.jpg")
    copy(lfw(shared_data, "George_W_Bush", 2), photo_dir / "bush2.jpg")
    where = tmp_path / "library.db"

    # -- a library made with the other file of the same id ------------------------------------
    other = rotated_model(tmp_path / "models")
    assert other.id == shipped.id and other.version_id != shipped.version_id
    monkeypatch.setenv("FACETAGS_MODELS_DIR", str(tmp_path / "models"))
    with open_lib(where, detector) as lib:
        assert lib.pipeline.model_id == other.version_id  # from the spec, before loading
        first = lib.scan([photo_dir])
        assert lib.pipeline.embedder.model_id == other.version_id
        assert first.reembedded == 0 and first.faces >= 9
        assert lib.store.embedding_models() == {other.version_id: first.faces}

        t1 = [f.face_id for f in lib.photo_faces(photo_dir / "t1.jpg")]
        (astro,) = [f.face_id for f in lib.photo_faces(photo_dir / "astronaut.jpg")]
        (b1,) = [f.face_id for f in lib.photo_faces(photo_dir / "bush1.jpg")]
        (b2,) = [f.face_id for f in lib.photo_faces(photo_dir / "bush2.jpg")]
        old_vectors = {f: lib.store.face_embedding(f, other.version_id) for f in (astro, b1)}

        ada = lib.name(person_of(lib, t1[0]), "Ada").id
        eileen = lib.name(person_of(lib, astro), "Eileen").id
        lib.set_assignment(b2, None)  # the user splits Bush's second photo off ...
        bush = lib.merge([person_of(lib, b1), person_of(lib, b2)]).id  # ... and merges it back
        lib.name(bush, "George")
        rejected_from = person_of(lib, t1[1])
        lib.reject(t1[1], rejected_from)
        assert person_of(lib, t1[1]) != rejected_from
        lib.set_assignment(astro, eileen)  # the user confirms a face
        people_before = {p.id: p.name for p in lib.people() if p.name}

    # -- back to the shipped model: the scan re-embeds everything first ------------------------
    monkeypatch.delenv("FACETAGS_MODELS_DIR")
    copy(lfw(shared_data, "George_W_Bush", 3), photo_dir / "bush3.jpg")
    with open_lib(where, detector) as lib:
        assert lib.status().model == shipped.version_id
        assert lib.status().stale_faces == first.faces
        second = lib.scan([photo_dir])
        assert second.reembedded == first.faces
        assert second.to_json()["reembedded"] == first.faces
        assert second.counts["new"] == 1
        total = first.faces + second.faces
        # every face has a vector of the shipped file and none of the old one is left to mix in
        assert lib.store.embedding_models() == {shipped.version_id: total}
        assert lib.stale_faces() == 0 and lib.status().stale_faces == 0
        assert lib.clustering().model_id == shipped.version_id

        # the two files are both real embedders: the same faces, rotated vectors
        q = rotation(shipped.dim)
        for face, old in old_vectors.items():
            new = lib.store.face_embedding(face, shipped.version_id)
            assert old is not None and new is not None
            assert float(new @ old) < 0.9  # incompatible spaces ...
            assert float((new @ q) @ old) > 0.9  # ... of the same face (from its JPEG thumbnail)

        # names, merges, user placements and rejections survived
        assert {p.id: p.name for p in lib.people() if p.name} == people_before
        assert person_of(lib, t1[0]) == ada
        assert lib.face(astro).assigned_by == "user"
        assert person_of(lib, astro) == eileen
        assert person_of(lib, b1) == person_of(lib, b2) == bush
        assert person_of(lib, t1[1]) != rejected_from
        assert (t1[1], rejected_from) in lib.store.all_rejections()
        assert lib.find(["Ada"]) == [str(photo_dir / "t1.jpg")]
        assert set(lib.find(["george"])) >= {str(photo_dir / "bush1.jpg"), str(photo_dir / "bush2.jpg")}
        assert lib.find(["Eileen"]) == [str(photo_dir / "astronaut.jpg")]

        # a later scan finds nothing stale and re-embeds nothing
        assert lib.scan([photo_dir]).reembedded == 0

    with open_lib(where, detector) as lib:
        assert lib.scan([photo_dir]).reembedded == 0


def test_legacy_bare_model_ids_are_reembedded(open_library: Any, photo_dir: Path) -> None:
    """A library from before versioned ids (vectors stored under the bare id) keeps working:
    its faces count as stale, the next scan re-embeds them, the names stay."""
    shipped = get_spec(MODEL)
    lib = open_library()
    report = lib.scan([photo_dir])
    (astro,) = [f.face_id for f in lib.photo_faces(photo_dir / "astronaut.jpg")]
    named = lib.name(person_of(lib, astro), "Eileen").id
    with lib.store.write():
        lib.store.conn.execute("UPDATE embeddings SET model_id = ?", (MODEL,))
    lib.close()

    lib = open_library()
    assert lib.status().stale_faces == report.faces
    assert lib.people()  # reading commands work before anything is re-embedded
    assert lib.scan([photo_dir]).reembedded == report.faces
    assert lib.store.embedding_models() == {shipped.version_id: report.faces}
    assert person_of(lib, astro) == named
    assert lib.find(["eileen"]) == [str(photo_dir / "astronaut.jpg")]


def test_scan_summary_mentions_reembedding() -> None:
    from facetags.commands.scan import summary
    from facetags.ingest.indexer import ScanReport

    report = ScanReport(reembedded=5)
    assert "5 faces re-embedded" in summary(report)
    assert "re-embedded" not in summary(ScanReport())


def test_rotated_model_is_a_real_embedder(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from facetags.vision.embed import OnnxEmbedder, load_embedder

    other = rotated_model(tmp_path / "models")
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    ours = load_embedder(MODEL).embed(crops)
    theirs = OnnxEmbedder(other, other.path(tmp_path / "models")).embed(crops)
    assert np.allclose(ours @ rotation(), theirs, atol=1e-4)
    shutil.rmtree(tmp_path / "models")


def _partition(lib: Library) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for face in lib.faces():
        groups.setdefault(face.person_id or 0, set()).add(face.face_id)
    return {frozenset(g) for g in groups.values()}


def test_an_embedder_changed_and_back_groups_the_people_with_it_again(
    tmp_path: Path, shared_data: Path
) -> None:
    """The default embedder, then facetags-mobilenet-v1, then the default again: every face
    still had the default's vectors, so nothing was re-embedded, and the people stayed as v1
    had grouped them (more clusters: v1 splits people more). They are grouped with the default's
    vectors again, as a library that never left it is."""
    folder = tmp_path / "photos"
    shutil.copytree(shared_data / "deepface" / "photos", folder)
    where = tmp_path / "lib.db"

    def scanned(**settings: Any) -> set[frozenset[int]]:
        with Library.open(where, Settings(library=where, **settings)) as lib:
            lib.scan([folder])
            return _partition(lib)

    default = scanned()
    other = scanned(embedder="facetags-mobilenet-v1")
    assert other != default, "the two embedders group these photos alike: the test shows nothing"
    assert scanned() == default
