"""Model specs: everything needed to run a model, kept next to the model file.

Each model the product runs lives in ``models/`` as ``<id>.onnx`` with ``<id>.json`` (its
:class:`ModelSpec`) and ``<id>.md`` (its model card). Preprocessing is derived from the spec
only; no other module hard-codes sizes, means or channel orders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from facetags.errors import ModelError
from facetags.paths import models_dir


@dataclass(frozen=True)
class ModelSpec:
    id: str
    file: str  # file name inside the models folder (or an absolute path for user models)
    sha256: str
    dim: int = 128
    input_size: int = 112
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    channel_order: str = "RGB"  # or "BGR"
    layout: str = "NHWC"  # or "NCHW"
    licence: str = "MIT"
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path) -> ModelSpec:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data["mean"] = tuple(data.get("mean", cls.mean))
            data["std"] = tuple(data.get("std", cls.std))
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: not a valid model spec ({exc})") from exc

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def path(self, root: Path | None = None) -> Path:
        p = Path(self.file)
        return p if p.is_absolute() else (root or models_dir()) / p

    @property
    def version(self) -> str:
        """Which file of this id it is: the first 12 hex of its sha256."""
        return self.sha256[:12]

    @property
    def version_id(self) -> str:
        """``<id>@<version>``: what is stored with every embedding this file makes, so vectors
        of a retrained file (same id, new weights) never mix with the old file's."""
        return versioned(self.id, self.version)


#: Separates a model id from its version in a versioned id (``facetags-mobilenet-v1@0177e48e0530``).
VERSION_SEP = "@"


def versioned(model_id: str, version: str) -> str:
    return f"{model_id}{VERSION_SEP}{version}" if version else model_id


def split_version(model_id: str) -> tuple[str, str]:
    """``"id@version"`` -> ``("id", "version")``; a bare id (older libraries) -> ``("id", "")``."""
    base, _, version = model_id.rpartition(VERSION_SEP)
    return (base, version) if base else (model_id, "")


def available(root: Path | None = None) -> dict[str, ModelSpec]:
    """All shipped (or ``root``'s) model specs, by id."""
    folder = root or models_dir()
    specs = {}
    for path in sorted(folder.glob("*.json")):
        spec = ModelSpec.from_json(path)
        specs[spec.id] = spec
    return specs


def get_spec(model_id: str, root: Path | None = None) -> ModelSpec:
    """The spec of ``model_id``: a bare id, or a versioned one (``id@version``), which must name
    the file that is installed now (ModelError for an older or newer version)."""
    specs = available(root)
    base, version = split_version(model_id)
    if base not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ModelError(f"unknown model {model_id!r} (available: {known})")
    spec = specs[base]
    if version and version != spec.version:
        raise ModelError(f"model {model_id!r} is not installed (installed: {spec.version_id})")
    return spec


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_path(spec: ModelSpec, root: Path | None = None) -> Path:
    """The model file, checked against the spec's sha256."""
    path = spec.path(root)
    if not path.is_file():
        raise ModelError(f"model file missing: {path}")
    actual = sha256_file(path)
    if actual != spec.sha256:
        raise ModelError(f"{path}: sha256 {actual[:12]}… does not match the spec ({spec.sha256[:12]}…)")
    return path
