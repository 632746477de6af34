"""LFW pair verification for several embedders side by side, from one detection pass.

    python benchmarks/verify.py --pairs ../shared/data/lfw/protocol/pairsDevTest.txt \
        --images ../shared/data/lfw/images --embedder facetags-mobilenet-v2 --embedder dlib [--json]

Same protocol and metrics as ``facetags eval verify`` (the face nearest the centre, aligned by the
product's aligner; accuracy with a 10-fold cross-validated threshold, failures count as errors),
but the detection results are cached in ``--cache`` so that comparing models (or ablation runs:
``--onnx path/to/model.onnx``) does not detect every image again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("verify")


def detect_all(paths: list[Path], cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Per image: (112 crop, dlib chip, box) of the central face, or None (cached in ``cache``)."""
    from facetags.config import Settings
    from facetags.evaluate.verification import central_face
    from facetags.image.decode import decode
    from facetags.vision.align import align_face
    from facetags.vision.detect import Detector

    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            names = list(z["names"])
            if names == [str(p) for p in paths]:
                found, crops, chips, boxes = z["found"], z["crops"], z["chips"], z["boxes"]  # read once
                return {n: (crops[i], chips[i], boxes[i]) if found[i] else None for i, n in enumerate(names)}
    try:
        from facetags.vision.dlib_teacher import DlibTeacher

        teacher: DlibTeacher | None = DlibTeacher()
    except Exception:
        teacher = None
    detector = Detector(Settings())
    crops = np.zeros((len(paths), 112, 112, 3), np.uint8)
    chips = np.zeros((len(paths), 150, 150, 3), np.uint8)
    boxes = np.zeros((len(paths), 4), np.float32)
    found = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        try:
            image = decode(path).image
        except Exception as exc:
            log.warning("%s: %s", path, exc)
            continue
        face = central_face(detector.detect(image), image.shape[1], image.shape[0])
        if face is None:
            log.warning("%s: no face", path)
            continue
        crops[i] = align_face(image, face.landmarks, size=112)
        if teacher is not None:
            chips[i] = teacher.chip(image, face.box)
        boxes[i] = face.box
        found[i] = True
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache, names=np.array([str(p) for p in paths]), crops=crops, chips=chips, boxes=boxes, found=found
    )
    return {str(p): (crops[i], chips[i], boxes[i]) if found[i] else None for i, p in enumerate(paths)}


def embed_all(name: str, faces: dict, onnx: Path | None = None) -> dict[str, np.ndarray]:
    keys = [k for k, v in faces.items() if v is not None]
    if name == "dlib":
        from facetags.vision.dlib_teacher import DlibTeacher

        teacher = DlibTeacher()
        vecs = np.concatenate(
            [teacher.describe_chips([faces[k][1] for k in keys[i : i + 64]]) for i in range(0, len(keys), 64)]
        )
    else:
        from facetags.vision.embed import OnnxEmbedder, load_embedder
        from facetags.vision.specs import ModelSpec

        if onnx is not None:
            spec = ModelSpec.from_json(onnx.with_suffix(".json"))
            embedder = OnnxEmbedder(spec, path=onnx)
        else:
            embedder = load_embedder(name)  # type: ignore[assignment]
        vecs = embedder.embed(np.stack([faces[k][0] for k in keys]))
    return dict(zip(keys, vecs, strict=True))


def score_vectors(vectors: dict[str, np.ndarray], pair_list: Any, images: Path) -> Any:
    """The protocol's figures (``VerificationResult``) for per-image vectors (missing: failed)."""
    from facetags.evaluate.verification import score_pairs

    pairs = pair_list.paths(images)
    scores = np.zeros(len(pairs))
    ok = np.zeros(len(pairs), bool)
    for i, (a, b) in enumerate(pairs):
        va, vb = vectors.get(str(a)), vectors.get(str(b))
        if va is not None and vb is not None:
            scores[i], ok[i] = float(va @ vb), True
    same = np.asarray([p.same for p in pair_list.pairs], bool)
    return score_pairs(scores, same, ok, header_folds=pair_list.folds)


def main() -> None:
    from facetags.config import load_settings
    from facetags.evaluate.verification import read_pairs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True, type=Path)
    ap.add_argument("--images", required=True, type=Path)
    ap.add_argument("--embedder", action="append", default=[], help="model id, or 'dlib' (repeatable)")
    ap.add_argument("--onnx", action="append", default=[], type=Path, help="an exported .onnx (+ .json spec)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "verify")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")

    pair_list = read_pairs(args.pairs)
    pairs = pair_list.paths(args.images)
    unique = sorted({p for pair in pairs for p in pair})
    faces = detect_all(unique, args.cache / f"{args.pairs.stem}.npz")
    runs = [(e, None) for e in args.embedder] + [(str(o), o) for o in args.onnx]
    results = []
    for name, onnx in runs or [(load_settings().embedder, None)]:
        r = score_vectors(embed_all(name, faces, onnx), pair_list, args.images)
        row = {"embedder": name, **r.to_json()}
        row["failed_images"] = len([u for u in unique if faces[str(u)] is None])
        results.append(row)
        if not args.json:
            print(
                f"{name:40s} accuracy {r.accuracy:.4f} ± {r.accuracy_std:.4f}  AUC {r.auc:.4f}  "
                f"TAR@FAR1e-3 {r.tar_at_far_1e_3:.4f}  pairs {r.pairs} (failed {r.failed_pairs})"
            )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
