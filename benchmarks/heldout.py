"""Embedder accuracy on the LFW DevTrain people held out of training: how checkpoints are chosen.

    python benchmarks/heldout.py [--onnx FILE]... [--cache .cache/train/crops-v1] [--pairs 3000]

Reads the held-out people's aligned crops from the training crop cache (``facetags train
prepare``; the people are ``tests/data/labels/lfw_devtrain_heldout.json``, the list every training
stage was run with), draws ``--pairs`` same-person and as many different-person pairs (seed 7,
not the seed the runs validate on), and prints, for each ONNX file (default: the shipped model),
the best-threshold accuracy and ROC AUC, plain and with flip test-time augmentation (the mean of
a crop's and its mirror image's embeddings). Many more pairs than a run's per-epoch validation
(600 + 600), so differences of a point are not noise. These people are never reported on as a
test set; LFW DevTest is (``facetags eval verify``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cluster_data import HELDOUT  # noqa: E402  (the held-out list, shared with the calibration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, action="append", help="model file(s); default: the shipped one")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train" / "crops-v1")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from facetags.paths import models_dir
    from facetags.train.data import load_cache, validation_pairs
    from facetags.train.fit import pair_accuracy
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    _, val = load_cache(args.cache).split_people(set(json.loads(HELDOUT.read_text(encoding="utf-8"))))
    pairs, same = validation_pairs(val.labels, args.pairs, args.seed)
    mirrored = np.ascontiguousarray(val.crops[:, :, ::-1])
    rows = []
    for onnx in args.onnx or [models_dir() / "facetags-mobilenet-v1.onnx"]:
        model = OnnxEmbedder(get_spec(onnx.stem, root=onnx.parent), path=onnx)
        plain = model.embed(val.crops)
        flip = plain + model.embed(mirrored)
        flip /= np.linalg.norm(flip, axis=1, keepdims=True)
        row: dict[str, object] = {"model": str(onnx), "people": len(val.names), "crops": len(val)}
        for tag, v in (("plain", plain), ("flip", flip)):
            sims = np.sum(v[pairs[:, 0]] * v[pairs[:, 1]], axis=1)
            row[f"{tag}_accuracy"] = round(pair_accuracy(v, pairs, same)[0], 4)
            row[f"{tag}_auc"] = round(float(roc_auc_score(same, sims)), 4)
        rows.append(row)
        if not args.json:
            print(
                f"{onnx}: {row['people']} people, {len(same)} pairs: accuracy {row['plain_accuracy']:.4f} "
                f"AUC {row['plain_auc']:.4f}; with flip {row['flip_accuracy']:.4f} AUC {row['flip_auc']:.4f}"
            )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
