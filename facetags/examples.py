"""``python -m facetags.examples``: print a folder of real example photos to try facetags on.

facetags ships no photos of people. The ``examples`` extra installs insightface, whose wheel
carries a few real photos (``t1.jpg``: a group of six); this prints that folder.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def example_dir() -> Path | None:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return folder if (folder / "t1.jpg").is_file() else None


def main() -> int:
    folder = example_dir()
    if folder is None:
        print("facetags: no example photos: pip install 'facetags[examples]'", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
