"""The watcher on a real folder with real watchdog events: copies, slow copies, renames,
deletions, folder moves, hidden folders, clean stops without leaked threads, and another
process writing to the library at the same time."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from facetags.library import Library
from facetags.watch import Watcher

if TYPE_CHECKING:
    from tests.library_support import OpenLibrary

TIMEOUT = 30.0


def wait_for(check: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Running:
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.outcomes: list[tuple[str, str]] = []
        watcher.on_done = lambda path, outcome: self.outcomes.append((path, outcome))

    def outcomes_for(self, path: Path) -> list[str]:
        return [o for p, o in self.outcomes if p == str(path)]


@contextmanager
def watching(lib: Library, folder: Path, settle: float = 0.3, poll: float | None = None) -> Iterator[Running]:
    before = set(threading.enumerate())
    stop, ready = threading.Event(), threading.Event()
    running = Running(Watcher(lib, [folder], settle=settle, poll=poll))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            running.watcher.run(stop, ready)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-watcher")
    thread.start()
    try:
        assert ready.wait(TIMEOUT), "catch-up scan did not finish"
        yield running
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive(), "watcher did not stop"
    assert errors == []
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leaked == [], f"leaked threads: {leaked}"


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Callable[[], Library]]:
    """A second connection to the same library, as another front end would have."""
    opened: list[Library] = []

    def _open() -> Library:
        lib = Library.open(tmp_path / "library.db")
        opened.append(lib)
        return lib

    yield _open
    for lib in opened:
        lib.close()


def test_copy_rename_delete(
    open_library: OpenLibrary,
    tmp_path: Path,
    astronaut_path: Path,
    t1_path: Path,
    reader: Callable[[], Library],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="facetags.watch")
    folder = tmp_path / "watched"
    folder.mkdir()
    shutil.copyfile(t1_path, folder / "already-there.jpg")
    lib = open_library()
    with watching(lib, folder) as run:
        other = reader()
        assert other.status().photos == 1  # the catch-up scan
        start = time.monotonic()
        shutil.copyfile(astronaut_path, folder / "new.jpg")
        wait_for(lambda: other.status().photos == 2, what="the copied photo")
        latency = time.monotonic() - start
        (face,) = other.photo_faces(folder / "new.jpg")
        assert face.person_id is not None
        assert latency < 10, latency

        os.rename(folder / "new.jpg", folder / "renamed.jpg")
        wait_for(lambda: run.outcomes_for(folder / "renamed.jpg") != [], what="the rename")
        (after,) = other.photo_faces(folder / "renamed.jpg")
        assert after.face_id == face.face_id
        assert run.outcomes_for(folder / "renamed.jpg") == ["moved"]

        (folder / "renamed.jpg").unlink()
        wait_for(lambda: other.status().photos == 1, what="the deletion")
        assert other.status().files == 1
        # the log (a service's journal) names each photo and says what was done with it
        wait_for(lambda: "1 gone (" in caplog.text, what="the deletion's log line")
        assert f"1 new ({folder / 'new.jpg'})" in caplog.text, caplog.text
        assert f"1 moved ({folder / 'renamed.jpg'})" in caplog.text, caplog.text
        gone = f"1 gone ({folder / 'renamed.jpg'}: kept with its faces and names until back or forgotten)"
        assert gone in caplog.text, caplog.text


@pytest.mark.parametrize(
    ("settle", "parts", "pause"),
    [(0.5, 4, 0.3), (0.3, 3, 1.5)],
    ids=["steady-copy", "copy-pausing-longer-than-settle"],
)
def test_a_photo_still_being_written_is_read_once_complete(
    open_library: OpenLibrary, tmp_path: Path, t1_path: Path, settle: float, parts: int, pause: float
) -> None:
    """A photo copied in slowly is read once, complete: also when the copy (over a network)
    pauses for longer than ``settle`` with the file still open, as the watcher then waits for
    its writer to close it (or OPEN_SETTLE_S of quiet); read before, it was recorded and
    logged as failed, half written, before it was indexed."""
    folder = tmp_path / "watched"
    folder.mkdir()
    data = t1_path.read_bytes()
    lib = open_library()
    with watching(lib, folder, settle=settle) as run:
        target = folder / "slow.jpg"
        with open(target, "wb") as fh:
            for i in range(parts):
                fh.write(data[i * len(data) // parts : (i + 1) * len(data) // parts])
                fh.flush()
                time.sleep(pause)
        wait_for(lambda: run.outcomes_for(target) != [], what="the slow copy")
        time.sleep(1.0)
        assert run.outcomes_for(target) == ["new"]
        assert lib.status().failures == []
        assert len(lib.photo_faces(target)) >= 5


def test_folder_moves_and_deletes_and_hidden_folders(
    open_library: OpenLibrary, tmp_path: Path, astronaut_path: Path, reader: Callable[[], Library]
) -> None:
    folder = tmp_path / "watched"
    (folder / "2023").mkdir(parents=True)
    lib = open_library()
    with watching(lib, folder):
        other = reader()
        shutil.copyfile(astronaut_path, folder / "2023" / "a.jpg")
        wait_for(lambda: other.status().photos == 1, what="the photo")
        (face,) = other.photo_faces(folder / "2023" / "a.jpg")

        os.rename(folder / "2023", folder / "2023 - holiday")
        wait_for(lambda: other.status().files == 1 and _indexed(other, folder / "2023 - holiday" / "a.jpg"))
        assert other.photo_faces(folder / "2023 - holiday" / "a.jpg")[0].face_id == face.face_id

        (folder / ".cache").mkdir()
        shutil.copyfile(astronaut_path, folder / ".cache" / "b.jpg")
        outside = tmp_path / "outside"
        outside.mkdir()
        shutil.copyfile(astronaut_path, outside / "c.jpg")
        shutil.move(str(outside), str(folder / "moved-in"))
        wait_for(lambda: other.status().files == 2, what="the folder moved in")
        time.sleep(0.8)
        assert not _indexed(other, folder / ".cache" / "b.jpg")

        shutil.rmtree(folder / "2023 - holiday")
        shutil.rmtree(folder / "moved-in")
        wait_for(lambda: other.status().files == 0 and other.status().photos == 0, what="folder deletion")


def _indexed(lib: Library, path: Path) -> bool:
    try:
        lib.photo_faces(path)
    except Exception:
        return False
    return True


def test_another_process_writes_while_the_watcher_indexes(
    open_library: OpenLibrary, tmp_path: Path, t1_path: Path, astronaut_path: Path
) -> None:
    """The watcher and CLI commands writing the same library at once: no 'database is locked'."""
    folder = tmp_path / "watched"
    folder.mkdir()
    shutil.copyfile(astronaut_path, folder / "a.jpg")
    lib = open_library()
    env = {**os.environ, "FACETAGS_LIBRARY": str(tmp_path / "library.db")}
    with watching(lib, folder) as run:
        (face,) = lib.photo_faces(folder / "a.jpg")
        script = (
            "import sys\n"
            "from facetags.cli import main\n"
            "for i in range(30):\n"
            f"    try:\n        main(['name', '{face.person_id}', f'Eileen {{i}}'])\n"
            "    except SystemExit as e:\n"
            "        assert e.code in (0, None), e.code\n"
            "    main(['status', '--json']) if i % 10 == 0 else None\n"
        )
        writer = subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4):
            data = t1_path.read_bytes() if i % 2 == 0 else astronaut_path.read_bytes()
            (folder / f"copy-{i}.jpg").write_bytes(data)
            time.sleep(0.2)
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert "locked" not in err
        wait_for(
            lambda: len([o for _, o in run.outcomes if o in ("new", "duplicate")]) >= 4, what="the copies"
        )
    assert lib.person(face.person_id or 0).name == "Eileen 29"
    assert lib.status().files == 5


def test_stop_during_the_catch_up_scan(
    open_library: OpenLibrary, tmp_path: Path, astronaut_path: Path
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    for i in range(3):
        shutil.copyfile(astronaut_path, folder / f"{i}.jpg")
    lib = open_library()
    before = set(threading.enumerate())
    stop = threading.Event()
    stop.set()
    Watcher(lib, [folder]).run(stop)
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_hidden_files_temp_files_and_xmp_written_into_a_watched_photo(
    open_library: OpenLibrary,
    tmp_path: Path,
    t1_path: Path,
    reader: Callable[[], Library],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hidden files (a crashed XMP writer's ``.<name>.*.facetags.tmp``, ``.name.jpg``) are
    never indexed, by the catch-up scan or the watcher; writing XMP into a watched photo (an
    atomic rename of our own temp file over it) is recorded as metadata only: no detection,
    faces, ids and names unchanged."""
    from facetags.ingest.pipeline import Pipeline
    from facetags.xmp.sync import group_faces, write_photos
    from facetags.xmp.write import WriteOptions

    folder = tmp_path / "watched"
    folder.mkdir()
    photo = folder / "t1.jpg"
    shutil.copyfile(t1_path, photo)
    shutil.copyfile(t1_path, folder / ".t1.jpg.k2j3h4.facetags.tmp")  # left by a crash
    shutil.copyfile(t1_path, folder / ".hidden.jpg")
    lib = open_library()
    with watching(lib, folder) as run:
        other = reader()
        assert (other.status().files, other.status().failures) == (1, [])
        first = other.photo_faces(photo)
        other.name(first[0].person_id or 0, "Ann")
        before = [(f.face_id, f.person_id, f.person_name, f.box) for f in other.photo_faces(photo)]

        def no_detection(*args: object, **kwargs: object) -> None:
            raise AssertionError("a photo whose pixels did not change was analysed again")

        monkeypatch.setattr(Pipeline, "analyse", no_detection)
        (result,) = write_photos(group_faces(other.faces()), WriteOptions(mode="embed"))
        assert result.written and result.error is None, result
        assert b"Ann" in photo.read_bytes()
        shutil.copyfile(t1_path, folder / ".another.jpg")  # hidden, created while watching
        (folder / ".t1.jpg.x.facetags.tmp").write_bytes(b"partial")
        wait_for(lambda: run.outcomes_for(photo) != [], what="the XMP write")
        time.sleep(1.0)
        assert run.outcomes_for(photo) == ["touched"]
        assert [p for p, _ in run.outcomes if Path(p).name.startswith(".")] == []
        assert [(f.face_id, f.person_id, f.person_name, f.box) for f in other.photo_faces(photo)] == before
        assert (other.status().files, other.status().photos, other.status().failures) == (1, 1, [])
    again = lib.scan([folder])
    assert again.counts["unchanged"] == 1 and sum(again.counts.values()) == 1


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 0:31 / / rw,relatime - overlay overlay rw,lowerdir=/a
40 27 0:45 / /mnt/nas rw,relatime - nfs4 nas:/photos rw,vers=4.2
41 40 0:46 / /mnt/nas/local\040copy rw,relatime - ext4 /dev/sdb1 rw
42 27 0:47 / /home/me/remote rw,nosuid - fuse.sshfs me@box:/pics rw
43 27 0:48 / /media/share rw - cifs //server/share rw
"""


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/home/me/Pictures", "overlay", False),
        ("/mnt/nas", "nfs4", True),
        ("/mnt/nas/2024/holiday", "nfs4", True),
        ("/mnt/nasty", "overlay", False),  # a sibling whose name starts like the mount point
        ("/mnt/nas/local copy/x", "ext4", False),  # a local disk mounted inside the share
        ("/home/me/remote/pics", "fuse.sshfs", True),
        ("/media/share", "cifs", True),
    ],
)
def test_network_folders_are_recognised_from_mountinfo(path: str, fstype: str, network: bool) -> None:
    from facetags.watch import filesystem_type, is_network_fs

    assert filesystem_type(path, MOUNTINFO) == fstype
    assert is_network_fs(fstype) is network


def test_polling_follows_changes_without_filesystem_events(
    open_library: OpenLibrary, tmp_path: Path, astronaut_path: Path, reader: Callable[[], Library]
) -> None:
    """The observer a network folder gets (polling) indexes, renames and forgets like events do."""
    folder = tmp_path / "watched"
    folder.mkdir()
    lib = open_library()
    with watching(lib, folder, poll=0.2) as run:
        (observer,) = run.watcher.observers.values()
        assert type(observer).__name__ == "PollingObserver"
        other = reader()
        shutil.copyfile(astronaut_path, folder / "new.jpg")
        wait_for(lambda: other.status().photos == 1, what="the copied photo")
        (face,) = other.photo_faces(folder / "new.jpg")
        os.rename(folder / "new.jpg", folder / "renamed.jpg")
        wait_for(lambda: run.outcomes_for(folder / "renamed.jpg") != [], what="the rename")
        assert [f.face_id for f in other.photo_faces(folder / "renamed.jpg")] == [face.face_id]
        (folder / "renamed.jpg").unlink()
        wait_for(lambda: other.status().photos == 0, what="the deletion")


def test_case3_a_photo_rewritten_slowly_in_place_keeps_its_names(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Reliability case 3, the watcher's side: a sync tool or an editor rewrites a photo in place,
    slowly enough that the watcher reads it half written. The photo is missing (unreadable) for
    that while, and is restored with its names once the same bytes are complete."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "bbt1.jpg"
    shutil.copy2(shared_data / "bbt" / "groups" / "bbt1.jpg", photo)
    data = photo.read_bytes()
    lib = open_library()
    lib.scan([folder])
    for i, face in enumerate(lib.photo_faces(photo)):
        assert face.person_id is not None
        lib.name(face.person_id, f"Cast {i}")
    before = {f.face_id: f.person_name for f in lib.faces()}
    with watching(lib, folder, settle=0.2) as running, open(photo, "r+b") as fh:
        fh.truncate(0)
        fh.write(data[:5000])
        fh.flush()
        wait_for(lambda: "failed" in running.outcomes_for(photo), what="the half-written photo to be read")
        assert {f.face_id: f.person_name for f in lib.faces()} == before
        assert [m.path for m in lib.status().missing] == [str(photo)]
        fh.write(data[5000:])
        fh.flush()
        wait_for(lambda: "restored" in running.outcomes_for(photo), what="the complete photo")
    assert {f.face_id: f.person_name for f in lib.faces()} == before
    assert lib.status().missing == [] and lib.status().failures == []


def test_a_photo_edited_then_renamed_before_it_settles_stays_the_same_photo(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """Saved (cropped) and renamed at once, before the watcher read the edit: the old path was
    kept as missing, with the names, and the new one indexed as a new photo whose faces got
    them back only if the clustering found them again (rejections and "not a face" stayed
    behind). The rename now carries the photo, and the edit is indexed as its new version."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = folder / "A.jpg"
    shutil.copyfile(shared_data / "bbt" / "groups" / "bbt1.jpg", photo)
    lib = open_library()
    lib.scan([folder])
    faces = lib.photo_faces(photo)
    for i, face in enumerate(faces):
        assert face.person_id is not None
        lib.name(face.person_id, f"Cast {i}")
    lib.not_a_face(faces[0].face_id)
    with Image.open(photo) as im:
        cropped = im.crop((0, 0, im.width, im.height * 9 // 10))
    renamed = folder / "B.jpg"
    with watching(lib, folder, settle=1.0) as running:
        cropped.save(photo, quality=95)
        photo.rename(renamed)
        wait_for(lambda: running.outcomes_for(renamed) != [], what="the rename")
        assert running.outcomes_for(renamed) == ["changed"]
    assert lib.status().missing == [] and lib.status().lost_faces == []
    now = lib.photo_faces(renamed)
    assert sorted(f.person_name or "" for f in now) == [f"Cast {i}" for i in range(1, len(faces))]


def test_a_watched_folder_moved_away_and_back_is_followed_again(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """A watched folder renamed raises no event, and the system goes on reporting what happens
    inside it under the old path: a photo copied into it while it was away was looked for where
    it was not and never indexed, nor after the folder came back, and the log said nothing."""
    folder = tmp_path / "Pictures"
    folder.mkdir()
    shutil.copyfile(shared_data / "bbt" / "groups" / "bbt1.jpg", folder / "bbt1.jpg")
    away = tmp_path / "Pictures.off"
    lib = open_library()
    with watching(lib, folder) as running:
        assert lib.status().photos == 1
        folder.rename(away)
        wait_for(lambda: [m.path for m in lib.status().missing] == [str(folder / "bbt1.jpg")], what="missing")
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt2.jpg", away / "bbt2.jpg")  # while away
        time.sleep(0.5)
        away.rename(folder)
        wait_for(lambda: lib.status().photos == 2 and lib.status().missing == [], what="the folder back")
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt3.jpg", folder / "bbt3.jpg")  # followed again
        wait_for(lambda: lib.status().photos == 3, what="a photo copied in after")

        # replaced by another folder of the same name
        folder.rename(away)
        folder.mkdir()
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt4.jpg", folder / "bbt4.jpg")
        wait_for(lambda: len(lib.status().missing) == 3 and lib.status().photos == 1, what="the new folder")
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt5.jpg", away / "bbt5.jpg")  # not watched
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt5.jpg", folder / "bbt5.jpg")
        wait_for(lambda: lib.status().photos == 2, what="a photo copied into the new folder")
    assert running.watcher.pending == 0
    assert {p.path for p in lib.status().missing} == {str(folder / f"bbt{n}.jpg") for n in (1, 2, 3)}


def test_a_watched_folder_given_as_a_link_is_followed(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path
) -> None:
    """~/Pictures a link to the NAS's folder: the watch was on the link itself, which no change
    inside the folder touches, so nothing copied in was ever indexed; and with the folder gone,
    the link left behind kept its photos listed as on disk."""
    real = tmp_path / "nas" / "Pictures"
    real.mkdir(parents=True)
    link = tmp_path / "Pictures"
    link.symlink_to(real)
    lib = open_library()
    with watching(lib, link):
        shutil.copyfile(shared_data / "bbt" / "groups" / "bbt1.jpg", real / "bbt1.jpg")
        wait_for(lambda: lib.status().photos == 1, what="a photo copied into the linked folder")
        assert lib.store.file_by_path(str(link / "bbt1.jpg")) is not None  # under the path watched
        real.rename(tmp_path / "nas" / "Pictures.old")  # the link now leads nowhere
        wait_for(lambda: [m.path for m in lib.status().missing] == [str(link / "bbt1.jpg")], what="missing")


def _backlog(tmp_path: Path, shared_data: Path) -> tuple[Path, list[Path]]:
    """A folder to watch that holds 30 photos (deepface's), for a catch-up scan that lasts a
    while, and the photos copied in."""
    folder = tmp_path / "watched"
    folder.mkdir()
    backlog = sorted((shared_data / "deepface" / "photos").glob("*.jpg"))[:30]
    for src in backlog:
        shutil.copyfile(src, folder / src.name)
    return folder, backlog


def test_a_photo_copied_in_during_the_catch_up_scan_is_indexed_before_it_ends(
    open_library: OpenLibrary,
    tmp_path: Path,
    shared_data: Path,
    astronaut_path: Path,
    reader: Callable[[], Library],
) -> None:
    """The catch-up scan of a large folder can take hours: a photo copied in meanwhile is
    handled between the scan's photos, not after it. A photo the scan has still to reach,
    written again meanwhile, ends up indexed as it is now."""
    from tests.library_support import with_xmp

    folder, backlog = _backlog(tmp_path, shared_data)
    lib = open_library()
    stop, ready = threading.Event(), threading.Event()
    running = Running(Watcher(lib, [folder], settle=0.3))
    handled_during_catch_up: list[str] = []
    running.watcher.on_done = lambda path, outcome: (
        running.outcomes.append((path, outcome)),
        handled_during_catch_up.append(path) if not ready.is_set() else None,
    )
    thread = threading.Thread(target=running.watcher.run, args=(stop, ready), name="test-watcher")
    thread.start()
    try:
        other = reader()
        wait_for(lambda: other.status().photos >= 1, what="the catch-up scan's first photo")
        shutil.copyfile(astronaut_path, folder / "copied-in.jpg")
        last = folder / backlog[-1].name  # a photo the scan has still to commit, written again
        last.write_bytes(with_xmp(last.read_bytes()))  # (its pixels unchanged)
        wait_for(lambda: bool(running.outcomes_for(folder / "copied-in.jpg")), what="the copied photo")
        assert str(folder / "copied-in.jpg") in handled_during_catch_up
        assert other.status().photos < len(backlog) + 1  # the catch-up scan was still going
        assert ready.wait(120), "catch-up scan did not finish"
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert running.outcomes_for(folder / "copied-in.jpg") == ["new"]
    status = lib.status()
    assert (status.photos, status.files) == (len(backlog) + 1, len(backlog) + 1)
    (face,) = lib.photo_faces(folder / "copied-in.jpg")
    assert face.person_id is not None
    # every entry is the file as it is now, the one written again too, whoever indexed it last
    assert lib.scan([folder]).counts["unchanged"] == len(backlog) + 1


def test_renames_and_deletions_during_the_catch_up_scan_wait_for_its_end(
    open_library: OpenLibrary, tmp_path: Path, shared_data: Path, reader: Callable[[], Library]
) -> None:
    """A rename or a deletion may touch a photo the catch-up scan has still to commit: it is
    held, with every event after it, until the scan ends, then handled in order."""
    folder, backlog = _backlog(tmp_path, shared_data)
    lib = open_library()
    stop, ready = threading.Event(), threading.Event()
    running = Running(Watcher(lib, [folder], settle=0.3))
    thread = threading.Thread(target=running.watcher.run, args=(stop, ready), name="test-watcher")
    thread.start()
    try:
        other = reader()
        wait_for(lambda: other.status().photos >= 1, what="the catch-up scan's first photo")
        os.rename(folder / backlog[-1].name, folder / "renamed.jpg")  # not reached by the scan yet
        (folder / backlog[-2].name).unlink()
        shutil.copyfile(backlog[-2], folder / "copied-back.jpg")
        assert ready.wait(120), "catch-up scan did not finish"
        wait_for(lambda: running.watcher.pending == 0, what="the held events")
        wait_for(lambda: bool(running.outcomes_for(folder / "copied-back.jpg")), what="the copy")
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    files = {Path(f).name for f in lib.store.files_under(str(folder))}
    assert files == {s.name for s in backlog[:-2]} | {"renamed.jpg", "copied-back.jpg"}
    assert lib.status().photos == len(backlog)
    assert lib.store.failures_under(str(folder)) == {}
    assert lib.missing() == []


def _inotify_watches() -> int:
    """inotify watches this process holds (each is one of the user's max_user_watches)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    count += sum(line.startswith("inotify wd:") for line in info)
        except OSError:  # the listing's own descriptor, closed by now
            pass
    return count


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/proc/sys/fs/inotify/max_user_watches", os.W_OK),
    reason="lowering the system's inotify limits needs root",
)
@pytest.mark.parametrize(("setting", "low"), [("max_user_watches", "8"), ("max_user_instances", "0")])
def test_a_folder_past_the_inotify_limits_is_polled(
    setting: str,
    low: str,
    open_library: OpenLibrary,
    tmp_path: Path,
    astronaut_path: Path,
    reader: Callable[[], Library],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tree with more folders than the system lets a user watch (other programs hold watches
    too), or no inotify instance left, is polled instead of failing with inotify's ENOSPC or
    EMFILE, and the log says which limit to raise."""
    import facetags.watch as watch_mod

    monkeypatch.setattr(watch_mod, "FALLBACK_POLL_S", 0.2)  # a test cannot wait 30 s a poll
    folder = tmp_path / "watched"
    for i in range(20):
        (folder / f"day-{i:02d}").mkdir(parents=True)
    limit = Path("/proc/sys/fs/inotify") / setting
    before, watches = limit.read_text(), _inotify_watches()
    # for every process of the user (root) while it lasts: restored as soon as the watcher started
    limit.write_text(low)  # fewer than this test needs, whatever the machine's other programs hold
    lib = open_library()
    try:
        with watching(lib, folder) as run:
            limit.write_text(before)
            (observer,) = run.watcher.observers.values()
            assert type(observer).__name__ == "PollingObserver"
            assert _inotify_watches() == watches, "the watches made before the limit are given back"
            assert f"fs.inotify.{setting}=" in caplog.text and "polling every" in caplog.text
            other = reader()
            shutil.copyfile(astronaut_path, folder / "day-07" / "new.jpg")
            wait_for(lambda: other.status().photos == 1, what="the photo copied into a polled folder")
    finally:
        limit.write_text(before)


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/proc/sys/fs/inotify/max_user_watches", os.W_OK),
    reason="lowering the system's inotify limits needs root",
)
def test_a_folder_that_comes_in_past_the_inotify_watch_limit_is_polled(
    open_library: OpenLibrary,
    tmp_path: Path,
    astronaut_path: Path,
    t1_path: Path,
    reader: Callable[[], Library],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once the watcher runs, a new folder that the system has no inotify watch left for
    (watchdog only warns) is polled: photos copied into it later are still indexed."""
    import facetags.watch as watch_mod

    monkeypatch.setattr(watch_mod, "FALLBACK_POLL_S", 0.2)
    folder = tmp_path / "watched"
    folder.mkdir()
    limit = Path("/proc/sys/fs/inotify/max_user_watches")
    before = limit.read_text()
    lib = open_library()
    other = reader()
    with watching(lib, folder) as run:
        try:
            limit.write_text("1")
            (folder / "2026" / "12").mkdir(parents=True)
            shutil.copyfile(t1_path, folder / "2026" / "12" / "first.jpg")
            wait_for(lambda: "polling every" in caplog.text, what="the warning")
        finally:
            limit.write_text(before)
        wait_for(lambda: other.status().photos == 1, what="the photo that came with the folder")
        shutil.copyfile(astronaut_path, folder / "2026" / "12" / "later.jpg")
        wait_for(lambda: other.status().photos == 2, what="a photo copied into the polled folder later")
        assert "PollingObserver" in {type(o).__name__ for o in run.watcher.observers.values()}
        try:  # the polled folder goes, and comes back while the limit is still reached
            limit.write_text("1")
            shutil.rmtree(folder / "2026")
            wait_for(lambda: len(other.missing()) == 2, what="the folder's deletion")
            (folder / "2026" / "12").mkdir(parents=True)
            shutil.copyfile(astronaut_path, folder / "2026" / "12" / "again.jpg")
            wait_for(lambda: caplog.text.count("polling every") == 2, what="the new folder's warning")
        finally:
            limit.write_text(before)
        wait_for(lambda: len(other.missing()) == 1, what="the photo in the folder made again")
        shutil.copyfile(t1_path, folder / "2026" / "12" / "last.jpg")
        wait_for(lambda: other.missing() == [], what="a photo copied in later, polled")
    assert "fs.inotify.max_user_watches" in caplog.text
    assert "Unable to watch" not in caplog.text  # said once, by facetags, without the bytes


def test_names_that_are_not_utf8_are_skipped_not_fatal(
    open_library: OpenLibrary,
    tmp_path: Path,
    astronaut_path: Path,
    reader: Callable[[], Library],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file or folder whose name is not valid UTF-8 (an old zip's Latin-1 names) copied,
    renamed or moved into a watched folder ended the watcher with a traceback (the library keeps
    paths as text); a photo renamed to such a name stayed indexed at its old path. Each is said
    and skipped; the watcher goes on, and `scan` of such a folder is one line, exit 1."""
    caplog.set_level(logging.WARNING)
    folder = tmp_path / "watched"
    folder.mkdir()
    raw = os.fsencode(folder)
    lib = open_library()
    with watching(lib, folder) as run:
        other = reader()
        shutil.copyfile(astronaut_path, raw + b"/caf\xe9.jpg")  # a file
        os.mkdir(raw + b"/\xe9t\xe9")  # a folder, then a photo in it
        shutil.copyfile(astronaut_path, raw + b"/\xe9t\xe9/a.jpg")
        staged = tmp_path / "staged"
        staged.mkdir()
        shutil.copyfile(astronaut_path, staged / "b.jpg")
        os.rename(os.fsencode(staged), raw + b"/no\xebl")  # a folder moved in
        shutil.copyfile(astronaut_path, folder / "fine.jpg")
        wait_for(lambda: run.outcomes_for(folder / "fine.jpg") != [], what="the photo with a good name")
        os.rename(folder / "fine.jpg", raw + b"/fin\xe9.jpg")  # an indexed photo renamed so
        wait_for(lambda: other.status().files == 0 and len(other.missing()) == 1, what="the rename")
        assert "not valid UTF-8" in caplog.text, caplog.text
        shutil.copyfile(astronaut_path, folder / "after.jpg")  # still watching
        wait_for(lambda: run.outcomes_for(folder / "after.jpg") != [], what="a photo after them")
        assert other.status().files == 1
    where = [b"--library", os.fsencode(tmp_path / "library.db")]
    command = [os.fsencode(sys.executable), b"-m", b"facetags", *where, b"scan", raw + b"/\xe9t\xe9"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "not valid UTF-8" in done.stderr, done.stderr
    forget = subprocess.run(
        [*command[:-2], b"forget", raw + b"/caf\xe9.jpg"], capture_output=True, timeout=120
    )
    assert forget.returncode == 1 and b"Traceback" not in forget.stderr, forget.stderr
