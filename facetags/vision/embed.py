"""Face embedders: aligned 112x112 RGB crops in, L2-normalised float32 vectors out.

The default is facetags' own MobileNet (``facetags-mobilenet-v2``, distilled from MobileFaceNet),
shipped in ``models/`` and run with onnxruntime. Preprocessing comes from the model's
:class:`~facetags.vision.specs.ModelSpec`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from facetags.errors import ModelError
from facetags.vision import registry
from facetags.vision.specs import ModelSpec, get_spec, verified_path

log = logging.getLogger(__name__)

BATCH = 32


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB -> (N, dim) float32, rows of unit length."""
        ...


def preprocess(crops: np.ndarray, spec: ModelSpec, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB crops (N, H, W, 3) -> the float32 tensor the model expects: ``(value - mean) /
    std`` per channel, in the spec's channel order and layout; written into ``out`` (float32, at
    least N images of that shape) when given, and the first N of it returned."""
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) crops, got {crops.shape}")
    if crops.shape[1:3] != (spec.input_size, spec.input_size):
        raise ValueError(f"{spec.id} wants {spec.input_size}px crops, got {crops.shape[1:3]}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops, got {crops.dtype}")
    # one table lookup per value, written straight into the model's layout: a fifth of the
    # time of astype + subtract + divide + transpose, with the same float32 values
    lut = _lookup_table(tuple(spec.mean), tuple(spec.std))
    ordered = crops[..., ::-1] if spec.channel_order.upper() == "BGR" else crops  # the model's order
    n, h, w, _ = crops.shape
    nchw = spec.layout.upper() == "NCHW"
    shape = (n, 3, h, w) if nchw else (n, h, w, 3)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.dtype != np.float32 or out.shape[1:] != shape[1:] or len(out) < n or not out.flags.c_contiguous:
        raise ValueError(f"preprocess: an output buffer of {out.shape} {out.dtype} cannot take {shape}")
    out = out[:n]
    for c in range(3):
        np.take(lut[c], ordered[..., c], out=out[:, c] if nchw else out[..., c], mode="clip")
    return out


@functools.cache
def _lookup_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: ``(value - mean[c]) / std[c]`` for each uint8 value, in float32 arithmetic."""
    values = np.arange(256, dtype=np.float32)[None, :]
    table = (values - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]
    table.setflags(write=False)
    return table


def l2_normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


#: most onnxruntime sessions one embedder runs side by side (see :class:`OnnxEmbedder`)
MAX_SHARDS = 4


class OnnxEmbedder:
    """Runs an embedder ONNX file with onnxruntime on the CPU.

    Each batch is split across up to :data:`MAX_SHARDS` sessions run side by side (one per core,
    up to ``threads`` threads in all: the ``threads`` setting, 0 automatic as
    :func:`facetags.vision.runtime.session_threads` says) rather than
    one session spreading each layer over the cores: a small network's layers are too short for
    onnxruntime's intra-op threads to keep two cores busy (``benchmarks/embed.py``: 10-20% faster
    on two cores). A face's vector does not depend on the split: each face is computed alone.
    """

    def __init__(self, spec: ModelSpec, path: Path | None = None, threads: int = 0) -> None:
        from facetags.vision.runtime import onnxruntime, session_threads

        ort = onnxruntime()

        self.spec = spec
        self.model_id = spec.version_id  # id@sha256 prefix: a retrained file is another model
        self.dim = spec.dim
        model_path = path or verified_path(spec)
        total = session_threads(threads)
        shards = min(total, MAX_SHARDS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, total // shards)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between batches: the indexer shares the CPU with the rest of the desktop
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._sessions = [
                ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
                for _ in range(shards)
            ]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{model_path}: cannot load model ({exc})") from exc
        self._input = self._sessions[0].get_inputs()[0].name
        # each session's input buffer, kept from batch to batch: with a fresh 2.4 MB array a
        # call, glibc's allocator gave the memory back at each free and the next call faulted it
        # in again, which cost the shipped file 15% of its time (`benchmarks/embed.py`, 1.9
        # against 2.2 ms a face); one call at a time uses them (the lock)
        size = spec.input_size
        image = (3, size, size) if spec.layout.upper() == "NCHW" else (size, size, 3)
        self._buffers = [np.empty((0, *image), np.float32) for _ in self._sessions]
        self._lock = threading.Lock()

    def _run(self, index: int, crops: np.ndarray) -> np.ndarray:
        if len(self._buffers[index]) < len(crops):
            self._buffers[index] = np.empty((len(crops), *self._buffers[index].shape[1:]), np.float32)
        x = preprocess(crops, self.spec, out=self._buffers[index])
        (y,) = self._sessions[index].run(None, {self._input: x})[:1]
        return np.asarray(y, np.float32).reshape(len(x), -1)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        with self._lock:
            for start in range(0, len(crops), BATCH):
                batch = crops[start : start + BATCH]
                bounds = np.linspace(0, len(batch), min(len(self._sessions), len(batch)) + 1).astype(int)
                parts = [batch[a:b] for a, b in itertools.pairwise(bounds)]
                if len(parts) == 1:
                    out.append(self._run(0, batch))
                    continue
                # the first part in this thread, the others beside it in threads joined before
                # the next batch (a few tens of microseconds a batch; nothing outlives the call)
                with ThreadPoolExecutor(len(parts) - 1, "facetags-embed") as pool:
                    futures = [pool.submit(self._run, i, part) for i, part in enumerate(parts[1:], 1)]
                    first = self._run(0, parts[0])
                    out.extend([first, *(f.result() for f in futures)])
        vectors = np.concatenate(out)
        if vectors.shape[1] != self.dim:
            raise ModelError(f"{self.model_id}: produced {vectors.shape[1]}-D vectors, spec says {self.dim}")
        return l2_normalise(vectors)


def model_version(name: str) -> str:
    """The versioned id (what :attr:`Embedder.model_id` will be) of the embedder ``name``, without
    loading it: ``<id>@<sha256 prefix>`` from a shipped spec, or what its registered kind says
    (``insightface:<pack>@<fingerprint>`` for a pack). ModelError when ``name`` cannot be resolved."""
    kind = registry.find(name)
    return kind.version(name) if kind is not None else get_spec(name).version_id


def load_embedder(name: str, threads: int = 0) -> Embedder:
    """The embedder called ``name``: a shipped model id, or a registered one
    (:mod:`facetags.vision.registry`: opt-in ``dlib-resnet-v1``, ``insightface:<pack>``, plugins);
    ``threads``: onnxruntime threads in all (the ``threads`` setting; 0: automatic), for the
    embedders that take it."""
    kind = registry.find(name)
    if kind is not None:
        embedder: Embedder = kind.load(name, threads=threads) if kind.threads else kind.load(name)
        return embedder
    return OnnxEmbedder(get_spec(name), threads=threads)
