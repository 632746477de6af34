"""Settings: defaults < config file < FACETAGS_* environment < command-line flags.

The config file is TOML at ``$XDG_CONFIG_HOME/facetags/config.toml`` (or ``FACETAGS_CONFIG``);
keys are the field names of :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from facetags.errors import ConfigError
from facetags.paths import config_dir, default_library


@dataclass(frozen=True)
class Settings:
    """Every setting; the field name is the config.toml key and, upper-cased after
    ``FACETAGS_``, the environment variable; ``docs/settings.md`` is generated from the "doc"s."""

    library: Path = field(
        default_factory=default_library,
        metadata={"doc": "The library file: the index of photos, faces and people."},
    )
    detect_max_side: int = field(
        default=1280, metadata={"doc": "Photos are analysed with their long side at most this many pixels."}
    )
    # 40 px at the default 1280 px analysis size: the smallest face the reference MTCNN finds
    # at score >= 0.9 on the parity photos is 41 px, smaller faces are too small to recognise,
    # and PNet's work drops 4x against 20 px (docs/detection.md).
    min_face: int = field(
        default=40, metadata={"doc": "Smallest face to look for, in pixels of the analysed image."}
    )
    score_threshold: float = field(
        default=0.9, metadata={"doc": "Faces scoring below this (0 to 1) are dropped."}
    )
    embedder: str = field(
        default="facetags-mobilenet-v2",
        metadata={
            "doc": "The face embedder: facetags' own model (`facetags-mobilenet-v2`), or, opt-in, "
            "`facetags-mobilenet-v1` (the earlier default: groups people less well, 4/3 of the CPU "
            "time), `mobilefacenet-v1` (shipped: more accurate, ~4x the CPU time), `dlib-resnet-v1` "
            "(dlib's ResNet: more accurate, ~1.8 ms a face; `pip install 'facetags[dlib]'`) or "
            "`insightface:<pack>` (a pack already on disk). Changing it re-embeds every face on the "
            "next scan; names stay."
        },
    )
    xmp_schemas: str = field(
        default="mwg,mp,iptc,digikam,lightroom,dc",
        metadata={
            "doc": "Which XMP schemas `xmp write` writes, comma-separated, from mwg, mp, iptc, digikam, "
            "lightroom, dc."
        },
    )
    xmp_mode: str = field(
        default="embed",
        metadata={"doc": "Where `xmp write` puts the tags: `embed` in the photo, or `sidecar`."},
    )
    xmp_sidecar_name: str = field(
        default="photo.jpg.xmp",
        metadata={"doc": "The sidecar's name: `photo.jpg.xmp` or `photo.xmp` (both are read)."},
    )
    xmp_people_root: str = field(
        default="People",
        metadata={"doc": "The keyword root of people's names: `People` gives People/Alice and People|Alice."},
    )
    workers: int = field(
        default_factory=lambda: default_workers(),
        metadata={
            "doc": "Photos `facetags scan` analyses at once, each in its own worker process (default: one "
            "per core); 1 analyses them one by one in the scanning process."
        },
    )
    threads: int = field(
        default=0,
        metadata={
            "doc": "onnxruntime threads in all for analysing photos, shared out among the worker "
            "processes of `facetags scan` (on a cluster: among each machine's); 0: automatic (the "
            "cores, at most 4 where one process analyses)."
        },
    )
    cluster: str = field(
        default="",
        metadata={
            "doc": "The Dask scheduler (`tcp://host:8786`) whose workers `facetags scan` gives the photos to "
            "analyse; they must read the photos at the same paths (`pip install 'facetags[cluster]'`, "
            "[scale.md](scale.md#every-machine)). Empty: this machine's own workers."
        },
    )


_ENV_PREFIX = "FACETAGS_"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, raw: Any, source: str) -> Any:
    """``raw`` (a TOML value, or a string from the environment or a flag) as the field's type.

    Strict: a float for an int, a bool for a number or a list for a string is refused rather
    than truncated or stringified. ``source`` names where the value came from, for the message.
    """
    kind = {f.name: f.type for f in fields(Settings)}[name]
    kind = getattr(kind, "__name__", kind)
    problem = f"{source}: setting {name}: {raw!r} is not a valid {kind}"
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ConfigError(problem)
    try:
        if isinstance(raw, bool):
            raise ValueError(raw)
        if kind == "Path":
            if not isinstance(raw, (str, os.PathLike)) or not str(raw).strip():
                raise ValueError(raw)
            return Path(raw).expanduser()
        if kind == "int":
            if not isinstance(raw, (str, int)):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if not isinstance(raw, (str, int, float)) or not math.isfinite(value := float(raw)):
                raise ValueError(raw)
            return value
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError) as exc:
        raise ConfigError(problem) from exc


#: A Dask scheduler's address: tcp://host:port (or tls://, or host:port).
CLUSTER_ADDRESS = r"(?:(?:tcp|tls)://)?[\w.\-]+:\d{1,5}"

# field -> (check, what a valid value is); fields without an entry accept any value of their type
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "detect_max_side": (lambda v: v >= 1, "a positive number of pixels"),
    "min_face": (lambda v: v >= 1, "a positive number of pixels"),
    "score_threshold": (lambda v: 0.0 <= v <= 1.0, "between 0 and 1"),
    "embedder": (lambda v: bool(v.strip()), "a model id"),
    "workers": (lambda v: v >= 1, "a positive number of processes"),
    "threads": (lambda v: v >= 0, "0 for automatic, or a positive number of threads"),
    "cluster": (
        lambda v: v == "" or re.fullmatch(CLUSTER_ADDRESS, v) is not None,
        "a scheduler address like tcp://nas.local:8786, or empty",
    ),
}


def _check(name: str, value: Any, source: str) -> Any:
    rule = _CHECKS.get(name)
    if rule is not None and not rule[0](value):
        raise ConfigError(f"{source}: setting {name}: {value!r} is out of range (must be {rule[1]})")
    return value


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def config_file() -> Path:
    """``FACETAGS_CONFIG`` if set, else ``config.toml`` in the user's config directory."""
    explicit = os.environ.get("FACETAGS_CONFIG")
    return Path(explicit).expanduser() if explicit else config_dir() / "config.toml"


def load_settings(**flags: Any) -> Settings:
    """Build the settings from all layers; ``flags`` whose value is None are ignored."""
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file()
    if os.environ.get("FACETAGS_CONFIG") and not path.is_file():
        raise ConfigError(f"FACETAGS_CONFIG: {path} is not a file")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = _check(key, _coerce(key, raw, str(path)), str(path))
    for key in known:
        env = _ENV_PREFIX + key.upper()
        raw = os.environ.get(env)
        if raw is not None and raw != "":
            values[key] = _check(key, _coerce(key, raw, env), env)
    for key, raw in flags.items():
        if raw is not None:
            if key not in known:
                raise ConfigError(f"unknown setting {key!r}")
            source = "--" + key.replace("_", "-")
            values[key] = _check(key, _coerce(key, raw, source), source)
    return dataclasses.replace(Settings(), **values)
