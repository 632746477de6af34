"""How fast the TUI opens on a large library.

    python benchmarks/tui_open.py [--faces 100000] [--big 5000] [--size 160x45]

Builds a library of ``--faces`` faces (real face thumbnails from insightface's t1.jpg and
scikit-image's astronaut, indexed by the real pipeline, replicated), one person with ``--big``
faces and the rest in clusters of 1 to 40, then drives the app headless (80x24, or ``--size``) and reports:
the time from start until the people screen lists everyone, and the time from opening the big
person until its first thumbnails are on screen. Goal (issue 6): both under one second.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facetags.db.records import FileStat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def real_faces(folder: Path) -> list[tuple[tuple[float, float, float, float], bytes]]:
    """(box, thumbnail) of every face the real pipeline finds in the bundled photos."""
    import importlib.util

    import numpy as np
    from PIL import Image
    from skimage import data

    from facetags.config import load_settings
    from facetags.library import Library

    spec = importlib.util.find_spec("insightface")
    assert spec is not None and spec.submodule_search_locations
    t1 = Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg"
    photos = folder / "photos"
    photos.mkdir()
    (photos / "t1.jpg").write_bytes(t1.read_bytes())
    Image.fromarray(np.asarray(data.astronaut())).save(photos / "astronaut.jpg", quality=95)
    db = folder / "seed.db"
    with Library.open(db, load_settings(library=str(db))) as lib:
        lib.scan([photos])
        return [(f.box, lib.thumbnail(f.face_id)) for f in lib.faces()]


def build(db: Path, faces: int, big: int, seed: list[tuple[tuple[float, float, float, float], bytes]]) -> int:
    import numpy as np

    from facetags.config import load_settings
    from facetags.db.store import NewFace
    from facetags.library import Library

    rng = random.Random(0)
    sizes = [big]
    left = faces - big
    while left > 0:
        size = min(left, 1 if rng.random() < 0.5 else rng.randint(2, 40))
        sizes.append(size)
        left -= size
    with Library.open(db, load_settings(library=str(db))) as lib:
        store = lib.store
        with store.write():
            people = [store.new_person() for _ in sizes]
            store.set_name(people[0], "Big Person", "big person")
            owners = [p for p, n in zip(people, sizes, strict=True) for _ in range(n)]
            rng.shuffle(owners)
            marks = np.zeros((5, 2), np.float32)
            for start in range(0, faces, 4):
                photo = store.insert_photo(f"bench-{start}", 1280, 960, "bench")
                store.add_file(f"/bench/photo{start:07d}.jpg", photo, _stat(start))
                for idx, owner in enumerate(owners[start : start + 4]):
                    box, thumb = seed[(start + idx) % len(seed)]
                    face = store.insert_face(photo, idx, NewFace(box, marks, 0.99, thumb, None))
                    store.assign(face, owner, "auto")
        return people[0]


def _stat(n: int) -> FileStat:
    from facetags.db.records import FileStat

    return FileStat(size=1000 + n, mtime_ns=n, device=1, inode=n + 1)


async def measure(db: Path, big_id: int, size: tuple[int, int] = (80, 24)) -> tuple[float, float, int]:
    from textual.widgets import DataTable

    from facetags.config import load_settings
    from facetags.library import Library
    from facetags.tui.app import FacetagsApp
    from facetags.tui.widgets.face_grid import FaceGrid

    with Library.open(db, load_settings(library=str(db)), create=False) as lib:
        start = time.perf_counter()
        app = FacetagsApp(lib, images="unicode", poll_seconds=0)
        async with app.run_test(size=size) as pilot:
            while not app.screen.query(DataTable) or app.screen.query_one(DataTable).row_count == 0:
                await pilot.pause(0.01)
            people_s = time.perf_counter() - start
            rows = app.screen.query_one(DataTable).row_count
            await pilot.pause(0.5)  # a user looks before opening: the sample face loads
            await app.workers.wait_for_complete()
            # the big person is the first row (largest first)
            start = time.perf_counter()
            await pilot.press("enter")
            while True:
                grids = app.screen.query(FaceGrid)
                if grids:
                    tiles = list(grids.first().query("FaceTile"))
                    if tiles and tiles[0].query_one("Picture").image is not None:  # type: ignore[attr-defined]
                        break
                await pilot.pause(0.01)
            thumbs_s = time.perf_counter() - start
        return people_s, thumbs_s, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=5_000)
    parser.add_argument("--size", default="80x24", help="the terminal's COLUMNSxROWS (default 80x24)")
    args = parser.parse_args()
    columns, rows = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed = real_faces(folder)
        db = folder / "big.db"
        t = time.perf_counter()
        big_id = build(db, args.faces, args.big, seed)
        print(f"built {args.faces} faces in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        people_s, thumbs_s, listed = asyncio.run(measure(db, big_id, (columns, rows)))
    print(f"faces: {args.faces}  people+clusters listed: {listed}  terminal: {columns}x{rows}")
    print(f"people screen listed everyone in {people_s:.2f} s")
    print(f"person with {args.big} faces: first thumbnails in {thumbs_s:.2f} s")


if __name__ == "__main__":
    main()
