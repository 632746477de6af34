"""One photo through the stages: decode -> hash -> detect -> align -> embed (storing is the
library's job). Each stage is timed; models are loaded on first use, so a scan that finds
nothing new never loads one.

:meth:`Pipeline.process` is the whole CPU half of indexing one file, and its result
(:class:`Processed`) is small and picklable: a worker process can run it
(:mod:`facetags.ingest.parallel`) while the scanning process commits the results.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facetags.config import Settings
from facetags.db.store import NewFace
from facetags.orientation import to_stored_pixels, upright_size

if TYPE_CHECKING:
    from facetags.image.decode import Decoded
    from facetags.vision.embed import Embedder

log = logging.getLogger(__name__)

THUMB_SIZE = 112
THUMB_QUALITY = 85
STAGES = ("decode", "hash", "detect", "align", "embed", "store")


@dataclass
class Timings:
    """Seconds spent per stage, summed over photos."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    photos: int = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def to_json(self) -> dict[str, float]:
        return {name: round(self.seconds.get(name, 0.0), 4) for name in STAGES}


@dataclass(frozen=True)
class Decoded1:
    """A decoded photo and the hash of its pixels."""

    decoded: Decoded
    content_hash: str


@dataclass(frozen=True)
class Analysis:
    faces: list[NewFace]
    model_id: str


@dataclass(frozen=True)
class Seen:
    """What the library keeps of a decoded photo (no pixels)."""

    content_hash: str
    width: int  # upright full-size width
    height: int
    orientation: int


@dataclass(frozen=True)
class Processed:
    """The CPU half of indexing one file, for :class:`facetags.ingest.indexer.Indexer` to commit.

    ``photo`` is None when the file could not be decoded; ``analysis`` is None when the photo's
    hash was already known (nothing to analyse) or the analysis failed; ``error`` says why
    either is missing; ``unreachable``: the file could not be read at all (no permission, an
    I/O error: :attr:`facetags.errors.DecodeError.access`), so the next scan tries it again.
    ``seconds``: the time each stage took for this file.
    """

    path: str
    photo: Seen | None = None
    analysis: Analysis | None = None
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    unreachable: bool = False


def content_hash(image: np.ndarray, width: int, height: int, max_side: int) -> str:
    """A hash of the decoded (bounded-size) pixels and the full-size shape.

    Identical compressed pixel data decodes identically, so rewriting a file's metadata keeps
    its hash; the decode size is part of the key so that hashes made at different sizes never
    collide by accident. The pipeline hashes the stored pixel grid (before the EXIF orientation
    is applied), so a photo whose orientation tag changes is the same photo; for the common
    orientation 1 the stored and upright grids are one.
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{image.shape[0]}x{image.shape[1]}x{image.shape[2]}:{width}x{height}:".encode())
    digest.update(np.ascontiguousarray(image).data)
    return f"{max_side}:{digest.hexdigest()}"


def encode_thumb(crop: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop)).save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


class Pipeline:
    def __init__(self, settings: Settings, detector: Any = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._detector = detector
        self._embedder = embedder
        self._given = detector is not None or embedder is not None
        self._model_id: str | None = None
        self.timings = Timings()

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from facetags.vision.detect import Detector

            self._detector = Detector(self.settings)
        return self._detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from facetags.vision.embed import load_embedder

            self._embedder = load_embedder(self.settings.embedder, threads=self.settings.threads)
        return self._embedder

    @property
    def model_id(self) -> str:
        """The embedder's versioned id (``<id>@<sha256 prefix>``), what every stored embedding
        records; read from the model's spec, so asking never loads the model."""
        if self._embedder is not None:
            return self._embedder.model_id
        if self._model_id is None:
            from facetags.errors import FacetagsError
            from facetags.vision.embed import model_version

            try:
                self._model_id = model_version(self.settings.embedder)
            except FacetagsError as exc:  # loading it would fail too; reading commands still work
                log.debug("%s: %s", self.settings.embedder, exc)
                return self.settings.embedder
        return self._model_id

    @property
    def detector_id(self) -> str:
        s = self.settings
        return f"mtcnn:max{s.detect_max_side}:min{s.min_face}:score{s.score_threshold}"

    def decode(self, path: str | os.PathLike[str], side: int | None = None) -> Decoded1:
        """Decode at the detection size (or ``side``: the one a stored hash was made at) and
        hash the pixels. Raises DecodeError."""
        from facetags.image.decode import decode

        side = self.settings.detect_max_side if side is None else side
        with self.timings.stage("decode"):
            decoded = decode(path, max_side=side)
        with self.timings.stage("hash"):
            o = decoded.orientation
            width, height = upright_size((decoded.width, decoded.height), o)  # stored: swap back
            key = content_hash(to_stored_pixels(decoded.image, o), width, height, side)
        return Decoded1(decoded, key)

    def process(self, path: str, known: Callable[[str], bool] | None = None) -> Processed:
        """Decode and hash ``path``; analyse it unless ``known(content_hash)`` says the photo is
        indexed already. Bad files and failed analyses come back as ``error``; a ModelError (no
        photo can be analysed) is raised."""
        from facetags.errors import DecodeError, ModelError

        before = dict(self.timings.seconds)

        def spent() -> dict[str, float]:
            return {k: v - before.get(k, 0.0) for k, v in self.timings.seconds.items() if v != before.get(k)}

        try:
            decoded = self.decode(path)
        except DecodeError as exc:
            return Processed(path, error=exc.reason, seconds=spent(), unreachable=exc.access)
        d = decoded.decoded
        seen = Seen(decoded.content_hash, d.width, d.height, d.orientation)
        if known is not None and known(decoded.content_hash):
            return Processed(path, seen, seconds=spent())
        try:
            analysis = self.analyse(d)
        except ModelError:  # the model cannot run at all (not installed, damaged, a pack not on
            raise  # disk): no photo can be analysed, so stop rather than record each as failed
        except Exception as exc:  # one photo the models choke on must not stop a scan
            log.warning("%s: analysis failed", path, exc_info=True)
            error = f"analysis failed ({type(exc).__name__}: {exc})"
            return Processed(path, seen, error=error, seconds=spent())
        return Processed(path, seen, analysis, seconds=spent())

    def add_timings(self, processed: Processed) -> None:
        """Count a file processed elsewhere (a worker process) in :attr:`timings`."""
        for name, seconds in processed.seconds.items():
            self.timings.seconds[name] += seconds
        if processed.analysis is not None:
            self.timings.photos += 1

    @property
    def own_models(self) -> bool:
        """Whether models were handed in (tests, tools): they exist only in this process."""
        return self._given

    def analyse(self, decoded: Decoded) -> Analysis:
        """Find, align and embed the faces of a decoded photo."""
        from facetags.vision.align import align_face

        image = decoded.image
        h, w = image.shape[:2]
        with self.timings.stage("detect"):
            found = self.detector.detect(image)
        crops = []
        with self.timings.stage("align"):
            for face in found:
                crops.append(align_face(image, np.asarray(face.landmarks, np.float64), size=THUMB_SIZE))
            thumbs = [encode_thumb(c) for c in crops]
        with self.timings.stage("embed"):
            embedder = self.embedder
            batch = np.stack(crops) if crops else np.zeros((0, THUMB_SIZE, THUMB_SIZE, 3), np.uint8)
            vectors = embedder.embed(batch)
        self.timings.photos += 1
        faces = []
        for face, thumb, vector in zip(found, thumbs, vectors, strict=True):
            x, y, bw, bh = (float(v) for v in face.box)
            box = (_clip(x / w), _clip(y / h), _clip(bw / w), _clip(bh / h))
            marks = np.asarray(face.landmarks, np.float64) / np.array([w, h], np.float64)
            faces.append(NewFace(box, marks.astype(np.float32), float(face.score), thumb, vector))
        return Analysis(faces, embedder.model_id)


def _clip(v: float) -> float:
    return min(1.0, max(0.0, v))
