"""Opt-in: the recogniser of an insightface model pack the user already has on disk.

``embedder = "insightface:buffalo_l"`` (a pack under ``~/.insightface/models``), or
``"insightface:/path/to/pack"`` / ``"insightface:/path/to/model.onnx"``. The model is loaded
through ``insightface.model_zoo.get_model`` from a local file only; nothing is ever downloaded:
a missing pack is a :class:`ModelError`. insightface packs carry their own licences (the
buffalo packs are for non-commercial research); facetags ships none of them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from facetags.errors import ModelError
from facetags.vision import registry
from facetags.vision.embed import BATCH, l2_normalise
from facetags.vision.runtime import disable_telemetry, onnxruntime

log = logging.getLogger(__name__)


def packs_root() -> Path:
    return Path(os.environ.get("INSIGHTFACE_HOME", Path.home() / ".insightface")).expanduser() / "models"


def resolve_pack(pack: str) -> Path:
    """The folder or ONNX file that ``pack`` names; ModelError when it is not on disk."""
    candidate = Path(pack).expanduser()
    if not candidate.is_absolute() and not candidate.exists():
        candidate = packs_root() / pack
    if not candidate.exists():
        raise ModelError(
            f"insightface pack {pack!r} not found (looked for {candidate}); facetags never downloads "
            "packs: put it there yourself or choose another embedder"
        )
    return candidate


def pack_version(pack: str) -> str:
    """``insightface:<pack>@<fingerprint>``: the fingerprint hashes the name, size and mtime of
    every ONNX file of the pack (hashing hundreds of MB on every scan would be slow), so a pack
    whose recogniser is replaced gets a new id and its old vectors are re-embedded."""
    import hashlib

    from facetags.vision.specs import versioned

    path = resolve_pack(pack)
    files = [path] if path.is_file() else sorted(path.glob("*.onnx"))
    digest = hashlib.sha256()
    for file in files:
        st = file.stat()
        digest.update(f"{file.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return versioned(f"insightface:{pack}", digest.hexdigest()[:12])


class InsightfaceEmbedder:
    """Runs an insightface recognition model (ArcFace-style, 112x112 aligned crops)."""

    def __init__(self, pack: str, threads: int = 0) -> None:
        """``threads``: onnxruntime's intra-op threads (the ``threads`` setting); 0 leaves them
        to onnxruntime, as insightface does."""
        path = resolve_pack(pack)
        files = [path] if path.is_file() else sorted(path.glob("*.onnx"))
        if not files:
            raise ModelError(f"{path}: no .onnx models in this pack")
        disable_telemetry()  # insightface imports onnxruntime itself
        try:
            from insightface.model_zoo import get_model
        except ImportError as exc:
            raise ModelError("insightface is not installed (pip install insightface)") from exc
        options: dict[str, Any] = {}
        if threads > 0:
            opts = onnxruntime().SessionOptions()
            opts.intra_op_num_threads = threads
            options["sess_options"] = opts
        self._model: Any = None
        for file in files:
            try:
                model = get_model(str(file), providers=["CPUExecutionProvider"], **options)
            except Exception as exc:  # insightface raises assorted errors for unknown graphs
                log.debug("%s: not loadable by insightface (%s)", file, exc)
                continue
            if model is not None and getattr(model, "taskname", None) == "recognition":
                self._model = model
                self.path = file
                break
        if self._model is None:
            raise ModelError(f"{path}: no recognition model found in this pack")
        self.model_id = pack_version(pack)
        self.input_size = int(self._model.input_size[0])
        shape = self._model.output_shape
        self.dim = int(shape[1]) if len(shape) > 1 and isinstance(shape[1], int) else 512

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned crops -> (N, dim) unit vectors."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        if crops.ndim != 4 or crops.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"{self.model_id} wants ({self.input_size}, {self.input_size}, 3) crops")
        out = []
        for start in range(0, len(crops), BATCH):
            bgr = [np.ascontiguousarray(c[..., ::-1]) for c in crops[start : start + BATCH]]
            out.append(np.asarray(self._model.get_feat(bgr), np.float32).reshape(len(bgr), -1))
        vectors = np.concatenate(out)
        self.dim = vectors.shape[1]
        return l2_normalise(vectors)


def _pack(name: str) -> str:
    return name.split(":", 1)[1]


registry.register(
    "insightface:",
    lambda name, threads=0: InsightfaceEmbedder(_pack(name), threads),
    lambda name: pack_version(_pack(name)),
    threads=True,
)
