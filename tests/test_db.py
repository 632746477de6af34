"""The library file: creation mode, pragmas, migrations (empty and old files), vector blobs,
and the schema documentation's drift check."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facetags.db import vectors
from facetags.db.connect import connect, transaction
from facetags.db.migrate import available, current_version, latest_version, migrate, split_statements
from facetags.db.store import REPLACED, Store
from facetags.errors import LibraryError

ROOT = Path(__file__).resolve().parents[1]


def test_new_library_is_private_wal_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "library.db"
    old = os.umask(0)
    try:
        conn = connect(path)
    finally:
        os.umask(old)
    migrate(conn)
    with transaction(conn):
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        assert side.exists()
        assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    conn.close()


def test_not_a_library(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(LibraryError, match="not a library SQLite can read"):
        migrate(connect(junk))
    with pytest.raises(LibraryError, match="directory"):
        connect(tmp_path)
    with pytest.raises(LibraryError, match="no library"):
        connect(tmp_path / "missing.db", create=False)


def test_a_damaged_library_is_called_damaged_not_another_file(tmp_path: Path) -> None:
    """A library cut short (a full disk, a bad copy) said "not a facetags library": the user's
    own library, called another program's file, with no word of a backup."""
    where = tmp_path / "lib.db"
    conn = connect(where)
    migrate(conn)
    with conn:
        conn.executemany(
            "INSERT INTO failures (path, error, attempts, failed_at) VALUES (?, 'x', 1, 0)",
            ((f"/p/{i:06d}-{'x' * 200}.jpg",) for i in range(3000)),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = where.read_bytes()
    where.write_bytes(data[: len(data) // 2])
    with pytest.raises(LibraryError, match=r"the library file is damaged .*restore it from a backup"):
        conn = connect(where, create=False)
        migrate(conn)
        conn.execute("SELECT COUNT(*) FROM failures").fetchone()


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    """A mistyped --library naming, say, a browser's history: migrating it would add facetags'
    tables to it (and switching it to WAL would change its journal)."""
    other = tmp_path / "places.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
    conn.close()
    before = other.read_bytes()
    for create in (True, False):
        with pytest.raises(LibraryError, match=r"not a facetags library .*tables moz_places"):
            connect(other, create=create)
    assert other.read_bytes() == before
    assert not Path(f"{other}-wal").exists()


def test_an_empty_file_is_no_library_to_read_and_a_private_one_to_make(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch(mode=0o644)
    with pytest.raises(LibraryError, match="no library here, an empty file"):
        connect(empty, create=False)
    migrate(connect(empty))
    assert stat.S_IMODE(empty.stat().st_mode) == 0o600
    assert current_version(connect(empty, create=False)) == latest_version()


def test_a_read_only_librarys_companions_stay_usable(tmp_path: Path) -> None:
    """SQLite gives -wal and -shm the library's mode: a read-only library read once left a
    read-only -shm, and writes failed after the library was made writable again."""
    import subprocess
    import sys

    from tests.process_support import without_read_override

    path = tmp_path / "lib.db"
    made = connect(path)
    migrate(made)
    made.close()  # closed cleanly: one file, no -wal or -shm
    assert not Path(f"{path}-shm").exists()
    path.chmod(0o444)
    as_user = without_read_override()
    status = [*as_user, sys.executable, "-m", "facetags", "--library", str(path), "status"]
    subprocess.run(status, check=True, cwd=ROOT, capture_output=True)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        assert not side.exists() or stat.S_IMODE(side.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):  # as an older facetags left them
        Path(f"{path}{suffix}").touch()
        Path(f"{path}{suffix}").chmod(0o444)
    path.chmod(0o600)  # the user makes it writable: writing works, the first time
    write = (
        "import sys; from facetags.db.connect import connect, transaction\n"
        "conn = connect(sys.argv[1], create=False)\n"
        "with transaction(conn): conn.execute(\"INSERT INTO meta (key, value) VALUES ('k', 'v')\")"
    )
    subprocess.run([*as_user, sys.executable, "-c", write, str(path)], check=True, cwd=ROOT)


def test_empty_file_migrates_to_latest(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    assert current_version(conn) == 0
    applied = migrate(conn)
    assert applied == [m.version for m in available()]
    assert current_version(conn) == latest_version()
    assert migrate(conn) == []  # idempotent
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == applied
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _fill(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows in every table of a version-1 library (written as that release would)."""
    store = Store(conn)
    with transaction(conn):
        store.set_meta("embedder", "m1")
        person = store.new_person("Ada", "ada")
        other = store.new_person()
        conn.execute(
            "INSERT INTO photos (id, content_hash, width, height, detector, created_at)"
            " VALUES (1, '1280:abc', 640, 480, 'mtcnn', 0)"
        )
        conn.execute(
            "INSERT INTO files (path, photo_id, size, mtime_ns, device, inode, seen_at)"
            " VALUES ('/p/a.jpg', 1, 10, 20, 1, 2, 0)"
        )
        for idx in range(2):
            conn.execute(
                "INSERT INTO faces (photo_id, idx, x, y, w, h, landmarks, score, thumb, person_id,"
                " assigned_by) VALUES (1, ?, 0.1, 0.1, 0.2, 0.2, ?, 0.99, x'ffd8', ?, 'user')",
                (idx, vectors.landmarks_to_blob(np.zeros((5, 2))), person if idx == 0 else other),
            )
            conn.execute(
                "INSERT INTO embeddings (face_id, model_id, dim, vector) VALUES (?, 'm1', 4, ?)",
                (idx + 1, vectors.to_blob(np.ones(4) / 2)),
            )
        store.add_rejection(2, person)
        conn.execute("INSERT INTO cannot_link (face_a, face_b, created_at) VALUES (1, 2, 0)")
        store.log_decision("name", person_id=person, name="Ada")
        store.record_failure("/p/bad.jpg", None, "broken")
        store.enqueue(["/p/new.jpg"])
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in store.schema()}


@pytest.mark.parametrize("release", [m.version for m in available()][:-1])
def test_old_library_upgrades_keeping_rows(tmp_path: Path, release: int) -> None:
    """A library made by an earlier release's schema (every one, the previous release included),
    with rows in every table, migrates to the latest schema without losing any (each later
    migration is applied on top of real data)."""
    path = tmp_path / "old.db"
    conn = connect(path)
    migrate(conn, target=release)
    before = _fill(conn)
    conn.close()
    conn = connect(path)
    migrate(conn)
    assert current_version(conn) == latest_version()
    after = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in before}
    before.pop("schema_migrations")
    after.pop("schema_migrations")
    assert after == before
    assert conn.execute("SELECT name FROM people WHERE id = 1").fetchone()[0] == "Ada"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_names_keyed_before_0006_read_typographic_apostrophes_as_plain(tmp_path: Path) -> None:
    from facetags.names import name_key

    conn = connect(tmp_path / "old.db")
    migrate(conn, target=5)
    conn.execute(  # the key 0005's facetags stored: the phone's ’ and ‐ kept
        "INSERT INTO people (name, name_key, created_at, updated_at) VALUES (?, ?, 0, 0)",
        ("Zoë O’Brien‐Smith", "zoe o’brien‐smith"),
    )
    migrate(conn)
    (key,) = conn.execute("SELECT name_key FROM people").fetchone()
    assert key == name_key("Zoë O’Brien‐Smith") == name_key("zoe o'brien-smith") == "zoe o'brien-smith"


def test_xmp_names_of_0007_go_to_every_file_of_the_photo(tmp_path: Path) -> None:
    """Until 0008 names went into the first path a photo was indexed at, and the record was the
    face's; which file that was is not known for sure (a file deleted and found again is
    indexed anew), so each record goes to every file (a missing photo's: where it was last
    seen), and a photo in several files is unverified (the next write looks at each)."""
    conn = connect(tmp_path / "old.db")
    migrate(conn, target=7)
    _fill(conn)  # photo 1 at /p/a.jpg, faces 1 and 2
    with transaction(conn):
        conn.execute(
            "INSERT INTO files (path, photo_id, size, mtime_ns, device, inode, seen_at)"
            " VALUES ('/p/0-copy/a.jpg', 1, 10, 20, 1, 3, 0)"  # a copy found later: sorts first
        )
        conn.execute(
            "INSERT INTO photos (id, content_hash, width, height, detector, created_at)"
            " VALUES (2, '1280:def', 640, 480, 'mtcnn', 0)"
        )
        conn.execute(
            "INSERT INTO faces (photo_id, idx, x, y, w, h, landmarks, score, thumb) VALUES"
            " (2, 0, 0.1, 0.1, 0.2, 0.2, ?, 0.99, x'ffd8')",
            (vectors.landmarks_to_blob(np.zeros((5, 2))),),
        )
        conn.execute(
            "INSERT INTO missing (path, photo_id, since, reason) VALUES ('/p/gone.jpg', 2, 0, 'gone')"
        )
        conn.executemany(
            "INSERT INTO xmp_names (face_id, name, written_at) VALUES (?, ?, 5)",
            [(1, "Ada"), (2, "Bob"), (3, "Cy")],
        )
    migrate(conn)
    rows = conn.execute(
        "SELECT face_id, path, name, written_at FROM xmp_names ORDER BY face_id, path"
    ).fetchall()
    assert rows == [
        (1, "/p/0-copy/a.jpg", "Ada", 5),
        (1, "/p/a.jpg", "Ada", 5),
        (2, "/p/0-copy/a.jpg", "Bob", 5),
        (2, "/p/a.jpg", "Bob", 5),
        (3, "/p/gone.jpg", "Cy", 5),
    ]
    assert conn.execute("SELECT photo_id FROM xmp_unverified").fetchall() == [(1,)]
    assert Store(conn).photos_with_unwritten_names() == 1  # Ada's photo, until a write looks


def test_upgraded_schema_equals_fresh_schema(tmp_path: Path) -> None:
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh)
    stepped = connect(tmp_path / "stepped.db")
    for version in range(1, latest_version() + 1):
        migrate(stepped, target=version)
    assert Store(stepped).schema() == Store(fresh).schema()


def test_people_counts_come_from_the_covering_index(tmp_path: Path) -> None:
    """Migration 0002: people() counts faces and photos from faces(person_id, not_face, photo_id)
    without reading face rows (benchmarks/people_query.py measures it at 100k faces)."""
    conn = connect(tmp_path / "p.db")
    migrate(conn)
    _fill(conn)
    sql = (
        "SELECT p.id, COUNT(f.id), COUNT(DISTINCT f.photo_id) FROM people p LEFT JOIN faces f"
        " ON f.person_id = p.id AND f.not_face = 0 WHERE p.merged_into IS NULL GROUP BY p.id"
    )
    plan = " ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
    assert "COVERING INDEX faces_person_cover" in plan, plan
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "faces_person" not in indexes  # the cover serves its lookups
    assert [(p.faces, p.photos) for p in Store(conn).people()] == [(1, 1), (1, 1)]


def test_newer_library_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "n.db")
    migrate(conn)
    with transaction(conn):
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    with pytest.raises(LibraryError, match="newer"):
        migrate(conn)


def test_two_processes_migrating_at_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn = connect(path)
            migrate(conn)
            conn.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_version(connect(path)) == latest_version()


def test_0009_keeps_each_missing_photo_and_lets_two_share_a_path(tmp_path: Path) -> None:
    """Until 0009 a path was where one missing photo was last seen: a second kept there
    replaced the first one's row, and that photo was listed nowhere. The rows are kept as they
    were, a photo orphaned that way is listed as missing again, and a second photo missing at
    the same path gets a row of its own."""
    conn = connect(tmp_path / "old.db")
    migrate(conn, target=8)
    _fill(conn)  # photo 1 at /p/a.jpg
    with transaction(conn):
        conn.execute(
            "INSERT INTO photos (id, content_hash, width, height, detector, created_at)"
            " VALUES (2, '1280:def', 640, 480, 'mtcnn', 0)"
        )
        conn.execute("INSERT INTO missing (path, photo_id, since, reason) VALUES ('/p/b.jpg', 2, 7, 'gone')")
        conn.execute(  # photo 3: orphaned by the old rule (no file, not missing)
            "INSERT INTO photos (id, content_hash, width, height, detector, created_at)"
            " VALUES (3, '1280:ghi', 640, 480, 'mtcnn', 0)"
        )
    migrate(conn)
    store = Store(conn)
    kept = conn.execute("SELECT path, photo_id, since, reason FROM missing ORDER BY photo_id").fetchall()
    assert kept[0] == ("/p/b.jpg", 2, 7, "gone")
    assert [(r[0], r[1], r[3]) for r in kept[1:]] == [("(path unknown)", 3, REPLACED)]
    with transaction(conn):
        store.mark_missing(["/p/a.jpg"], "gone")  # photo 1 goes missing at /p/a.jpg
        store.keep_missing("/p/b.jpg", 1, REPLACED)  # and beside photo 2
    rows = sorted(conn.execute("SELECT path, photo_id FROM missing WHERE photo_id < 3").fetchall())
    assert rows == [("/p/a.jpg", 1), ("/p/b.jpg", 1), ("/p/b.jpg", 2)]
    assert store.last_missing_at("/p/b.jpg") == (1, pytest.approx(time.time(), abs=60), REPLACED)
    with transaction(conn):
        assert sorted(store.drop_missing(["/p/b.jpg"])) == [1, 2]


def test_migration_files_are_well_formed() -> None:
    found = available()
    versions = [m.version for m in found]
    assert versions == sorted(set(versions)) and versions[0] == 1
    for migration in found:
        statements = migration.statements()
        assert statements, migration.path
        assert all(sqlite3.complete_statement(s + ";") for s in statements)


def test_a_migration_that_arrives_late_is_applied(tmp_path: Path) -> None:
    """Numbers may have a gap (two changes written side by side): a library migrated past the
    gap gets the missing migration once it ships, and nothing twice."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    (folder / "0003_c.sql").write_text("CREATE TABLE c (x INTEGER);\n")
    conn = connect(tmp_path / "gap.db")
    assert migrate(conn, folder=folder) == [1, 3]
    (folder / "0002_b.sql").write_text("CREATE TABLE b (x INTEGER);\n")
    assert migrate(conn, folder=folder) == [2]
    assert migrate(conn, folder=folder) == []
    assert current_version(conn) == latest_version(folder) == 3
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"a", "b", "c"} <= tables
    (folder / "0002_again.sql").write_text("CREATE TABLE d (x INTEGER);\n")
    with pytest.raises(LibraryError, match="unique"):
        migrate(conn, folder=folder)


def test_split_statements_keeps_triggers_whole() -> None:
    script = """-- a comment
CREATE TABLE t (a INTEGER);
CREATE TRIGGER tr AFTER INSERT ON t BEGIN
    UPDATE t SET a = 1; UPDATE t SET a = 2;
END;
"""
    parts = split_statements(script)
    assert len(parts) == 2
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")


def test_vector_blobs_round_trip_little_endian() -> None:
    v = np.array([0.5, -1.25, 3.0], np.float32)
    blob = vectors.to_blob(v)
    assert blob == np.array([0.5, -1.25, 3.0], "<f4").tobytes()
    assert np.array_equal(vectors.from_blob(blob, 3), v)
    assert vectors.stack([blob, blob], 3).shape == (2, 3)
    with pytest.raises(LibraryError):
        vectors.from_blob(blob, 4)
    with pytest.raises(LibraryError):
        vectors.stack([blob, blob[:-4]], 3)


def test_schema_doc_lists_every_table_and_column(tmp_path: Path) -> None:
    """docs/schema.md must describe the migrated schema: every table and every column."""
    doc = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    conn = connect(tmp_path / "s.db")
    migrate(conn)
    sections = re.split(r"^## ", doc, flags=re.M)
    documented = {}
    for section in sections[1:]:
        title, _, body = section.partition("\n")
        table = title.strip().strip("`")
        documented[table] = set(re.findall(r"^\|\s*`(\w+)`", body, flags=re.M))
    for table, columns in Store(conn).schema().items():
        assert table in documented, f"docs/schema.md has no section for table {table}"
        missing = set(columns) - documented[table]
        assert not missing, f"docs/schema.md: table {table} lacks columns {sorted(missing)}"
    extra = set(documented) - set(Store(conn).schema())
    assert not extra, f"docs/schema.md describes tables that do not exist: {sorted(extra)}"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_device_given_as_the_library_keeps_its_mode(tmp_path: Path) -> None:
    """`--library /dev/null` as root: an empty thing of the user's made private (0600) must be
    a regular file, never a device every user of the machine needs."""
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    device.chmod(0o666)
    with pytest.raises(LibraryError):
        migrate(connect(device))
    assert stat.S_IMODE(device.stat().st_mode) == 0o666


def test_grouped_writes_share_transactions_and_a_failed_write_undoes_only_itself(tmp_path: Path) -> None:
    """A scan's photos are written in groups (Store.grouped): another connection sees them at
    each commit (commit_now, after max_s, at the end); a write that fails is undone alone, as
    its own transaction would have been, and the caller is told (its memory may be ahead)."""
    path = tmp_path / "library.db"
    conn = connect(path)
    migrate(conn)
    store = Store(conn)
    other = connect(path)

    def seen() -> set[str]:
        return {k for (k,) in other.execute("SELECT key FROM meta WHERE key LIKE 'k%'")}

    rolled_back: list[int] = []
    with store.grouped(3600, on_rollback=lambda: rolled_back.append(1)):
        with store.write():
            store.set_meta("k1", "a")
        with pytest.raises(ValueError), store.write():
            store.set_meta("k2", "b")
            raise ValueError("this photo's write fails")
        with store.write():
            store.set_meta("k3", "c")
        assert seen() == set() and rolled_back == [1]  # one transaction, not committed yet
        store.commit_now()
        assert seen() == {"k1", "k3"}
        with store.write():
            store.set_meta("k4", "d")
        assert seen() == {"k1", "k3"}
    assert seen() == {"k1", "k3", "k4"}  # committed at the end

    with store.grouped(0):  # open for max_s: each write commits at its end
        with store.write():
            store.set_meta("k5", "e")
        assert "k5" in seen()

    lost: list[int] = []
    with store.grouped(3600, on_rollback=lambda: lost.append(1)):
        with store.write():
            store.set_meta("k6", "f")
        with pytest.raises(LibraryError), store.write():
            conn.execute("ROLLBACK")  # what SQLite does itself when the disk fills
        assert lost == [1]  # the group's earlier writes went with it, and the caller knows
        with store.write():  # a new transaction
            store.set_meta("k7", "g")
    assert "k6" not in seen() and "k7" in seen()

    undone: list[int] = []
    with store.grouped(3600, on_rollback=lambda: undone.append(1)):
        with store.write():
            store.set_meta("k8", "h")
            with pytest.raises(RuntimeError):
                store.commit_now()  # inside a write: would commit half of it
        with pytest.raises(ValueError), store.write():
            store.set_meta("k9", "i")
            conn.execute("RELEASE facetags_write")  # its savepoint can no longer be rolled back to
            raise ValueError("and the write fails")
        assert undone == [1] and not conn.in_transaction  # so nothing of the group is kept
    assert not {"k8", "k9"} & seen()
    assert not conn.in_transaction
    other.close()
    conn.close()


def test_a_writer_that_never_pauses_lets_another_connection_write(tmp_path: Path) -> None:
    """A scan whose writer is the bottleneck stores photo after photo without a pause: another
    program's write (the TUI naming someone), waiting in SQLite's busy handler, gets its turn
    within a group's time and a gap. Without the gap it waited for the scan's end: the lock is
    free for microseconds between two groups, and the busy handler tries every 100 ms."""
    path = tmp_path / "library.db"
    conn = connect(path)
    migrate(conn)
    store = Store(conn)
    other = connect(path)
    stop = threading.Event()

    def busy_writer() -> None:
        with store.grouped(0.2, 0.11):
            n = 0
            while not stop.is_set():
                with store.write():
                    store.set_meta(f"photo{n % 50}", "x" * 500)
                n += 1

    writer = threading.Thread(target=busy_writer)
    writer.start()
    threading.Timer(3.0, stop.set).start()  # the scan ends
    try:
        time.sleep(0.3)
        began = time.monotonic()
        try:
            with transaction(other):
                other.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('named', 'Grace')")
            waited = time.monotonic() - began
        except LibraryError:  # busy for the whole busy timeout
            waited = float("inf")
    finally:
        stop.set()
        writer.join()
    assert waited < 1.0, waited
    other.close()
    conn.close()
