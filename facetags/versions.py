"""What this facetags is made of, for bug reports: ``facetags version --json``.

Read from metadata only: no model runtime is loaded and no library is opened.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from facetags import __version__
from facetags.db.migrate import latest_version
from facetags.vision.specs import available

#: the packages whose versions change what facetags computes or shows
RUNTIME = ("onnxruntime", "numpy", "Pillow", "pillow-heif", "textual", "mtcnn", "pyexiv2", "watchdog")


def _installed(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def report() -> dict[str, Any]:
    """The package's version, the library schema it migrates to, the shipped models (versioned id
    and sha256 of each file) and the Python and runtime packages' versions (None: not installed)."""
    return {
        "facetags": __version__,
        "schema": latest_version(),
        "models": [
            {"id": spec.id, "version_id": spec.version_id, "file": spec.file, "sha256": spec.sha256}
            for spec in sorted(available().values(), key=lambda s: s.id)
        ],
        "python": platform.python_version(),
        "packages": {name: _installed(name) for name in RUNTIME},
    }
