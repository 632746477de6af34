"""The TUI, driven with Textual's Pilot against a real library indexed from real photos.

Each test performs actions the way a user would (keys, clicks) and asserts what happened in
the library. Snapshot tests keep SVG pictures of the main screens (update them with
``pytest tests/test_tui.py --snapshot-update`` after a deliberate change, and look at them).
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, OptionList, Static

from facetags.config import load_settings
from facetags.errors import FacetagsError
from facetags.library import Library
from facetags.tui.app import FacetagsApp
from facetags.tui.screens.confirm import ConfirmDialog
from facetags.tui.screens.name_dialog import NameDialog
from facetags.tui.screens.people import PeopleScreen
from facetags.tui.screens.person import PersonScreen
from facetags.tui.screens.photo import PhotoScreen
from facetags.tui.screens.suggestions import SuggestionsScreen
from facetags.tui.widgets.face_grid import FaceGrid
from tests.tui_helpers import build_library, burst, copy_library, separate

SIZE = (100, 30)
ADA, GRACE, UNNAMED, HIDDEN = 1, 2, (3, 4, 5), 6  # people of the arranged library


def run_async(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test without an asyncio pytest plugin (fixtures still resolve)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, t1_path: Path, astronaut_path: Path) -> Path:
    """t1 (6 faces) and the astronaut (1 face), indexed by the real pipeline, every face a
    person of its own (the model's grouping, fixed by the user's decisions): faces and people
    1..6 are t1's people as detected, 7 the astronaut."""
    db = build_library(tmp_path_factory.mktemp("tui-lib"), [t1_path, astronaut_path])
    separate(db)
    return db


def _open_copy(template: Path, tmp_path: Path) -> Iterator[Library]:
    """A test's own copy of a template library, opened, closed afterwards."""
    db = copy_library(template, tmp_path)
    library = Library.open(db, load_settings(library=str(db)))
    try:
        yield library
    finally:
        library.close()


@pytest.fixture
def lib(template: Path, tmp_path: Path) -> Iterator[Library]:
    yield from _open_copy(template, tmp_path)


@pytest.fixture
def arranged(lib: Library) -> Library:
    """Ada (one t1 face and the astronaut), Grace, three unnamed clusters, one hidden stranger."""
    lib.merge([ADA, 7])
    lib.name(ADA, "Ada Lovelace")
    lib.name(GRACE, "Grace Hopper")
    lib.hide(HIDDEN)
    return lib


def make_app(library: Library, **kwargs: Any) -> FacetagsApp:
    kwargs.setdefault("images", "unicode")
    kwargs.setdefault("poll_seconds", 0)
    kwargs.setdefault("sample_delay", 0)  # deterministic: no timer before the sample face loads
    return FacetagsApp(library, **kwargs)


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    """Let workers finish and their messages land (loads can chain: people -> sample face)."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def names(library: Library) -> dict[str, int]:
    return {p.name: p.faces for p in library.people() if p.name}


def made_stale(library: Library) -> int:
    """Every vector made by an earlier model, as after an upgrade that changed the embedder:
    the faces wait to be re-embedded (how many, returned)."""
    with library.store.write():
        library.store.conn.execute("UPDATE embeddings SET model_id = 'an-earlier-model@000000000000'")
    faces = library.stale_faces()
    assert faces == len(library.faces())
    return faces


def row_labels(app: FacetagsApp) -> list[str]:
    table = app.screen.query_one(DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


# -- people screen --------------------------------------------------------------------------


@run_async
async def test_people_screen_lists_largest_first_hidden_out_of_the_way(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)
        labels = row_labels(app)
        assert labels[0] == "Ada Lovelace"  # 2 faces: the largest
        assert "Grace Hopper" in labels
        assert not any(f"cluster {HIDDEN}" in label for label in labels)
        await pilot.press("H")
        await settle(pilot)
        assert any(f"cluster {HIDDEN}" in label and "hidden" in label for label in row_labels(app))


@run_async
async def test_a_library_still_being_read_is_not_shown_as_empty(
    arranged: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the people are read (a second or more in a large library), the list is empty
    because it is loading, and says so: not "No one here yet", which told the owner of a large
    library that it had lost everyone. A load that fails says so too."""
    gate = threading.Event()
    people = arranged.people

    def slow_people() -> Any:
        assert gate.wait(30)
        return people()

    monkeypatch.setattr(arranged, "people", slow_people)
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        info = str(app.screen.query_one("#person-info", Static).render())
        assert row_labels(app) == [] and "Reading the library" in info and "No one" not in info
        gate.set()
        await settle(pilot)
        info = str(app.screen.query_one("#person-info", Static).render())
        assert row_labels(app)[0] == "Ada Lovelace" and "Reading" not in info

    def broken() -> Any:
        raise FacetagsError("the disk went away")

    monkeypatch.setattr(arranged, "people", broken)
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        info = str(app.screen.query_one("#person-info", Static).render())
        assert "could not be read" in info and "No one" not in info
        shown = [str(n.message) for n in app._notifications]
        assert shown == ["the disk went away"]


@run_async
async def test_filter_by_typing(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await type_text(pilot, "grace")
        await settle(pilot)
        assert row_labels(app) == ["Grace Hopper"]
        await pilot.press("down")  # from the filter box to the list
        assert isinstance(app.screen.focused, DataTable)
        await pilot.press("space")  # a mark, not a space in the filter
        assert app.screen.query_one("#filter", Input).value == "grace"
        await pilot.press("slash")
        await type_text(pilot, "zz")
        await settle(pilot)
        info = str(app.screen.query_one("#person-info", Static).render())
        assert row_labels(app) == [] and "No one matches" in info and "Scan photos" not in info
        await pilot.press("escape")
        await settle(pilot)
        assert len(row_labels(app)) == 5


@run_async
async def test_the_filter_puts_the_cursor_on_its_best_match(arranged: Library) -> None:
    """The cursor kept its row number when the list was filtered: `/cluster` Enter from the
    second row marked the second cluster, and `/9` Enter was on cluster 90 rather than 9 (a
    newcomer's test). It now goes to the row the text names exactly (an id, a whole name), else
    the first; Esc clears the filter and stays on the one found."""
    arranged.name(UNNAMED[2], "Ada L")  # a second name that "ada l" is part of
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)

        def here() -> str:
            return str(table.get_row_at(table.cursor_row)[1])

        await pilot.press("down")
        assert here() == "Grace Hopper"
        await pilot.press("slash")
        await type_text(pilot, "cluster")
        await pilot.press("enter")
        await settle(pilot)
        assert row_labels(app) == [f"cluster {UNNAMED[0]}", f"cluster {UNNAMED[1]}"]
        assert here() == f"cluster {UNNAMED[0]}"  # not the second row, where the cursor was
        await pilot.press("down", "slash")
        await pilot.press("ctrl+u")  # the filter box emptied
        await type_text(pilot, str(UNNAMED[1]))
        await pilot.press("enter")
        await settle(pilot)
        assert here() == f"cluster {UNNAMED[1]}"
        await pilot.press("slash", "ctrl+u")
        await type_text(pilot, "ada l")
        await pilot.press("enter")
        await settle(pilot)
        assert row_labels(app) == ["Ada Lovelace", "Ada L"] and here() == "Ada L"  # the whole name
        await pilot.press("escape")
        await settle(pilot)
        assert len(row_labels(app)) == 5 and here() == "Ada L"


@run_async
async def test_a_cluster_named_from_a_filtered_list_stays_in_it(arranged: Library) -> None:
    """Filtered down to a cluster, which the user names: the filter no longer matches the new
    name, and the row stays (the list went empty) until the filter changes."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])
        assert row_labels(app) == [f"cluster {UNNAMED[0]}"]
        await pilot.press("n")
        await type_text(pilot, "Hugh Mum")
        await pilot.press("enter")
        await settle(pilot)
        assert row_labels(app) == ["Hugh Mum"]
        await pilot.press("slash")
        await type_text(pilot, "zz")
        await settle(pilot)
        assert row_labels(app) == []  # another filter: the row is not kept any more


async def highlight_cluster(pilot: Pilot[Any], cluster: int) -> None:
    """Filter the people list down to one cluster by its id and highlight it."""
    await pilot.press("slash")
    await type_text(pilot, f"cluster {cluster}")
    await pilot.press("enter")
    await settle(pilot)


async def send_keys(pilot: Pilot[Any], keys: list[str], *, as_burst: bool) -> None:
    """Keys all at once (a paste, tmux send-keys: :func:`burst`) or one by one, then settle."""
    if as_burst:
        burst(pilot.app, keys)
    else:
        await pilot.press(*keys)
    await settle(pilot)


async def _name_then_burst(pilot: Pilot[Any], keys: list[str], *, as_burst: bool) -> None:
    """Name a cluster (an undoable step), then type `/` and keys that are actions on the list."""
    await settle(pilot)
    await pilot.press("n")
    await type_text(pilot, "Hugh Mum")
    await pilot.press("enter")
    await settle(pilot)
    await send_keys(pilot, keys, as_burst=as_burst)


@pytest.mark.parametrize("as_burst", [True, False], ids=["burst", "press"])
def test_keys_right_after_slash_go_to_the_filter(arranged: Library, as_burst: bool) -> None:
    """A paste or tmux `send-keys "/uhm"`: `u` must not undo, `h` hide or `m` merge."""

    async def run() -> None:
        app = make_app(arranged)
        async with app.run_test(size=SIZE) as pilot:
            await highlight_cluster(pilot, UNNAMED[0])
            await _name_then_burst(pilot, ["slash", "u", "h", "m", "slash", "x"], as_burst=as_burst)
            screen = app.screen
            assert isinstance(screen, PeopleScreen)
            assert screen.query_one("#filter", Input).value == "uhm/x"
            assert screen.focused is screen.query_one("#filter", Input)
            assert not any("Undone" in n.message for n in app._notifications)
        assert arranged.person(UNNAMED[0]).name == "Hugh Mum"
        assert not arranged.person(UNNAMED[0]).hidden

    asyncio.run(run())


@run_async
async def test_name_a_cluster(lib: Library) -> None:
    app = make_app(lib)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first = app.screen.current  # type: ignore[attr-defined]
        await pilot.press("n")
        await type_text(pilot, "Ada Lovelace")
        await pilot.press("enter")
        await settle(pilot)
        assert lib.person(first.id).name == "Ada Lovelace"
        assert "Ada Lovelace" in row_labels(app)
        assert lib.find(["ada lovelace"])  # the CLI's search sees it


@run_async
async def test_a_long_name_leaves_every_rows_counts_in_sight(arranged: Library) -> None:
    long = "Maria Antonia Walburga Symphorosa von Bayern-Sachsen, Kurfürstin"
    first = arranged.people()[0]
    arranged.name(first.id, long)
    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:  # the smallest terminal the TUI is made for
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        widths = sum(column.get_render_width(table) for column in table.columns.values())
        assert widths <= table.size.width  # the Faces and Photos columns fit beside the names
        cut = next(label for label in row_labels(app) if label.startswith("Maria"))
        assert cut.endswith("…") and long.startswith(cut[:-1])
        await pilot.resize_terminal(160, 30)
        await settle(pilot)
        assert long in row_labels(app)  # room enough: the whole name


@pytest.mark.parametrize(
    "typed",
    [[*"grace", "space", *"hopper"], [*"grace", "full_stop", "space", *"hopper"]],  # other punctuation too
    ids=["same", "punctuation"],
)
@run_async
async def test_naming_with_an_existing_name_asks_then_merges(arranged: Library, typed: list[str]) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])
        await pilot.press("n")
        await type_text(pilot, "gra")
        await pilot.pause()
        choices = app.screen.query_one("#name-choices", OptionList)
        assert choices.get_option_at_index(0).id == "Grace Hopper"  # completion
        await pilot.press("down", "enter")  # pick it from the list
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)  # Grace is someone already: asked first
        assert "Grace Hopper is someone already" in str(app.screen.query_one("#dialog-title", Label).render())
        await pilot.press("n")
        await settle(pilot)
        assert names(arranged)["Grace Hopper"] == 1 and arranged.person(UNNAMED[0]).name is None
        await pilot.press("n", *typed, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "Grace Hopper is someone already" in str(app.screen.query_one("#dialog-title", Label).render())
        await pilot.press("y")
        await settle(pilot)
        assert names(arranged)["Grace Hopper"] == 2 and "grace. hopper" not in names(arranged)
        assert arranged.person(UNNAMED[0]).name == "Grace Hopper"  # the cluster now resolves to Grace


@run_async
async def test_a_name_given_elsewhere_meanwhile_is_refused_in_the_tuis_words_then_asked(
    arranged: Library,
) -> None:
    """The list the TUI shows is older than the library (another window, the CLI): naming with a
    name given meanwhile merged nothing and said "add --merge", a CLI flag; now the TUI says so in
    its own words and asks the next time."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])
        await pilot.press("n")
        await type_text(pilot, "Ada Byron")
        arranged.name(UNNAMED[1], "Ada Byron")  # meanwhile, elsewhere
        await pilot.press("enter")
        await settle(pilot)
        said = [n.message for n in app._notifications if "Ada Byron is person" in n.message]
        assert said and "--merge" not in said[-1] and "named since this list was read" in said[-1]
        assert arranged.person(UNNAMED[0]).name is None  # nothing merged without asking
        await pilot.press("n")
        await type_text(pilot, "Ada Byron")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "Ada Byron is someone already" in str(app.screen.query_one("#dialog-title", Label).render())


@run_async
async def test_merge_marked_clusters(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        await type_text(pilot, "cluster")
        await pilot.press("enter")
        await settle(pilot)
        assert len(row_labels(app)) == 3
        await pilot.press("space", "down", "space", "down", "space")  # space marks the row it is on
        await pilot.press("m", "y")  # the question names them; y merges
        await settle(pilot)
        unnamed = [p for p in arranged.people() if not p.name and not p.hidden]
        assert sorted(p.faces for p in unnamed) == [3]


@run_async
async def test_naming_or_moving_into_someone_twice_in_a_photo_says_so(arranged: Library) -> None:
    """A merge of marked clusters said when the person was now twice in one photo (one face
    there is someone else's); the same merge by naming, and a move, said nothing."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])  # a t1 face, like one of Ada's
        await pilot.press("n")
        await type_text(pilot, "Ada Lovelace")
        await pilot.press("enter", "y")
        await settle(pilot)
        told = [str(n.message) for n in app._notifications]
        assert any(m.startswith(f"cluster {UNNAMED[0]} joined Ada Lovelace") for m in told), told
        assert any("In 1 photo more than once: reject the wrong face there" in m for m in told), told
        app._notifications.clear()
        await pilot.press("escape")
        await open_person(pilot, "grace")  # Grace's face is in t1 too
        await pilot.press("m")
        await type_text(pilot, "Ada Lovelace")
        await pilot.press("enter")
        await settle(pilot)
        told = [str(n.message) for n in app._notifications]
        assert any(m.startswith("Moved 1 face to Ada Lovelace. In 1 photo more than once") for m in told), (
            told
        )


@run_async
async def test_errors_are_notifications_not_crashes(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "down")  # mark Ada, go to Grace
        await pilot.press("m", "y")  # merge Ada and Grace: different named people
        await settle(pilot)
        assert app.is_running
        assert any("different named people" in n.message for n in app._notifications)
        assert names(arranged) == {"Ada Lovelace": 2, "Grace Hopper": 1}


@run_async
async def test_hide_a_stranger_and_bring_it_back(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[1])
        await pilot.press("h")
        await settle(pilot)
        assert arranged.person(UNNAMED[1]).hidden
        await pilot.press("H")  # show hidden
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        assert not arranged.person(UNNAMED[1]).hidden


@run_async
async def test_undo_several_steps(arranged: Library) -> None:
    before = arranged.people()
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])
        await pilot.press("n")
        await type_text(pilot, "Grace Hopper")
        await pilot.press("enter")  # 1: a merge by name
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("h")  # 2: hide whoever is first (Ada or Grace)
        await settle(pilot)
        assert arranged.people() != before
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert arranged.people() == before
        await pilot.press("u")  # nothing left of this session: a message, not a crash
        await settle(pilot)
        assert any("nothing to undo" in n.message for n in app._notifications)


# -- the face grid ----------------------------------------------------------------------------


async def open_person(pilot: Pilot[Any], query: str) -> PersonScreen:
    await pilot.press("slash")
    await type_text(pilot, query)
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, PersonScreen)
    return screen


@run_async
async def test_grid_shows_faces_with_real_thumbnails(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_person(pilot, "ada")
        grid = screen.query_one(FaceGrid)
        assert [f.face_id for f in grid.faces] == [f.face_id for f in arranged.faces(ADA)]
        tiles = list(grid.query("FaceTile"))
        assert len(tiles) == 2
        assert all(t.query_one("Picture").image is not None for t in tiles)  # type: ignore[attr-defined]
        assert all(t.query_one("Picture").image.size == (112, 112) for t in tiles)  # type: ignore[attr-defined]


@run_async
async def test_split_selected_faces(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        face = arranged.faces(ADA)[1].face_id
        await pilot.press("right", "space", "p")
        await settle(pilot)
        left = {f.face_id for f in arranged.faces(ADA)}
        assert left and face not in left
        moved = arranged.face(face)
        assert moved.person_id not in (None, ADA) and moved.assigned_by == "user"
        assert arranged.person(moved.person_id).faces == 1


@run_async
async def test_move_faces_to_another_person_by_name(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        face = arranged.faces(ADA)[0].face_id
        await pilot.press("space", "m")
        await type_text(pilot, "Grace")
        await pilot.press("right")  # accepts the inline completion: "Grace Hopper"
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.face(face).person_name == "Grace Hopper"
        assert names(arranged) == {"Ada Lovelace": 1, "Grace Hopper": 2}


@run_async
async def test_move_to_a_new_name_creates_the_person(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        face = arranged.faces(ADA)[0].face_id
        await pilot.press("m")  # nothing selected: the face under the cursor
        await type_text(pilot, "Eileen Collins")
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.face(face).person_name == "Eileen Collins"
        await pilot.press("u")  # one step, undone at once
        await settle(pilot)
        assert arranged.face(face).person_name == "Ada Lovelace"
        assert "Eileen Collins" not in names(arranged)


@run_async
async def test_enter_on_the_start_of_a_name_asks_before_a_new_person(arranged: Library) -> None:
    """'Grace' typed while 'Grace Hopper' is completed: Enter made a new person 'Grace' (a
    newcomer's junk person). It says so first; Enter again makes it, → takes the completion."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        first, second = (f.face_id for f in arranged.faces(ADA))
        await pilot.press("m")
        await type_text(pilot, "Grace")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, NameDialog)  # asked, not done
        hint = str(app.screen.query_one("#dialog-hint", Label).render())
        assert "no one is Grace: enter: a new person · →: Grace Hopper" in hint, hint
        assert arranged.face(first).person_name == "Ada Lovelace"
        await pilot.press("right", "enter")  # the completion
        await settle(pilot)
        assert arranged.face(first).person_name == "Grace Hopper"
        await pilot.press("m")
        await type_text(pilot, "Grace")
        await pilot.press("enter", "enter")  # a new person of that name, as asked
        await settle(pilot)
        assert arranged.face(second).person_name == "Grace"
        assert names(arranged) == {"Ada Lovelace": 0, "Grace Hopper": 2, "Grace": 1}


@run_async
async def test_naming_on_the_start_of_a_name_asks_unless_it_is_one_s_own(arranged: Library) -> None:
    """The name dialog asks too ('Ada' while 'Ada Lovelace' is completed), saying what enter
    does there (it names the cluster); shortening a person's own name asks nothing."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await highlight_cluster(pilot, UNNAMED[0])
        await pilot.press("n")
        await type_text(pilot, "Ada")
        await pilot.press("enter")
        await settle(pilot)
        hint = str(app.screen.query_one("#dialog-hint", Label).render())
        assert "no one is Ada: enter: this name · →: Ada Lovelace" in hint, hint
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.person(UNNAMED[0]).name == "Ada"
        await pilot.press("slash", "ctrl+u")
        await type_text(pilot, "grace")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("n")
        await type_text(pilot, "Grace")  # replaces "Grace Hopper", shown selected
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.person(GRACE).name == "Grace", "renamed at once"


@pytest.mark.parametrize("embedder_changed", [False, True])
@run_async
async def test_reject_a_face_from_a_person(arranged: Library, embedder_changed: bool) -> None:
    """Also after an embedder change, before the scan that re-embeds: the rejection is done at
    once (it re-embedded the whole library first, holding every later change for minutes on a
    large one), and the re-embed keeps it."""
    stale = made_stale(arranged) if embedder_changed else 0
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        face = arranged.faces(ADA)[0].face_id
        await pilot.press("r")
        await settle(pilot)
        assert face not in {f.face_id for f in arranged.faces(ADA)}
        assert arranged.face(face).person_id not in (None, ADA)
        assert len(app.screen.query_one(FaceGrid).faces) == 1
        assert arranged.stale_faces() == stale  # nothing re-embedded by the rejection

    arranged.change_model()  # what the next scan does first
    assert arranged.face(face).person_id not in (None, ADA)
    assert (face, ADA) in arranged.store.all_rejections()


@run_async
async def test_not_a_face(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "ada")
        face = arranged.faces(ADA)[1].face_id
        await pilot.press("right", "d")
        await settle(pilot)
        assert face not in {f.face_id for f in arranged.faces()}


@run_async
async def test_a_cluster_left_without_faces_goes_back_to_the_list(arranged: Library) -> None:
    """Its only face moved into Grace: the screen stayed on "cluster 3 · 0 faces in 0 photos"
    with nothing to do there. It goes back to the people, and says why; a named person whose
    last face goes stays (the name is kept)."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, f"cluster {UNNAMED[0]}")
        await pilot.press("m")
        await type_text(pilot, "Grace Hopper")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PeopleScreen)
        told = [str(n.message) for n in app._notifications]
        assert f"cluster {UNNAMED[0]} has no faces left." in told
        assert not [n for n in app._notifications if n.severity == "error"], told  # NoMatches once
        await open_person(pilot, "grace")
        await pilot.press("d", "d")  # both of Grace's faces: not faces
        await settle(pilot)
        assert isinstance(app.screen, PersonScreen) and names(arranged)["Grace Hopper"] == 0


@run_async
async def test_mouse_selects_faces(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_person(pilot, "ada")
        tiles = list(screen.query("FaceTile"))
        await pilot.click(tiles[1])
        await pilot.pause()
        grid = screen.query_one(FaceGrid)
        assert grid.selected == {tiles[1].face.face_id}  # type: ignore[attr-defined]
        assert grid.cursor == 1


# -- photo and suggestions ------------------------------------------------------------------


@run_async
async def test_photo_screen_shows_boxes_and_names(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_person(pilot, "grace")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PhotoScreen)
        listed = app.screen.query_one(OptionList)
        labels = [str(listed.get_option_at_index(i).prompt) for i in range(listed.option_count)]
        assert len(labels) == 6  # t1's six faces
        assert any("Grace Hopper" in label and "Ada Lovelace" not in label for label in labels)
        assert any("Ada Lovelace" in label for label in labels)
        assert app.screen.photo is not None


@run_async
async def test_a_missing_photo_shows_why_and_its_faces(arranged: Library) -> None:
    """A photo kept as missing (moved off, a drive unplugged): Enter on its face showed
    "FileNotFoundError: [Errno 2] ..." and "loading faces: ... not in the library", though the
    library keeps it, faces and names and all."""
    (face,) = [f for f in arranged.faces() if f.person_name == "Grace Hopper"]
    with arranged.store.write():
        arranged.store.mark_missing([face.path], "gone")
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_photo(face.path, face.face_id)
        await settle(pilot)
        assert isinstance(app.screen, PhotoScreen)
        listed = app.screen.query_one(OptionList)
        assert listed.option_count == 6  # t1's six faces, kept
        await pilot.pause()
        shown = " ".join("\n".join(strip.text for strip in app.screen._compositor.render_strips()).split())
        assert "This photo is not on disk since" in shown and "It is kept, with its" in shown
        assert not [n for n in app._notifications if n.severity == "error"]


def _same_face(a: Any, b: Any) -> bool:
    return all(abs(u - v) < 0.02 for u, v in zip(a.box, b.box, strict=True))


@pytest.fixture(scope="module")
def twins_template(tmp_path_factory: pytest.TempPathFactory, t1_path: Path) -> Path:
    """t1 and two smaller copies of it (the same people in other photos: other pixels, other
    hashes), indexed by the real pipeline. The user named one face of t1 "Ada", put each of her
    two copies (the twins) in a cluster of its own, and hid every other cluster as a stranger:
    whatever the model, the twins are the only faces left to suggest, and the same face is
    what any face model finds most like her."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("tui-twins")
    photos = [t1_path]
    for scale in (0.9, 0.8):
        img = Image.open(t1_path)
        path = folder / f"t1-{int(scale * 100)}.jpg"
        img.resize((int(img.width * scale), int(img.height * scale))).save(path, quality=85)
        photos.append(path)
    db = build_library(folder / "lib", photos)
    with Library.open(db, load_settings(library=str(db))) as library:
        faces = sorted(library.faces(), key=lambda f: f.face_id)
        original = faces[0]
        twins = [f for f in faces if f.path != original.path and _same_face(f, original)]
        assert len(twins) == 2, "the detector should find the same face in both copies"
        ada = library.name(library.set_assignment(original.face_id, None), "Ada")
        keep = {ada.id} | {library.set_assignment(t.face_id, None) for t in twins}
        for person in library.people():
            if person.id not in keep:
                library.hide(person.id)
        assert {s.face_id for s in library.suggest(ada.id, 10)} == {t.face_id for t in twins}
    return db


@pytest.fixture
def twins(twins_template: Path, tmp_path: Path) -> Iterator[Library]:
    yield from _open_copy(twins_template, tmp_path)


async def open_suggestions(pilot: Any, app: FacetagsApp, who: str) -> SuggestionsScreen:
    """Filter the people list to ``who`` and open the suggestions for them."""
    await settle(pilot)
    await pilot.press("slash")
    await type_text(pilot, who)
    await pilot.press("enter", "s")
    await settle(pilot)
    assert isinstance(app.screen, SuggestionsScreen)
    return app.screen


@run_async
async def test_suggestions_yes_and_no_teach_the_library(twins: Library) -> None:
    ada = next(p for p in twins.people() if p.name == "Ada")
    app = make_app(twins)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_suggestions(pilot, app, "ada")
        assert len(screen.queue) == 2
        first, second = screen.queue[0].face_id, screen.queue[1].face_id
        question = str(screen.query_one("#suggest-question").render())
        assert "Is this Ada?" in question and f"face #{first} in t1-" in question
        await pilot.press("y")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert "No more suggestions" in str(screen.query_one("#suggest-question").render())
    assert twins.face(first).person_id == ada.id
    assert twins.face(first).assigned_by == "user"
    assert twins.face(second).person_id != ada.id
    assert second not in {s.face_id for s in twins.suggest(ada.id, 50)}


@run_async
async def test_all_of_a_suggested_cluster_joins_in_one_key(twins: Library) -> None:
    """'a' answers yes for the suggested face's whole cluster, except a face in a photo Ada is
    already in (it stays in the cluster)."""
    ada = next(p for p in twins.people() if p.name == "Ada")
    first, second = sorted(s.face_id for s in twins.suggest(ada.id, 10))
    (ada_face,) = twins.faces(ada.id)
    other = next(f for f in twins.faces() if f.path == ada_face.path and f.face_id != ada_face.face_id)
    cluster = twins.face(first).person_id
    assert cluster is not None
    twins.move_faces([second, other.face_id], cluster)  # one cluster: both twins + a face of t1
    app = make_app(twins)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_suggestions(pilot, app, "ada")
        # the key first, before the photo's name: a long name and path cut the line in 80 columns
        question = str(screen.query_one("#suggest-question").render())
        assert "Is this Ada?   (its cluster holds 3 faces: a for all, x for none)   face #" in question
        await pilot.press("a")
        await settle(pilot)
        assert "No more suggestions" in str(screen.query_one("#suggest-question").render())
    assert twins.face(first).person_id == ada.id and twins.face(second).person_id == ada.id
    assert twins.face(first).assigned_by == "user"
    assert twins.face(other.face_id).person_id == cluster  # Ada is already in that photo
    assert twins.take_cluster(ada.id, cluster) == ([], [other.face_id])


@run_async
async def test_none_of_a_suggested_cluster_in_one_key(twins: Library) -> None:
    """'x' answers no for the suggested face's whole cluster: each of its faces is rejected
    from Ada (one 'n' a face, before) and stays in its cluster; one undo takes it back."""
    ada = next(p for p in twins.people() if p.name == "Ada")
    first, second = sorted(s.face_id for s in twins.suggest(ada.id, 10))
    cluster = twins.face(first).person_id
    assert cluster is not None
    twins.move_faces([second], cluster)  # both twins in one cluster
    app = make_app(twins)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_suggestions(pilot, app, "ada")
        await pilot.press("x")
        await settle(pilot)
        assert "No more suggestions" in str(screen.query_one("#suggest-question").render())
        assert {ada.id} <= twins.rejected_people(first) & twins.rejected_people(second)
        assert twins.face(first).person_id == twins.face(second).person_id == cluster
        assert twins.suggest(ada.id, 10) == []
        await pilot.press("u")
        await settle(pilot)
    assert ada.id not in twins.rejected_people(first) | twins.rejected_people(second)


# -- XMP, live updates, read-only, palette, docs ----------------------------------------------


@run_async
async def test_write_xmp_for_one_person(arranged: Library) -> None:
    from facetags.xmp.read import read_regions

    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("x")  # Ada, the first row
        await settle(pilot)
    for face in arranged.faces(ADA):
        found = read_regions(Path(face.path))
        assert "Ada Lovelace" in {r.name for r in found.regions}, face.path
        assert face.xmp_name == "Ada Lovelace"  # the library remembers what it wrote

    # renamed afterwards: the TUI says the photos are out of date, and x brings them up to date
    arranged.name(ADA, "Ada King")
    assert arranged.stale_xmp()[0] == len({f.photo_id for f in arranged.faces(ADA)})
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        told = [n for n in app._notifications if n.title == "XMP out of date"]
        assert len(told) == 1 and "Press X" in told[0].message
        assert "Ada King" in row_labels(app)[0]
        await pilot.press("x")
        await settle(pilot)
    assert arranged.stale_xmp()[0] == 0
    for face in arranged.faces(ADA):
        names = {r.name for r in read_regions(Path(face.path)).regions}
        assert "Ada King" in names and "Ada Lovelace" not in names, face.path


@run_async
async def test_a_changed_embedder_is_told_at_start(arranged: Library) -> None:
    """After an upgrade that changes the default embedder, the library's vectors are all of the
    earlier model until a scan re-embeds them: the TUI says so once, and says nothing after."""
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not [n for n in app._notifications if n.title == "Embedder changed"]

    faces = made_stale(arranged)
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        told = [n for n in app._notifications if n.title == "Embedder changed"]
        assert len(told) == 1 and f"{faces} faces to re-embed" in told[0].message
        assert f"now {arranged.pipeline.model_id.split('@')[0]}:" in told[0].message
        assert "Ada Lovelace" in row_labels(app)[0]  # the people are there meanwhile

    arranged.change_model()  # what the next scan does first
    assert arranged.stale_faces() == 0
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not [n for n in app._notifications if n.title == "Embedder changed"]


@run_async
async def test_quitting_waits_for_the_changes_asked_for(arranged: Library) -> None:
    """q while changes wait behind a slow one (writing XMP to many photos, say): the app says
    so and quits once they are through; none is dropped on the way out. q again asks before
    quitting at once."""
    app = make_app(arranged)
    gate = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.perform("slow", lambda lib: gate.wait(30), undoable=False)
        for person in UNNAMED:
            app.perform("name", functools.partial(Library.name, person_id=person, name=f"P{person}"))
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        told = [n for n in app._notifications if n.title == "Quitting"]
        assert len(told) == 1 and "Saving 4 changes first" in told[0].message
        await pilot.press("q")  # again: are you sure?
        await pilot.pause()
        assert "Quit now and lose them?" in str(app.screen.query_one("#dialog-title", Label).render())
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.is_running
        gate.set()
        for _ in range(100):
            if not app.is_running:
                break
            await pilot.pause(0.05)
        assert not app.is_running
    assert {f"P{p}" for p in UNNAMED} <= set(names(arranged))
    assert app.farewell == ["slow", "name", "name", "name"]  # what each change said, for the terminal


@run_async
async def test_a_change_failing_while_quitting_calls_the_quit_off(arranged: Library) -> None:
    app = make_app(arranged)
    gate = threading.Event()

    def busy(lib: Library) -> None:
        gate.wait(30)
        raise FacetagsError("the library is busy")

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.perform("name", busy)
        await pilot.press("q")
        await pilot.pause()
        gate.set()
        await settle(pilot)
        assert app.is_running
        titles = [n.title for n in app._notifications]
        assert titles[-2:] == ["name", "Quit"]
        await pilot.press("q")  # nothing left: quits
        await pilot.pause()
        assert not app.is_running


@run_async
async def test_another_process_changes_appear_without_restart(arranged: Library) -> None:
    app = make_app(arranged, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "Marie Curie" not in row_labels(app)
        other = Library.open(arranged.path, arranged.settings, create=False)  # like `facetags name`
        try:
            other.name(UNNAMED[1], "Marie Curie")
        finally:
            other.close()
        for _ in range(40):
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            if "Marie Curie" in row_labels(app):
                break
        assert "Marie Curie" in row_labels(app)


@run_async
async def test_rows_stay_in_place_when_another_process_changes_the_library(arranged: Library) -> None:
    """A scan or the watcher grows a cluster while the user moves down the list: the rows keep
    their places (counts change in place), so down then n names the row the user saw there;
    ctrl+r sorts them again."""
    app = make_app(arranged, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = row_labels(app)
        assert before == ["Ada Lovelace", "Grace Hopper", *(f"cluster {i}" for i in UNNAMED)]
        other = Library.open(arranged.path, arranged.settings, create=False)  # like the watcher
        try:  # the last cluster takes the first two's faces: by size it now comes first
            moved = [f.face_id for i in UNNAMED[:2] for f in other.faces(i)]
            other.move_faces(moved, UNNAMED[2])
        finally:
            other.close()
        table = app.screen.query_one(DataTable)
        for _ in range(40):
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            if table.row_count == 3:
                break
        assert row_labels(app) == ["Ada Lovelace", "Grace Hopper", f"cluster {UNNAMED[2]}"]
        assert str(table.get_row_at(2)[2]) == "3"  # its count, in its place
        await pilot.press("down", "down", "n")  # the row the user saw below Grace
        await settle(pilot)
        await type_text(pilot, "Marie Curie")
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.person(UNNAMED[2]).name == "Marie Curie"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert row_labels(app) == ["Marie Curie", "Ada Lovelace", "Grace Hopper"]


@run_async
async def test_the_cursor_stays_at_its_height_when_its_row_goes_elsewhere(arranged: Library) -> None:
    """The cluster under the cursor is merged away by another process: the cursor stays at the
    same height (on the row now there), not on the first row, a named person, where the
    user's next n would rename someone."""
    app = make_app(arranged, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")  # on cluster 4
        table = app.screen.query_one(DataTable)
        assert table.cursor_row == 3 and str(table.get_row_at(3)[1]) == f"cluster {UNNAMED[1]}"
        other = Library.open(arranged.path, arranged.settings, create=False)
        try:
            other.move_faces([f.face_id for f in other.faces(UNNAMED[1])], UNNAMED[2])
        finally:
            other.close()
        for _ in range(40):
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            if table.row_count == 4:
                break
        assert row_labels(app) == [
            "Ada Lovelace",
            "Grace Hopper",
            f"cluster {UNNAMED[0]}",
            f"cluster {UNNAMED[2]}",
        ]
        assert table.cursor_row == 3


@run_async
async def test_a_named_face_gone_from_an_edited_photo_is_told_once(arranged: Library) -> None:
    from PIL import Image, ImageDraw

    face = next(f for f in arranged.faces(ADA) if Path(f.path).name.startswith("t1"))
    with Image.open(face.path) as im:  # paint over Ada's face: the edited photo no longer shows it
        w, h = im.size
        edited = im.convert("RGB")
    x, y, fw, fh = face.box
    ImageDraw.Draw(edited).rectangle((x * w - 4, y * h - 4, (x + fw) * w + 4, (y + fh) * h + 4), fill="grey")
    edited.save(face.path, quality=92)
    assert arranged.scan([Path(face.path).parent]).counts["changed"] == 1
    for attempt in range(2):
        app = make_app(arranged)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            told = [n for n in app._notifications if "gone from edited photos" in (n.title or "")]
            if attempt == 0:
                assert len(told) == 1 and f"{face.path}: Ada Lovelace" in told[0].message
            else:
                assert told == []  # told once; `facetags status` keeps the list
    assert [f.name for f in arranged.status().lost_faces] == ["Ada Lovelace"]


@run_async
async def test_faces_a_watcher_indexes_appear_without_restart(arranged: Library, astronaut: Any) -> None:
    from PIL import Image

    def shown(app: FacetagsApp) -> int:  # faces in the rows on screen
        table = app.screen.query_one(DataTable)
        return sum(int(str(table.get_row_at(i)[2])) for i in range(table.row_count))

    app = make_app(arranged, poll_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = shown(app)
        new = Path(arranged.path).parent / "new-photos"
        new.mkdir()
        Image.fromarray(astronaut[:, ::-1]).save(new / "mirrored.jpg", quality=95)  # a new photo
        watcher = Library.open(arranged.path, arranged.settings, create=False)
        try:
            assert watcher.index_photo(new / "mirrored.jpg") == "new"  # `facetags watch`, per file
        finally:
            watcher.close()
        # the model decides where the new face goes (Ada, the astronaut, or a cluster of its own)
        face = next(f for f in arranged.faces() if f.path.endswith("mirrored.jpg"))
        assert face.person_id is not None
        visible = not arranged.person(face.person_id).hidden
        for _ in range(40):
            await pilot.pause(0.05)
            await app.workers.wait_for_complete()
            if shown(app) != before:
                break
        assert shown(app) == before + (1 if visible else 0)
        assert sorted(row_labels(app)) == sorted(
            p.name or f"cluster {p.id}" for p in arranged.people() if not p.hidden
        )


def test_missing_library_is_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "facetags", "--library", str(tmp_path / "none.db"), "tui"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no library here" in done.stderr and "Traceback" not in done.stderr


@run_async
async def test_read_only_library_refuses_changes_politely(arranged: Library) -> None:
    app = make_app(arranged, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        assert app.is_running
        assert any("read-only" in n.message for n in app._notifications)
    assert not any(p.hidden for p in arranged.people() if p.name)


@run_async
async def test_command_palette_lists_every_action(arranged: Library) -> None:
    app = make_app(arranged)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = [c.title for c in app.get_system_commands(app.screen)]
        titles = set(commands)
        for binding in PeopleScreen.BINDINGS:
            assert binding.description in titles  # type: ignore[union-attr]
        for wanted in ("Undo", "Help", "XMP all", "Quit"):
            assert wanted in titles
        # facetags' own first; a table's cursor keys and copying text are not listed (a newcomer
        # met "Bottom", "Copy selected text" and four "Cursor ..." before the app's actions)
        assert commands[0] == PeopleScreen.BINDINGS[0].description, commands  # type: ignore[union-attr]
        assert not [t for t in commands if t.startswith("Cursor") or t in ("Bottom", "Copy selected text")]
        await open_person(pilot, "ada")
        await pilot.press("space")  # Clear is an action while faces are selected
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for wanted in ("Split off", "Not them", "Not a face", "Move", "Select", "Clear", "Next page"):
            assert wanted in titles
        # and running one from the palette works
        await pilot.press("ctrl+p")
        await type_text(pilot, "hide stranger")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert arranged.person(ADA).hidden


def test_docs_list_every_key_binding() -> None:
    from facetags.tui.keys import all_keys

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tui.md").read_text(encoding="utf-8")
    rows = {tuple(c.strip() for c in line.strip().strip("|").split("|")) for line in doc.splitlines()}
    missing = [k for k in all_keys() if (k.section, f"`{k.keys}`", k.description) not in rows]
    assert not missing, "docs/tui.md lacks: " + ", ".join(f"{k.section} {k.keys}" for k in missing)


def test_help_screen_lists_every_binding() -> None:
    from facetags.tui.keys import all_keys

    keys = all_keys()
    assert {k.action for k in keys} >= {"undo", "help", "name", "merge", "split", "reject", "not_face"}
    assert all(re.match(r"\S", k.keys) for k in keys)


# -- snapshots of the main screens -------------------------------------------------------------
# Pictures are off in snapshots (images="none"): thumbnails come from the detector's boxes, whose
# last bits may differ between CPUs; the tests above check that real thumbnails are shown.


def snap_app(library: Library) -> FacetagsApp:
    return make_app(library, images="none")


def test_snapshot_people(arranged: Library, snap_compare: Any) -> None:
    assert snap_compare(snap_app(arranged), terminal_size=(80, 24), run_before=settle)


def test_snapshot_person_grid(arranged: Library, snap_compare: Any) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)

    assert snap_compare(snap_app(arranged), terminal_size=(80, 24), run_before=before)


def test_snapshot_photo(arranged: Library, snap_compare: Any) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("enter")  # Ada's first face: one of t1's
        await settle(pilot)

    assert snap_compare(snap_app(arranged), terminal_size=(80, 24), run_before=before)


def test_snapshot_name_dialog(arranged: Library, snap_compare: Any) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("slash", "c", "l", "u", "enter")
        await settle(pilot)
        await pilot.press("n", "g")
        await settle(pilot)

    assert snap_compare(snap_app(arranged), terminal_size=(80, 24), run_before=before)


def test_snapshot_suggestions(twins: Library, snap_compare: Any) -> None:
    # one twin only, so which of the two the model ranks first does not show
    shown = [f for f in twins.faces() if f.person_id and not twins.person(f.person_id).hidden]
    twins.hide(next(f.person_id for f in shown if f.path.endswith("t1-80.jpg")))  # type: ignore[arg-type]

    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("s")  # Ada, the one named person: her twins are the suggestions
        await settle(pilot)

    assert snap_compare(snap_app(twins), terminal_size=(80, 24), run_before=before)


def test_snapshot_help(arranged: Library, snap_compare: Any) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(snap_app(arranged), terminal_size=(80, 24), run_before=before)


@run_async
async def test_footers_fit_80_columns_with_help_undo_and_quit(arranged: Library) -> None:
    """In an 80-column terminal every screen's footer ends with Help, Undo and Quit in view
    (the rest is in Help and the palette): a footer cut short hides the way to everything else."""
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    def shown(app: FacetagsApp) -> list[str]:
        footer = app.screen.query_one(Footer)
        keys = list(footer.query(FooterKey))
        assert keys, "no footer keys"
        return [k.description for k in keys if k.region.width and k.region.right <= 80]

    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert shown(app)[-3:] == ["Help", "Undo", "Quit"]  # people
        await open_person(pilot, "ada")
        on_person = shown(app)
        assert on_person[-3:] == ["Help", "Undo", "Quit"]
        assert {"Back", "Select", "Name", "Move", "Not them"} <= set(on_person)
        await pilot.press("enter")  # the photo of the highlighted face
        await settle(pilot)
        assert shown(app)[-3:] == ["Help", "Undo", "Quit"]


@pytest.mark.parametrize("as_burst", [True, False], ids=["burst", "press"])
def test_keys_typed_right_after_n_go_into_the_name_dialog(arranged: Library, as_burst: bool) -> None:
    """A paste or tmux `send-keys "nZoe" Enter`: the letters reach the dialog, none is lost or
    taken as a key of the list behind it (`o` would open, `e`...); renaming replaces the name
    as typing into the dialog does; an `n` typed into the filter stays a letter of it."""

    async def run() -> None:
        app = make_app(arranged)
        async with app.run_test(size=SIZE) as pilot:
            await highlight_cluster(pilot, UNNAMED[0])
            await send_keys(pilot, ["n", "Z", "o", "e", "enter"], as_burst=as_burst)
            assert isinstance(app.screen, PeopleScreen)
            await send_keys(pilot, ["slash", "a", "n", "n", "a"], as_burst=as_burst)
            assert isinstance(app.screen, PeopleScreen)
            assert app.screen.query_one("#filter", Input).value == "anna"
            await pilot.press("escape")
            await settle(pilot)
            await open_person(pilot, "ada")
            await send_keys(pilot, ["n", "B", "o", "b", "enter"], as_burst=as_burst)
            assert isinstance(app.screen, PersonScreen)
        assert arranged.person(UNNAMED[0]).name == "Zoe"
        assert arranged.person(ADA).name == "Bob"

    asyncio.run(run())


@run_async
async def test_the_more_clusters_line_leaves_the_counts_in_sight(
    arranged: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_ROWS a line says how many clusters are not listed; in 80 columns it was wider
    than the names' room and pushed the Faces and Photos columns out of sight."""
    from facetags.tui.screens import people

    monkeypatch.setattr(people, "MAX_ROWS", 2)
    app = make_app(arranged)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert "3 smaller clusters" in str(table.get_row_at(2)[1])
        await pilot.pause()
        assert table.virtual_size.width <= table.size.width  # no sideways scrolling
