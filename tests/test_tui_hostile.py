"""Hostile text in the TUI: file and person names are shown as the text they are.

A real library of real photos (indexed by the real pipeline) in a file whose name holds an ESC
sequence, with photo file names that hold ``[red]``, ``[b="]`` (markup Textual cannot parse; a
file name cannot hold ``[/b]``: its slash), ESC and OSC sequences and a newline, and people
named ``[bold]Eve[/]`` (a name facetags accepts; renamed ``Eve [/b]``) and
``Ann\\x1b]0;pwned\\x07`` (one it refuses, as another tool or an older version may have left it
in the SQLite file). Every screen, dialog and notification that shows them must keep running
and show them literally, control characters escaped as the CLI prints them
(``facetags.text.shown``): no raw ESC reaches the screen.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import sqlite3
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps
from textual.content import Content
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, OptionList

from facetags.config import load_settings
from facetags.library import Library
from facetags.text import shown
from facetags.tui.app import FacetagsApp
from facetags.tui.screens.compare import CompareScreen
from facetags.tui.screens.confirm import ConfirmDialog
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.screens.people import PeopleScreen
from facetags.tui.screens.person import PersonScreen
from facetags.tui.screens.photo import PhotoScreen
from facetags.tui.screens.suggestions import SuggestionsScreen
from tests.tui_helpers import build_library, separate

SIZE = (160, 40)  # wide: no name is wrapped or cut off
T1 = 't1 [red] [b="]x.jpg'  # `[b="]` makes Textual's markup parser raise, as `[/b]` does
ASTRO = "astro \x1b[31m red\nline.jpg"
MIRROR = 'astro mirrored \x1b]0;x\x07 [b="].jpg'  # the astronaut photo mirrored: a face like hers
LIBRARY = 'lib \x1b[7m [b="].db'
EVE = "[bold]Eve[/]"
ANN = "Ann\x1b]0;pwned\x07"  # an OSC sequence that would retitle the terminal
EVE_ID, ANN_ID = 1, 2  # Eve: t1's first face and the astronaut; Ann: t1's second face
MIRRORED = 8  # the mirrored astronaut's face, an unnamed cluster of its own


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, t1_path: Path, astronaut_path: Path) -> Path:
    src = tmp_path_factory.mktemp("hostile-src")
    shutil.copy2(t1_path, src / T1)
    shutil.copy2(astronaut_path, src / ASTRO)
    with Image.open(astronaut_path) as photo:
        ImageOps.mirror(photo).save(src / MIRROR, quality=95)
    db = build_library(tmp_path_factory.mktemp("hostile-lib"), [src / T1, src / ASTRO, src / MIRROR])
    separate(db)  # faces and people 1..6: t1's, 7: the astronaut, 8: mirrored
    with Library.open(db, load_settings(library=str(db)), create=False) as lib:
        lib.merge([EVE_ID, 7])
        lib.name(EVE_ID, EVE)
        lib.name(ANN_ID, "Ann")
    with sqlite3.connect(db) as con:  # a name facetags would refuse, written by another tool
        con.execute("UPDATE people SET name = ? WHERE id = ?", (ANN, ANN_ID))
    con.close()
    return db


@pytest.fixture
def lib(template: Path, tmp_path: Path) -> Iterator[Library]:
    db = tmp_path / LIBRARY
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{template}{suffix}").exists():
            shutil.copy2(f"{template}{suffix}", f"{db}{suffix}")
    library = Library.open(db, load_settings(library=str(db)))
    try:
        yield library
    finally:
        library.close()


def make_app(library: Library) -> FacetagsApp:
    return FacetagsApp(library, images="unicode", poll_seconds=0, sample_delay=0)


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def text_of(widget: Widget) -> str:
    """What a widget shows (rendering it: markup that cannot be parsed raises here)."""
    rendered = widget.render()
    return rendered.plain if isinstance(rendered, Content) else str(rendered)


def screen_text(app: FacetagsApp) -> str:
    """The screen's lines as the terminal gets them (notifications included)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def toasts(app: FacetagsApp) -> list[str]:
    return [text_of(toast) for toast in app.screen.query("Toast")]


def check_screen(app: FacetagsApp) -> str:
    """The app runs on, and nothing raw reaches the terminal; returns the screen's text."""
    assert app.is_running and app._exception is None
    text = screen_text(app)
    assert "\x1b" not in text and "\x07" not in text, text
    return text


async def open_people(pilot: Pilot[Any]) -> PeopleScreen:
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, PeopleScreen)
    return screen


# -- people ---------------------------------------------------------------------------------------


@run_async
async def test_people_list_and_info_show_names_as_text(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = await open_people(pilot)
        assert screen.current is not None and screen.current.id == EVE_ID  # the largest first
        assert text_of(screen.query_one("#person-info")).splitlines()[0] == EVE
        text = check_screen(app)
        assert f"facetags — {shown(LIBRARY)}" in text  # the header names the library file
        await pilot.press("down")
        await settle(pilot)
        assert screen.current is not None and screen.current.id == ANN_ID
        assert text_of(screen.query_one("#person-info")).splitlines()[0] == shown(ANN)
        assert shown(ANN) in check_screen(app)  # in the list and beside it


@run_async
async def test_person_screen_title_and_file_names(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PersonScreen)
        assert text_of(app.screen.query_one("#person-title")).startswith(f"{EVE}  ·  2 faces")
        await pilot.press("f")  # file names under the faces
        await settle(pilot)
        labels = [text_of(label) for label in app.screen.query(".face-tile--label")]
        assert any(label.endswith(f" {T1}") for label in labels), labels
        assert any(label.endswith(f" {shown(ASTRO)}") for label in labels), labels
        check_screen(app)


@run_async
async def test_photo_screen_of_each_hostile_file(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("enter")  # Eve's faces: one in each photo
        await settle(pilot)
        titles = set()
        for _ in range(2):
            await pilot.press("enter")  # the photo of the face under the cursor
            await settle(pilot)
            assert isinstance(app.screen, PhotoScreen)
            titles.add(text_of(app.screen.query_one("#photo-title")))
            check_screen(app)
            faces = app.screen.query_one(OptionList)  # who is in the photo, beside it
            who = [str(faces.get_option_at_index(i).prompt) for i in range(faces.option_count)]
            assert f"1  {EVE}" in who
            if app.screen.path.endswith(T1):
                assert f"2  {shown(ANN)}" in who
            await pilot.press("escape", "right")
            await settle(pilot)
        assert titles == {f"{T1}  ·  6 faces", f"{shown(ASTRO)}  ·  1 face"}


# -- suggestions and zoom -----------------------------------------------------------------------


@run_async
async def test_suggestions_question_captions_and_answer(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("s")  # "Is this Eve?"
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SuggestionsScreen) and screen.queue
        question = text_of(screen.query_one("#suggest-question"))
        assert question == f"Is this {EVE}?   face #{MIRRORED} in {shown(MIRROR)}"
        assert text_of(screen.query(".suggest-caption").first()) == EVE
        known = text_of(screen.query_one("#suggest-known-detail"))  # her best face's photo
        assert known.split(" · ")[1] in (T1, shown(ASTRO)), known
        assert text_of(screen.query_one("#suggest-candidate-detail")) == f"#{MIRRORED} · {shown(MIRROR)}"
        check_screen(app)
        await pilot.press("y")
        await settle(pilot)
        assert f"Face #{MIRRORED} is {EVE}" in toasts(app)
        check_screen(app)
    assert lib.face(MIRRORED).person_id == EVE_ID  # the answer is kept


@run_async
async def test_zoom_captions(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("enter", "v")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert text_of(screen.query_one("#compare-title")) == f"Is this {EVE}?  ·  face 1 of 2"
        assert text_of(screen.query_one("#best-caption")) == f"{EVE}: the best face"
        details = set()
        for _ in range(2):
            details.add(text_of(screen.query_one("#this-detail")).split(" · ")[1])
            check_screen(app)
            await pilot.press("right")
            await settle(pilot)
        assert details == {T1, shown(ASTRO)}


# -- name dialog, rename, merge, XMP ------------------------------------------------------------


@run_async
async def test_name_dialog_shows_names_and_keeps_an_unchanged_one(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("n")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, NameDialog)
        assert text_of(dialog.query_one("#dialog-title")) == f"Name {EVE}"
        assert dialog.query_one(Input).value == EVE
        text = check_screen(app)
        assert shown(ANN) in text  # the names to pick from
        await pilot.press("escape", "down", "n")  # Ann
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, NameDialog)
        assert text_of(dialog.query_one("#dialog-title")) == f"Name {shown(ANN)}"
        assert dialog.query_one(Input).value == shown(ANN)
        check_screen(app)
        await pilot.press("enter")  # unchanged: nothing to rename
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)
        check_screen(app)
    assert lib.person(ANN_ID).name == ANN  # not renamed to what the screen showed of it


@run_async
async def test_rename_and_its_refusal_say_the_names_as_text(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("down", "n")  # Ann
        await settle(pilot)
        app.screen.query_one(Input).value = "Ann\x1b[2J"  # pasted: the library refuses it
        await pilot.press("enter")
        await settle(pilot)
        refusal = f"name {shown(ANN)}\na name cannot contain control characters: 'Ann\\x1b[2J'"
        assert refusal in toasts(app)  # the failed step's title names her, escaped
        check_screen(app)
        await pilot.press("n")
        await settle(pilot)
        app.screen.query_one(Input).value = "Ann B"
        await pilot.press("enter")
        await settle(pilot)
        assert f"{shown(ANN)} is now Ann B" in toasts(app)
        check_screen(app)
        await pilot.press("up", "n")  # Eve
        await settle(pilot)
        app.screen.query_one(Input).value = "Eve [/b]"
        await pilot.press("enter")
        await settle(pilot)
        assert f"{EVE} is now Eve [/b]" in toasts(app)
        text = check_screen(app)
        assert "Eve [/b]" in text
    assert lib.person(ANN_ID).name == "Ann B"
    assert lib.person(EVE_ID).name == "Eve [/b]"


@run_async
async def test_merge_question_and_its_refusal_name_them_as_text(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("space", "down", "m")  # Eve marked, Ann highlighted
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert text_of(dialog.query_one("#dialog-title")) == f"Merge 2 into {EVE}?"
        assert text_of(dialog.query_one("#dialog-details")).splitlines() == [
            f"  {EVE} (2 faces)",
            f"  {shown(ANN)} (1 face)",
        ]
        check_screen(app)
        await pilot.press("y")  # two named people: the library says no
        await settle(pilot)
        told = toasts(app)
        assert any(f"different named people ({shown(ANN)}, {EVE})" in t for t in told), told
        check_screen(app)
    assert lib.person(EVE_ID).name == EVE and lib.person(ANN_ID).name == ANN
    assert lib.person(EVE_ID).faces == 2 and lib.person(ANN_ID).faces == 1


@run_async
async def test_a_decided_face_gone_from_a_hostile_file_is_told_as_text(lib: Library) -> None:
    from PIL import ImageDraw

    face = lib.face(3)  # one of t1's: its other faces show the edited photo is t1 still
    lib.name(face.person_id or 0, EVE + " too")  # a user's decision about that face
    with Image.open(face.path) as im:  # paint over the face: the edited photo no longer shows it
        w, h = im.size
        edited = im.convert("RGB")
    x, y, fw, fh = face.box
    ImageDraw.Draw(edited).rectangle((x * w - 4, y * h - 4, (x + fw) * w + 4, (y + fh) * h + 4), fill="grey")
    edited.save(face.path, quality=92)
    assert lib.scan([Path(face.path)]).counts["changed"] == 1
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        told = [t for t in toasts(app) if "gone from edited photos" in t]
        assert told == [f"1 decided face gone from edited photos\n{shown(face.path)}: {EVE} too"], told
        check_screen(app)


@run_async
async def test_xmp_message_names_the_person_as_text(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_people(pilot)
        await pilot.press("x")  # XMP for Eve: both hostile files
        await settle(pilot, rounds=6)
        told = [t for t in toasts(app) if t.startswith("XMP for")]
        assert told and told[0].startswith(f"XMP for {EVE}: 2 photos: "), told
        check_screen(app)
