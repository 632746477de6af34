"""The TUI for a newcomer (issue 24): Esc always goes back, a merge says whom it merges before it
happens, faces are large enough to judge, help is never cut off, and XMP says where it wrote.

Driven with the Pilot against the real library of tests/test_tui.py (t1 and the astronaut,
indexed by the real pipeline); the tmux test (tests/test_tui_tmux.py) does the same in a real
terminal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual.geometry import Region
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from facetags.library import Library
from facetags.tui.app import FacetagsApp
from facetags.tui.screens.compare import CompareScreen
from facetags.tui.screens.confirm import ConfirmDialog
from facetags.tui.screens.help import HelpScreen
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.screens.people import PeopleScreen
from facetags.tui.screens.person import PersonScreen
from facetags.tui.screens.photo import PhotoScreen
from facetags.tui.screens.suggestions import SuggestionsScreen
from facetags.tui.widgets.face_grid import FaceGrid, FaceTile
from tests import test_tui
from tests.test_tui import (
    ADA,
    SIZE,
    UNNAMED,
    highlight_cluster,
    make_app,
    names,
    open_person,
    run_async,
    settle,
    type_text,
)

# the library fixtures of the TUI tests: one indexed template per module, a copy per test
template, lib, arranged = test_tui.template, test_tui.lib, test_tui.arranged


def footer_keys(app: FacetagsApp, width: int = 80) -> dict[str, str]:
    """Key shown -> description, for the footer keys that fit in ``width`` columns."""
    keys = app.screen.query_one(Footer).query(FooterKey)
    return {k.key_display: k.description for k in keys if k.region.width and k.region.right <= width}


def person_screen(app: FacetagsApp) -> PersonScreen:
    assert isinstance(app.screen, PersonScreen), app.screen
    return app.screen


# -- Esc goes back (case 2) ---------------------------------------------------------------------


@run_async
async def test_escape_goes_back_from_a_person_with_faces_selected(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        grid = (await open_person(pilot, "ada")).query_one(FaceGrid)
        await pilot.press("space")
        assert grid.selected
        await pilot.press("escape")  # once: the selection does not hold it back
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)


@run_async
async def test_faces_and_their_labels_are_whole_when_the_rows_do_not_fit(arranged: Library) -> None:
    """More rows of faces than the screen holds: the grid scrolls; its rows kept sharing out its
    height, which cut every face and hid the labels under them."""
    from facetags.tui.widgets.face_grid import picture_size

    arranged.move_faces([f.face_id for f in arranged.faces() if f.person_id != ADA], ADA)
    app = make_app(arranged)
    async with app.run_test(size=(80, 16)) as pilot:
        await settle(pilot)
        grid = (await open_person(pilot, "ada")).query_one(FaceGrid)
        await settle(pilot)
        tiles = list(grid.query(FaceTile))
        assert len(tiles) > grid.columns  # two rows at least, in a grid room for one
        tall = picture_size(grid.tile_width)[1] + 2
        assert {tile.outer_size.height for tile in tiles} == {tall}
        for _ in range(len(tiles)):
            await pilot.press("right")
        await settle(pilot)
        assert grid.scroll_y > 0  # the last row scrolled into sight


@run_async
async def test_c_clears_the_selection_and_the_footer_says_so(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        grid = (await open_person(pilot, "ada")).query_one(FaceGrid)
        assert "c" not in footer_keys(app)  # nothing to clear
        await pilot.press("space", "right", "space")
        await settle(pilot)
        assert len(grid.selected) == 2
        assert footer_keys(app)["c"] == "Clear"
        await pilot.press("c")
        await settle(pilot)
        assert not grid.selected and "c" not in footer_keys(app)
        assert isinstance(app.screen, PersonScreen)


@run_async
async def test_escape_leaves_every_screen_and_dialog(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        await pilot.press("enter")  # the photo of the face under the cursor
        await settle(pilot)
        assert isinstance(app.screen, PhotoScreen)
        await pilot.press("escape")
        await settle(pilot)
        person_screen(app)
        await pilot.press("v")  # the face large, beside her best
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        await settle(pilot)
        person_screen(app)
        await pilot.press("n")  # the name dialog, over the person
        await settle(pilot)
        assert isinstance(app.screen, NameDialog)
        await pilot.press("escape")
        await settle(pilot)
        person_screen(app)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)

        await pilot.press("s")  # suggestions for Ada (the highlighted row)
        await settle(pilot)
        assert isinstance(app.screen, SuggestionsScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)

        for key, dialog in (("question_mark", HelpScreen), ("X", ConfirmDialog), ("n", NameDialog)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, dialog), key
            await pilot.press("escape")
            await settle(pilot)
            assert isinstance(app.screen, PeopleScreen), key
    assert names(arranged) == {"Ada Lovelace": 2, "Grace Hopper": 1}  # nothing changed


@run_async
async def test_every_footer_shows_the_way_back_at_80_columns(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        await pilot.press("space")  # a selection adds "c Clear": still room for the way back
        await settle(pilot)
        assert footer_keys(app)["esc"] == "Back"
        await pilot.press("enter")
        await settle(pilot)
        assert footer_keys(app)["esc"] == "Back"  # photo
        await pilot.press("escape", "escape")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert footer_keys(app)["esc"] == "Done"  # suggestions


# -- marking and merging (case 3) ---------------------------------------------------------------


async def unnamed_rows(pilot: Any) -> PeopleScreen:
    """The people list filtered to the three unnamed clusters, the first highlighted."""
    await pilot.press("slash")
    await type_text(pilot, "cluster")
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, PeopleScreen) and [p.id for p in screen.shown] == list(UNNAMED)
    return screen


@run_async
async def test_space_marks_the_row_under_the_cursor_and_stays(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await unnamed_rows(pilot)
        await pilot.press("space")
        assert screen.marked == {UNNAMED[0]} and screen.current.id == UNNAMED[0]  # type: ignore[union-attr]
        await pilot.press("space")  # again: unmarked, as a toggle
        assert screen.marked == set()
        await pilot.press("down", "space", "down", "space")
        assert screen.marked == {UNNAMED[1], UNNAMED[2]}


@run_async
async def test_merge_names_whom_it_merges_and_waits_for_yes(arranged: Library) -> None:
    before = arranged.people()
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await unnamed_rows(pilot)
        await pilot.press("space", "down", "down", "space", "up")  # marks the 1st and the 3rd
        for cancel in ("n", "escape", "enter"):  # enter: the No button has the focus
            await pilot.press("m")
            await settle(pilot)
            dialog = app.screen
            assert isinstance(dialog, ConfirmDialog)
            text = str(dialog.query_one("#dialog-title", Static).render())
            details = str(dialog.query_one("#dialog-details", Static).render())
            # highlighted, not marked: left out, and said (the user meant it as the survivor?)
            assert (
                text
                == f"Merge 2 into cluster #{UNNAMED[0]}? Not cluster #{UNNAMED[1]}: highlighted, not marked."
            )
            assert details.split("\n") == [f"  cluster #{c} (1 face)" for c in (UNNAMED[0], UNNAMED[2])]
            await pilot.press(cancel)
            await settle(pilot)
            assert isinstance(app.screen, PeopleScreen)
            assert arranged.people() == before, cancel
        await pilot.press("m", "y")
        await settle(pilot)
    merged = arranged.person(UNNAMED[0])
    assert merged.faces == 2 and arranged.person(UNNAMED[1]).faces == 1
    assert {f.face_id for f in arranged.faces(merged.id)} == {UNNAMED[0], UNNAMED[2]}


@run_async
async def test_merge_with_one_marked_takes_the_highlighted_one_by_name(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[1])
        await pilot.press("space", "escape")  # marked; the filter cleared, the list is whole again
        await pilot.press(*["up"] * 6)  # to the first row: Ada
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PeopleScreen) and screen.current.name == "Ada Lovelace"  # type: ignore[union-attr]
        await pilot.press("m")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert dialog.question == "Merge 2 into Ada Lovelace?"
        assert dialog.details == ["Ada Lovelace (2 faces)", f"cluster #{UNNAMED[1]} (1 face)"]
        await pilot.press("y")
        await settle(pilot)
    assert names(arranged) == {"Ada Lovelace": 3, "Grace Hopper": 1}
    assert arranged.face(UNNAMED[1]).person_id == ADA


# -- help and XMP (case 8) ----------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(text.split())


@run_async
async def test_help_wraps_instead_of_cutting_text(arranged: Library) -> None:
    """At 160 and at 80 columns every line of help is there in full, wrapped if need be."""
    from facetags.tui.keys import all_keys

    for size in ((160, 48), (80, 24)):
        app = make_app(arranged)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            title = str(app.screen.query_one("#dialog-title", Static).render())
            assert "esc closes" in title
            keys = app.screen.query_one("#help-keys", Static)
            lines = keys.render_lines(Region(0, 0, keys.size.width, keys.size.height))
            text = _words(" ".join(strip.text for strip in lines))
            for k in all_keys():
                assert _words(k.description) in text, (size, k.description)


@run_async
async def test_xmp_says_how_many_photos_went_to_sidecars(arranged: Library) -> None:
    from facetags.xmp.read import read_regions

    photos = sorted({f.path for f in arranged.faces(ADA)})
    assert len(photos) == 2
    locked = next(p for p in photos if p.endswith("astronaut.jpg"))
    os.chmod(locked, 0o444)  # a read-only photo: its tags go to a sidecar
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")  # Ada, the first row
        await settle(pilot)
        told = [n.message for n in app._notifications if n.message.startswith("XMP for")]
    assert told == [
        "XMP for Ada Lovelace: 2 photos: 2 changed (1 embedded, 1 in sidecars for read-only photos), "
        "0 up to date, 0 failed"
    ]
    assert os.path.exists(locked + ".xmp")
    for photo in photos:
        assert "Ada Lovelace" in {r.name for r in read_regions(Path(photo)).regions}


def test_the_xmp_summary_says_when_another_tools_name_was_kept() -> None:
    """A photo where a face keeps another tool's name is neither "changed" nor "up to date"."""
    from facetags.tui.app import xmp_summary
    from facetags.xmp.write import WriteResult

    def result(name: str, changes: list[str], kept: int) -> WriteResult:
        return WriteResult(
            photo=Path(name), target=Path(name), mode="embedded", changes=changes, warnings=[], kept=kept
        )

    told = xmp_summary(
        "everyone", [result("a.jpg", [], 1), result("b.jpg", ["add"], 0), result("c.jpg", [], 0)]
    )
    assert told.startswith("XMP for everyone: 3 photos: 1 changed (1 embedded), 1 up to date, 0 failed")
    assert "in 1 photo another tool named a face otherwise" in told and "--replace-names" in told
    assert "warning" not in told


def test_the_xmp_summary_says_what_the_cli_warns_of() -> None:
    """A region that cannot be read reached the TUI only as a log message (the TUI shows those
    at WARNING); the write's own warnings are in its summary, why a sidecar aside."""
    from facetags.tui.app import xmp_summary
    from facetags.xmp.write import WriteResult

    bad = "a.jpg.xmp: MWG region 1 (Bad) ignored: not finite: 'NaN'"
    results = [
        WriteResult(Path("a.jpg"), Path("a.jpg"), "embedded", ["add"], [bad]),
        WriteResult(Path("b.jpg"), Path("b.jpg.xmp"), "sidecar", ["add"], ["b.jpg: read-only"], fallback="x"),
    ]
    assert xmp_summary("everyone", results).endswith(f"; 1 warning (first: {bad})")


# -- faces large enough to judge (case 5) -------------------------------------------------------


def tile_pictures(app: FacetagsApp) -> list[tuple[int, int]]:
    """(columns, rows) of each face tile's picture on screen."""
    return [(p.region.width, p.region.height) for p in app.screen.query(".face-tile--picture")]


@run_async
async def test_face_tiles_grow_with_the_terminal(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        grid = (await open_person(pilot, "ada")).query_one(FaceGrid)
        assert tile_pictures(app) == [(12, 6), (12, 6)]  # five columns fit in 80
        assert grid.columns == 5
        await pilot.resize_terminal(160, 48)
        await settle(pilot)
        assert tile_pictures(app) == [(32, 16), (32, 16)]  # square in half-block pixels
        assert grid.columns == 4  # still four faces a row, two rows a screen
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert tile_pictures(app) == [(12, 6), (12, 6)]


@run_async
async def test_f_shows_each_face_s_file_name(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_person(pilot, "ada")

        def labels() -> list[str]:
            return [str(label.render()) for label in screen.query(".face-tile--label").results(Static)]

        files = [os.path.basename(f.path) for f in arranged.faces(ADA)]
        assert not any(name in label for label in labels() for name in files)
        await pilot.press("f")
        await settle(pilot)
        assert [name in label for label, name in zip(labels(), files, strict=True)] == [True, True]


@run_async
async def test_zoom_shows_a_face_large_beside_the_best_face(arranged: Library) -> None:
    from facetags.tui.faces import face_pixels
    from facetags.tui.widgets.picture import Picture

    faces = arranged.faces(ADA)
    assert all(f.assigned_by == "user" for f in faces)  # then the largest is her best face
    best = max(faces, key=face_pixels)
    app = make_app(arranged)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        await pilot.press("v")  # the first face
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)

        def detail(part: str) -> str:
            return str(screen.query_one(f"#{part}-detail", Static).render())

        for part in ("best", "this"):
            picture = screen.query_one(f"#{part}-picture", Picture)
            assert picture.image is not None and picture.image.size == (112, 112)
            image = picture.query_one(".picture--image")
            assert image.region.width >= 60 and image.region.height >= 30  # tiles were 12x6
        assert detail("best").startswith(f"#{best.face_id} · {os.path.basename(best.path)}")
        seen = []
        for _ in faces:
            seen.append(detail("this").split(" · ")[:2])
            await pilot.press("right")
            await settle(pilot)
        assert seen == [[f"#{f.face_id}", os.path.basename(f.path)] for f in faces]  # every face, by file
        assert detail("best").startswith(f"#{best.face_id}")  # the best face stays

        other = next(f for f in faces if f.face_id != best.face_id)
        while not detail("this").startswith(f"#{other.face_id}"):
            await pilot.press("left")
        await pilot.press("enter")  # its photo
        await settle(pilot)
        assert isinstance(app.screen, PhotoScreen) and app.screen.path == other.path
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is screen
        await pilot.press("r")  # not her
        await settle(pilot)
        assert arranged.face(other.face_id).person_id != ADA
        assert detail("this").startswith(f"#{best.face_id}")  # the one left
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, PersonScreen)


# -- a snapshot of the merge question (pictures off, as in tests/test_tui.py; Zoom has none: its
# captions carry the detector's face sizes in pixels, which may differ in the last bit by CPU) ----


def test_snapshot_merge_question(arranged: Library, snap_compare: Any) -> None:
    async def before(pilot: Any) -> None:
        await settle(pilot)
        await unnamed_rows(pilot)
        await pilot.press("space", "down", "space", "m")
        await settle(pilot)

    assert snap_compare(make_app(arranged, images="none"), terminal_size=(80, 24), run_before=before)
