"""Face embedders: aligned 112x112 RGB crops in, L2-normalised float32 vectors out.

The default is facetags' own MobileNet triplet model shipped in ``models/`` and run with
onnxruntime. Preprocessing comes from the model's :class:`~facetags.vision.specs.ModelSpec`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from facetags.errors import ModelError
from facetags.vision.dlib_teacher import MODEL_ID as DLIB  # opt-in (facetags.vision.dlib_embed)
from facetags.vision.specs import ModelSpec, get_spec, verified_path

log = logging.getLogger(__name__)

BATCH = 32


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB -> (N, dim) float32, rows of unit length."""
        ...


def preprocess(crops: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 RGB crops (N, H, W, 3) -> the float32 tensor the model expects."""
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) crops, got {crops.shape}")
    if crops.shape[1:3] != (spec.input_size, spec.input_size):
        raise ValueError(f"{spec.id} wants {spec.input_size}px crops, got {crops.shape[1:3]}")
    x: np.ndarray = crops.astype(np.float32)
    if spec.channel_order.upper() == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.layout.upper() == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def l2_normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


class OnnxEmbedder:
    """Runs an embedder ONNX file with onnxruntime on the CPU."""

    def __init__(self, spec: ModelSpec, path: Path | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        self.spec = spec
        self.model_id = spec.version_id  # id@sha256 prefix: a retrained file is another model
        self.dim = spec.dim
        model_path = path or verified_path(spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between batches: the indexer shares the CPU with the rest of the desktop
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{model_path}: cannot load model ({exc})") from exc
        self._input = self._session.get_inputs()[0].name

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(crops), BATCH):
            x = preprocess(crops[start : start + BATCH], self.spec)
            (y,) = self._session.run(None, {self._input: x})[:1]
            out.append(np.asarray(y, np.float32).reshape(len(x), -1))
        vectors = np.concatenate(out)
        if vectors.shape[1] != self.dim:
            raise ModelError(f"{self.model_id}: produced {vectors.shape[1]}-D vectors, spec says {self.dim}")
        return l2_normalise(vectors)


def model_version(name: str) -> str:
    """The versioned id (what :attr:`Embedder.model_id` will be) of the embedder ``name``, without
    loading it: ``<id>@<sha256 prefix>`` from a shipped spec, ``insightface:<pack>@<fingerprint>``
    for a pack. ModelError when ``name`` cannot be resolved."""
    if name == DLIB:
        from facetags.vision.dlib_embed import model_version as dlib_version

        return dlib_version()
    if name.startswith("insightface:"):
        from facetags.vision.insightface_embed import pack_version

        return pack_version(name.split(":", 1)[1])
    return get_spec(name).version_id


def load_embedder(name: str) -> Embedder:
    """The embedder called ``name``: a shipped model id, or (opt-in) ``dlib-resnet-v1`` or
    ``insightface:<pack>``."""
    if name == DLIB:
        from facetags.vision.dlib_embed import DlibCropEmbedder

        return DlibCropEmbedder()
    if name.startswith("insightface:"):
        from facetags.vision.insightface_embed import InsightfaceEmbedder

        return InsightfaceEmbedder(name.split(":", 1)[1])
    return OnnxEmbedder(get_spec(name))
