"""The app's one door to the library.

Every library call the TUI makes goes through :class:`LibraryClient` from a thread worker. The
library uses one SQLite connection, so calls are serialised with a lock, and actions (the user's
changes) also run strictly in the order the user asked for them, whatever thread runs first,
and the app counts them until they are done (:meth:`LibraryClient.unfinished`): quitting waits
for them, so no change the user made is dropped on the way out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from facetags.library import Library

T = TypeVar("T")

THUMB_CACHE = 4000  # aligned thumbnails are ~4 KB each


class LibraryClient:
    def __init__(self, library: Library, *, read_only: bool = False) -> None:
        self.library = library
        self.read_only = read_only
        self._lock = threading.RLock()
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._unfinished = 0
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
        self._version: int | None = None
        self._samples: dict[int, int | None] = {}

    def call(self, fn: Callable[[Library], T]) -> T:
        """Run ``fn(library)`` under the library lock (a read or a change)."""
        with self._lock:
            return fn(self.library)

    def ticket(self) -> int:
        """Reserve a place in the queue of actions (on the UI thread, when the user asks); the
        action counts as unfinished until :meth:`finished`."""
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._unfinished += 1
            return ticket

    def finished(self) -> None:
        """An action is done with: gone through or failed, its slow part too, and the app has
        handled its outcome."""
        with self._turn:
            self._unfinished -= 1

    def unfinished(self) -> int:
        """Actions asked for and not yet done with."""
        with self._turn:
            return self._unfinished

    def act(self, ticket: int, fn: Callable[[Library], T]) -> T:
        """Run an action once every action asked for before it has run."""
        with self._turn:
            self._turn.wait_for(lambda: self._serving == ticket)
        try:
            return self.call(fn)
        finally:
            with self._turn:
                self._serving += 1
                self._turn.notify_all()

    def thumbnail(self, face_id: int) -> bytes | None:
        """The face's JPEG thumbnail (cached), or None when the face has none."""
        cached = self._thumbs.get(face_id)
        if cached is not None:
            self._thumbs.move_to_end(face_id)
            return cached
        from facetags.errors import NotFoundError

        try:
            data = self.call(lambda lib: lib.thumbnail(face_id))
        except NotFoundError:
            return None
        self._thumbs[face_id] = data
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return data

    def sample_face(self, person_id: int) -> int | None:
        """A face id remembered to show for ``person_id`` (None: not known yet)."""
        return self._samples.get(person_id)

    def remember_sample(self, person_id: int, face_id: int | None) -> None:
        if face_id is not None:
            self._samples[person_id] = face_id

    def forget_samples(self) -> None:
        """After a change: a remembered face may have left its person."""
        self._samples.clear()

    def changed_elsewhere(self) -> bool:
        """True when another process (``facetags watch``, the CLI) committed since the last call.

        Never waits: a busy library counts as unchanged until the next poll."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            version = self.library.data_version()
        finally:
            self._lock.release()
        changed = self._version is not None and version != self._version
        self._version = version
        return changed
