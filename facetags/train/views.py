"""Consistent teaching: extra training views, each with the teacher's answer for that very view.

A crop in the cache carries the teacher's vector of the *original* face, while the student sees an
augmented copy of it: the student is asked to give an altered face the unaltered face's vector
(a "fixed teacher"), and with our ~24k faces it learns those faces and not the function (training
loss keeps falling, held-out accuracy stays flat). Beyer et al. (2022, "Knowledge distillation: A
good teacher is patient and consistent") show that a student generalises far better when teacher
and student see the same view, and that mixup views make a small data set act like a large one.

Each view here is a mixup of two training faces, ``lam * a + (1 - lam) * b``, followed by one
photometric change (mirror, brightness, contrast, saturation, greyscale, JPEG quality), made once
in the student's 112x112 crop and once in dlib's 150x150 chip of the same two faces (both frames
are aligned on the same five landmarks, so the blend is the same blend of faces); dlib then
describes the blended chip. Views are computed once into ``views_NNNNN.npz`` shards (resumable,
written atomically) rather than at every step: the teacher cost ~56 ms a view in dlib's runtime
(~2 ms since it runs in onnxruntime, ``facetags.vision.dlib_onnx``).

Held-out people (``exclude``) never appear in a view, so per-epoch validation stays clean.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facetags.train.data import CROP, Item, built_shards, cache_roots, centre, load_rgb, save_npz_atomic

log = logging.getLogger(__name__)

PER_SHARD = 250


@dataclass(frozen=True)
class Faces:
    """Every face in a crop cache, in cache order: the student crop and where to cut the chip."""

    crops: np.ndarray  # (N, 112, 112, 3) uint8
    boxes: np.ndarray  # (N, 4) float32, x y w h in the source image
    items: list[Item]


def load_faces(cache: Path) -> Faces:
    manifest = json.loads((cache / "manifest.json").read_text())
    items = [Item(p, s, n) for p, s, n in manifest["items"]]
    crops, boxes = [], []
    kept: list[Item] = []
    for s in built_shards(cache):
        with np.load(cache / f"shard_{s:05d}.npz") as z:
            crops.append(z["crops"])
            boxes.append(z["boxes"])
            kept.extend(items[int(i)] for i in z["index"])
    if not crops:
        raise RuntimeError(f"{cache}: no shards built yet")
    return Faces(np.concatenate(crops), np.concatenate(boxes), kept)


@dataclass(frozen=True)
class Look:
    """One photometric change, applied identically to the student crop and the teacher chip."""

    flip: bool
    gain: float  # brightness
    contrast: float
    saturation: float
    grey: bool
    jpeg: int  # quality, 0 = none

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Look:
        colour = rng.random() < 0.8
        return cls(
            flip=bool(rng.random() < 0.5),
            gain=float(rng.uniform(0.7, 1.3)) if colour else 1.0,
            contrast=float(rng.uniform(0.7, 1.3)) if colour else 1.0,
            saturation=float(rng.uniform(0.6, 1.4)) if colour else 1.0,
            grey=bool(rng.random() < 0.1),
            jpeg=int(rng.integers(25, 90)) if rng.random() < 0.25 else 0,
        )

    def as_row(self) -> list[float]:
        return [
            float(self.flip),
            self.gain,
            self.contrast,
            self.saturation,
            float(self.grey),
            float(self.jpeg),
        ]

    @classmethod
    def from_row(cls, row: np.ndarray) -> Look:
        f, g, c, s, grey, q = (float(v) for v in row)
        return cls(bool(f), g, c, s, bool(grey), int(q))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """float32 HxWx3 (0..255) -> uint8, the same change at any resolution."""
        if self.flip:
            x = x[:, ::-1]
        mean = x.mean()
        x = (x - mean) * self.contrast + mean * self.gain
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * self.saturation
        if self.grey:
            x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
        out = np.clip(x, 0, 255).astype(np.uint8)
        if self.jpeg:
            buf = io.BytesIO()
            Image.fromarray(out).save(buf, format="JPEG", quality=self.jpeg)
            buf.seek(0)
            out = np.asarray(Image.open(buf).convert("RGB"), np.uint8)
        return out


def mix(a: np.ndarray, b: np.ndarray, lam: float, look: Look) -> np.ndarray:
    """``lam * a + (1 - lam) * b`` (uint8 images of one size), then ``look``."""
    return look.apply(lam * a.astype(np.float32) + (1.0 - lam) * b.astype(np.float32))


def plan(
    faces: Faces, exclude: set[str], shard: int, seed: int, size: int = PER_SHARD
) -> tuple[np.ndarray, np.ndarray]:
    """Shard ``shard``'s views: ((size, 2) face indices, (size,) lam). Deterministic in
    (seed, shard); faces of ``exclude`` people are never drawn."""
    allowed = np.flatnonzero([not (i.identity and i.identity in exclude) for i in faces.items])
    if not len(allowed):
        raise ValueError("every face in the cache belongs to an excluded person")
    rng = np.random.default_rng([seed, shard])
    pairs = rng.choice(allowed, size=(size, 2))
    lam = rng.uniform(0.0, 1.0, size).astype(np.float32)
    return pairs.astype(np.int64), lam


_worker: dict[str, object] = {}


def _init_worker(root: Path, cache: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from facetags.vision.dlib_teacher import DlibTeacher

    _worker["roots"] = cache_roots(cache, root)  # a sources folder's sets come from there
    _worker["faces"] = load_faces(cache)
    _worker["teacher"] = DlibTeacher()


def _chip(k: int) -> np.ndarray:
    faces: Faces = _worker["faces"]  # type: ignore[assignment]
    roots: dict[str, Path] = _worker["roots"]  # type: ignore[assignment]
    item = faces.items[k]
    image = load_rgb(roots[item.source] / item.path)
    return _worker["teacher"].chip(image, tuple(float(v) for v in faces.boxes[k]))  # type: ignore[attr-defined]


def _build_shard(args: tuple[Path, int, int, frozenset[str], int]) -> int:
    out, shard, seed, exclude, size = args
    faces: Faces = _worker["faces"]  # type: ignore[assignment]
    pairs, lam = plan(faces, set(exclude), shard, seed, size)
    rng = np.random.default_rng([seed, shard, 1])
    crops, chips, looks = [], [], []
    for (a, b), t in zip(pairs, lam, strict=True):
        look = Look.draw(rng)
        looks.append(look.as_row())
        crops.append(mix(faces.crops[a], faces.crops[b], float(t), look))
        chips.append(mix(_chip(int(a)), _chip(int(b)), float(t), look))
    teacher = _worker["teacher"].describe_chips(chips)  # type: ignore[attr-defined]
    save_npz_atomic(
        out / f"views_{shard:05d}.npz",
        crops=np.asarray(crops, np.uint8).reshape(-1, CROP, CROP, 3),
        teacher=np.asarray(teacher, np.float32).reshape(-1, 128),
        pairs=pairs,  # positions in the crop cache's order (load_faces)
        lam=lam,
        looks=np.asarray(looks, np.float32).reshape(-1, 6),  # Look.as_row()
    )
    return shard


def view_shards(folder: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("views_*.npz"))


def build_views(
    root: Path,
    cache: Path,
    out: Path,
    count: int,
    exclude: set[str],
    seed: int = 0,
    workers: int = 2,
    per_shard: int = PER_SHARD,
) -> Path:
    """Make ``count`` views (rounded up to whole shards) into ``out``; resumes where it stopped."""
    if not (cache / "manifest.json").is_file():  # checked here: a pool whose workers fail to
        # start respawns them for ever
        raise RuntimeError(f"{cache}: no crop cache there (run 'facetags train prepare')")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cache": str(cache), "exclude": sorted(exclude), "seed": seed, "per_shard": per_shard}
    manifest = out / "views.json"
    if manifest.is_file():
        if json.loads(manifest.read_text()) != meta:
            raise RuntimeError(f"{out} holds views of another cache, seed or held-out list")
    else:
        manifest.write_text(json.dumps(meta, indent=1))
    n = (count + per_shard - 1) // per_shard
    done = set(view_shards(out))
    todo = [s for s in range(n) if s not in done]
    log.info("views %s: %d shards of %d, %d to build", out, n, per_shard, len(todo))
    jobs = [(out, s, seed, frozenset(exclude), per_shard) for s in todo]
    if not jobs:
        return out
    ctx = mp.get_context("spawn")
    with ctx.Pool(max(1, workers), initializer=_init_worker, initargs=(root, cache)) as pool:
        for k, shard in enumerate(pool.imap_unordered(_build_shard, jobs), 1):
            log.info("views shard %d (%d/%d)", shard, k, len(jobs))
    return out


def load_views(folder: Path, shards: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(crops, teacher vectors, shard numbers) of the views built so far (or of ``shards``)."""
    numbers = view_shards(folder) if shards is None else shards
    crops, teacher = [], []
    for s in numbers:
        with np.load(folder / f"views_{s:05d}.npz") as z:
            crops.append(z["crops"])
            teacher.append(z["teacher"])
    if not crops:
        return np.zeros((0, CROP, CROP, 3), np.uint8), np.zeros((0, 128), np.float32), []
    return np.concatenate(crops), np.concatenate(teacher), numbers


class OnlineViews:
    """Fresh consistent-teaching views at every step, made from the crops alone.

    dlib describes facetags' aligned crop as well as its own photo chip
    (:mod:`facetags.vision.dlib_embed`), and its network now runs in ~1.5 ms a face, so the
    teacher can answer for each new view while training: a mixup of two training crops with one
    :class:`Look`, described by dlib from exactly the pixels the student gets. No view is seen
    twice, unlike a folder of ``train views``.
    """

    def __init__(self, crops: np.ndarray, teacher_mean: np.ndarray | None = None) -> None:
        from facetags.vision.dlib_embed import DlibCropEmbedder

        self.crops = crops
        self.teacher = DlibCropEmbedder()
        self.mean = teacher_mean

    def make(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` views: (uint8 crops, teacher vectors, centred on ``teacher_mean`` if given)."""
        pairs = rng.integers(0, len(self.crops), (n, 2))
        lam = rng.uniform(0.0, 1.0, n)
        views = np.stack(
            [
                mix(self.crops[a], self.crops[b], float(t), Look.draw(rng))
                for (a, b), t in zip(pairs, lam, strict=True)
            ]
        )
        return views, self.describe(views)

    def describe(self, crops: np.ndarray) -> np.ndarray:
        """The teacher's vectors for exactly these uint8 crops (centred on ``teacher_mean``)."""
        vectors = self.teacher.embed(crops)
        return vectors if self.mean is None else centre(vectors, self.mean)
