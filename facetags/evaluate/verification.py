"""Face verification on LFW-format pair lists: accuracy (10-fold CV threshold), ROC AUC, TAR@FAR.

Pair files: an optional header line ``<folds> <n>`` (View 2's ``10 300``), then ``Name i j``
(same person) or ``Name1 i Name2 j`` (different people); image ``DIR/Name/Name_%04d.jpg``.
Each image is decoded, detected and aligned with the product's own detector and aligner (the
face nearest the image centre when there are several) and embedded. An image without a face is
a failure: it is reported, and every pair that needs it counts as an error in ``accuracy``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facetags.vision.types import Face

if TYPE_CHECKING:
    from facetags.config import Settings
    from facetags.vision.detect import Detector

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Pair:
    name1: str
    index1: int
    name2: str
    index2: int

    @property
    def same(self) -> bool:
        return self.name1 == self.name2


@dataclass(frozen=True)
class PairList:
    pairs: list[Pair]
    folds: int = 0  # from the header (View 2: 10 consecutive folds); 0 = no header

    def paths(self, images: Path) -> list[tuple[Path, Path]]:
        return [
            (image_path(images, p.name1, p.index1), image_path(images, p.name2, p.index2)) for p in self.pairs
        ]


def image_path(images: Path, name: str, index: int) -> Path:
    return Path(images) / name / f"{name}_{index:04d}.jpg"


def read_pairs(path: str | Path) -> PairList:
    """Read an LFW pairs file, with or without its ``folds n`` header line."""
    pairs: list[Pair] = []
    folds = 0
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            folds = int(parts[0])
            continue
        if len(parts) == 3:
            pairs.append(Pair(parts[0], int(parts[1]), parts[0], int(parts[2])))
        elif len(parts) == 4:
            pairs.append(Pair(parts[0], int(parts[1]), parts[2], int(parts[3])))
        else:
            raise ValueError(f"{path}:{number}: not a pair line: {line!r}")
    return PairList(pairs, folds)


def central_face(faces: Sequence[Face], width: int, height: int) -> Face | None:
    """The face whose box centre is nearest the image centre (None when there is none)."""
    if not faces:
        return None
    return min(
        faces,
        key=lambda f: (
            (f.box[0] + f.box[2] / 2 - width / 2) ** 2 + (f.box[1] + f.box[3] / 2 - height / 2) ** 2
        ),
    )


# --------------------------------------------------------------------------- metrics


@dataclass
class VerificationResult:
    accuracy: float  # 10-fold CV threshold; failed pairs count as errors
    auc: float
    tar_at_far_1e_3: float
    pairs: int
    failed_pairs: int = 0
    failed_images: list[str] = field(default_factory=list)
    accuracy_std: float = 0.0
    threshold: float = 0.0  # the threshold chosen on all scored pairs (for reference)

    def to_json(self) -> dict[str, object]:
        return {
            "accuracy": round(self.accuracy, 5),
            "auc": round(self.auc, 5),
            "tar_at_far_1e-3": round(self.tar_at_far_1e_3, 5),
            "pairs": self.pairs,
            "accuracy_std": round(self.accuracy_std, 5),
            "failed_pairs": self.failed_pairs,
            "failed_images": self.failed_images,
            "threshold": round(self.threshold, 5),
        }


def _best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The accuracy-maximising threshold (``score >= t`` means same), taken midway between
    neighbouring scores, and in the middle of the range when several are equally good."""
    if len(scores) == 0:
        return 0.0
    u = np.unique(scores)
    cands = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-6]])
    order = np.argsort(scores)
    s_sorted, y_sorted = scores[order], same[order]
    # for each candidate t: same pairs at or above t + different pairs below t
    below = np.searchsorted(s_sorted, cands, side="left")
    same_below = np.concatenate([[0], np.cumsum(y_sorted)])[below]
    diff_below = below - same_below
    correct = (y_sorted.sum() - same_below) + diff_below
    best = np.flatnonzero(correct == correct.max())
    return float(cands[best[len(best) // 2]])


def fold_ids(n: int, folds: int, header_folds: int = 0) -> np.ndarray:
    """Fold of each pair: View 2's consecutive blocks when the file says so, else interleaved."""
    if header_folds and n % header_folds == 0:
        return np.repeat(np.arange(header_folds), n // header_folds)
    return np.arange(n) % folds


def score_pairs(
    scores: np.ndarray, same: np.ndarray, ok: np.ndarray, folds: int = 10, header_folds: int = 0
) -> VerificationResult:
    """Metrics from per-pair similarity ``scores`` (higher = more alike); ``ok`` False = failed pair."""
    from sklearn.metrics import roc_auc_score, roc_curve

    n = len(scores)
    fold = fold_ids(n, folds, header_folds)
    accs = []
    for f in np.unique(fold):
        train = (fold != f) & ok
        test = fold == f
        thr = _best_threshold(scores[train], same[train])
        correct = ((scores[test] >= thr) == same[test]) & ok[test]
        accs.append(float(np.mean(correct)))
    s, y = scores[ok], same[ok]
    if len(np.unique(y)) == 2:
        auc = float(roc_auc_score(y, s))
        fpr, tpr, _ = roc_curve(y, s)
        tar = float(np.max(tpr[fpr <= 1e-3])) if np.any(fpr <= 1e-3) else 0.0
    else:
        auc, tar = float("nan"), float("nan")
    return VerificationResult(
        accuracy=float(np.mean(accs)),
        auc=auc,
        tar_at_far_1e_3=tar,
        pairs=n,
        failed_pairs=int(np.sum(~ok)),
        accuracy_std=float(np.std(accs)),
        threshold=_best_threshold(s, y),
    )


# --------------------------------------------------------------------------- embedding images

# Describes one decoded photo: (image, faces) -> vector or None.
Describer = Callable[[np.ndarray, Face], np.ndarray]


class CropEmbedder:
    """Aligns the chosen face with the product's aligner and embeds crops in batches."""

    def __init__(self, embedder: object) -> None:
        self.embedder = embedder

    def embed_many(self, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
        from facetags.vision.align import align_face

        size = int(getattr(getattr(self.embedder, "spec", None), "input_size", 112))
        crops = np.stack([align_face(img, np.asarray(f.landmarks), size=size) for img, f in items])
        return self.embedder.embed(crops)  # type: ignore[attr-defined]


class DlibEmbedder:
    """dlib's ResNet descriptor on its own chip, cut from the box our detector found."""

    def __init__(self) -> None:
        from facetags.vision.dlib_teacher import DlibTeacher

        self.teacher = DlibTeacher()

    def embed_many(self, items: list[tuple[np.ndarray, Face]]) -> np.ndarray:
        chips = [self.teacher.chip(img, f.box) for img, f in items]
        return self.teacher.describe_chips(chips)


def embed_images(
    paths: Sequence[Path], embedder: CropEmbedder | DlibEmbedder, detector: object, batch: int = 32
) -> dict[Path, np.ndarray | None]:
    """Unit vectors for each image's central face; None where decoding or detection failed."""
    from facetags.errors import DecodeError
    from facetags.image.decode import decode

    out: dict[Path, np.ndarray | None] = {}
    pending: list[tuple[Path, np.ndarray, Face]] = []

    def flush() -> None:
        if pending:
            vecs = embedder.embed_many([(img, f) for _, img, f in pending])
            for (p, _, _), v in zip(pending, vecs, strict=True):
                out[p] = v
            pending.clear()

    for number, path in enumerate(paths, 1):
        try:
            image = decode(path).image
        except (DecodeError, OSError) as exc:
            log.warning("%s: %s", path, exc)
            out[path] = None
            continue
        face = central_face(detector.detect(image), image.shape[1], image.shape[0])  # type: ignore[attr-defined]
        if face is None:
            log.warning("%s: no face found", path)
            out[path] = None
            continue
        pending.append((path, image, face))
        if len(pending) >= batch:
            flush()
        if number % 500 == 0:
            log.info("embedded %d/%d images", number, len(paths))
    flush()
    return out


def verify(
    pair_list: PairList,
    images: Path,
    embedder: CropEmbedder | DlibEmbedder,
    detector: object,
    folds: int = 10,
) -> VerificationResult:
    pairs = pair_list.paths(images)
    unique = sorted({p for pair in pairs for p in pair})
    vectors = embed_images(unique, embedder, detector)
    scores = np.zeros(len(pairs), np.float64)
    ok = np.zeros(len(pairs), bool)
    for i, (a, b) in enumerate(pairs):
        va, vb = vectors.get(a), vectors.get(b)
        if va is not None and vb is not None:
            scores[i] = float(np.dot(va, vb))
            ok[i] = True
    same = np.asarray([p.same for p in pair_list.pairs], bool)
    result = score_pairs(scores, same, ok, folds=folds, header_folds=pair_list.folds)
    result.failed_images = [str(p) for p in unique if vectors.get(p) is None]
    return result


def make_embedder(name: str) -> CropEmbedder | DlibEmbedder:
    """``dlib`` (the teacher, when dlib is installed) or any id :func:`load_embedder` accepts."""
    if name == "dlib":
        return DlibEmbedder()
    from facetags.vision.embed import load_embedder

    return CropEmbedder(load_embedder(name))


def make_detector(settings: Settings) -> Detector:
    """The product's face detector under ``settings``."""
    from facetags.vision.detect import Detector

    return Detector(settings)
