"""The embedder registry: which code loads the embedder a setting names.

facetags' own ONNX models need no entry: any id with a spec in ``models/`` is one. Every other
embedder registers itself with :func:`register` when its module is imported: the opt-in ones
that ship with facetags (:data:`BUILT_IN`) and those of other packages, found through the
entry-point group ``facetags.embedders``::

    # a plugin's pyproject.toml
    [project.entry-points."facetags.embedders"]
    mine = "my_package.facetags_plugin"       # a module that calls register(...) when imported

An entry point may also name a callable; it is called once, with no arguments. A plugin that
fails to load is skipped with one warning; the others still work. An embedder registered with
``threads=True`` is loaded with the ``threads`` setting as a keyword argument (onnxruntime
threads in all; 0: automatic), so a scan's worker processes share the cores out.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

GROUP = "facetags.embedders"

#: the opt-in embedders that ship with facetags: each module registers itself
BUILT_IN = ("facetags.vision.dlib_embed", "facetags.vision.insightface_embed")


@dataclass(frozen=True)
class EmbedderKind:
    """One registered embedder: ``load(name)`` makes it (``load(name, threads=n)`` where
    ``threads`` is set), ``version(name)`` is the versioned id its vectors will record, found
    without loading it (ModelError when ``name`` cannot be resolved)."""

    name: str  # the exact setting value, or a prefix ending in ":" ("insightface:" + pack)
    load: Callable[..., Any]
    version: Callable[[str], str]
    threads: bool = False  # load takes the threads setting


_kinds: dict[str, EmbedderKind] = {}
_plugins_loaded = False


def register(
    name: str, load: Callable[..., Any], version: Callable[[str], str], *, threads: bool = False
) -> None:
    """Make ``name`` (or, ending in ":", every name with that prefix) an embedder setting;
    ``threads``: ``load`` takes the keyword argument ``threads`` (onnxruntime threads in all)."""
    _kinds[name] = EmbedderKind(name, load, version, threads)


def find(name: str) -> EmbedderKind | None:
    """The registered embedder for the setting ``name``; None for a shipped model id (or a name no
    one registered: the model specs then say it is unknown)."""
    _load_plugins()
    if name in _kinds:
        return _kinds[name]
    prefix, colon, _rest = name.partition(":")
    return _kinds.get(prefix + ":") if colon else None


def names() -> list[str]:
    """Every registered name and prefix."""
    _load_plugins()
    return sorted(_kinds)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in BUILT_IN:
        importlib.import_module(module)
    for entry in entry_points(group=GROUP):
        try:
            loaded = entry.load()
            if callable(loaded):
                loaded()
        except Exception as exc:  # a third party's bug must not stop facetags
            log.warning("embedder plugin %r (%s) not loaded: %s", entry.name, entry.value, exc)
