"""An undo journal for the user's decisions, kept per connection in SQLite TEMP tables.

While a step is open (:func:`begin` ... :func:`end`), TEMP triggers copy the old values of every
row the step changes in ``people``, ``faces`` (assignment columns), ``rejections``,
``cannot_link`` and ``decisions`` into ``temp.undo_log``. :func:`undo` puts the latest step's
old values back in reverse order, in one write transaction, and drops its ``decisions`` rows so a
replay of the user's decisions after a re-cluster does not bring the undone step back.

Nothing here touches the schema on disk: the journal lives as long as the connection (one TUI
session), and writes made outside a step (scans, re-clusters, other processes) are not journaled.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

_PEOPLE = ("id", "name", "name_key", "hidden", "merged_into", "created_at", "updated_at")
_FACES = ("id", "person_id", "assigned_by", "assigned_at", "not_face")
_REJECTIONS = ("face_id", "person_id", "created_at")
_CANNOT = ("face_a", "face_b", "created_at")


def _json(row: str, cols: tuple[str, ...]) -> str:
    return "json_object(" + ", ".join(f"'{c}', {row}.{c}" for c in cols) + ")"


def _trigger(name: str, event: str, table: str, op: str, row: str, cols: tuple[str, ...]) -> str:
    return (
        f"CREATE TEMP TRIGGER IF NOT EXISTS {name} AFTER {event} ON main.{table}"
        " WHEN (SELECT step FROM undo_state) > 0 BEGIN"
        " INSERT INTO undo_log (step, tbl, op, data) VALUES"
        f" ((SELECT step FROM undo_state), '{table}', '{op}', {_json(row, cols)}); END"
    )


_SETUP = [
    "CREATE TEMP TABLE IF NOT EXISTS undo_state (step INTEGER NOT NULL)",
    "CREATE TEMP TABLE IF NOT EXISTS undo_steps (step INTEGER PRIMARY KEY, label TEXT NOT NULL)",
    "CREATE TEMP TABLE IF NOT EXISTS undo_log (seq INTEGER PRIMARY KEY, step INTEGER NOT NULL,"
    " tbl TEXT NOT NULL, op TEXT NOT NULL, data TEXT NOT NULL)",
    _trigger("undo_people_u", "UPDATE", "people", "update", "OLD", _PEOPLE),
    _trigger("undo_people_i", "INSERT", "people", "insert", "NEW", ("id",)),
    _trigger("undo_people_d", "DELETE", "people", "delete", "OLD", _PEOPLE),
    _trigger(
        "undo_faces_u",
        "UPDATE OF person_id, assigned_by, assigned_at, not_face",
        "faces",
        "update",
        "OLD",
        _FACES,
    ),
    _trigger("undo_rejections_i", "INSERT", "rejections", "insert", "NEW", _REJECTIONS),
    _trigger("undo_rejections_d", "DELETE", "rejections", "delete", "OLD", _REJECTIONS),
    _trigger("undo_cannot_i", "INSERT", "cannot_link", "insert", "NEW", _CANNOT),
    _trigger("undo_cannot_d", "DELETE", "cannot_link", "delete", "OLD", _CANNOT),
    _trigger("undo_decisions_i", "INSERT", "decisions", "insert", "NEW", ("id",)),
]


def install(conn: sqlite3.Connection) -> None:
    """Create the TEMP journal tables and triggers on ``conn`` (idempotent)."""
    for sql in _SETUP:
        conn.execute(sql)
    if conn.execute("SELECT COUNT(*) FROM temp.undo_state").fetchone()[0] == 0:
        conn.execute("INSERT INTO temp.undo_state (step) VALUES (0)")


def begin(conn: sqlite3.Connection, label: str) -> int:
    """Open a step: changes made until :func:`end` are undone together."""
    install(conn)
    step = int(conn.execute("INSERT INTO temp.undo_steps (label) VALUES (?)", (label,)).lastrowid or 0)
    conn.execute("UPDATE temp.undo_state SET step = ?", (step,))
    return step


def end(conn: sqlite3.Connection, step: int) -> None:
    """Close the step; a step that changed nothing is forgotten."""
    conn.execute("UPDATE temp.undo_state SET step = 0")
    if conn.execute("SELECT 1 FROM temp.undo_log WHERE step = ? LIMIT 1", (step,)).fetchone() is None:
        conn.execute("DELETE FROM temp.undo_steps WHERE step = ?", (step,))


def steps(conn: sqlite3.Connection) -> list[str]:
    """Labels of the steps that can be undone, latest first."""
    install(conn)
    return [str(r[0]) for r in conn.execute("SELECT label FROM temp.undo_steps ORDER BY step DESC")]


def _restore(conn: sqlite3.Connection, tbl: str, op: str, d: dict[str, Any]) -> None:
    if tbl == "people" and op == "update":
        conn.execute(
            "UPDATE people SET name = ?, name_key = ?, hidden = ?, merged_into = ?, updated_at = ?"
            " WHERE id = ?",
            (d["name"], d["name_key"], d["hidden"], d["merged_into"], d["updated_at"], d["id"]),
        )
    elif tbl == "people" and op == "insert":
        conn.execute(
            "DELETE FROM people WHERE id = ? AND NOT EXISTS (SELECT 1 FROM faces WHERE person_id = ?)"
            " AND NOT EXISTS (SELECT 1 FROM people WHERE merged_into = ?)",
            (d["id"], d["id"], d["id"]),
        )
    elif tbl == "people" and op == "delete":
        conn.execute(
            "INSERT OR IGNORE INTO people (id, name, name_key, hidden, merged_into, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            tuple(d[c] for c in _PEOPLE),
        )
    elif tbl == "faces":
        conn.execute(
            "UPDATE faces SET person_id = ?, assigned_by = ?, assigned_at = ?, not_face = ? WHERE id = ?",
            (d["person_id"], d["assigned_by"], d["assigned_at"], d["not_face"], d["id"]),
        )
    elif tbl == "rejections" and op == "insert":
        conn.execute(
            "DELETE FROM rejections WHERE face_id = ? AND person_id = ?", (d["face_id"], d["person_id"])
        )
    elif tbl == "rejections" and op == "delete":
        conn.execute(
            "INSERT OR IGNORE INTO rejections (face_id, person_id, created_at) VALUES (?, ?, ?)",
            (d["face_id"], d["person_id"], d["created_at"]),
        )
    elif tbl == "cannot_link" and op == "insert":
        conn.execute("DELETE FROM cannot_link WHERE face_a = ? AND face_b = ?", (d["face_a"], d["face_b"]))
    elif tbl == "cannot_link" and op == "delete":
        conn.execute(
            "INSERT OR IGNORE INTO cannot_link (face_a, face_b, created_at) VALUES (?, ?, ?)",
            (d["face_a"], d["face_b"], d["created_at"]),
        )
    elif tbl == "decisions":
        conn.execute("DELETE FROM decisions WHERE id = ?", (d["id"],))


def undo(conn: sqlite3.Connection) -> str | None:
    """Undo the latest step inside the caller's write transaction; its label, or None if there
    is nothing to undo."""
    install(conn)
    row = conn.execute("SELECT step, label FROM temp.undo_steps ORDER BY step DESC LIMIT 1").fetchone()
    if row is None:
        return None
    step, label = int(row[0]), str(row[1])
    entries = conn.execute(
        "SELECT tbl, op, data FROM temp.undo_log WHERE step = ? ORDER BY seq DESC", (step,)
    ).fetchall()
    conn.execute("UPDATE temp.undo_state SET step = 0")
    for tbl, op, data in entries:
        _restore(conn, str(tbl), str(op), json.loads(data))
    conn.execute("DELETE FROM temp.undo_log WHERE step = ?", (step,))
    conn.execute("DELETE FROM temp.undo_steps WHERE step = ?", (step,))
    return label
