"""Faces and embeddings of the labelled evaluation sets, cached under ``.cache/cluster/``.

Two pipelines:

* ``facetags``: the product's own path, :class:`facetags.ingest.pipeline.Pipeline` (MTCNN
  detector, 5-point alignment, the configured embedder, ``FACETAGS_EMBEDDER`` to choose);
* ``dlib``: the reference tool's recipe (dlib HOG detector upsampled once, 5-point chip, ResNet
  descriptor), as face_recognition runs it.

Every detected face of every labelled photo is kept (a real library clusters them all); the
labels say which ones are scored. The cache key is the pipeline, its model id (with the first 12
hex digits of the model file's sha256, since a retrained model keeps its id) and the set.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetags.evaluate.labels import (
    DetectedFace,
    LabelledFace,
    Labels,
    lfw_library_rows,
    match_labels,
    read_labels,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))
LABELS = ROOT / "tests" / "data" / "labels"
#: LFW DevTrain people held out of the embedder's training (``facetags train fit --val-names-file``).
HELDOUT = LABELS / "lfw_devtrain_heldout.json"
CACHE = ROOT / ".cache" / "cluster"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledSet:
    name: str
    folder: Path
    labels: Labels


def labelled_set(name: str, calib_people: int = 300, seed: int = 0) -> LabelledSet:
    if name == "deepface":
        return LabelledSet(name, DATA / "deepface" / "photos", read_labels(LABELS / "deepface.csv"))
    if name == "bbt":
        return LabelledSet(name, DATA / "bbt" / "groups", read_labels(LABELS / "bbt_groups.csv"))
    if name == "lfw":
        return LabelledSet(name, DATA / "lfw" / "images", read_labels(LABELS / "lfw_devtest.csv"))
    if name == "pins_devtest":  # reported only: people no model of facetags trains on or is chosen on
        from facetags.train.data import DEVTEST_IN_PINS

        # the 8 Pins people who are LFW DevTest people too
        return LabelledSet(name, DATA, Labels(pins_labels(DEVTEST_IN_PINS), per_face=False))
    if name in ("pins_heldout", "heldout"):  # calibration sets, never reported on
        from facetags.train.data import PINS_HELDOUT

        # the Pins people no training run trains on
        pins = pins_labels(PINS_HELDOUT)
        if name == "pins_heldout":
            return LabelledSet(name, DATA, Labels(pins, per_face=False))
        # with the LFW DevTrain people held out of training: two sources of people never trained on
        lfw = labelled_set("lfw_heldout")
        faces = tuple(LabelledFace(f"lfw/images/{f.photo}", f.identity) for f in lfw.labels.faces)
        return LabelledSet(name, DATA, Labels(faces + pins, per_face=False))
    if name in ("lfw_devtrain", "lfw_heldout"):  # calibration sets, never reported on
        rows = lfw_library_rows(DATA / "lfw", "peopleDevTrain.txt")
        people = sorted({p for _, p in rows})
        if name == "lfw_heldout":  # the DevTrain people facetags' embedder never trained on
            keep = set(json.loads(HELDOUT.read_text(encoding="utf-8"))) & set(people)
        else:  # a seeded sample of DevTrain people with 2+ photos
            keep = set(
                np.random.default_rng(seed).choice(people, size=min(calib_people, len(people)), replace=False)
            )
        faces = tuple(LabelledFace(photo, who) for photo, who in rows if who in keep)
        return LabelledSet(name, DATA / "lfw" / "images", Labels(faces, per_face=False))
    raise ValueError(f"unknown set {name!r}")


def pins_labels(people: Collection[str]) -> tuple[LabelledFace, ...]:
    """The photos of these Pins people under ``DATA/pins``, one label per photo (its largest face)."""
    from facetags.train.data import pins_items

    return tuple(LabelledFace(i.path, str(i.identity)) for i in pins_items(DATA, people))


@dataclass(frozen=True)
class FaceSet:
    model_id: str
    photos: np.ndarray  # (n,) str, relative photo path of each face
    boxes: np.ndarray  # (n, 4) normalised x, y, w, h
    vectors: np.ndarray  # (n, dim) unit length
    seconds: float  # wall time it took to compute (0 when unknown)

    def photo_ids(self) -> np.ndarray:
        _, ids = np.unique(self.photos, return_inverse=True)
        return ids.astype(np.int64)

    def scored(self, labels: Labels) -> tuple[np.ndarray, list[str], int]:
        """Indices of the labelled faces, their identities, and how many labels went unmatched."""
        pairs = enumerate(zip(self.photos, self.boxes, strict=True))
        det = [DetectedFace(i, str(p), (b[0], b[1], b[2], b[3])) for i, (p, b) in pairs]
        m = match_labels(labels, det)
        return np.asarray(m.face_ids, np.int64), m.identities, m.missed


Extractor = Callable[[Path], list[tuple[tuple[float, float, float, float], np.ndarray]]]


def _facetags_extractor() -> tuple[str, Extractor]:
    from facetags.config import load_settings
    from facetags.ingest.pipeline import Pipeline

    pipe = Pipeline(load_settings())

    def run(path: Path) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
        analysis = pipe.analyse(pipe.decode(path).decoded)
        return [(tuple(f.box), np.asarray(f.embedding, np.float32)) for f in analysis.faces]  # type: ignore[misc]

    return pipe.embedder.model_id, run  # already "id@sha256 prefix" (facetags.vision.specs)


def _dlib_extractor() -> tuple[str, Extractor]:
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def run(path: Path) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
        from PIL import ImageOps

        with Image.open(path) as im:
            img = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        h, w = img.shape[:2]
        out = []
        for r in det(img, 1):
            v = np.asarray(net.compute_face_descriptor(img, sp(img, r)), np.float32)
            x0, y0 = max(r.left(), 0), max(r.top(), 0)
            box = (x0 / w, y0 / h, (min(r.right(), w) - x0) / w, (min(r.bottom(), h) - y0) / h)
            out.append((box, v / np.linalg.norm(v)))
        return out

    return "dlib-resnet-v1", run


def load_faces(set_name: str, pipeline: str = "facetags") -> tuple[LabelledSet, FaceSet]:
    """The set's faces, computed once per pipeline and model and then read from the cache."""
    lset = labelled_set(set_name)
    model_id, run = _facetags_extractor() if pipeline == "facetags" else _dlib_extractor()
    path = CACHE / pipeline / model_id / f"{set_name}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return lset, FaceSet(model_id, z["photos"], z["boxes"], z["vectors"], float(z["seconds"]))
    photos, boxes, vectors = [], [], []
    start = time.perf_counter()
    todo = sorted(lset.labels.photos)
    for n, photo in enumerate(todo):
        for box, vec in run(lset.folder / photo):
            photos.append(photo)
            boxes.append(box)
            vectors.append(vec)
        if n % 200 == 0:
            log.info("%s/%s: %d/%d photos", pipeline, set_name, n, len(todo))
    seconds = time.perf_counter() - start
    fs = FaceSet(
        model_id,
        np.asarray(photos, dtype=str),
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(vectors, np.float32).reshape(len(photos), -1),
        seconds,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, photos=fs.photos, boxes=fs.boxes, vectors=fs.vectors, seconds=seconds)
    return lset, fs
