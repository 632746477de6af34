"""Suggestions: "Is this Alice?" for the unnamed faces most like a named person.

Single keys answer: y (yes: the face joins her, as the user's decision), a (all: yes for the
whole unnamed cluster the face is in, when it holds more than this face: with an embedder that
splits people more than it merges them, one key then settles several faces), n (no: never suggest
or assign it to her again), space (skip). Every answer teaches the clustering through the
library, and u undoes the last one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Header, Label, Static

from facetags.text import plural
from facetags.tui.faces import best_face, face_caption
from facetags.tui.plain import plain
from facetags.tui.screens.base import LibraryScreen, footer
from facetags.tui.widgets.picture import Picture, decode

if TYPE_CHECKING:
    from facetags.db.records import SuggestedFace
    from facetags.library import Library

BATCH = 30


class SuggestionsScreen(LibraryScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("a", "answer_cluster", "All"),
        Binding("n", "answer(False)", "No"),
        Binding("x", "reject_cluster", "None"),
        Binding("space", "skip", "Skip"),
        Binding("escape,backspace", "back", "Done", key_display="esc"),
    ]

    def __init__(self, person_id: int, name: str) -> None:
        super().__init__(id="suggestions")
        self.person_id = person_id
        self.name_text = name
        self.queue: list[SuggestedFace] = []
        self.seen: set[int] = set()
        self.answered = 0
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="suggest-question")
        with Horizontal(id="suggest-body"):
            with Vertical(classes="suggest-face"):
                yield Label(plain(self.name_text), classes="suggest-caption")
                yield Picture(placeholder="", id="suggest-known", classes="large-face")
                yield Label("", classes="suggest-detail", id="suggest-known-detail")
            with Vertical(classes="suggest-face"):
                yield Label("this face?", classes="suggest-caption", id="suggest-candidate-caption")
                yield Picture(placeholder="", id="suggest-candidate", classes="large-face")
                yield Label("", classes="suggest-detail", id="suggest-candidate-detail")
        yield Static(
            "y yes · n no · a all its cluster · x none of it · space skip · esc done",
            id="suggest-keys",
        )
        yield footer()

    def on_mount(self) -> None:
        self._fetch()

    def reload(self) -> None:
        if not self.queue and not self._loading:
            self._fetch()

    def _fetch(self) -> None:
        pid, client, seen = self.person_id, self.facetags.client, set(self.seen)
        self._loading = True

        def fetch(lib: Library) -> tuple[list[Any], Any, str]:
            found = [s for s in lib.suggested_faces(pid, limit=BATCH + len(seen)) if s.face_id not in seen]
            found = found[:BATCH]
            best = best_face(lib.faces(pid))  # hers the surest, and the largest
            known = decode(client.thumbnail(best.face_id)) if best else None
            return found, known, face_caption(best, size=False) if best else ""

        self.load("suggestions", fetch, self._show_suggestions)

    def _show_suggestions(self, data: tuple[list[Any], Any, str]) -> None:
        self._loading = False
        self.queue, known, caption = data
        self.query_one("#suggest-known", Picture).show(known)
        self.query_one("#suggest-known-detail", Label).update(plain(caption))
        self._show()

    def _show_candidate(self, data: tuple[int, Any]) -> None:
        face_id, image = data
        if self.queue and self.queue[0].face_id == face_id:
            self.query_one("#suggest-candidate", Picture).show(image)

    def _show(self) -> None:
        question = self.query_one("#suggest-question", Static)
        candidate = self.query_one("#suggest-candidate", Picture)
        if not self.queue:
            done = f" ({self.answered} answered)" if self.answered else ""
            question.update(plain(f"No more suggestions for {self.name_text}{done}. Esc to go back."))
            candidate.show(None, text="")
            self.query_one("#suggest-candidate-detail", Label).update("")
            return
        s = self.queue[0]
        # which photo helps a person decide; the model's similarity is there for the curious
        # the key to answer for a whole cluster first: in 80 columns a long name cuts the line
        text = f"Is this {self.name_text}?"
        if s.cluster_faces > 1:
            text += f"   (its cluster holds {s.cluster_faces} faces: a for all, x for none)"
        text += f"   face #{s.face_id} in {os.path.basename(s.path)}"
        question.update(plain(text))
        question.tooltip = f"similarity {s.score:.2f} (cluster {s.cluster_id})"
        candidate.show(None, text="…")
        detail = f"#{s.face_id} · {os.path.basename(s.path)}"
        self.query_one("#suggest-candidate-detail", Label).update(plain(detail))
        client, fid = self.facetags.client, s.face_id
        self.load("candidate", lambda _lib: (fid, decode(client.thumbnail(fid))), self._show_candidate)

    def _next(self) -> None:
        if self.queue:
            self.seen.add(self.queue.pop(0).face_id)
        self._show()
        if not self.queue:
            self._fetch()

    def action_answer(self, yes: bool) -> None:
        if not self.queue:
            return
        fid, pid, name = self.queue[0].face_id, self.person_id, self.name_text
        self.answered += 1
        if yes:
            self.facetags.perform(
                f"yes, {name}",
                lambda lib: lib.set_assignment(fid, pid, source="user"),
                summary=lambda _r: f"Face #{fid} is {name}",
            )
        else:
            self.facetags.perform(
                f"no, not {name}",
                lambda lib: lib.reject(fid, pid),
                summary=lambda _r: f"Face #{fid} is not {name}",
            )
        self._next()

    def action_answer_cluster(self) -> None:
        """Yes for every face of the suggested face's cluster (as Library.take_cluster allows)."""
        name = self.name_text

        def said(result: tuple[list[int], list[int]]) -> str:
            moved, left = result
            text = f"{len(moved)} faces are {name}"
            if left:
                text += f"; {len(left)} left out (in a photo {name} is already in, or not {name})"
            return text

        self._answer_cluster(True, f"yes, all {name}", lambda lib, pid, c: lib.take_cluster(pid, c), said)

    def action_reject_cluster(self) -> None:
        """No for every face of the suggested face's cluster: each is rejected from the person."""
        name = self.name_text
        self._answer_cluster(
            False,
            f"no, none {name}",
            lambda lib, pid, c: lib.reject_cluster(pid, c),
            lambda faces: f"{plural(len(faces), 'face')} are not {name}",
        )

    def _answer_cluster(
        self, yes: bool, label: str, act: Callable[[Library, int, int], Any], said: Callable[[Any], str]
    ) -> None:
        """One answer for the suggested face's whole cluster (``act(library, person, cluster)``),
        or for the face alone when its cluster holds only it."""
        if not self.queue:
            return
        s = self.queue[0]
        if s.cluster_faces <= 1:
            self.action_answer(yes)
            return
        pid, cluster = self.person_id, s.cluster_id
        self.answered += 1
        self.facetags.perform(label, lambda lib: act(lib, pid, cluster), summary=said)
        self._drop_cluster(cluster)

    def _drop_cluster(self, cluster: int) -> None:
        """The rest of that cluster's suggestions are answered too."""
        self.seen.update(x.face_id for x in self.queue if x.cluster_id == cluster)
        self.queue = [x for x in self.queue if x.cluster_id != cluster]
        self._show()
        if not self.queue:
            self._fetch()

    def action_skip(self) -> None:
        self._next()

    def action_back(self) -> None:
        self.app.pop_screen()
