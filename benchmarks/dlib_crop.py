"""dlib's ResNet on facetags' aligned 112x112 crops: where its face rectangle lies, and what it costs.

    python benchmarks/dlib_crop.py [--pairs 3000] [--json]

The opt-in ``dlib-resnet-v1`` embedder (``facetags/vision/dlib_embed.py``) works on the aligned
crops the library stores, not on the photo, so that a library can switch to it (and back) from
its thumbnails. On the 150 LFW DevTrain people held out of the student's training
(``tests/data/labels/lfw_devtrain_heldout.json``; their crops come from the training crop cache,
``facetags train prepare``) this prints

- the median face rectangle dlib's own HOG detector (upsampled once) finds in the crops, against
  the fixed ``CROP_RECT`` the embedder uses;
- verification accuracy / ROC AUC on ``--pairs`` same and as many different pairs (seed 7) of
  dlib on its chip cut from the photo (the teacher vectors the cache stores: face_recognition's
  way) and of the embedder on the crops;
- the embedder's milliseconds per face (shape predictor, chip, and dlib's network run by
  onnxruntime from the model file, ``facetags/vision/dlib_onnx.py``), and, on 64 of the chips,
  dlib's own runtime (``compute_face_descriptor``): milliseconds per face and the largest
  difference between the two runtimes' vectors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cluster_data import HELDOUT  # noqa: E402
from teacher_context import print_figures, score  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train" / "crops-v1")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import dlib

    from facetags.train.data import load_cache, validation_pairs
    from facetags.vision.dlib_embed import CROP_RECT, DlibCropEmbedder

    _, held = load_cache(args.cache).split_people(set(json.loads(HELDOUT.read_text(encoding="utf-8"))))
    detector = dlib.get_frontal_face_detector()
    boxes = []
    for crop in held.crops[:300]:
        found = detector(np.ascontiguousarray(crop), 1)
        if len(found) == 1:
            r = found[0]
            boxes.append((r.left(), r.top(), r.right() - r.left(), r.bottom() - r.top()))
    pairs, same = validation_pairs(held.labels, args.pairs, 7)
    embedder = DlibCropEmbedder()
    start = time.perf_counter()
    vectors = embedder.embed(held.crops)
    ms = (time.perf_counter() - start) * 1000 / len(held.crops)
    held_vectors = held.vectors("dlib_crop.py")
    teacher = held_vectors / np.linalg.norm(held_vectors, axis=1, keepdims=True)
    from facetags.vision.dlib_onnx import load_net
    from facetags.vision.dlib_teacher import MODEL_FILE, DlibTeacher, models_folder

    chips = np.stack([DlibTeacher().chip(c, CROP_RECT) for c in held.crops[:64]])
    own = dlib.face_recognition_model_v1(str(models_folder() / MODEL_FILE))
    start = time.perf_counter()
    by_dlib = np.asarray([np.asarray(v) for v in own.compute_face_descriptor(list(chips))], np.float32)
    dlib_ms = (time.perf_counter() - start) * 1000 / len(chips)
    by_onnx = load_net(models_folder() / MODEL_FILE).describe(chips)
    out = {
        "people": len(held.names),
        "faces": len(held),
        "pairs": len(pairs),
        "hog_boxes": len(boxes),
        "hog_median_rect": [float(v) for v in np.median(np.asarray(boxes, float), axis=0)],
        "crop_rect": list(CROP_RECT),
        "dlib_on_photo_chip": score(teacher, pairs, same),
        "dlib_on_crop": score(vectors, pairs, same),
        "ms_per_face": round(ms, 1),
        "dlib_runtime_ms_per_face": round(dlib_ms, 1),
        "max_abs_diff_onnx_vs_dlib_runtime": float(np.max(np.abs(by_onnx - by_dlib))),
    }
    print_figures(out, args.json)


if __name__ == "__main__":
    main()
