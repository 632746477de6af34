"""Shared fixtures: real photos only.

Images that ship inside dependencies (insightface's t1.jpg, scikit-image's astronaut) are
available everywhere; ``../shared/data`` is used where present and skipped with a reason
where absent (a user's fresh checkout). CI has it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

# The library fixtures (models loaded once, open_library, photo_dir) for every test module.
pytest_plugins = ["tests.library_support"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__import__("os").environ.get("FACETAGS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared face data not found at {SHARED_DATA} (CI has it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def t1_path() -> Path:
    """insightface's group photo with 6 faces (ships in the insightface wheel)."""
    pkg = _package_dir("insightface")
    if pkg is None or not (pkg / "data" / "images" / "t1.jpg").is_file():
        pytest.skip("insightface is not installed (pip install '.[test]')")
    return pkg / "data" / "images" / "t1.jpg"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (one face), HxWx3 uint8 RGB."""
    data = pytest.importorskip("skimage.data")
    return np.asarray(data.astronaut(), dtype=np.uint8)


@pytest.fixture(scope="session")
def astronaut_path(astronaut: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("astronaut") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=95)
    return path
