"""Fixtures and helpers shared by the library, scan, watch and CLI tests (real files only).

Models are loaded once per session (the shipped detector and embedder) and handed to every
:class:`~facetags.library.Library` a test opens, so tests pay for analysis, not for loading.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facetags.config import Settings
from facetags.library import Library

OpenLibrary = Callable[..., Library]


@pytest.fixture(scope="session")
def models() -> tuple[Any, Any]:
    """The shipped detector and embedder, loaded once."""
    from facetags.vision.detect import Detector
    from facetags.vision.embed import load_embedder

    settings = Settings()
    return Detector(settings), load_embedder(settings.embedder)


@pytest.fixture
def open_library(tmp_path: Path, models: tuple[Any, Any]) -> Iterator[OpenLibrary]:
    """Open libraries under tmp_path (closed after the test); all share the session's models."""
    opened: list[Library] = []

    def _open(path: Path | None = None, **settings: Any) -> Library:
        where = path or tmp_path / "library.db"
        lib = Library.open(where, Settings(library=where, **settings), detector=models[0], embedder=models[1])
        opened.append(lib)
        return lib

    yield _open
    for lib in opened:
        lib.close()


@pytest.fixture
def photo_dir(tmp_path: Path, t1_path: Path, astronaut_path: Path) -> Path:
    """A folder with two real photos that ship with the test dependencies: t1 (6 faces) and
    the astronaut (1 face)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy2(t1_path, folder / "t1.jpg")
    shutil.copy2(astronaut_path, folder / "astronaut.jpg")
    return folder


def lfw(shared: Path, name: str, number: int) -> Path:
    return shared / "lfw" / "images" / name / f"{name}_{number:04d}.jpg"


def group_photos(shared: Path, folder: Path) -> Path:
    """The 5 Big Bang Theory group photos (``bbt/groups``, labels in
    ``tests/data/labels/bbt_groups.csv``) copied into a new ``folder``; returns it."""
    folder.mkdir(parents=True)
    for p in sorted((shared / "bbt" / "groups").glob("*.jpg")):
        shutil.copy2(p, folder / p.name)
    return folder


def copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return dest


def link_or_copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
    return dest


def with_xmp(jpeg: bytes, text: str = "facetags test") -> bytes:
    """The same JPEG with an XMP packet (APP1) inserted after SOI: new bytes, same pixels."""
    assert jpeg[:2] == b"\xff\xd8"
    packet = (
        b"http://ns.adobe.com/xap/1.0/\x00"
        + f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- {text} --></x:xmpmeta>'.encode()
    )
    segment = b"\xff\xe1" + (len(packet) + 2).to_bytes(2, "big") + packet
    return jpeg[:2] + segment + jpeg[2:]
