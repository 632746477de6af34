"""Shared by the TUI tests: a small real library indexed from real photos.

Faces are found, aligned and cut by the real pipeline (MTCNN, alignment, thumbnails). The
embedder is a fixed, deterministic stand-in so that what the screens show does not depend on
the model being trained in parallel: ``DistinctEmbedder`` makes every face a stranger of its
own (so cluster ids are stable), ``PixelEmbedder`` compares faces by their aligned pixels (so
similar faces do get suggested).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


class DistinctEmbedder:
    """One orthogonal vector per face, in the order faces are embedded: no two faces alike."""

    model_id = "test-distinct"
    dim = 128

    def __init__(self, start: int = 0) -> None:
        self._next = start  # another process indexing more photos: start past the first ones

    def embed(self, crops: np.ndarray) -> np.ndarray:
        out = np.zeros((len(crops), self.dim), np.float32)
        for row in range(len(crops)):
            out[row, self._next % self.dim] = 1.0
            self._next += 1
        return out


class PixelEmbedder:
    """The aligned crop's mean-free 16x8 grey pixels, unit length: alike faces look alike."""

    model_id = "test-pixels"
    dim = 128

    def embed(self, crops: np.ndarray) -> np.ndarray:
        from PIL import Image

        out = np.zeros((len(crops), self.dim), np.float32)
        for row, crop in enumerate(crops):
            g = np.asarray(Image.fromarray(crop).convert("L").resize((16, 8)), np.float32).ravel()
            g -= g.mean()
            out[row] = g / max(float(np.linalg.norm(g)), 1e-6)
        return out


def build_library(folder: Path, photos: list[Path], embedder: object) -> Path:
    """Copy ``photos`` into ``folder/photos`` and index them into ``folder/library.db``."""
    from facetags.config import load_settings
    from facetags.library import Library

    (folder / "photos").mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copy2(photo, folder / "photos" / photo.name)
    db = folder / "library.db"
    with Library.open(db, load_settings(library=str(db)), embedder=embedder) as lib:
        report = lib.scan([folder / "photos"])
        assert report.faces > 0, report
    return db


def copy_library(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            shutil.copy2(src, dest / f"library.db{suffix}")
    return dest / "library.db"
