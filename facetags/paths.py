"""Where facetags keeps things: XDG data/config dirs and the files shipped in the wheel."""

from __future__ import annotations

import os
from pathlib import Path

APP = "facetags"
_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent


def data_dir() -> Path:
    """The user's data directory ($XDG_DATA_HOME/facetags)."""
    from platformdirs import user_data_path

    return Path(user_data_path(APP, appauthor=False))


def config_dir() -> Path:
    """The user's config directory ($XDG_CONFIG_HOME/facetags)."""
    from platformdirs import user_config_path

    return Path(user_config_path(APP, appauthor=False))


def cache_dir() -> Path:
    """The user's cache directory ($XDG_CACHE_HOME/facetags)."""
    from platformdirs import user_cache_path

    return Path(user_cache_path(APP, appauthor=False))


def default_library() -> Path:
    return data_dir() / "library.db"


def _shipped(name: str) -> Path:
    """A top-level folder shipped as package data.

    In a wheel, ``migrations/`` and ``models/`` live at ``facetags/_data/<name>``; in a
    source checkout (editable install, tests) they are the repository's top-level folders.
    """
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    return _REPO / name


def migrations_dir() -> Path:
    return _shipped("migrations")


def models_dir() -> Path:
    override = os.environ.get("FACETAGS_MODELS_DIR")
    return Path(override) if override else _shipped("models")


def sidecar_candidates(photo: Path) -> list[Path]:
    """The sidecar names facetags reads, in order: ``photo.jpg.xmp``, then ``photo.xmp``."""
    names = [photo.name + ".xmp", photo.name + ".XMP", photo.stem + ".xmp", photo.stem + ".XMP"]
    out: list[Path] = []
    for name in names:
        path = photo.with_name(name)
        if path not in out:
            out.append(path)
    return out


def existing_sidecars(photo: Path) -> list[Path]:
    """Sidecars of ``photo`` that exist (case variants of one name count once)."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for path in sidecar_candidates(photo):
        try:
            info = path.stat()
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key not in seen and path.is_file():
            seen.add(key)
            found.append(path)
    return found


def on_disk(path: str | os.PathLike[str]) -> bool | None:
    """Whether something is at ``path`` (a link counts, wherever it points): False only when
    nothing is there for sure (not there, or a component of it is not a folder); None when it
    cannot be looked at (a folder without read or search permission, an I/O error), since it
    may still be there."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return None
    return True
