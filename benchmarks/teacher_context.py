"""What limits the student: the crop it sees, or how well it learns the teacher?

    python benchmarks/teacher_context.py [--onnx FILE] [--pairs 3000] [--json]

On the 150 held-out LFW DevTrain people (``tests/data/labels/lfw_devtrain_heldout.json``), each
photo's face nearest the centre is found by facetags' detector, and dlib's teacher describes

- its own 150x150 chip (what the student is distilled from),
- the same chip with everything outside the student's 112x112 ArcFace crop greyed out (the chip
  pixel is mapped to the photo through dlib's chip geometry, then into the crop through our
  aligner's transform),
- the chip at the student's resolution (down to 112 px and back up),

and the three are scored as verification accuracy / ROC AUC on ``--pairs`` same and as many
different pairs (seed 7). If the masked or low-resolution chips score as well as the full ones,
the student's crop holds everything the teacher uses, and the student's shortfall is learning.
It also prints the student's cosine to the (mean-centred) teacher vector on training faces and
on the held-out faces: how well it fits the teacher where it trained, and away from it.
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
from cluster_data import HELDOUT  # noqa: E402


def chip_to_image(details: object, chip: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Photo coordinates of every chip pixel. dlib's chip is its rectangle rotated by ``angle``
    and scaled to 150 px; the sense of the rotation is taken as the one that reproduces the chip."""
    r = details.rect  # type: ignore[attr-defined]
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    s = (r.right() - r.left()) / chip.shape[1]
    half = (chip.shape[1] - 1) / 2
    u, v = np.meshgrid(np.arange(chip.shape[1]) - half, np.arange(chip.shape[0]) - half)
    h, w = image.shape[:2]
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for sign in (1.0, -1.0):
        a = sign * details.angle  # type: ignore[attr-defined]
        x = cx + s * (np.cos(a) * u - np.sin(a) * v)
        y = cy + s * (np.sin(a) * u + np.cos(a) * v)
        xi = np.clip(np.round(x).astype(int), 0, w - 1)
        yi = np.clip(np.round(y).astype(int), 0, h - 1)
        err = float(np.abs(image[yi, xi].astype(float) - chip.astype(float)).mean())
        if best is None or err < best[0]:
            best = (err, x, y)
    assert best is not None
    return best[1], best[2]


def score(vectors: np.ndarray, pairs: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """Best-threshold accuracy (as the runs' validation and benchmarks/heldout.py) and ROC AUC."""
    from sklearn.metrics import roc_auc_score

    from facetags.train.fit import pair_accuracy

    sims = np.sum(vectors[pairs[:, 0]] * vectors[pairs[:, 1]], axis=1)
    acc = pair_accuracy(vectors, pairs, same)[0]
    return {"accuracy": round(acc, 4), "auc": round(float(roc_auc_score(same, sims)), 4)}


def print_figures(out: dict[str, object], as_json: bool) -> None:
    """One JSON line, or a ``name  value`` line per figure."""
    if as_json:
        print(json.dumps(out))
        return
    width = max(map(len, out)) + 2
    for key, value in out.items():
        print(f"{key:{width}s}{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--onnx", type=Path, default=None, help="the student (default: the shipped facetags-mobilenet-v1)"
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "train" / "crops-v1")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from PIL import Image

    from facetags.train.data import FaceCropper, centre, load_cache, load_rgb, validation_pairs
    from facetags.vision.align import estimate_transform
    from facetags.vision.dlib_teacher import CHIP_SIZE, DlibTeacher
    from facetags.vision.embed import OnnxEmbedder
    from facetags.vision.specs import get_spec

    data = load_cache(args.cache)
    train, held = data.split_people(set(json.loads(HELDOUT.read_text())))
    teacher = DlibTeacher()
    cropper = FaceCropper()
    full, masked, low, inside_share = [], [], [], []
    for item in held.items:
        image = np.ascontiguousarray(load_rgb(args.data / item.path))
        face = cropper.central_face(image)
        assert face is not None, item.path  # the cache holds only photos with a face found
        details = teacher.chip_details(image, face.box)
        chip = teacher.chip(image, face.box)
        px, py = chip_to_image(details, chip, image)
        m = estimate_transform(np.asarray(face.landmarks, np.float32), 112)
        cu = m[0, 0] * px + m[0, 1] * py + m[0, 2]
        cv = m[1, 0] * px + m[1, 1] * py + m[1, 2]
        inside = (cu >= 0) & (cu < 112) & (cv >= 0) & (cv < 112)
        grey = chip.copy()
        grey[~inside] = 128
        small = Image.fromarray(chip).resize((112, 112), Image.Resampling.BILINEAR)
        full.append(chip)
        masked.append(grey)
        low.append(np.asarray(small.resize((CHIP_SIZE, CHIP_SIZE), Image.Resampling.BILINEAR)))
        inside_share.append(float(inside.mean()))
    pairs, same = validation_pairs(held.labels, args.pairs, 7)
    out: dict[str, object] = {"people": len(held.names), "faces": len(held), "pairs": len(pairs)}
    out["chip_share_inside_student_crop"] = round(float(np.mean(inside_share)), 3)
    for name, chips in (
        ("teacher_full_chip", full),
        ("teacher_outside_crop_greyed", masked),
        ("teacher_at_112px", low),
    ):
        out[name] = score(teacher.describe_chips(chips), pairs, same)
    student = OnnxEmbedder(get_spec("facetags-mobilenet-v1"), path=args.onnx)
    out["student"] = score(student.embed(held.crops), pairs, same)
    train_vectors, held_vectors = train.vectors("teacher_context.py"), held.vectors("teacher_context.py")
    mean = train_vectors.mean(axis=0)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train), min(2000, len(train)), replace=False)
    for name, crops, vecs in (
        ("student_teacher_cos_training_faces", train.crops[pick], train_vectors[pick]),
        ("student_teacher_cos_heldout_faces", held.crops, held_vectors),
    ):
        out[name] = round(float(np.mean(np.sum(student.embed(crops) * centre(vecs, mean), axis=1))), 3)
    print_figures(out, args.json)


if __name__ == "__main__":
    main()
