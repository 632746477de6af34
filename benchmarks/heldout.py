"""Embedder accuracy on people held out of training, from two sources: how checkpoints are chosen.

    python benchmarks/heldout.py [--onnx FILE]... [--cache .cache/train/crops-v1]
        [--pins-from ../shared/data] [--sets lfw,pins] [--pairs 3000]

Two sets of people no facetags training run trains on, each scored on its own:

* ``lfw``: the 150 LFW DevTrain people held out of every training stage
  (``tests/data/labels/lfw_devtrain_heldout.json``), their aligned crops read from the training
  crop cache (``facetags train prepare``) or, where ``--cache`` is not there, cropped from
  ``--pins-from``'s ``lfw/images`` once into ``.cache/train/heldout-lfw/``;
* ``pins``: the 12 Pins people that ``training_items`` never includes
  (``facetags.train.data.PINS_HELDOUT``: not in LFW at all), their photos from ``--pins-from``
  (``../shared/data``: 60 each, or a ``facetags train sources`` folder: the full set, ~160 each),
  cropped by facetags' own detector and aligner once into ``.cache/train/heldout-pins/``.

For each set it draws ``--pairs`` same-person and as many different-person pairs (seed 7, not
the seed the runs validate on) and prints, for each ONNX file (default: the configured embedder's), the
best-threshold accuracy, ROC AUC and TAR at FAR 1e-3, plain and with flip test-time augmentation
(the mean of a crop's and its mirror image's embeddings). Many more pairs than a run's per-epoch
validation (600 + 600), so differences of a point are not noise. These people are never reported
on as a test set; LFW DevTest is (``facetags eval verify``). A model trained on the Pins subset
before these people were held out (``facetags-mobilenet-v1``) has seen the ``pins`` people: its
``pins`` figure is not one for unseen people.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from cluster_data import DATA, HELDOUT  # noqa: E402  (the held-out list, shared with the calibration)

if TYPE_CHECKING:
    from facetags.train.data import CropSet, Item


def pins_crops(folder: Path, workers: int) -> CropSet:
    """The held-out Pins people's crops from ``folder/pins``, made once into a small crop cache."""
    from facetags.train.data import pins_heldout_items

    items = pins_heldout_items(folder)
    if not items:
        raise SystemExit(f"{folder / 'pins'}: none of the held-out Pins people's photos there")
    return _cropped(folder, items, "heldout-pins", workers)


def lfw_crops(folder: Path, workers: int) -> CropSet:
    """The held-out LFW DevTrain people's crops from ``folder/lfw/images``, made once into a small
    crop cache (for a machine without the training cache)."""
    from facetags.train.data import Item

    people = sorted(json.loads(HELDOUT.read_text(encoding="utf-8")))
    items = [
        Item(str(p.relative_to(folder)), "lfw", name)
        for name in people
        for p in sorted((folder / "lfw" / "images" / name).glob("*.jpg"))
    ]
    if not items:
        raise SystemExit(f"{folder / 'lfw/images'}: none of the held-out LFW people's photos there")
    return _cropped(folder, items, "heldout-lfw", workers)


def _cropped(folder: Path, items: list[Item], name: str, workers: int) -> CropSet:
    """``items`` (paths under ``folder``) detected and aligned once into ``.cache/train/NAME/``,
    a cache of its own for each list of photos."""
    from facetags.train.data import build_cache, load_cache

    key = hashlib.sha256(json.dumps([str(folder.resolve()), [i.path for i in items]]).encode()).hexdigest()
    cache = ROOT / ".cache" / "train" / name / key[:12]
    build_cache(folder, cache, items, workers=workers, teacher="none")
    return load_cache(cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, action="append", help="model file(s); default: the embedder's")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train" / "crops-v1")
    parser.add_argument(
        "--pins-from",
        type=Path,
        default=DATA,
        help="a folder holding pins/<Name>/ (shared data or sources), and lfw/images/",
    )
    parser.add_argument("--sets", default="lfw,pins", help="comma-separated: lfw, pins")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="processes cropping the Pins photos (once)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score, roc_curve

    from facetags.config import load_settings
    from facetags.paths import models_dir
    from facetags.train.data import load_cache, validation_pairs
    from facetags.train.fit import pair_accuracy
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    sets = {}
    for name in args.sets.split(","):
        if name == "lfw" and not (args.cache / "manifest.json").is_file():
            sets[name] = lfw_crops(args.pins_from, args.workers)
        elif name == "lfw":
            _, sets[name] = load_cache(args.cache).split_people(
                set(json.loads(HELDOUT.read_text(encoding="utf-8")))
            )
        elif name == "pins":
            sets[name] = pins_crops(args.pins_from, args.workers)
        else:
            raise SystemExit(f"unknown set {name!r} (lfw, pins)")
    default = models_dir() / f"{load_settings().embedder}.onnx"
    models = [(onnx, OnnxEmbedder(get_spec(onnx.stem, root=onnx.parent), path=onnx)) for onnx in
              args.onnx or [default]]  # fmt: skip
    rows = []
    for set_name, val in sets.items():
        pairs, same = validation_pairs(val.labels, args.pairs, args.seed)
        mirrored = np.ascontiguousarray(val.crops[:, :, ::-1])
        for onnx, model in models:
            plain = model.embed(val.crops)
            flip = plain + model.embed(mirrored)
            flip /= np.linalg.norm(flip, axis=1, keepdims=True)
            row: dict[str, object] = {
                "model": str(onnx),
                "set": set_name,
                "people": len(val.names),
                "crops": len(val),
                "pairs": len(same),
            }
            for tag, v in (("plain", plain), ("flip", flip)):
                sims = np.sum(v[pairs[:, 0]] * v[pairs[:, 1]], axis=1)
                fpr, tpr, _ = roc_curve(same, sims)
                row[f"{tag}_accuracy"] = round(pair_accuracy(v, pairs, same)[0], 4)
                row[f"{tag}_auc"] = round(float(roc_auc_score(same, sims)), 4)
                row[f"{tag}_tar_at_far_1e-3"] = round(float(np.max(tpr[fpr <= 1e-3])), 4)
            rows.append(row)
            if not args.json:
                print(
                    f"{onnx} on {set_name}: {row['people']} people, {row['crops']} crops, {len(same)} pairs: "
                    f"accuracy {row['plain_accuracy']:.4f} AUC {row['plain_auc']:.4f} "
                    f"TAR@FAR1e-3 {row['plain_tar_at_far_1e-3']:.4f}; with flip {row['flip_accuracy']:.4f} "
                    f"AUC {row['flip_auc']:.4f} TAR@FAR1e-3 {row['flip_tar_at_far_1e-3']:.4f}"
                )
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
