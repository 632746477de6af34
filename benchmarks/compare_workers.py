"""The tools that ``benchmarks/compare.py`` runs, one per subprocess (so each has its own peak memory).

    python benchmarks/compare_workers.py TOOL JOB.json OUT.json

``JOB.json``: ``{"root": folder, "photos": [relative paths], "options": {...}}``. ``OUT.json`` gets
every detected face (photo, box normalised to the photo as the tool read it), one or more
clusterings of those faces, seconds per stage, peak RSS and CPU seconds (of the tool's whole
process tree: facetags analyses photos in worker processes, one per core, as a user's scan does).
Tools:

* ``facetags``: a fresh temporary library, ``Library.scan(photos)`` (decode, detect, align,
  embed, store, assign, and the scan's re-cluster), then the people it made. Default settings.
* ``face_recognition``: its documented recipe, photo by photo: ``load_image_file``,
  ``face_locations`` (HOG, upsample 1), ``face_encodings`` (5-point, ``num_jitters=1``); then
  the encodings clustered with dlib's Chinese whispers at 0.5 (dlib's ``face_clustering.py``)
  and with DBSCAN at eps 0.6 (min_samples 1: every face a core point, none noise). When the
  ``face_recognition`` package is not importable, the same dlib calls are made directly
  (``impl`` in the output says which). ``max_side`` (option) shrinks photos first: not the recipe,
  a what-if for the detector's cost.
* ``mtcnn+dlib`` (a swap): facetags' decoder and MTCNN detector, dlib's 5-point chip and ResNet
  descriptor on the boxes it found (``facetags.vision.dlib_teacher``). Its vectors are clustered
  by the parent with facetags' algorithm.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

T0 = time.perf_counter()  # as close to the process start as Python lets us
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import TreePeak  # noqa: E402

#: this process and its worker processes, for the peak memory of the whole tool
PEAK = TreePeak([os.getpid()], every=0.2)


class Stages:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


def _finish(out: dict[str, Any], ready: float, path: Path, end: float | None = None) -> None:
    """Write the result; ``end``: when the timed work ended (what follows is left out of the
    parent's wall clock as ``untimed_s``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, once joined
    now = time.perf_counter()
    end = now if end is None else end
    out["ready_s"] = round(ready - T0, 3)  # imports and model loading
    out["process_s"] = round(end - ready, 3)  # the photos, then the clustering
    out["untimed_s"] = round(now - end, 3)
    out["maxrss_mb"] = round(max(usage.ru_maxrss * 1024, PEAK.peak) / 2**20, 1)  # ru_maxrss: kilobytes
    cpu = usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime
    out["cpu_s"] = round(cpu, 2)
    out["stages"] = {k: round(v, 3) for k, v in out.get("stages", {}).items()}
    path.write_text(json.dumps(out))


def _result(
    tool: str,
    photos: list[str],
    failed: list[str],
    faces: list[dict[str, Any]],
    vectors: list[np.ndarray],
    stages: dict[str, float],
    info: dict[str, Any],
    out_path: Path,
    clusterings: dict[str, list[int]] | None = None,
    cluster_seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A tool's result for the parent; the face vectors go to a .npy beside it (not timed)."""
    vec_path = out_path.with_suffix(".npy")
    matrix = np.asarray(vectors, np.float32).reshape(len(vectors), -1) if vectors else np.zeros((0, 128))
    np.save(vec_path, matrix.astype(np.float32))
    return {
        "tool": tool,
        "photos": len(photos),
        "failed": failed,
        "faces": faces,
        "clusterings": clusterings or {},
        "cluster_seconds": {k: round(v, 3) for k, v in (cluster_seconds or {}).items()},
        "stages": stages,
        "vectors": vec_path.name,
        "info": info,
    }


def run_facetags(root: Path, photos: list[str], options: dict[str, Any], out_path: Path) -> None:
    import dataclasses
    import os
    import tempfile

    from facetags.config import Settings
    from facetags.library import Library

    with tempfile.TemporaryDirectory(prefix="facetags-compare-") as tmp:
        where = Path(tmp) / "library.db"
        settings = dataclasses.replace(Settings(), library=where)
        if options.get("embedder"):  # the opt-in dlib embedder, say
            settings = dataclasses.replace(settings, embedder=options["embedder"])
        with Library.open(where, settings) as lib:
            _ = lib.pipeline.detector, lib.pipeline.embedder  # load the models before the clock
            ready = time.perf_counter()
            report = lib.scan([root / p for p in photos])
            scanned = time.perf_counter()
            faces, labels, ids = [], [], []
            for r in lib.faces():
                faces.append({"photo": Path(os.path.relpath(r.path, root)).as_posix(), "box": list(r.box)})
                labels.append(r.person_id if r.person_id is not None else -r.face_id)
                ids.append(r.face_id)
            clustering = lib.clustering()
            end = time.perf_counter()
            # not timed: the embeddings, for the parent's threshold diagnostics
            found = [lib.store.face_embedding(i, clustering.model_id) for i in ids]
            vecs = [v for v in found if v is not None]
            assert len(vecs) == len(ids), "a face without a vector of the library's model"
            spec = getattr(lib.pipeline.embedder, "spec", None)
            stages = dict(report.timings)
            stages["cluster (scan's re-cluster)"] = scanned - ready - report.seconds
            info = {
                "model_id": clustering.model_id,
                "sha256": getattr(spec, "sha256", ""),
                "threshold": clustering.threshold,
                "detector": lib.pipeline.detector_id,
            }
            out = _result(
                "facetags", photos, [p for p, _ in report.failures], faces, vecs, stages, info, out_path,
                clusterings={"library": labels},
                cluster_seconds={"library": stages["cluster (scan's re-cluster)"]},
            )  # fmt: skip
    _finish(out, ready, out_path, end)


class _Recipe:
    """face_recognition's calls, through the package or (same calls) through dlib directly."""

    def __init__(self, use_package: bool = True) -> None:
        try:
            if not use_package:
                raise ImportError("asked for dlib directly")
            import face_recognition

            self.impl = f"face_recognition {getattr(face_recognition, '__version__', '?')}"
            self.load = face_recognition.load_image_file
            self.locations = face_recognition.face_locations
            self.encodings = face_recognition.face_encodings
            return
        except ImportError:
            pass
        import dlib
        import face_recognition_models as frm
        import PIL.Image

        self.impl = f"dlib {dlib.__version__} direct (face_recognition not importable)"
        detector = dlib.get_frontal_face_detector()
        shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

        def load(file: Path) -> np.ndarray:
            return np.array(PIL.Image.open(file).convert("RGB"))

        def locations(img: np.ndarray) -> list[tuple[int, int, int, int]]:
            h, w = img.shape[:2]
            return [
                (max(r.top(), 0), min(r.right(), w), min(r.bottom(), h), max(r.left(), 0))
                for r in detector(img, 1)
            ]

        def encodings(img: np.ndarray, locs: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
            rects = [dlib.rectangle(left, top, right, bottom) for top, right, bottom, left in locs]
            return [np.array(net.compute_face_descriptor(img, shape(img, r), 1)) for r in rects]

        self.load, self.locations, self.encodings = load, locations, encodings


def run_face_recognition(root: Path, photos: list[str], options: dict[str, Any], out_path: Path) -> None:
    recipe = _Recipe()
    import dlib

    max_side = int(options.get("max_side", 0))
    ready = time.perf_counter()
    st = Stages()
    faces: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    failed = []
    for photo in photos:
        try:
            with st.stage("decode"):
                img = recipe.load(root / photo)
                if max_side and max(img.shape[:2]) > max_side:
                    from PIL import Image

                    f = max_side / max(img.shape[:2])
                    size = (round(img.shape[1] * f), round(img.shape[0] * f))
                    img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))
            with st.stage("detect"):
                locs = recipe.locations(img)
            with st.stage("embed"):  # 5-point landmarks + ResNet descriptor
                encs = recipe.encodings(img, locs)
        except Exception as exc:  # a bad photo is the tool's failure, not the benchmark's
            failed.append(f"{photo}: {exc}")
            continue
        h, w = img.shape[:2]
        for (top, right, bottom, left), enc in zip(locs, encs, strict=True):
            faces.append({"photo": photo, "box": [left / w, top / h, (right - left) / w, (bottom - top) / h]})
            vectors.append(np.asarray(enc, np.float64))
    clusterings: dict[str, list[int]] = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    clusterings["chinese_whispers 0.5"] = (
        list(dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in vectors], 0.5))
        if vectors
        else []
    )
    seconds["chinese_whispers 0.5"] = time.perf_counter() - start
    start = time.perf_counter()
    from sklearn.cluster import DBSCAN

    clusterings["dbscan 0.6"] = (
        DBSCAN(eps=0.6, min_samples=1, metric="euclidean").fit(np.asarray(vectors)).labels_.tolist()
        if vectors
        else []
    )
    seconds["dbscan 0.6"] = time.perf_counter() - start
    end = time.perf_counter()
    info = {"impl": recipe.impl, "max_side": max_side, "model": "dlib-resnet-v1 (HOG, 5-point)"}
    out = _result(
        "face_recognition", photos, failed, faces, vectors, dict(st.seconds), info, out_path,
        clusterings=clusterings, cluster_seconds=seconds,
    )  # fmt: skip
    for name, s in seconds.items():
        out["stages"][f"cluster ({name})"] = s
    _finish(out, ready, out_path, end)


def run_mtcnn_dlib(root: Path, photos: list[str], options: dict[str, Any], out_path: Path) -> None:
    from facetags.config import Settings
    from facetags.errors import DecodeError
    from facetags.image.decode import decode
    from facetags.vision.detect import Detector
    from facetags.vision.dlib_teacher import DlibTeacher

    settings = Settings()
    detector = Detector(settings)
    teacher = DlibTeacher()
    ready = time.perf_counter()
    st = Stages()
    faces: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    failed = []
    for photo in photos:
        try:
            with st.stage("decode"):
                img = decode(root / photo, max_side=settings.detect_max_side).image
        except (DecodeError, OSError) as exc:
            failed.append(f"{photo}: {exc}")
            continue
        with st.stage("detect"):
            found = detector.detect(img)
        with st.stage("embed"):  # dlib 5-point chip + ResNet on our boxes
            vecs = teacher.describe_chips([teacher.chip(img, f.box) for f in found])
        h, w = img.shape[:2]
        for f, v in zip(found, vecs, strict=True):
            x, y, bw, bh = f.box
            faces.append({"photo": photo, "box": [x / w, y / h, bw / w, bh / h]})
            vectors.append(v)
    end = time.perf_counter()
    info = {"detector": f"mtcnn:max{settings.detect_max_side}:min{settings.min_face}"}
    out = _result("mtcnn+dlib", photos, failed, faces, vectors, dict(st.seconds), info, out_path)
    _finish(out, ready, out_path, end)


TOOLS = {"facetags": run_facetags, "face_recognition": run_face_recognition, "mtcnn+dlib": run_mtcnn_dlib}


def main() -> None:
    tool, job_path, out_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    job = json.loads(job_path.read_text())
    TOOLS[tool](Path(job["root"]), job["photos"], job.get("options", {}), out_path)


if __name__ == "__main__":
    main()
