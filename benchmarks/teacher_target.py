"""What the student is taught to copy, scored: the teacher's vectors on the held-out people.

    python benchmarks/teacher_target.py [--cache .cache/train/crops-v1] [--pairs 3000] \
        [--teacher dlib|mobilefacenet] [--dim 128] \
        [--lfw-pairs ../shared/data/lfw/protocol/pairsDevTest.txt --images ../shared/data/lfw/images]

The blockwise student (``facetags train blocks``) learns dlib's vector for each face, computed on
the fixed chip cut from the aligned crop, with a fraction of the teacher's mean vector over the
training crops taken off (``--centre``; dlib's vectors sit in a narrow cone, and taking the mean
off spreads them). The student cannot beat its target, so this prints the target's own accuracy
and ROC AUC on the same held-out pairs as ``benchmarks/heldout.py`` (3,000 same + 3,000
different, seed 7), for the raw vectors and for each fraction; with ``--lfw-pairs``, also on
those pairs by ``benchmarks/verify.py``'s protocol and detection cache (10-fold threshold).

``--teacher mobilefacenet`` scores MobileFaceNet's 192-D vectors (``train blocks --teacher
mobilefacenet``): its mean is taken over its vectors of the training crops the run fits its
target on, and with ``--dim`` below 192 each fraction is scored again as the student is taught
it, projected to that many dimensions (``blockwise.Target``).
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
from teacher_context import score  # noqa: E402  (accuracy and AUC as benchmarks/heldout.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train" / "crops-v1")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fractions", default="0.25,0.5,0.75,0.9,1.0")
    parser.add_argument("--teacher", choices=["dlib", "mobilefacenet"], default="dlib")
    parser.add_argument("--dim", type=int, default=128, help="also score the targets projected to this many")
    parser.add_argument("--lfw-pairs", type=Path, help="also score an LFW pair file (e.g. pairsDevTest.txt)")
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "lfw" / "images")
    args = parser.parse_args()

    from facetags.evaluate.verification import read_pairs
    from facetags.train.blockwise import BlockwiseConfig, Target, make_teacher, sample_vectors
    from facetags.train.data import load_cache, validation_pairs
    from facetags.train.fit import normalise

    train, val = load_cache(args.cache).split_people(set(json.loads(HELDOUT.read_text(encoding="utf-8"))))
    pairs, same = validation_pairs(val.labels, args.pairs, args.seed)
    teacher = make_teacher(args.teacher)

    def describe(crops: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [teacher(teacher.inputs(normalise(crops[i : i + 64])))[0] for i in range(0, len(crops), 64)]
        )

    vectors = describe(val.crops)
    if args.teacher == "dlib":
        fitted = train.vectors("teacher_target.py")  # the cache's dlib vectors, as fit_blockwise takes them
    else:  # the teacher's vectors of the crops a run fits its target on (blockwise.run_target)
        cfg = BlockwiseConfig(cache="", out="", teacher=args.teacher)
        fitted = sample_vectors(teacher, train.crops, cfg.target_crops, cfg.seed)
    fractions = [("raw", 0.0)] + [(f"centre {f}", float(f)) for f in args.fractions.split(",")]
    targets = {}
    for label, fraction in fractions:
        targets[label] = Target.fit(fitted, fraction, teacher.dim)
        if args.dim < teacher.dim:
            targets[f"{label}, {args.dim}-D"] = Target.fit(fitted, fraction, args.dim)
    print(f"held-out: {len(val.names)} people, {len(val)} crops, {len(same)} pairs; {args.teacher} teacher")
    for label, target in targets.items():
        figures = score(target(vectors), pairs, same)
        print(f"{label:>20}: accuracy {figures['accuracy']:.4f} AUC {figures['auc']:.4f}")
    if args.lfw_pairs is None:
        return
    from verify import detect_all, score_vectors  # verify.py's detection cache and scoring

    pair_list = read_pairs(args.lfw_pairs)
    paths = pair_list.paths(args.images)
    faces = detect_all(
        sorted({p for pair in paths for p in pair}), ROOT / ".cache" / "verify" / f"{args.lfw_pairs.stem}.npz"
    )
    keys = [k for k, v in faces.items() if v is not None]
    lfw = describe(np.stack([faces[k][0] for k in keys]))  # type: ignore[index]
    print(f"{args.lfw_pairs.name}: {len(paths)} pairs, 10-fold threshold")
    for label, target in targets.items():
        r = score_vectors(dict(zip(keys, target(lfw), strict=True)), pair_list, args.images)
        print(
            f"{label:>20}: accuracy {r.accuracy:.4f} ± {r.accuracy_std:.4f} AUC {r.auc:.4f} "
            f"TAR@FAR1e-3 {r.tar_at_far_1e_3:.4f}"
        )


if __name__ == "__main__":
    main()
