"""Training data: the aligned-crop cache, the P x K batch sampler and augmentation (no TensorFlow).

Crops are made by facetags' own detector and aligner (the face nearest the image centre), so the
student sees exactly what the product will feed it. Each crop carries the dlib teacher's 128-D
descriptor of the same face (dlib's own 150x150 chip cut from our detected box), unless the cache
is built with ``teacher="none"`` (crops and boxes only: the blockwise trainer describes every
batch itself). The cache is a folder of ``shard_NNNNN.npz`` files written atomically, so an
interrupted build resumes.

The images come from ``../shared/data`` (LFW, and the subsets of Pins, FairFace and UTKFace), or,
for Pins, FairFace and UTKFace, from a sources folder of the full sets (``facetags train sources``,
:mod:`facetags.train.sources`) instead of the subsets, never both.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from facetags.errors import ConfigError

log = logging.getLogger(__name__)

CROP = 112
SHARD = 200
# Pins people who are also LFW DevTest people: never trained on while DevTest measures us.
DEVTEST_IN_PINS = frozenset(
    {
        "Adriana_Lima",
        "Ben_Affleck",
        "Emma_Watson",
        "Gwyneth_Paltrow",
        "Johnny_Depp",
        "Leonardo_DiCaprio",
        "Robert_Downey_Jr",
        "Tom_Cruise",
    }
)
#: Pins people held out of training for calibration and for the held-out benchmark
#: (``benchmarks/heldout.py``), like the LFW DevTrain people of
#: ``tests/data/labels/lfw_devtrain_heldout.json``: 12 drawn once (``numpy.random.default_rng(0)
#: .choice(candidates, 12, replace=False)``) from the 90 Pins people who are not in LFW at all
#: (sorted by name; ``tests/test_train_sources.py`` draws them again). Never in
#: :func:`training_items`.
PINS_HELDOUT = frozenset(
    {
        "Alexandra_Daddario",
        "Alycia_Dabnem_Carey",
        "Andy_Samberg",
        "Camila_Mendes",
        "Eliza_Taylor",
        "Ellen_Page",
        "Jimmy_Fallon",
        "Logan_Lerman",
        "Mark_Zuckerberg",
        "Pedro_Alonso",
        "Richard_Harmon",
        "Tom_Hiddleston",
    }
)
PINS_HELDOUT_SEED = 0
#: the sets a sources folder provides in place of ``../shared/data``'s subsets
FULL_SETS = ("fairface", "pins", "utkface")
TEACHERS = ("dlib", "none")


@dataclass(frozen=True)
class Item:
    path: str  # relative to the root its source comes from (the data root or the sources folder)
    source: str  # lfw, pins, fairface, utkface
    identity: str | None  # None: no identity (distillation only)


def item_roots(root: Path, sources: Path | None = None) -> dict[str, Path]:
    """The folder each source's item paths are relative to: ``root`` (``../shared/data``), or
    ``sources`` for the full sets (``facetags train sources``)."""
    roots = {s: root for s in ("lfw", *FULL_SETS)}
    if sources is not None:
        roots.update(dict.fromkeys(FULL_SETS, sources))
    return roots


def cache_roots(cache: Path, root: Path) -> dict[str, Path]:
    """:func:`item_roots` for the images of a built crop cache: the sources folder its manifest
    records, if any."""
    manifest = json.loads((cache / "manifest.json").read_text())
    folder = (manifest.get("sources") or {}).get("folder")
    return item_roots(root, Path(folder) if folder else None)


def refuse_held_out(names: Iterable[str], cache: object) -> None:
    """Stop a run whose training crops hold people never to be trained on: the held-out Pins
    people (:data:`PINS_HELDOUT`) or the Pins people of LFW DevTest. A cache built before they
    were held out holds them; its figures on them would not be for unseen people."""
    from facetags.errors import ConfigError

    found = sorted(set(names) & (PINS_HELDOUT | DEVTEST_IN_PINS))
    if found:
        raise ConfigError(
            f"{cache} holds {len(found)} people held out of training ({', '.join(found[:3])}...): "
            "it was built before they were held out; build a new cache with 'facetags train prepare'"
        )


def read_people(path: Path) -> dict[str, int]:
    """A View 1 people list: first line the count, then ``Name<TAB>n``."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def _norm_name(name: str) -> str:
    return name.strip().replace(" ", "_")


def read_sources_folder(sources: Path) -> list[dict[str, object]]:
    """The SOURCES.json of a sources folder, checked to hold every full set."""
    from facetags.train.sources import SOURCES_FILE, SourceError, read_sources

    records = read_sources(sources)
    missing = sorted(set(FULL_SETS) - {str(r["set"]) for r in records})
    if missing:
        raise SourceError(
            f"{sources / SOURCES_FILE}: no {', '.join(missing)} there "
            "(run 'facetags train sources --from ... --out' into it first)"
        )
    return records


def training_items(
    root: Path,
    sources: tuple[str, ...] = ("lfw", "pins", "fairface", "utkface"),
    full: Path | None = None,
) -> list[Item]:
    """Every training image, in a fixed order. LFW DevTest people and the held-out Pins people
    (:data:`PINS_HELDOUT`) are never included.

    ``root`` is ``../shared/data``; ``full``, a sources folder (``facetags train sources``): Pins,
    FairFace and UTKFace are then read from there instead of ``root``'s subsets, and the items of
    those sets are relative to ``full`` (:func:`item_roots`)."""
    devtest = set(read_people(root / "lfw/protocol/peopleDevTest.txt"))
    if full is not None:
        read_sources_folder(full)
    roots = item_roots(root, full)
    items: list[Item] = []
    if "lfw" in sources:
        for name in sorted(read_people(root / "lfw/protocol/peopleDevTrain.txt")):
            for p in sorted((root / "lfw/images" / name).glob("*.jpg")):
                items.append(Item(str(p.relative_to(root)), "lfw", name))
    base = roots["pins"]
    if "pins" in sources and (base / "pins").is_dir():
        for folder in sorted(p for p in (base / "pins").iterdir() if p.is_dir()):
            name = _norm_name(folder.name)
            if name in DEVTEST_IN_PINS or name in devtest or name in PINS_HELDOUT:
                continue
            for p in sorted(folder.glob("*.jpg")):
                items.append(Item(str(p.relative_to(base)), "pins", name))
    for source in ("fairface", "utkface"):
        base = roots[source]
        if source in sources and (base / source).is_dir():
            for p in sorted((base / source).glob("*.jpg")):
                items.append(Item(str(p.relative_to(base)), source, None))
    names = {i.identity for i in items if i.identity}
    leaked = names & devtest
    if leaked:
        raise RuntimeError(f"DevTest people in the training list: {sorted(leaked)[:5]}")
    if names & PINS_HELDOUT:
        raise RuntimeError(f"held-out Pins people in the training list: {sorted(names & PINS_HELDOUT)[:5]}")
    return items


def pins_items(folder: Path, people: Collection[str]) -> list[Item]:
    """The photos of the Pins ``people`` under ``folder/pins`` (``../shared/data`` or a sources
    folder), paths relative to ``folder``."""
    items = []
    for name in sorted(people):
        for p in sorted((folder / "pins" / name).glob("*.jpg")):
            items.append(Item(str(p.relative_to(folder)), "pins", name))
    return items


def pins_heldout_items(folder: Path) -> list[Item]:
    """The photos of the held-out Pins people (:data:`PINS_HELDOUT`): :func:`pins_items`."""
    return pins_items(folder, PINS_HELDOUT)


# --------------------------------------------------------------------------- face crops


class FaceCropper:
    """Our detector + aligner: the face nearest the centre -> (112x112 crop, box)."""

    def __init__(self) -> None:
        from facetags.config import Settings
        from facetags.vision.detect import Detector

        self.name = "facetags"
        self._detector = Detector(Settings())

    def central_face(self, image: np.ndarray) -> Any | None:
        """The detected face (box, landmarks, score) nearest the image centre, or None."""
        faces = self._detector.detect(image)
        if not faces:
            return None
        h, w = image.shape[:2]
        return min(
            faces,
            key=lambda f: (f.box[0] + f.box[2] / 2 - w / 2) ** 2 + (f.box[1] + f.box[3] / 2 - h / 2) ** 2,
        )

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
        from facetags.vision.align import align_face

        face = self.central_face(image)
        if face is None:
            return None
        crop = align_face(image, np.asarray(face.landmarks, np.float32), size=CROP)
        return np.asarray(crop, np.uint8), tuple(float(v) for v in face.box)  # type: ignore[return-value]


def load_rgb(path: Path) -> np.ndarray:
    try:
        from facetags.image.decode import decode

        return decode(path).image
    except ImportError:  # pragma: no cover - decode is part of the product
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.uint8)


_worker: dict[str, object] = {}


def _init_worker(teacher: str = "dlib") -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker["cropper"] = FaceCropper()
    if teacher == "dlib":
        from facetags.vision.dlib_teacher import DlibTeacher

        _worker["teacher"] = DlibTeacher()
    else:
        _worker.pop("teacher", None)


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` by ``write(temporary)`` (a hidden file beside it, with its suffix) and an
    atomic rename: a process killed meanwhile leaves the previous file or none, never half of
    one."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """:func:`replace_atomically` for an .npz of ``arrays``."""
    # numpy's stub reads **kwds as allow_pickle
    replace_atomically(path, lambda tmp: np.savez(tmp, **arrays))  # type: ignore[arg-type]


def _build_shard(args: tuple[Mapping[str, Path], Path, list[Item], int]) -> tuple[int, int, int]:
    roots, out, items, shard = args
    cropper = _worker["cropper"]
    teacher = _worker.get("teacher")  # None: crops and boxes only
    crops, boxes, chips, index = [], [], [], []
    for i, item in enumerate(items):
        try:
            image = load_rgb(roots[item.source] / item.path)
            found = cropper(image)  # type: ignore[operator]
        except Exception as exc:  # a broken photo must not stop a long build
            log.warning("%s: %s", item.path, exc)
            continue
        if found is None:
            continue
        crop, box = found
        crops.append(crop)
        boxes.append(box)
        if teacher is not None:
            chips.append(teacher.chip(image, box))  # type: ignore[attr-defined]
        index.append(shard * SHARD + i)
    arrays: dict[str, np.ndarray] = {
        "crops": np.asarray(crops, np.uint8).reshape(-1, CROP, CROP, 3),
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "index": np.asarray(index, np.int64),
    }
    if teacher is not None:
        vecs = teacher.describe_chips(chips)  # type: ignore[attr-defined]
        arrays["teacher"] = vecs.astype(np.float32).reshape(-1, 128)
    save_npz_atomic(out / f"shard_{shard:05d}.npz", **arrays)
    return shard, len(items), len(index)


def _build_order(items: list[Item], shard: int) -> tuple[int, int]:
    """Labelled shards first, then the unlabelled sources interleaved (so a cache that is
    stopped early still holds some of each)."""
    chunk = items[shard * SHARD : (shard + 1) * SHARD]
    if any(i.identity for i in chunk):
        return (0, shard)
    source = chunk[0].source
    first = next(k for k, i in enumerate(items) if i.source == source) // SHARD
    return (1, shard - first)


def parse_shards(spec: str) -> list[int]:
    """``"0-76,80,95-97"`` -> [0, 1, ..., 76, 80, 95, 96, 97]."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def format_shards(shards: list[int]) -> str:
    """The inverse of :func:`parse_shards` (compact ranges)."""
    parts: list[str] = []
    run: list[int] = []
    for s in sorted(shards):
        if run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [s]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def built_shards(cache: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in cache.glob("shard_*.npz"))


def build_cache(
    root: Path,
    cache: Path,
    items: list[Item],
    workers: int = 2,
    *,
    full: Path | None = None,
    teacher: str = "dlib",
) -> Path:
    """Detect, align (and, with ``teacher="dlib"``, describe) every item into ``cache``; resumes
    where it stopped. ``full``: the sources folder the items of the full sets come from
    (:func:`training_items`); its SOURCES.json goes into the manifest, so the cache says where
    its crops came from."""
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, not {teacher!r}")
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "manifest.json"
    listing = [[i.path, i.source, i.identity] for i in items]
    sources = {"folder": str(full.resolve()), "sets": read_sources_folder(full)} if full is not None else None
    if manifest.is_file():
        old = json.loads(manifest.read_text())
        if old["items"] != listing:
            raise ConfigError(f"{cache} holds a different image list; use another --cache folder")
        if old.get("teacher", "dlib") != teacher:
            raise ConfigError(
                f"{cache} was built with --teacher {old.get('teacher', 'dlib')}, not {teacher}; "
                "use another --cache folder"
            )
        old_sets = (old.get("sources") or {}).get("sets")
        if old_sets != (sources or {}).get("sets"):
            raise ConfigError(f"{cache} was built from other sources; use another --cache folder")
    else:
        record: dict[str, object] = {"items": listing, "crop": CROP, "teacher": teacher}
        if sources is not None:
            record["sources"] = sources
        manifest.write_text(json.dumps(record))
    roots = item_roots(root, full)
    n_shards = (len(items) + SHARD - 1) // SHARD
    todo = [s for s in range(n_shards) if not (cache / f"shard_{s:05d}.npz").is_file()]
    todo.sort(key=lambda s: _build_order(items, s))
    log.info("crop cache %s: %d shards, %d to build (teacher: %s)", cache, n_shards, len(todo), teacher)
    jobs = [(roots, cache, items[s * SHARD : (s + 1) * SHARD], s) for s in todo]
    if not jobs:
        return cache
    done = 0
    if workers <= 1:
        _init_worker(teacher)
        results: Iterator[tuple[int, int, int]] = map(_build_shard, jobs)
        for shard, n, ok in results:
            done += 1
            log.info("shard %d: %d/%d faces (%d/%d shards)", shard, ok, n, done, len(jobs))
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(teacher,)) as pool:
            for shard, n, ok in pool.imap_unordered(_build_shard, jobs):
                done += 1
                log.info("shard %d: %d/%d faces (%d/%d shards)", shard, ok, n, done, len(jobs))
    return cache


NO_VECTORS = (
    "{cache} was built with --teacher none (crops only): {what} needs the dlib teacher's vectors; "
    "build a cache with 'facetags train prepare --teacher dlib', or train with 'facetags train blocks' "
    "(it describes every batch itself)"
)


@dataclass
class CropSet:
    crops: np.ndarray  # (N, 112, 112, 3) uint8
    teacher: np.ndarray | None  # (N, 128) float32, unit rows; None: a cache built with --teacher none
    labels: np.ndarray  # (N,) int32; -1 = no identity
    names: list[str]  # identity names by label
    items: list[Item]  # the item each crop came from
    cache: str = ""  # the cache folder it was loaded from (for messages)

    def __len__(self) -> int:
        return len(self.crops)

    def vectors(self, what: str) -> np.ndarray:
        """The teacher's vectors, or a :class:`~facetags.errors.ConfigError` saying that ``what``
        needs them when the cache has none."""
        if self.teacher is None:
            raise ConfigError(NO_VECTORS.format(cache=self.cache or "the crop cache", what=what))
        return self.teacher

    def subset(self, mask: np.ndarray) -> CropSet:
        idx = np.flatnonzero(mask)
        keep = sorted({int(v) for v in self.labels[idx] if v >= 0})
        remap = {old: new for new, old in enumerate(keep)}
        labels = np.asarray([remap.get(int(v), -1) for v in self.labels[idx]], np.int32)
        return CropSet(
            self.crops[idx],
            None if self.teacher is None else self.teacher[idx],
            labels,
            [self.names[k] for k in keep],
            [self.items[i] for i in idx],
            self.cache,
        )

    def split_people(self, names: set[str]) -> tuple[CropSet, CropSet]:
        """(the crops of everyone else, the crops of the people ``names``): held-out people."""
        held = np.asarray([bool(i.identity and i.identity in names) for i in self.items], bool)
        return self.subset(~held), self.subset(held)


def load_cache(cache: Path, limit_shards: int | None = None, shards: list[int] | None = None) -> CropSet:
    """The cached crops: every shard built, the first ``limit_shards``, or exactly ``shards``.
    A cache built with ``--teacher none`` gives ``teacher=None``."""
    manifest = json.loads((cache / "manifest.json").read_text())
    items = [Item(p, s, n) for p, s, n in manifest["items"]]
    crops, teacher, index = [], [], []
    numbers = shards if shards is not None else built_shards(cache)[:limit_shards]
    missing = [s for s in numbers if not (cache / f"shard_{s:05d}.npz").is_file()]
    if missing:
        raise RuntimeError(
            f"{cache}: shards not built: {format_shards(missing)} (run 'facetags train prepare')"
        )
    shards_paths = [cache / f"shard_{s:05d}.npz" for s in numbers]
    for path in shards_paths:
        with np.load(path) as z:
            crops.append(z["crops"])
            if "teacher" in z.files:
                teacher.append(z["teacher"])
            index.append(z["index"])
    if not shards_paths:
        raise RuntimeError(f"{cache}: no shards built yet")
    if teacher and len(teacher) != len(shards_paths):
        raise RuntimeError(f"{cache}: some shards hold teacher vectors and some do not")
    idx = np.concatenate(index)
    kept = [items[i] for i in idx]
    names = sorted({i.identity for i in kept if i.identity})
    lookup = {n: k for k, n in enumerate(names)}
    labels = np.asarray([lookup[i.identity] if i.identity else -1 for i in kept], np.int32)
    vectors = np.concatenate(teacher) if teacher else None
    return CropSet(np.concatenate(crops), vectors, labels, names, kept, str(cache))


def split_validation(data: CropSet, n_people: int, seed: int) -> tuple[CropSet, CropSet]:
    """Hold out ``n_people`` LFW identities (with >= 2 crops) for per-epoch validation pairs."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(data.labels[data.labels >= 0], minlength=len(data.names))
    lfw = {k for k, it in zip(data.labels, data.items, strict=True) if k >= 0 and it.source == "lfw"}
    candidates = sorted(k for k in lfw if counts[k] >= 2)
    held = set(rng.choice(candidates, size=min(n_people, len(candidates)), replace=False).tolist())
    mask = np.isin(data.labels, sorted(held))
    return data.subset(~mask), data.subset(mask)


def validation_pairs(labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` same and ``n`` different index pairs: ((M, 2) int, (M,) bool same)."""
    rng = np.random.default_rng(seed)
    by = {k: np.flatnonzero(labels == k) for k in np.unique(labels) if k >= 0}
    multi = [k for k, v in by.items() if len(v) >= 2]
    pairs, same = [], []
    for _ in range(n):
        k = multi[rng.integers(len(multi))]
        a, b = rng.choice(by[k], 2, replace=False)
        pairs.append((a, b))
        same.append(True)
        k1, k2 = rng.choice(list(by), 2, replace=False)
        pairs.append((rng.choice(by[k1]), rng.choice(by[k2])))
        same.append(False)
    return np.asarray(pairs, np.int64), np.asarray(same, bool)


# --------------------------------------------------------------------------- sampling


class PKSampler:
    """Batches of P identities x K crops each, plus U crops drawn from the whole set.

    Only identities with at least 2 crops are drawn, so every labelled anchor has a positive
    (a different crop of the same person) and, with P >= 2, negatives in the same batch. When a
    person has fewer than K crops, the remaining slots repeat crops (augmented differently).
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, u: int = 0, seed: int = 0) -> None:
        if p < 2 or k < 2:
            raise ValueError("P and K must both be at least 2")
        self.labels = labels
        self.p, self.k, self.u = p, k, u
        self.rng = np.random.default_rng(seed)
        self.by = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels) if c >= 0}
        self.people = np.asarray(sorted(c for c, v in self.by.items() if len(v) >= 2))
        if len(self.people) < p:
            raise ValueError(f"need at least {p} people with 2+ crops, have {len(self.people)}")

    def batch(self) -> np.ndarray:
        """Indices: the first P*K labelled (grouped by person), then U from anywhere."""
        chosen = self.rng.choice(self.people, self.p, replace=False)
        idx: list[int] = []
        for c in chosen:
            pool = self.by[int(c)]
            if len(pool) >= self.k:
                idx.extend(self.rng.choice(pool, self.k, replace=False))
            else:
                first = self.rng.permutation(pool)
                extra = self.rng.choice(pool, self.k - len(pool), replace=True)
                idx.extend(np.concatenate([first, extra]))
        if self.u:
            idx.extend(self.rng.integers(0, len(self.labels), self.u))
        return np.asarray(idx, np.int64)

    def steps_per_epoch(self, n_items: int) -> int:
        return max(1, n_items // (self.p * self.k + self.u))


# --------------------------------------------------------------------------- augmentation


def centre(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract the teacher's mean vector and re-normalise (spreads dlib's narrow cone)."""
    v = vectors - mean[None, :]
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def augment(crop: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One randomly augmented copy of a 112x112 RGB crop (uint8 in, uint8 out)."""
    im = Image.fromarray(crop)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8 * strength:  # scale / shift / small rotation jitter about the centre
        s = 1.0 + rng.uniform(-0.08, 0.10) * strength
        angle = np.deg2rad(rng.uniform(-8, 8) * strength)
        tx, ty = rng.uniform(-5, 5, 2) * strength
        c = CROP / 2
        cos, sin = np.cos(angle) / s, np.sin(angle) / s
        # inverse map: output (x, y) -> input
        a, b = cos, sin
        d, e = -sin, cos
        cx = c - a * (c + tx) - b * (c + ty)
        cy = c - d * (c + tx) - e * (c + ty)
        im = im.transform(im.size, Image.Transform.AFFINE, (a, b, cx, d, e, cy), Image.Resampling.BILINEAR)
    if rng.random() < 0.15 * strength:  # low resolution
        side = int(rng.integers(24, 64))
        im = im.resize((side, side), Image.Resampling.BILINEAR).resize(
            (CROP, CROP), Image.Resampling.BILINEAR
        )
    if rng.random() < 0.2 * strength:
        im = im.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.5))))
    x = np.asarray(im, np.float32)
    if rng.random() < 0.8 * strength:  # colour: brightness, contrast, saturation
        mean = x.mean()
        x = (x - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.7, 1.3)
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.6, 1.4)
    if rng.random() < 0.1 * strength:
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.25 * strength:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(25, 90)))
        buf.seek(0)
        out = np.asarray(Image.open(buf).convert("RGB"), np.uint8)
    return out


def augment_batch(crops: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    return np.stack([augment(c, rng, strength) for c in crops])


def mix_faces(x: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """A copy of the batch ``x`` (N, ...) in which ``round(fraction * N)`` faces, drawn at
    random, are each blended with another face of the batch: ``lam * a + (1 - lam) * b``,
    ``lam ~ U(0, 1)``. For distillation only: the teacher describes the blend itself, so it needs
    no label, and the student sees images between the training faces instead of the same 23k
    again ("function matching", Beyer et al. 2022, *Knowledge distillation: a good teacher is
    patient and consistent*). The blockwise counterpart of :mod:`facetags.train.views` (a fixed
    set of mixups made once for the end-to-end student): blends made afresh in every batch, with
    all the teacher's activations as targets. A blend of two people has no identity: not for
    the triplet term."""
    n = len(x)
    m = round(fraction * n)
    if m == 0 or n < 2:
        return x
    out = x.copy()
    rows = rng.choice(n, m, replace=False)
    partners = (rows + rng.integers(1, n, m)) % n  # any other face of the batch
    lam = rng.uniform(0.0, 1.0, (m,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    out[rows] = lam * x[rows] + (1 - lam) * x[partners]
    return out
