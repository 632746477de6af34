"""The numpy side of MTCNN: image pyramid, proposals, NMS, box refinement and patch sampling.

Each function mirrors the behaviour of the ``mtcnn`` 1.0.0 package (``mtcnn/utils/*.py``) so
our detections match the reference; the comments say where the reference has a quirk that
we reproduce on purpose. Boxes are float arrays ``(n, 5)``: ``x1, y1, x2, y2, score`` in pixels
of the analysed image.
"""

from __future__ import annotations

import numpy as np

PNET_STRIDE = 2
PNET_CELL = 12


#: The pyramid's levels sit on the reference's grid: 12/20 (a 20 px face fills PNet's 12 px
#: window, the mtcnn package's default) times powers of the scale factor.
PYRAMID_ANCHOR_FACE = 20


def pyramid_scales(width: int, height: int, min_face: int, factor: float) -> list[float]:
    """Scales at which PNet (a 12 px window) sees faces from ``min_face`` px up to the whole image.

    Levels are ``12 / 20 * factor**k`` as in the reference package; ``min_face`` selects the
    level nearest to it to start from (so any ``min_face`` keeps the reference's levels for
    the faces it covers), and levels continue while the shorter side stays >= 12 px.
    """
    base = PNET_CELL / PYRAMID_ANCHOR_FACE
    first = round(np.log(max(1, min_face) / PYRAMID_ANCHOR_FACE) / np.log(1 / factor))
    side = min(width, height)
    scales: list[float] = []
    k = first
    while int(side * base * factor**k) >= PNET_CELL and len(scales) < 64:
        scales.append(base * factor**k)
        k += 1
    return scales


def resize_area(image: np.ndarray, scale: float) -> np.ndarray:
    """Area-averaged resize of an HxWx3 image to ``int(H*scale) x int(W*scale)``, float32.

    Matches ``tf.image.resize(method=AREA)`` (the reference, with its size truncated to int):
    each output pixel is the exact, fractional-coverage mean of the input pixels under it.
    Pillow's BOX filter is not the same (it counts whole pixels whose centre falls inside).
    """
    return AreaResizer(image).resize(scale)


class AreaResizer:
    """Exact area resizes of one image at many scales.

    The sum of a piecewise-constant signal over a fractional interval ``[a, b)`` is
    ``C(b) - C(a)`` with ``C`` the cumulative sum, linear between integers. Vertically we use
    the image's cumulative sum (computed once); horizontally, each output column is a short
    weighted sum of the input columns under it (at most ``ceil(ratio) + 1``), or a cumulative
    sum when the ratio is large. Sums are float32 per column (at most 255 x height), accurate
    to ~1e-2 grey level, about the reference's own float32 error.
    """

    def __init__(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        c = image.shape[2]
        self.height, self.width = h, w
        self.pixels = image
        cum = np.empty((h + 1, w, c), dtype=np.float32)
        cum[0] = 0
        # Row by row: numpy's cumsum along axis 0 is an order of magnitude slower.
        for y in range(h):
            np.add(cum[y], image[y], out=cum[y + 1])
        self.cum = cum
        # Work buffers reused across scales: fresh multi-megabyte temporaries cost more in
        # page faults than the arithmetic done in them.
        self._edges = np.empty((h + 1) * w * c, dtype=np.float32)
        self._frac = np.empty((h + 1) * w * c, dtype=np.float32)
        self._rows = np.empty(h * w * c, dtype=np.float32)

    def resize(self, scale: float) -> np.ndarray:
        h, w = self.height, self.width
        c = self.pixels.shape[2]
        oh, ow = max(1, int(h * scale)), max(1, int(w * scale))
        # Vertical: sums over each output row's span, (oh, w, c).
        i, f = _edges(h, oh)
        edges = self._edges[: (oh + 1) * w * c].reshape(oh + 1, w, c)
        frac = self._frac[: (oh + 1) * w * c].reshape(oh + 1, w, c)
        edges[...] = self.cum[i]
        np.multiply(
            self.pixels[np.minimum(i, h - 1)].reshape(oh + 1, w * c),
            f[:, None],
            out=frac.reshape(oh + 1, w * c),
        )
        edges += frac
        rows = self._rows[: oh * w * c].reshape(oh, w, c)
        np.subtract(edges[1:], edges[:-1], out=rows)
        ratio = w / ow
        if ratio <= 6:
            out = _band_sum(rows, w, ow)
        else:
            cum = np.empty((oh, w + 1, c), dtype=np.float32)
            cum[:, 0] = 0
            np.cumsum(rows, axis=1, out=cum[:, 1:])
            j, g = _edges(w, ow)
            cols = cum[:, j]
            cols += g[None, :, None] * rows[:, np.minimum(j, w - 1)]
            out = cols[:, 1:] - cols[:, :-1]
        out *= (oh / h) * (ow / w)
        return out


def _edges(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer and fractional parts of the ``out + 1`` cell edges, in input pixels."""
    edges = np.minimum(np.arange(out + 1, dtype=np.float64) * (size / out), size)
    whole = np.minimum(np.floor(edges).astype(np.intp), size)
    return whole, (edges - whole).astype(np.float32)


def _band_sum(rows: np.ndarray, size: int, out: int) -> np.ndarray:
    """Area sums along axis 1 as ``sum_k weight_k * x[start + k]`` (weights: pixel coverage).

    Works on ``(rows, columns * channels)`` views so numpy's inner loops run over whole rows,
    not over 3 channels at a time.
    """
    n, _, c = rows.shape
    flat = rows.reshape(n, size * c)
    edges = np.minimum(np.arange(out + 1, dtype=np.float64) * (size / out), size)
    lo, hi = edges[:-1], edges[1:]
    start = np.floor(lo).astype(np.intp)
    span = int(np.max(np.ceil(hi).astype(np.intp) - start))
    channel = np.arange(c)
    result = np.zeros((n, out * c), dtype=np.float32)
    for k in range(span):
        col = start + k
        weight = np.clip(np.minimum(col + 1, hi) - np.maximum(col, lo), 0, None)
        index = (np.minimum(col, size - 1)[:, None] * c + channel).reshape(-1)
        term = np.take(flat, index, axis=1)
        term *= np.repeat(weight.astype(np.float32), c)[None, :]
        result += term
    return result.reshape(n, out, c)


def pnet_boxes(box: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """Turn one pyramid level's PNet maps (NCHW, batch 1) into scored boxes, best first."""
    score = prob[0, -1]  # P(face): the last channel (2-way softmax or a single sigmoid)
    ys, xs = np.nonzero(score > threshold)
    if ys.size == 0:
        return np.empty((0, 5), dtype=np.float64)
    reg = box[0][:, ys, xs].astype(np.float64)  # (4, n)
    size = PNET_CELL - 1  # the reference's window spans 2x+1 .. 2x+12
    x1 = xs * PNET_STRIDE + 1 + reg[0] * size
    y1 = ys * PNET_STRIDE + 1 + reg[1] * size
    x2 = xs * PNET_STRIDE + PNET_CELL + reg[2] * size
    y2 = ys * PNET_STRIDE + PNET_CELL + reg[3] * size
    out = np.stack([x1 / scale, y1 / scale, x2 / scale, y2 / scale, score[ys, xs]], axis=1)
    return sort_by_score(out)


def sort_by_score(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]


def nms(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """The reference's suppression: keep box j unless an earlier (better) box overlaps it.

    Unlike greedy NMS, an earlier box suppresses later ones even if it was itself suppressed
    (``mtcnn.utils.bboxes.nms``). Boxes must already be sorted best first. Overlap is IoU
    (``method="union"``) or intersection over the smaller area (``"min"``), with areas
    ``(x2 - x1) * (y2 - y1)``. Pairs are only formed for boxes whose x ranges intersect, so
    thousands of PNet proposals cost little.
    """
    n = boxes.shape[0]
    if n < 2:
        return boxes
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    order = np.argsort(x1, kind="stable")
    sx1 = x1[order]
    max_w = max(0.0, float(np.max(x2 - x1)))
    # Candidates for box j: boxes i with x1_i in (x1_j - max_w, x2_j), i.e. x-overlap possible.
    lo = np.searchsorted(sx1, x1 - max_w, side="left")
    hi = np.searchsorted(sx1, x2, side="left")
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    if total > 4_000_000:  # pathological spread: fall back to blocks of the full matrix
        return boxes[_nms_dense(boxes, threshold, method)]
    j = np.repeat(np.arange(n), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    i = order[np.arange(total) + starts]
    keep_pair = i < j
    i, j = i[keep_pair], j[keep_pair]
    inter_w = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j])
    inter_h = np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j])
    inter = np.maximum(inter_w, 0) * np.maximum(inter_h, 0)
    denom = np.minimum(area[i], area[j]) if method == "min" else area[i] + area[j] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / denom
    suppressed = np.zeros(n, dtype=bool)
    suppressed[j[overlap > threshold]] = True
    return boxes[~suppressed]


def _nms_dense(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    n = boxes.shape[0]
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(n, dtype=bool)
    for start in range(0, n, 512):
        j = np.arange(start, min(n, start + 512))
        iw = np.minimum(x2[:, None], x2[j]) - np.maximum(x1[:, None], x1[j])
        ih = np.minimum(y2[:, None], y2[j]) - np.maximum(y1[:, None], y1[j])
        inter = np.maximum(iw, 0) * np.maximum(ih, 0)
        denom = np.minimum(area[:, None], area[j]) if method == "min" else area[:, None] + area[j] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            over = (inter / denom) > threshold
        over &= np.arange(n)[:, None] < j[None, :]
        suppressed[j] = over.any(axis=0)
    return np.nonzero(~suppressed)[0]


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (side = the longer side)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply RNet/ONet box regression (offsets scaled by ``x2 - x1 + 1``, as the reference)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] += offsets.astype(np.float64) * np.stack([w, h, w, h], axis=1)
    return out


def crop_patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear ``size x size`` patches of ``boxes`` from an HxWx3 image, ``(n, size, size, 3)``.

    Reproduces ``tf.image.crop_and_resize`` as the reference calls it: box corners are divided
    by the image size (not size - 1) and then sampled at ``corner * (size - 1)``; samples
    outside the image take the normalised value 0, i.e. pixel value 127.5.
    """
    h, w, channels = image.shape
    steps = np.arange(size, dtype=np.float64) / (size - 1)
    ny1, nx1 = boxes[:, 1] / h, boxes[:, 0] / w
    ny2, nx2 = boxes[:, 3] / h, boxes[:, 2] / w
    ys = (ny1[:, None] + (ny2 - ny1)[:, None] * steps[None, :]) * (h - 1)  # (n, size)
    xs = (nx1[:, None] + (nx2 - nx1)[:, None] * steps[None, :]) * (w - 1)
    outside = ((ys < 0) | (ys > h - 1))[:, :, None] | ((xs < 0) | (xs > w - 1))[:, None, :]
    y0 = np.clip(np.floor(ys), 0, h - 1)
    x0 = np.clip(np.floor(xs), 0, w - 1)
    n = boxes.shape[0]
    # Weights expanded over channels so numpy's inner loops run over whole patch rows.
    fy = np.clip(ys - y0, 0, 1).astype(np.float32)[:, :, None]  # (n, size, 1)
    fx = np.repeat(np.clip(xs - x0, 0, 1).astype(np.float32), channels, axis=1)[:, None, :]
    # Corners from an edge-padded image (the pad is only ever weighted 0, or sampled
    # outside the image where the value is replaced anyway).
    padded = np.pad(image, ((0, 1), (0, 1), (0, 0)), mode="edge")
    flat = padded.reshape(-1, channels)
    stride = w + 1
    base = (y0.astype(np.intp) * stride)[:, :, None] + x0.astype(np.intp)[:, None, :]

    def corner(offset: int) -> np.ndarray:
        return flat[base + offset].reshape(n, size, size * channels).astype(np.float32)

    top = corner(0)
    top += (corner(1) - top) * fx
    bottom = corner(stride)
    bottom += (corner(stride + 1) - bottom) * fx
    bottom -= top
    bottom *= fy
    top += bottom
    patches = top.reshape(n, size, size, channels)
    patches[outside] = 127.5
    return patches
