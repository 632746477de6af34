"""`people()` on a 100,000-face library: schema version 1 against the latest schema.

    python benchmarks/people_query.py                 # 100k faces, 20k people, 40k photos
    python benchmarks/people_query.py --faces 200000 --json

Builds the same synthetic rows (random, seeded) in a library migrated to each version, runs
``ANALYZE``, then times ``Store.people()`` (best of --repeat, after one warm-up) and prints
the query plans. The figure in docs/schema.md comes from this script.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facetags.db.connect import connect  # noqa: E402
from facetags.db.migrate import latest_version, migrate  # noqa: E402
from facetags.db.store import Store  # noqa: E402


def build(path: Path, version: int, faces: int, people: int, photos: int) -> Store:
    conn = connect(path)
    migrate(conn, target=version)
    rng = random.Random(0)
    with Store(conn).write():
        conn.executemany(
            "INSERT INTO people (id, name, name_key, created_at, updated_at) VALUES (?, ?, ?, 0, 0)",
            [
                (i, f"n{i}" if i <= people // 50 else None, f"n{i}" if i <= people // 50 else None)
                for i in range(1, people + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO photos (id, content_hash, width, height, detector, created_at)"
            " VALUES (?, ?, 1, 1, 'd', 0)",
            [(i, f"h{i}") for i in range(1, photos + 1)],
        )
        conn.executemany(
            "INSERT INTO faces (id, photo_id, idx, x, y, w, h, landmarks, score, person_id,"
            " assigned_by, not_face) VALUES (?, ?, ?, 0, 0, 0, 0, x'00', 1, ?, 'auto', ?)",
            [
                (f, rng.randint(1, photos), f, rng.randint(1, people), int(rng.random() < 0.01))
                for f in range(1, faces + 1)
            ],
        )
    conn.execute("ANALYZE")
    return Store(conn)


def time_people(store: Store, repeat: int) -> float:
    store.people()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        store.people()
        best = min(best, time.perf_counter() - start)
    return best


def plan(store: Store) -> list[str]:
    sql = (
        "EXPLAIN QUERY PLAN SELECT p.id, COUNT(f.id), COUNT(DISTINCT f.photo_id) FROM people p"
        " LEFT JOIN faces f ON f.person_id = p.id AND f.not_face = 0 WHERE p.merged_into IS NULL"
        " GROUP BY p.id"
    )
    return [str(r[3]) for r in store.conn.execute(sql)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--photos", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"faces": args.faces, "people": args.people, "photos": args.photos}
    with tempfile.TemporaryDirectory() as tmp:
        for version in (1, latest_version()):
            store = build(Path(tmp) / f"v{version}.db", version, args.faces, args.people, args.photos)
            results[f"v{version}"] = {
                "seconds": round(time_people(store, args.repeat), 4),
                "plan": plan(store),
            }
            store.conn.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        if isinstance(value, dict):
            print(
                f"schema {key}: people() {value['seconds'] * 1000:.0f} ms  plan: {'; '.join(value['plan'])}"
            )


if __name__ == "__main__":
    main()
