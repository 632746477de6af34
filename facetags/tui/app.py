"""The facetags TUI: review, name and fix people in the terminal.

Screens (one per file under ``screens/``): people, a person's faces, a photo, suggestions, help.
Every change goes through :class:`facetags.library.Library` (the same API as the CLI) in a thread
worker, in the order the user asked; results and errors come back as messages. Errors are
notifications, never a crash. A timer polls the library's change counter, so faces that
``facetags watch`` adds in another process appear without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from facetags.errors import FacetagsError, NameTaken
from facetags.text import plural, shown
from facetags.tui.bindings import key_help
from facetags.tui.client import LibraryClient
from facetags.tui.faces import person_label, twice_note
from facetags.tui.messages import ActionDone, ActionFailed, LibraryChanged
from facetags.tui.screens.base import LibraryScreen, describe_error
from facetags.tui.screens.confirm import ConfirmDialog
from facetags.tui.widgets import picture

if TYPE_CHECKING:
    from facetags.db.records import LostFace, Person
    from facetags.library import Library, WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")
Notice = tuple[str, list[str], SeverityLevel]  # title, message lines, severity

POLL_SECONDS = 1.0
SAMPLE_DELAY = 0.25  # seconds the cursor rests on a person before its sample face loads


class NotifyHandler(logging.Handler):
    """Library warnings become notifications: stderr belongs to the terminal while the app runs."""

    def __init__(self, app: App[Any]) -> None:
        super().__init__(level=logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().splitlines()[0]
        except Exception:  # a bad log call must not end the session
            return
        severity: Literal["warning", "error"] = "error" if record.levelno >= logging.ERROR else "warning"
        try:
            self.app.call_from_thread(self.app.notify, message, severity=severity, timeout=6)
        except RuntimeError:  # on the app's own thread (or not running yet)
            if self.app.is_running:
                self.app.notify(message, severity=severity, timeout=6)


class FacetagsApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "facetags"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("u,ctrl+z", "undo", "Undo", key_display="u"),
        Binding("X", "write_xmp_all", "XMP all", show=False),
        Binding("ctrl+r", "refresh", "Refresh", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        library: Library,
        *,
        images: str = "auto",
        poll_seconds: float = POLL_SECONDS,
        read_only: bool = False,
        sample_delay: float = SAMPLE_DELAY,
    ) -> None:
        picture.set_mode(images)
        super().__init__()
        self.library = library
        self.client = LibraryClient(library, read_only=read_only)
        self.poll_seconds = poll_seconds
        self.sample_delay = sample_delay
        self.people_cache: list[Person] = []  # the latest people list (for name completion)
        self._started = False  # the start-up notices are given on the first poll
        self._quitting = False  # asked to quit while changes were unfinished
        #: what the changes the app quit after said, for the terminal once the app is gone
        self.farewell: list[str] = []
        self.sub_title = shown(Path(library.path).name) + (" (read-only)" if read_only else "")

    def on_mount(self) -> None:
        from facetags.tui.screens.people import PeopleScreen

        self.push_screen(PeopleScreen())
        if self.poll_seconds > 0:
            self.set_interval(self.poll_seconds, self._poll)
        self.run_worker(self._poll_thread, thread=True, group="poll", exit_on_error=False)
        if self.client.read_only:
            self.notify("The library is read-only: you can look but not change.", severity="warning")

    def notify(
        self,
        message: str | list[str],
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is plain text: the names and paths in it are shown as they are,
        control characters escaped, never read as markup (``markup`` is ignored). A list is
        several lines."""
        lines = [message] if isinstance(message, str) else message
        text = "\n".join(shown(line) for line in lines)
        super().notify(text, title=shown(title), severity=severity, timeout=timeout, markup=False)

    def action_help_quit(self) -> None:
        # Textual's own says it in markup, which notify() shows as it is
        keys = [k for k, b in self.active_bindings.items() if b.binding.action in ("quit", "app.quit")]
        if keys:
            self.notify(f"Press {keys[0]} to quit the app", title="Do you want to quit?")

    # -- changes ----------------------------------------------------------------------------------

    def perform(
        self,
        label: str,
        fn: Callable[[Library], Any],
        *,
        summary: Callable[[Any], str] | None = None,
        then: Callable[[Any], None] | None = None,
        undoable: bool = True,
        after: Callable[[Any], Any] | None = None,
    ) -> None:
        """Change the library with ``fn(library)`` in a thread worker, after the changes asked
        for before it, as one undo step. ``summary(result)`` is the notification;
        ``then(result)`` runs on the UI thread afterwards. ``after(result)`` runs in the worker
        once the library is free again (slow work that needs no library, like writing files)."""
        if self.client.read_only:
            self.notify("The library is read-only.", title=label, severity="error")
            return
        if undoable:
            inner = fn

            def fn(lib: Library) -> Any:
                with lib.undoable(label):
                    return inner(lib)

        ticket = self.client.ticket()
        self.run_worker(
            partial(self._perform, ticket, label, fn, summary, then, after),
            thread=True,
            group="actions",
            name=label,
            exit_on_error=False,
        )

    def _perform(
        self,
        ticket: int,
        label: str,
        fn: Callable[[Library], Any],
        summary: Callable[[Any], str] | None,
        then: Callable[[Any], None] | None,
        after: Callable[[Any], Any] | None = None,
    ) -> None:
        outcome: ActionDone | ActionFailed
        try:
            result = self.client.act(ticket, fn)
            if after is not None:
                result = after(result)
            text = summary(result) if summary is not None else label
            outcome = ActionDone(label, result, text, then)
        except Exception as exc:  # reported, never a crash
            log.debug("%s failed", label, exc_info=True)
            outcome = ActionFailed(label, describe_error(exc), change=True)
        # done with once its message is handled (LibraryClient.finished, on the UI thread), or
        # now if there is no one left to handle it (the app is closing)
        if not self.post_message(outcome):
            self.client.finished()

    def on_action_done(self, message: ActionDone) -> None:
        # counted here, not in the worker: quitting when the last change is saved but before its
        # message is handled would leave its summary out of the farewell
        self.client.finished()
        text = message.summary or message.label
        if self._quitting:  # said after the app is gone, in the terminal: every one of them
            self.farewell.append(text)
            if not self.client.unfinished():
                self.exit()
            return
        self.notify(text, timeout=4)
        if message.then is not None:
            try:
                message.then(message.result)
            except Exception as exc:  # a display problem must not end the session
                log.debug("after %s", message.label, exc_info=True)
                self.notify(describe_error(exc), severity="error")
        self.refresh_screen()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(message.error, title=message.label, severity="error", timeout=8)
        if not message.change:  # a screen's load
            return
        self.client.finished()
        if self._quitting:  # the user must see it: quitting is called off
            self._quitting = False
            self.notify("A change failed, so facetags did not quit: press q again to quit.", title="Quit")

    async def action_quit(self) -> None:
        """Quit, once every change asked for is done: leaving earlier would drop the ones still
        waiting their turn (behind a slow one, like writing XMP to many photos). Asked again
        meanwhile, it offers to quit at once, losing them."""
        unfinished = self.client.unfinished()
        if not unfinished:
            self.exit()
            return
        if not self._quitting:
            self._quitting = True
            self.notify(
                f"Saving {plural(unfinished, 'change')} first; facetags quits once they are done.",
                title="Quitting",
            )
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmDialog(
                f"{plural(unfinished, 'change')} not saved yet. Quit now and lose "
                f"{'it' if unfinished == 1 else 'them'}?"
            ),
            answered,
        )

    def refresh_screen(self, elsewhere: bool = False) -> None:
        """Fresh data for the screen shown; ``elsewhere``: another process changed the library."""
        self.client.forget_samples()
        screen = self.screen
        if isinstance(screen, LibraryScreen):
            if elsewhere:
                screen.changed_elsewhere()
            else:
                screen.reload()

    def name_person(self, person: Person, text: str | None) -> None:
        """Name (or rename) a person or cluster. A name someone else has merges the two, once
        the user says yes: naming a second cluster after a wrong first is how people get mixed."""
        from facetags.names import same_name

        if not text:
            return
        before = person_label(person)

        def summary(done: tuple[Person, int]) -> str:
            named, twice = done
            if named.id != person.id:
                return f"{before} joined {named.name} ({named.faces} faces){twice_note(twice)}"
            return f"{before} is now {named.name}"

        def act(lib: Library, merge: bool) -> tuple[Person, int]:
            try:
                named = lib.name(person.id, text, merge=merge)
                return named, len(lib.more_than_once(named.id)) if named.id != person.id else 0
            except NameTaken as exc:  # named meanwhile, elsewhere (the list shown was older)
                self.people_cache = lib.people()  # the next try asks
                raise FacetagsError(
                    f"{exc}, named since this list was read: name {before} again to put them together"
                ) from None

        def name(merge: bool) -> None:
            self.perform(f"name {before}", partial(act, merge=merge), summary=summary)

        other = next(
            (p for p in self.people_cache if p.name and p.id != person.id and same_name(p.name, text)), None
        )
        if other is None:
            name(merge=False)  # (a name given since the list was read is refused, and says so)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                name(merge=True)

        question = f"{other.name} is someone already. Put {before} in with them?"
        details = [  # the count first: a long name is cut at the dialog's edge
            f"{plural(other.faces, 'face')}: {other.name}",
            f"{plural(person.faces, 'face')}: {before}",
        ]
        self.push_screen(ConfirmDialog(question, details), answered)

    def suggest(self, person: Person) -> None:
        """Open "Is this <name>?" suggestions for a named person."""
        from facetags.tui.screens.suggestions import SuggestionsScreen

        if not person.name:
            self.notify("Name this cluster first (n); suggestions are for named people.", severity="warning")
            return
        self.push_screen(SuggestionsScreen(person.id, person.name))

    def toggle_hidden(self, person: Person) -> None:
        """Hide a stranger (or show a hidden one again)."""
        hide = not person.hidden
        self.perform(
            f"{'hide' if hide else 'show'} {person_label(person)}",
            lambda lib: lib.hide(person.id, hide),
            summary=lambda p: f"{person_label(p)} {'hidden' if hide else 'shown again'}",
        )

    # -- another process changed the library ----------------------------------------------------

    def _poll(self) -> None:
        if not any(w.group == "poll" and not w.is_finished for w in self.workers):
            self.run_worker(self._poll_thread, thread=True, group="poll", exit_on_error=False)

    def _poll_thread(self) -> None:
        try:
            changed = self.client.changed_elsewhere()
        except Exception:  # a busy or vanished file: try again next tick
            log.debug("poll failed", exc_info=True)
            return
        if changed:
            self.post_message(LibraryChanged(elsewhere=True))
        first = not self._started
        self._started = True
        if first:  # at start: photos whose names facetags wrote are out of date
            self._tell(lambda lib: lib.stale_xmp(), _stale_xmp_notice)
            self._tell(lambda lib: (lib.stale_faces(), lib.pipeline.model_id), _stale_faces_notice)
        if changed or first:  # at start, then when a scan may have lost some
            mark = not self.client.read_only
            self._tell(lambda lib: lib.lost_faces_to_show(mark=mark), _lost_faces_notice)

    def _tell(self, fetch: Callable[[Library], T], notice: Callable[[T], Notice | None]) -> None:
        """Ask the library (in this worker thread) and show what ``notice`` makes of the answer,
        if anything. A busy library: nothing now (the lost faces are asked again next change)."""
        try:
            found = self.client.call(fetch)
        except Exception:
            log.debug("asking the library for a notice", exc_info=True)
            return
        told = notice(found)
        if told is not None:
            title, message, severity = told
            self.call_from_thread(self.notify, message, title=title, severity=severity, timeout=12)

    def on_library_changed(self, message: LibraryChanged) -> None:
        self.refresh_screen(elsewhere=message.elsewhere)

    # -- actions --------------------------------------------------------------------------------

    def action_help(self) -> None:
        from facetags.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(key_help(key_sections())))

    # -- navigation: screens open one another through the app, which knows them all ------------

    def open_person(self, person_id: int) -> None:
        from facetags.tui.screens.person import PersonScreen

        self.push_screen(PersonScreen(person_id))

    def open_photo(self, path: str, face_id: int | None = None) -> None:
        from facetags.tui.screens.photo import PhotoScreen

        self.push_screen(PhotoScreen(path, face_id))

    def open_compare(self, person_id: int, face_id: int) -> None:
        from facetags.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(person_id, face_id))

    def action_undo(self) -> None:
        self.perform("undo", lambda lib: lib.undo(), summary=lambda what: f"Undone: {what}", undoable=False)

    def action_refresh(self) -> None:
        self.refresh_screen()

    def action_write_xmp_all(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.write_xmp(None, "everyone")

        self.push_screen(ConfirmDialog("Write XMP face tags for everyone into the photos?"), answered)

    def write_xmp(self, person_id: int | None, who: str) -> None:
        """Write XMP face tags for one person (or everyone) with the settings' XMP options."""

        def records(lib: Library) -> Any:
            return lib

        def write(lib: Any) -> Any:  # file work, outside the client's lock; each photo recorded
            return lib.write_xmp(None, person_id)

        self.perform(
            f"write XMP for {who}",
            records,
            summary=lambda results: xmp_summary(who, results),
            undoable=False,
            after=write,
        )

    # -- the command palette lists every action --------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """facetags' own actions of the screen first, then Textual's (theme, keys, quit); a
        widget's own keys (a table's cursor moves, copying text) are left to the widget."""
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.description or binding.action in seen or not active.enabled:
                continue
            if not _declared_by_facetags(active.node, binding):
                continue
            seen.add(binding.action)
            key = self.get_key_display(binding)
            yield SystemCommand(
                binding.description,
                f"key: {key}",
                partial(self.run_action, binding.action, active.node),
            )
        yield from super().get_system_commands(screen)


def _declared_by_facetags(node: object, binding: Binding) -> bool:
    """Whether ``binding`` comes from a facetags class's BINDINGS (not Textual's own)."""
    for cls in type(node).__mro__:
        if cls.__module__.startswith("facetags") and any(
            (b.action if isinstance(b, Binding) else b[1]) == binding.action
            for b in cls.__dict__.get("BINDINGS", ())
        ):
            return True
    return False


def xmp_summary(who: str, results: Sequence[WriteResult]) -> str:
    """What writing XMP did, as the CLI's summary says it: photos changed (embedded, or in
    sidecars and how many of those because the photo is read-only), up to date, failed."""
    from facetags.library import WriteTally

    tally = WriteTally.of(results)
    done, failed, kept, current = tally.changed, tally.failed, tally.kept, tally.current
    sidecars = [r for r in done if r.mode == "sidecar"]
    read_only = sum(1 for r in sidecars if r.fallback == "read-only photo")
    embedded = len(done) - len(sidecars)
    parts = [f"{embedded} embedded"] if embedded else []
    if sidecars:
        why = ""
        if read_only:
            why = (
                " for read-only photos"
                if read_only == len(sidecars)
                else f", {read_only} of them for read-only photos"
            )
        parts.append(f"{len(sidecars)} in sidecars{why}")
    where = f" ({', '.join(parts)})" if parts else ""
    text = (
        f"XMP for {who}: {plural(len(results), 'photo')}: {len(done)} changed{where}, "
        f"{len(current)} up to date, {len(failed)} failed"
    )
    if failed:
        text += f" (first: {failed[0].error})"
    if kept:
        text += (
            f"; in {plural(len(kept), 'photo')} another tool named a face otherwise: its name was kept "
            "(facetags xmp write --replace-names writes facetags')"
        )
    # the rest of what the CLI prints as warnings (a region that cannot be read, a region left
    # where a crop put it): why a sidecar and another tool's name are said above
    warned = [
        w
        for r in results
        for w in (r.warnings[1:] if r.fallback else r.warnings)
        if "--replace-names" not in w
    ]
    if warned:
        text += f"; {plural(len(warned), 'warning')} (first: {warned[0]})"
    return text


# -- start-up notices ---------------------------------------------------------------------------


def _stale_xmp_notice(stale: tuple[int, int]) -> Notice | None:
    """Photos still carrying names facetags wrote that the user has changed since (read-only
    ones aside: X cannot bring them up to date; ``status`` says what to do)."""
    count = stale[0] - stale[1]
    if not count:
        return None
    message = (
        f"{plural(count, 'photo')} still {'carries' if count == 1 else 'carry'} names facetags wrote "
        "before your later changes. "
        "Press X to write XMP for everyone."
    )
    return "XMP out of date", [message], "information"


def _stale_faces_notice(stale: tuple[int, str]) -> Notice | None:
    """Faces without a vector of the current embedder (it changed, as on an upgrade): the next
    scan re-embeds them; suggestions leave them out until then."""
    count, model = stale
    if not count:
        return None
    message = (
        f"The embedder is now {model.split('@')[0]}: {plural(count, 'face')} to re-embed, "
        "which the next `facetags scan` (or `facetags watch`, once restarted) does from the stored "
        "thumbnails. Suggestions leave those out until then; names, merges, confirmations and "
        "rejections are kept."
    )
    return "Embedder changed", [message], "information"


def _lost_faces_notice(lost: list[LostFace]) -> Notice | None:
    """Faces the user had decided on that edited photos no longer show (told once; ``facetags
    status`` keeps listing them)."""
    if not lost:
        return None
    lines = [f.describe() for f in lost[:5]]
    if len(lost) > 5:
        lines.append(f"… and {len(lost) - 5} more (facetags status)")
    return f"{plural(len(lost), 'decided face')} gone from edited photos", lines, "warning"


def key_sections() -> list[tuple[str, type]]:
    """Each part of the app with the class whose BINDINGS it shows (the help, docs/tui.md)."""
    from facetags.tui.screens.compare import CompareScreen
    from facetags.tui.screens.confirm import ConfirmDialog
    from facetags.tui.screens.help import HelpScreen
    from facetags.tui.screens.name_dialog import NameDialog
    from facetags.tui.screens.people import PeopleScreen
    from facetags.tui.screens.person import PersonScreen
    from facetags.tui.screens.photo import PhotoScreen
    from facetags.tui.screens.suggestions import SuggestionsScreen
    from facetags.tui.widgets.face_grid import FaceGrid

    return [
        ("Everywhere", FacetagsApp),
        ("People", PeopleScreen),
        ("Person (faces)", PersonScreen),
        ("Face grid", FaceGrid),
        ("Zoom", CompareScreen),
        ("Photo", PhotoScreen),
        ("Suggestions", SuggestionsScreen),
        ("Name dialog", NameDialog),
        ("Question", ConfirmDialog),
        ("Help", HelpScreen),
    ]
