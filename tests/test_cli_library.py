"""The library commands as a user runs them: stdout data (JSON shapes), stderr messages, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "facetags", *args], env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def cli(tmp_path: Path, t1_path: Path, astronaut_path: Path) -> tuple[dict[str, str], Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(t1_path, folder / "t1.jpg")
    shutil.copyfile(astronaut_path, folder / "astronaut.jpg")
    (folder / "broken.jpg").write_bytes(b"not a photo")
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}
    return env, folder


def test_scan_people_faces_name_merge_find_status(cli: tuple[dict[str, str], Path]) -> None:
    env, folder = cli
    scan = run(env, "scan", "--json", str(folder))
    report = json.loads(scan.stdout)
    assert report["new"] == 2 and report["failed"] == 1 and report["faces"] >= 6
    assert "broken.jpg" in scan.stderr
    assert "0 new" in run(env, "scan", str(folder)).stdout  # the plain summary

    people = json.loads(run(env, "people", "--json").stdout)
    assert all(set(p) == {"id", "name", "faces", "photos", "hidden"} for p in people)
    assert all(p["name"] is None and p["hidden"] is False for p in people)

    faces = json.loads(run(env, "faces", "--json").stdout)
    assert len(faces) == report["faces"]
    one = faces[0]["person_id"]
    theirs = json.loads(run(env, "faces", "--json", "--person", str(one)).stdout)
    assert theirs and {f["person_id"] for f in theirs} == {one}  # whose cluster is this?
    for face in faces:
        assert set(face) == {"face_id", "path", "box", "score", "person_id", "person_name", "missing"}
        assert face["missing"] is False
        assert os.path.isabs(face["path"]) and len(face["box"]) == 4
        assert face["person_id"] in {p["id"] for p in people}
    assert sum(p["faces"] for p in people) == len(faces)

    astro = next(f for f in faces if f["path"].endswith("astronaut.jpg"))
    t1 = [f for f in faces if f["path"].endswith("t1.jpg")]
    run(env, "name", str(astro["person_id"]), "Eileen", "Collins")
    run(env, "name", str(t1[0]["person_id"]), "Zoë")
    # a name someone has already: refused (the usual slip: a second cluster named after a wrong
    # first), merged only when asked
    zoe = t1[0]["person_id"]
    refused = run(env, "name", str(t1[2]["person_id"]), "zoe", ok=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert f"Zoë is person {zoe} already (1 face): add --merge" in refused.stderr
    joined = run(env, "name", str(t1[2]["person_id"]), "zoe", "--merge")
    assert joined.stdout.startswith(f"{zoe}\tZoë\t") and f"2 faces (merged into {zoe})" in joined.stdout
    # two faces of one photo are never one person: the merge is done as asked, and said
    both = f"faces {t1[0]['face_id']}, {t1[2]['face_id']}"
    assert f"Zoë is now more than once in 1 photo: {folder / 't1.jpg'}: {both}." in joined.stderr
    assert f"`facetags reject {zoe} FACE_ID` takes a wrong one out" in joined.stderr
    merged = run(env, "merge", str(astro["person_id"]), str(t1[1]["person_id"]))
    assert "Eileen Collins" in merged.stdout and merged.stderr == ""  # two photos: nothing to say

    assert run(env, "find", "eileen collins").stdout.splitlines() == sorted(
        [str(folder / "astronaut.jpg"), str(folder / "t1.jpg")]
    )
    assert json.loads(run(env, "find", "--json", "ZOE", "Eileen Collins").stdout) == [str(folder / "t1.jpg")]

    missing = run(env, "find", "Eilen Colins", ok=False)
    assert missing.returncode == 1 and missing.stdout == ""
    scripted = run(env, "find", "--json", "Eilen Colins", ok=False)
    assert scripted.returncode == 1 and json.loads(scripted.stdout) == []  # a script can parse it
    assert "Eileen Collins" in missing.stderr and "Traceback" not in missing.stderr

    status = json.loads(run(env, "status", "--json").stdout)
    assert status["photos"] == 2 and status["faces"] == len(faces) and status["queue"] == 0
    assert status["people"] == 2 and [f["path"] for f in status["failures"]] == [str(folder / "broken.jpg")]
    assert "failures  1" in run(env, "status").stdout


def test_errors_are_one_line(cli: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, folder = cli
    fresh = {**env, "FACETAGS_LIBRARY": str(tmp_path / "none.db")}
    for args in (["people"], ["find", "x"], ["status"]):
        proc = run(fresh, *args, ok=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no library" in proc.stderr
    assert not (tmp_path / "none.db").exists()
    proc = run(env, "scan", str(folder / "missing"), ok=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    run(env, "scan", str(folder))
    proc = run(env, "name", "99999", "Nobody", ok=False)
    assert proc.returncode == 1 and "99999" in proc.stderr
    proc = run(env, "name", "1", "   ", ok=False)
    assert proc.returncode == 1 and "empty" in proc.stderr


def test_suggest_move_reject(cli: tuple[dict[str, str], Path], astronaut_path: Path) -> None:
    """The review loop without the TUI: suggestions for a person, a face moved in, then rejected."""
    from PIL import Image

    from facetags.config import load_settings
    from facetags.library import Library

    env, folder = cli
    with Image.open(astronaut_path) as im:  # the same face in another photo (other pixels)
        im.resize((400, 400)).save(folder / "astronaut-small.jpg", quality=85)
    run(env, "scan", str(folder))
    db = env["FACETAGS_LIBRARY"]
    with Library.open(db, load_settings(library=db), create=False) as lib:
        faces = lib.faces()
        astro = next(f for f in faces if f.path.endswith("astronaut.jpg"))
        copy = next(f for f in faces if f.path.endswith("astronaut-small.jpg"))
        if copy.person_id == astro.person_id:  # a cluster of its own, to be suggested
            lib.split(astro.person_id, [copy.face_id])
        eileen = lib.name(astro.person_id, "Eileen").id

    rows = json.loads(run(env, "suggest", str(eileen), "--json", "--limit", "3").stdout)
    assert rows and rows[0]["face_id"] == copy.face_id  # the same face is the most like her
    assert all(set(r) == {"face_id", "cluster_id", "cluster_faces", "similarity", "path"} for r in rows)
    assert [r["similarity"] for r in rows] == sorted((r["similarity"] for r in rows), reverse=True)
    assert rows[0]["cluster_faces"] == 1 and rows[0]["path"].endswith("astronaut-small.jpg")

    assert "2 faces" in run(env, "move", str(eileen), str(copy.face_id)).stdout
    now = {f["face_id"]: f for f in json.loads(run(env, "faces", "--json").stdout)}
    assert now[copy.face_id]["person_name"] == "Eileen"

    rejected = run(env, "reject", str(eileen), str(copy.face_id))
    placed = rejected.stdout.rstrip("\n").split("\t")  # the face and where it went
    assert placed[0] == str(copy.face_id) and placed[1] != str(eileen)
    assert placed[2:] == ["(unnamed)", "1 face"], placed
    assert rejected.stderr == ""
    # a face that is not in the person: the rejection holds, and the reply says where the face is
    elsewhere = run(env, "reject", str(eileen), str(copy.face_id))
    assert f"face {copy.face_id} was not in {eileen} (it is in {placed[1]})" in elsewhere.stderr
    now = {f["face_id"]: f for f in json.loads(run(env, "faces", "--json").stdout)}
    assert now[copy.face_id]["person_name"] is None
    again = json.loads(run(env, "suggest", str(eileen), "--json").stdout)
    assert copy.face_id not in {r["face_id"] for r in again}  # a rejection is never suggested again


def test_an_embedder_that_cannot_load_stops_the_scan_and_marks_no_photo(
    cli: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """A model that cannot run at all (an opt-in embedder whose package or pack is missing) is
    one clear error before anything is recorded, not every photo 'failed'; fixed, the next scan
    indexes them all."""
    env, folder = cli
    broken = {**env, "FACETAGS_EMBEDDER": "insightface:buffalo_l", "INSIGHTFACE_HOME": str(tmp_path / "none")}
    scan = run(broken, "scan", str(folder), ok=False)
    assert scan.returncode == 1
    assert "facetags: error:" in scan.stderr and "never downloads" in scan.stderr
    assert "Traceback" not in scan.stderr
    report = json.loads(run(env, "scan", "--json", str(folder)).stdout)
    assert report["new"] == 2 and report["faces"] >= 6
