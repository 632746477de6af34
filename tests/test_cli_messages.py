"""What the library commands say when there is nothing to print, and what is left to do:
`scan` making a new library, `people` on an empty library, `find` and `suggest` with no match,
`status` and names not yet written to XMP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetags", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_empty_results_are_said_on_stderr_and_unwritten_names_in_status(
    tmp_path: Path, t1_path: Path, astronaut_path: Path
) -> None:
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}
    folder = tmp_path / "photos"
    folder.mkdir()
    made = run(env, "scan", str(folder))  # a mistyped --library would make a new one: it says so
    assert made.returncode == 0 and f"facetags: new library {tmp_path / 'lib.db'}\n" in made.stderr

    empty = run(env, "people")
    assert empty.returncode == 0 and empty.stdout == ""
    assert "no people yet" in empty.stderr and "facetags scan" in empty.stderr
    assert run(env, "people", "--json").stdout.strip() == "[]"

    shutil.copyfile(t1_path, folder / "t1.jpg")
    shutil.copyfile(astronaut_path, folder / "astronaut.jpg")
    again = run(env, "scan", str(folder))
    assert again.returncode == 0 and "new library" not in again.stderr
    faces = json.loads(run(env, "faces", "--json").stdout)
    astro = next(f for f in faces if f["path"].endswith("astronaut.jpg"))
    group = next(f for f in faces if f["path"].endswith("t1.jpg"))
    assert run(env, "name", str(astro["person_id"]), "Eileen", "Collins").returncode == 0
    assert run(env, "name", str(group["person_id"]), "Zoë").returncode == 0
    nothing = run(env, "suggest", str(group["person_id"]))  # six different people in t1
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert f"facetags: no face in an unnamed cluster looks like Zoë ({group['person_id']})" in nothing.stderr

    status = run(env, "status")
    assert "2 photos with names not yet written to XMP" in status.stdout
    assert json.loads(run(env, "status", "--json").stdout)["unwritten_xmp_photos"] == 2
    # a photo gone from disk cannot be written to: status does not ask for it until it is back
    (folder / "astronaut.jpg").rename(tmp_path / "astronaut.jpg")
    assert run(env, "scan", str(folder)).returncode == 0
    assert "1 photo with names not yet written to XMP" in run(env, "status").stdout
    (tmp_path / "astronaut.jpg").rename(folder / "astronaut.jpg")
    assert run(env, "scan", str(folder)).returncode == 0
    assert json.loads(run(env, "status", "--json").stdout)["unwritten_xmp_photos"] == 2

    # both are known, no photo shows both: exit 1, stdout empty (or '[]'), the reason on stderr
    none = run(env, "find", "Eileen Collins", "zoe")
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr == "facetags: no photo shows Eileen Collins and zoe\n"
    as_json = run(env, "find", "--json", "Eileen Collins", "zoe")
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == []
    found = run(env, "find", "zoe")
    assert found.returncode == 0 and found.stdout == f"{folder / 't1.jpg'}\n" and found.stderr == ""

    write = run(env, "xmp", "write")
    assert write.returncode == 0, write.stderr
    after = run(env, "status")
    assert "not yet written" not in after.stdout
    assert json.loads(run(env, "status", "--json").stdout)["unwritten_xmp_photos"] == 0
    # renamed since: the photo's name is out of date, until the photo is gone from disk
    assert run(env, "name", str(group["person_id"]), "Zoë Smith").returncode == 0
    assert json.loads(run(env, "status", "--json").stdout)["stale_xmp_photos"] == 1
    (folder / "t1.jpg").rename(tmp_path / "t1.jpg")
    assert run(env, "scan", str(folder)).returncode == 0
    assert json.loads(run(env, "status", "--json").stdout)["stale_xmp_photos"] == 0


def test_a_mistyped_folder_makes_no_new_library(tmp_path: Path) -> None:
    """`facetags --library y.db scan nonexist` said why and left an empty library behind, which
    the next command then used as if it were the user's."""
    library = tmp_path / "y.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(library)}
    missing = tmp_path / "Pictrues"
    result = run(env, "scan", str(missing))
    assert result.returncode == 1
    assert f"{missing}: No such file or directory" in result.stderr and "new library" not in result.stderr
    assert not library.exists()


def test_no_library_here_says_how_to_make_that_library(tmp_path: Path) -> None:
    """`facetags --library nope.db tui` said "run `facetags scan DIR` first", which, followed,
    scans into the default library; it names the library given now (and leaves it out for the
    default one, as the scan's own hints do)."""
    library = tmp_path / "my nope.db"
    for command in ("tui", "people", "status"):
        result = run(dict(os.environ), "--library", str(library), command)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"no library here (run `facetags --library '{library}' scan DIR` first)" in result.stderr, (
            command,
            result.stderr,
        )
    home = tmp_path / "home"
    env = {**os.environ, "XDG_DATA_HOME": str(home / "data")}
    env.pop("FACETAGS_LIBRARY", None)
    result = run(env, "people")
    assert result.returncode == 1 and "no library here (run `facetags scan DIR` first)" in result.stderr, (
        result.stderr
    )


def test_a_first_scan_says_what_to_do_next(tmp_path: Path, t1_path: Path) -> None:
    library = tmp_path / "my lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(library)}
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(t1_path, folder / "t1.jpg")
    first = run(env, "scan", str(folder))
    assert first.returncode == 0, first.stderr
    assert f"facetags: next, the people found:  facetags --library '{library}' people\n" in first.stderr
    assert f"facetags: and to name them:  facetags --library '{library}' tui\n" in first.stderr
    again = run(env, "scan", str(folder))
    assert again.returncode == 0 and "next:" not in again.stderr


def test_vv_logs_facetags_debug_not_the_libraries(tmp_path: Path, t1_path: Path) -> None:
    """-vv is facetags' debug, in the scan and in its worker processes; Pillow's debug (a line
    per EXIF tag of every photo) is not shown, its warnings would be."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    with Image.open(t1_path) as im:
        exif = Image.Exif()
        exif[0x0110] = "Camera Model"  # Model
        exif[0x0112] = 1  # Orientation
        for i in range(9):  # enough for the worker processes (PARALLEL_FROM)
            im.rotate(i, expand=False).save(folder / f"p{i}.jpg", exif=exif, quality=90)
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "lib.db")}
    done = subprocess.run(
        [sys.executable, "-m", "facetags", "-vv", "scan", "--workers", "2", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "analysing with 2 worker processes" in done.stderr
    assert "built MTCNN" in done.stderr  # facetags' debug, from the workers
    assert "tag: " not in done.stderr and "Orientation" not in done.stderr, done.stderr[:2000]


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[str, str]:
    """Run facetags with its stdout on a pseudo-terminal: (stdout, stderr)."""
    import pty

    master, slave = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "facetags", *args], env=env, stdout=slave, stderr=subprocess.PIPE
    ) as proc:
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            out += chunk
        err = proc.stderr.read() if proc.stderr else b""
    os.close(master)
    return out.decode(), err.decode()


def test_faces_and_suggest_name_their_columns_on_a_terminal_only(tmp_path: Path, shared_data: Path) -> None:
    """`faces` and `suggest` print tab-separated rows a newcomer could not read ('29 32 2 0.370
    /p/img34.jpg'); on a terminal the column names come first (on stderr), a pipe gets the rows
    alone."""
    library = tmp_path / "lib.db"
    env = {**os.environ, "FACETAGS_LIBRARY": str(library)}
    folder = tmp_path / "photos"
    shutil.copytree(shared_data / "deepface" / "photos", folder)
    assert run(env, "scan", str(folder)).returncode == 0
    people = json.loads(run(env, "people", "--json").stdout)
    person = next(p["id"] for p in people if run(env, "suggest", str(p["id"])).stdout)  # one split
    for args, header in (
        (("faces",), "face\tphoto\tbox (x y w h)\tscore\tperson\tname\n"),
        (("suggest", str(person)), "face\tcluster\tits faces\tsimilarity\tphoto\n"),
    ):
        out, err = _on_a_terminal(env, *args)
        assert err.startswith(header) and str(folder) in out, (args, out, err)
        piped = run(env, *args)
        assert piped.returncode == 0 and "\tphoto" not in piped.stderr and piped.stdout.count("\n") >= 1
