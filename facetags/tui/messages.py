"""Typed messages that carry results from thread workers back to the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from textual.message import Message


class LibraryChanged(Message):
    """The library changed: an action of ours, or another process (``facetags watch``)."""

    def __init__(self, elsewhere: bool = False) -> None:
        super().__init__()
        self.elsewhere = elsewhere


class ActionDone(Message):
    """A change the user asked for went through; ``summary`` says what happened."""

    def __init__(
        self, label: str, result: Any, summary: str = "", then: Callable[[Any], None] | None = None
    ) -> None:
        super().__init__()
        self.label = label
        self.result = result
        self.summary = summary
        self.then = then


class ActionFailed(Message):
    """A change (``change``: one the user asked for) or a load failed; ``error`` is a one-line
    message for the user."""

    def __init__(self, label: str, error: str, *, change: bool = False) -> None:
        super().__init__()
        self.label = label
        self.error = error
        self.change = change


T = TypeVar("T")


class Loaded(Message, Generic[T]):
    """Data a screen asked a worker for: ``data`` is the answer, ``show`` the screen's method that
    takes it (typed with it); ``what`` names the request and ``token`` tells a stale answer (an
    older request for the same ``what``) from the current one."""

    def __init__(self, what: str, data: T, show: Callable[[T], None], token: int = 0) -> None:
        super().__init__()
        self.what = what
        self.data = data
        self.show = show
        self.token = token
