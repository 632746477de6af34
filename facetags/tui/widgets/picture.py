"""A picture: a real image in the terminal through textual-image.

textual-image picks the best the terminal offers: Kitty graphics (TGP) or Sixel where the
terminal answers for them, coloured Unicode half blocks elsewhere (any 256/true-colour terminal,
tmux, SSH), and plain Unicode blocks when not attached to a terminal at all (tests). ``mode``
forces one ("halfcell", "unicode") or turns pictures off ("none") for very slow links.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

# Imported at module load on purpose: textual-image asks the terminal what it supports,
# which only works before Textual takes the terminal over.
from textual_image.widget import HalfcellImage, UnicodeImage
from textual_image.widget import Image as AutoImage

MODES = ("auto", "halfcell", "unicode", "none")
_mode = "auto"


def set_mode(mode: str) -> None:
    global _mode
    if mode not in MODES:
        raise ValueError(f"image mode is one of {', '.join(MODES)}, not {mode!r}")
    _mode = mode


def get_mode() -> str:
    return _mode


def _image_class() -> Any:
    return {"auto": AutoImage, "halfcell": HalfcellImage, "unicode": UnicodeImage}.get(_mode)


def decode(data: bytes | None) -> PILImage.Image | None:
    """JPEG bytes (a face thumbnail) to a PIL image; None for missing or broken data."""
    if not data:
        return None
    try:
        image = PILImage.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError):
        return None
    return image.convert("RGB")


class Picture(Widget):
    """An image (or, with pictures off or nothing loaded yet, a short placeholder text)."""

    DEFAULT_CSS = """
    Picture { width: 100%; height: 100%; }
    Picture > .picture--image { width: 100%; height: 100%; }
    Picture > .picture--text { width: 100%; height: 100%; content-align: center middle; color: $text-muted; }
    """

    def __init__(self, placeholder: str = "…", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.placeholder = placeholder
        self._image: PILImage.Image | None = None
        self._inner: Widget | None = None
        self._text: Static | None = None  # with pictures on: why there is no picture, if said

    def compose(self) -> ComposeResult:
        cls = _image_class()
        if cls is None:
            self._inner = Static(self.placeholder, classes="picture--text")
            yield self._inner
            return
        self._inner = cls(None, classes="picture--image")
        self._text = Static("", classes="picture--text")
        self._text.display = False
        yield self._inner
        yield self._text

    @property
    def image(self) -> PILImage.Image | None:
        return self._image

    def show(self, image: PILImage.Image | None, text: str | None = None) -> None:
        """Show ``image`` (None: the placeholder, or ``text``: why there is no picture)."""
        self._image = image
        inner = self._inner
        if inner is None:
            return
        if isinstance(inner, Static):
            inner.update("▣" if image is not None else (text or self.placeholder))
            return
        inner.image = image  # type: ignore[attr-defined]
        if self._text is not None:
            said = image is None and bool(text)
            self._text.update(text or "" if said else "")
            self._text.display = said
            inner.display = not said
