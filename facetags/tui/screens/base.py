"""What every library screen shares: loading data in thread workers and reloading on change."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from textual.screen import Screen
from textual.widgets import Footer

from facetags.tui.messages import ActionFailed, Loaded

if TYPE_CHECKING:
    from facetags.db.records import FaceRecord, Person
    from facetags.library import Library
    from facetags.tui.app import FacetagsApp

log = logging.getLogger(__name__)
_tokens = itertools.count(1)
T = TypeVar("T")


def describe_error(exc: BaseException) -> str:
    """A one-line message for the user (domain errors say it themselves)."""
    from facetags.errors import FacetagsError

    if isinstance(exc, FacetagsError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def footer() -> Footer:
    """Every screen's footer: compact, without the palette hint (ctrl+p; Help says so), so that
    the everyday keys with Help, Undo and Quit last fit an 80-column terminal."""
    return Footer(compact=True, show_command_palette=False)


class LibraryScreen(Screen[None]):
    """A screen that shows library data: :meth:`reload` asks for it, :meth:`loaded` shows it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._wanted: dict[str, int] = {}

    @property
    def facetags(self) -> FacetagsApp:
        return cast("FacetagsApp", self.app)

    def reload(self) -> None:
        """Ask for fresh data (called on mount, on resume, and after every change)."""

    def changed_elsewhere(self) -> None:
        """Another process changed the library (a scan, the watcher, the CLI): fresh data."""
        self.reload()

    def load(self, what: str, fn: Callable[[Library], T], show: Callable[[T], None]) -> None:
        """Run ``fn(library)`` in a thread worker; its answer comes back, on the UI thread, to
        ``show``. An answer to an older request for the same ``what`` is dropped."""
        token = next(_tokens)
        self._wanted[what] = token
        self.run_worker(
            partial(self._load, what, fn, show, token),
            thread=True,
            group=f"load-{what}",
            name=f"load {what}",
            exit_on_error=False,
        )

    def _load(self, what: str, fn: Callable[[Library], T], show: Callable[[T], None], token: int) -> None:
        try:
            data = self.facetags.client.call(fn)
        except Exception as exc:  # shown to the user, never a crash
            log.debug("loading %s failed", what, exc_info=True)
            self.post_message(ActionFailed(f"loading {what}", describe_error(exc)))
            return
        self.post_message(Loaded(what, data, show, token))

    def on_loaded(self, message: Loaded[Any]) -> None:
        message.stop()
        if self._wanted.get(message.what) == message.token:
            message.show(message.data)

    def on_action_failed(self, message: ActionFailed) -> None:
        message.stop()
        self.notify(message.error, title=message.label, severity="error", timeout=8)

    def on_screen_resume(self) -> None:
        self.reload()


class PersonLoader(LibraryScreen):
    """A screen about one person or cluster: :meth:`reload` loads it and its faces, follows a
    merge to the person it is now, and hands the faces to :meth:`show_faces`."""

    def __init__(self, person_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.person_id = person_id
        self.person: Person | None = None

    def reload(self) -> None:
        pid = self.person_id

        def person(lib: Library) -> tuple[Person, list[FaceRecord]]:
            return lib.person(pid), lib.faces(pid)

        self.load("person", person, self._show_person)

    def _show_person(self, data: tuple[Person, list[FaceRecord]]) -> None:
        self.person, faces = data
        self.person_id = self.person.id  # follows a merge
        self.show_faces(faces)

    def show_faces(self, faces: list[FaceRecord]) -> None:
        """Show the person's ``faces`` (:attr:`person` is up to date)."""
