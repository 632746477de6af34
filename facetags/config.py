"""Settings: defaults < config file < FACETAGS_* environment < command-line flags.

The config file is TOML at ``$XDG_CONFIG_HOME/facetags/config.toml`` (or ``FACETAGS_CONFIG``);
keys are the field names of :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from facetags.errors import ConfigError
from facetags.paths import config_dir, default_library


@dataclass(frozen=True)
class Settings:
    library: Path = field(default_factory=default_library)
    # Detection: photos are analysed with their long side at most this many pixels.
    detect_max_side: int = 1280
    # Smallest face to look for, in pixels of the analysed image.
    min_face: int = 20
    # Faces scoring below this (ONet probability) are dropped.
    score_threshold: float = 0.9
    # The embedder to run: a model id from facetags.vision.specs, or "insightface:<pack>".
    embedder: str = "facetags-mobilenet-v1"


_ENV_PREFIX = "FACETAGS_"


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = kinds[name]
    try:
        if kind in ("Path", Path):
            return Path(str(raw)).expanduser()
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {raw!r} is not a valid {kind}") from exc


def config_file() -> Path:
    return Path(os.environ.get("FACETAGS_CONFIG", config_dir() / "config.toml"))


def load_settings(**flags: Any) -> Settings:
    """Build the settings from all layers; ``flags`` whose value is None are ignored."""
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file()
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    for key in known:
        raw = os.environ.get(_ENV_PREFIX + key.upper())
        if raw is not None and raw != "":
            values[key] = _coerce(key, raw)
    for key, raw in flags.items():
        if raw is not None:
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}")
            values[key] = _coerce(key, raw)
    return dataclasses.replace(Settings(), **values)
