"""Apply ``migrations/NNNN_name.sql`` in order, each in one transaction, recorded in a table.

Released migration files are never edited; the schema changes only by adding a file.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from facetags.db.connect import transaction
from facetags.errors import LibraryError
from facetags.paths import migrations_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


def split_statements(script: str) -> list[str]:
    """The SQL statements of ``script``, split where SQLite says a statement is complete
    (so triggers with inner semicolons stay whole). ``executescript`` cannot be used: it commits."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            text = _strip_comments(buffer)
            if text:
                statements.append(text)
            buffer = ""
    if _strip_comments(buffer):
        raise LibraryError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:80]!r}")
    return statements


def _strip_comments(sql: str) -> str:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return "\n".join(lines).strip()


def available(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise LibraryError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] < 1):
        raise LibraryError(f"{folder}: migration numbers must be unique and from 1, found {versions}")
    return found


def latest_version(folder: Path | None = None) -> int:
    found = available(folder)
    return found[-1].version if found else 0


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return set()
    return {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, target: int | None = None, folder: Path | None = None) -> list[int]:
    """Apply every migration numbered up to ``target`` (default: all) that the library has not
    recorded, in order. Returns the versions applied.

    Numbers may have gaps (migrations written side by side land in any order): a library that
    has 5 gets 4 when 4 arrives. Safe against another process migrating at the same time: each
    step re-checks after taking the write lock.
    """
    migrations = available(folder)
    known = migrations[-1].version if migrations else 0
    target = known if target is None else target
    have = current_version(conn)
    if have > known:
        raise LibraryError(
            f"this library has schema version {have}, newer than this facetags knows "
            f"({known}); upgrade facetags"
        )
    done = applied_versions(conn)
    applied: list[int] = []
    for migration in migrations:
        if migration.version > target or migration.version in done:
            continue
        with transaction(conn):
            conn.execute(_TABLE)
            if migration.version in applied_versions(conn):
                continue  # another process got there first
            log.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                for statement in migration.statements():
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise LibraryError(f"migration {migration.path.name} failed: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        applied.append(migration.version)
    return applied
