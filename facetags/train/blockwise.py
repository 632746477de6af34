"""Blockwise distillation: a MobileNet student laid out on dlib's ResNet, taught block by block.

The end-to-end student (:mod:`facetags.train.fit`) learns dlib's 128-D vectors from 23k faces
and stalls at ~90% on LFW: one vector per face is little to learn from. Here the student has the
teacher's plan (the same input chip, the same stem, one MobileNetV2 inverted-residual block
for each of dlib's 14 residual blocks, at the same resolutions and widths) so every block can be
taught the teacher's activations at its own place: thousands of targets per face instead of 128.

* The student's input is dlib's 150x150 chip, cut from facetags' aligned 112x112 crop by one
  fixed axis-aligned resampling (:func:`warp_matrices`; dlib on such chips scores as on chips
  from its own landmark fit). The exported graph does the cut itself (two matrix products), so
  the file still takes the 112x112 crop every facetags embedder takes.
* Block ``i`` is an inverted residual (1x1 expand, 5x5 depthwise, 1x1 project, BatchNorm) with a
  shortcut, then ReLU, as dlib's blocks end; a block that halves the resolution has dlib's
  average-pool shortcut, zero-padded to the new width.
* **Phase 1** (``--blockwise-steps``): each block gets the teacher's input to it and learns the
  teacher's output of it (squared error, each tap scaled by its mean square); the head (global
  average pool, Dense(128), L2 norm) learns the teacher's centred vector from the teacher's last
  activation. The blocks learn independently, in one step.
* **Phase 2**: the blocks are chained; the losses are the same taps (now the student's own
  activations against the teacher's) and the distillation terms on the final vector (cosine and
  batch similarity matrix); optionally (``triplet_weight``) the batch-hard triplet term on the
  P x K part of the batch, off by default: over a whole run it lowered the held-out accuracy
  (0.9757 with it, 0.9782 without; the model card has the runs).

The teacher (dlib's network in onnxruntime with its block activations as outputs,
:func:`facetags.vision.dlib_onnx.build_graph`) describes each augmented batch as it is made, so
it always answers for exactly the image the student sees.

``teacher="mobilefacenet"`` (``train blocks --teacher mobilefacenet``) lays the student out on
MobileFaceNet's plan instead and is taught by the opt-in ``mobilefacenet-v1`` file
(:mod:`facetags.train.mfnplan`: the teacher with its taps, and the student), on the crop itself;
the phases, losses, checkpoints and validation are the same. Its 192-D vectors reach the
student's dimension (``dim``, 128 by default, the library's storage) through a fixed projection
(:class:`Target`: partly centred as dlib's, then the leading principal directions of the centred
vectors of the training crops, fitted once when the run starts and kept in the run folder).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from facetags.errors import ConfigError
from facetags.train.checkpoints import read_history, save_checkpoint, weights_file
from facetags.train.data import (
    CropSet,
    PKSampler,
    augment_batch,
    centre,
    load_cache,
    mix_faces,
    refuse_held_out,
    save_npz_atomic,
    split_validation,
    validation_pairs,
)
from facetags.train.fit import Prefetcher, embed, normalise, pair_accuracy, set_seeds
from facetags.train.losses import TRIPLET, cosine_distill, relational_distill
from facetags.train.mfnplan import (
    DEFAULT_EXPAND,
    DEFAULT_STEM_WIDTH,
    MfnStudent,
    MfnStudentConfig,
    MobileFaceNetTeacher,
)
from facetags.train.model import MEAN, STD
from facetags.train.plan import BlockPlan, BlockStudent

keras: Any = tf.keras
log = logging.getLogger(__name__)

CROP = 112
CHIP = 150
#: where dlib's chip lies in facetags' aligned crop: centre (x, y) and side, in crop pixels; the
#: median of dlib's own chip geometry (5-point shape predictor at ``dlib_embed.CROP_RECT``, then
#: ``get_face_chip_details(shape, 150, 0.25)``) over the 696 crops of the held-out people
#: (spread: centre 0.9/1.4 px, side 4.7 px, angle 0.05 rad).
CHIP_CENTRE = (57.0, 72.0)
CHIP_SIDE = 98.75


def bilinear_weights(positions: np.ndarray) -> np.ndarray:
    """(len(positions), 112) float32: row ``u`` samples a crop axis at ``positions[u]`` (crop
    pixel coordinates) by linear interpolation; pixels outside the crop count as 0."""
    m = np.zeros((len(positions), CROP), np.float32)
    for u, x in enumerate(positions):
        x0 = int(np.floor(x))
        for xi, w in ((x0, 1.0 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= xi < CROP:
                m[u, xi] += w
    return m


@functools.cache
def warp_matrices() -> tuple[np.ndarray, np.ndarray]:
    """(rows (150, 112), columns (150, 112)): bilinear weights such that ``rows @ crop @
    columns.T`` is the chip (per channel); crop pixels outside the crop count as 0."""
    offsets = (np.arange(CHIP) - CHIP / 2) * (CHIP_SIDE / CHIP)
    return bilinear_weights(CHIP_CENTRE[1] + offsets), bilinear_weights(CHIP_CENTRE[0] + offsets)


def chips_from_crops(x: np.ndarray) -> np.ndarray:
    """Normalised (N, 112, 112, 3) crops -> normalised (N, 150, 150, 3) chips (outside: 0)."""
    rows, cols = warp_matrices()
    return np.einsum("uy,nyxc,vx->nuvc", rows, x, cols, optimize=True).astype(np.float32)


# --------------------------------------------------------------------------- the student


class PadTo(keras.layers.Layer):
    """Zero-pad (N, h, w, c) at the end of each axis to (N, H, W, C): dlib's sum of two shapes."""

    def __init__(self, target: tuple[int, int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = tuple(target)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        th, tw, tc = self.target
        return tf.pad(x, [[0, 0], [0, th - h], [0, tw - w], [0, tc - c]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target": self.target}


class Warp(keras.layers.Layer):
    """The fixed crop -> chip resampling of :func:`warp_matrices` (constants, no weights)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        rows, cols = warp_matrices()
        self.rows, self.cols_t = rows, np.ascontiguousarray(cols.T)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        # constants made in the traced graph (not captured tensors): the ONNX file holds them
        nchw = tf.transpose(x, [0, 3, 1, 2])  # (N, 3, 112, 112)
        chip = tf.matmul(tf.matmul(tf.constant(self.rows), nchw), tf.constant(self.cols_t))
        return tf.transpose(chip, [0, 2, 3, 1])


def _bn(momentum: float) -> Any:
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)


def make_stem(out: tuple[int, int, int], momentum: float) -> Any:
    x = keras.Input((CHIP, CHIP, 3))
    y = keras.layers.Conv2D(out[2], 7, strides=2, padding="valid", use_bias=False)(x)
    y = keras.layers.ReLU()(_bn(momentum)(y))
    y = keras.layers.MaxPool2D(3, 2, padding="valid")(y)
    return keras.Model(x, y, name="stem")


def make_block(
    index: int,
    src: tuple[int, int, int],
    dst: tuple[int, int, int],
    expand: int,
    kernel: int,
    momentum: float,
) -> Any:
    """One inverted residual standing for dlib's residual block ``index`` (``src`` -> ``dst``)."""
    h, w, c = src
    th, tw, tc = dst
    x = keras.Input(src)
    y = keras.layers.Conv2D(c * expand, 1, use_bias=False)(x)
    y = keras.layers.ReLU()(_bn(momentum)(y))
    down = (h, w) != (th, tw)
    if down:
        pad = 0
        while (h + 2 * pad - kernel) // 2 + 1 < th:
            pad += 1
        y = keras.layers.ZeroPadding2D(pad)(y)
        y = keras.layers.DepthwiseConv2D(kernel, strides=2, padding="valid", use_bias=False)(y)
        y = keras.layers.Cropping2D(((0, y.shape[1] - th), (0, y.shape[2] - tw)))(y)
        s = PadTo(dst)(keras.layers.AveragePooling2D(2, 2, padding="valid")(x))
    else:
        y = keras.layers.DepthwiseConv2D(kernel, padding="same", use_bias=False)(y)
        s = PadTo(dst)(x) if c != tc else x
    y = keras.layers.ReLU()(_bn(momentum)(y))
    y = _bn(momentum)(keras.layers.Conv2D(tc, 1, use_bias=False)(y))
    out = keras.layers.ReLU()(keras.layers.Add()([y, s]))
    return keras.Model(x, out, name=f"block{index}")


def make_head(src: tuple[int, int, int], dim: int) -> Any:
    x = keras.Input(src)
    y = keras.layers.GlobalAveragePooling2D()(x)
    y = keras.layers.Dense(dim, use_bias=False)(y)
    y = keras.layers.UnitNormalization(axis=1)(y)
    return keras.Model(x, y, name="head")


#: the expansions of the dlib plan's student: one per block width, 32, 64, 128 and 256 channels
DLIB_EXPAND = (4, 4, 3, 2)
TEACHERS = ("dlib", "mobilefacenet")
#: the dimension of each teacher's vectors
TEACHER_DIMS = {"dlib": 128, "mobilefacenet": 192}


@dataclass(frozen=True)
class StudentConfig:
    expand: tuple[int, ...] = DLIB_EXPAND  # expansion for 32, 64, 128 and 256 channels
    kernel: int = 5
    dim: int = 128
    bn_momentum: float = 0.99


class Student(BlockStudent):
    """The stem, the blocks and the head as separate Keras models, and the chained whole."""

    def __init__(self, plan: BlockPlan, cfg: StudentConfig) -> None:
        self.plan, self.cfg = plan, cfg
        widths = sorted({s[2] for s in plan.shapes})
        expand = {w: cfg.expand[min(i, len(cfg.expand) - 1)] for i, w in enumerate(widths)}
        self.stem = make_stem(plan.shapes[0], cfg.bn_momentum)
        self.blocks = [
            make_block(
                i,
                plan.shapes[i - 1],
                plan.shapes[i],
                expand[plan.shapes[i - 1][2]],
                cfg.kernel,
                cfg.bn_momentum,
            )
            for i in range(1, len(plan.shapes))
        ]
        self.head = make_head(plan.shapes[-1], cfg.dim)
        chip = keras.Input((CHIP, CHIP, 3))
        y = self.stem(chip)
        for block in self.blocks:
            y = block(y)
        self.body = keras.Model(chip, self.head(y), name="student_body")
        crop = keras.Input((CROP, CROP, 3))
        self.model = keras.Model(crop, self.body(Warp()(crop)), name="student")


# --------------------------------------------------------------------------- training


@dataclass
class BlockwiseConfig:
    cache: str
    out: str
    blockwise_steps: int = 1200
    chained_steps: int = 4800
    steps_per_epoch: int = 300
    p: int = 12
    k: int = 4
    u: int = 16
    lr: float = 2e-3
    chained_lr: float = 1e-3
    weight_decay: float = 5e-5
    tap_weight: float = 1.0
    distill_weight: float = 1.0
    relational_weight: float = 1.0
    triplet_weight: float = 0.0  # measured: the term lowers held-out accuracy (model card)
    margin: float = 0.3
    augment: float = 1.0
    mix: float = 0.0  # fraction of each batch blended with another face (data.mix_faces)
    # fraction of the teacher's mean vector taken off its vectors to make the target (data.centre);
    # 1 (fully centred) costs the target itself accuracy (benchmarks/teacher_target.py)
    centre: float = 0.5
    # the target vector is the mean of the teacher's for the chip and for its mirror image
    mirror_target: bool = False
    seed: int = 0
    val_names_file: str = ""
    val_pairs: int = 600
    init_from: str = ""  # a previous run's weights: continue (e.g. phase 2 only)
    limit_shards: int = 0  # tests: the first N cache shards
    # the student's expansions; empty: the teacher's plan's default (DLIB_EXPAND: one per block
    # width; mfnplan.DEFAULT_EXPAND: one per run of blocks, mfnplan.block_runs)
    expand: tuple[int, ...] = ()
    kernel: int = 5  # the dlib plan's depthwise kernel (MobileFaceNet's is 3x3)
    teacher: str = "dlib"  # or "mobilefacenet" (facetags.train.mfnplan)
    dim: int = 128  # the student's vector; below the teacher's: a fixed projection (Target)
    stem_width: int = DEFAULT_STEM_WIDTH  # the MobileFaceNet plan's stem (its own: 64)
    target_crops: int = 4096  # training crops the teacher's mean and projection are fitted on

    def __post_init__(self) -> None:
        if not self.expand:
            self.expand = DEFAULT_EXPAND if self.teacher == "mobilefacenet" else DLIB_EXPAND
        self.expand = tuple(self.expand)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


class Teacher:
    """dlib's network with its taps; answers in NHWC for normalised chips."""

    name = "dlib"
    #: the student's body input: dlib's chip, cut from the crop (:meth:`inputs`)
    size = CHIP
    dim = 128

    def __init__(self) -> None:
        from facetags.vision.dlib_onnx import load_net
        from facetags.vision.dlib_teacher import MODEL_FILE, models_folder

        self.net = load_net(models_folder() / MODEL_FILE, taps=True)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The student's body input for normalised crops: the chips cut from them."""
        return chips_from_crops(x)

    def __call__(self, chips: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """(unit descriptors (N, 128), NHWC taps)."""
        out = self.net.taps(chips * STD + MEAN)
        return _unit(out[0]), [np.ascontiguousarray(t.transpose(0, 2, 3, 1)) for t in out[1:]]

    def vectors(self, chips: np.ndarray) -> np.ndarray:
        """Unit descriptors (N, 128) only."""
        return _unit(self.net.describe(chips * STD + MEAN, batch=len(chips)))

    def plan(self) -> BlockPlan:
        """The shapes of the teacher's taps (one blank chip through the network)."""
        _, taps = self(np.zeros((1, CHIP, CHIP, 3), np.float32))
        return BlockPlan(tuple((t.shape[1], t.shape[2], t.shape[3]) for t in taps))


AnyTeacher = Teacher | MobileFaceNetTeacher


def make_teacher(name: str) -> AnyTeacher:
    """The teacher ``name`` (:data:`TEACHERS`) with its taps."""
    if name == "dlib":
        return Teacher()
    if name == "mobilefacenet":
        return MobileFaceNetTeacher()
    raise ConfigError(f"unknown teacher {name!r} (known: {', '.join(TEACHERS)})")


def make_student(cfg: BlockwiseConfig, plan: BlockPlan) -> Student | MfnStudent:
    """The student of ``cfg``'s teacher's plan, laid out on ``plan`` (the teacher's taps)."""
    if cfg.teacher == "mobilefacenet":
        return MfnStudent(plan, MfnStudentConfig(expand=cfg.expand, stem_width=cfg.stem_width, dim=cfg.dim))
    return Student(plan, StudentConfig(expand=cfg.expand, kernel=cfg.kernel, dim=cfg.dim))


TARGET_FILE = "target.npz"


@dataclass
class Target:
    """What the student's vector is taught: the teacher's unit vector less ``mean`` (a fraction
    of the teacher's mean vector over the training crops), re-normalised
    (:func:`facetags.train.data.centre`), then, with a ``projection`` (D, dim), projected on the
    leading principal directions of those centred vectors and re-normalised again: a teacher
    with more dimensions than the student (MobileFaceNet's 192 for 128) keeps its cosines as far
    as dim directions can."""

    mean: np.ndarray  # (D,) float32
    projection: np.ndarray | None = None  # (D, dim) float32, orthonormal columns

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        v = centre(vectors, self.mean)
        if self.projection is None:
            return v
        return _unit(v @ self.projection).astype(np.float32)

    @classmethod
    def fit(cls, vectors: np.ndarray, fraction: float, dim: int) -> Target:
        """The target of teacher vectors ``vectors`` (N, D) of training crops: their mean times
        ``fraction`` taken off, and for ``dim`` < D the leading ``dim`` eigenvectors of the
        centred vectors' second moment (the directions that keep most of their length)."""
        mean = (fraction * vectors.mean(axis=0)).astype(np.float32)
        if dim >= vectors.shape[1]:
            return cls(mean)
        v = centre(vectors, mean).astype(np.float64)
        values, vecs = np.linalg.eigh(v.T @ v / len(v))
        order = np.argsort(values)[::-1][:dim]
        projection = vecs[:, order]
        projection *= np.sign(projection[np.argmax(np.abs(projection), axis=0), np.arange(dim)])
        return cls(mean, projection.astype(np.float32))

    def save(self, path: Path) -> None:
        arrays = {"mean": self.mean}
        if self.projection is not None:
            arrays["projection"] = self.projection
        save_npz_atomic(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Target:
        with np.load(path) as z:
            return cls(z["mean"], z["projection"] if "projection" in z.files else None)


def run_target(
    cfg: BlockwiseConfig, teacher: AnyTeacher, train: CropSet, out: Path, resume: bool = False
) -> Target:
    """The run's :class:`Target`. dlib's at its own dimension as ever: the fraction
    ``cfg.centre`` of the mean of the cache's dlib vectors over the training crops, no
    projection. Otherwise fitted on the teacher's vectors of up to ``cfg.target_crops`` training
    crops (drawn with the run's seed, not augmented) and kept in the run folder, where a resumed
    run reads it back."""
    if isinstance(teacher, Teacher) and cfg.dim == teacher.dim:
        return Target((cfg.centre * teacher_mean(train, teacher, cfg.seed)).astype(np.float32))
    path = out / TARGET_FILE
    if resume and path.is_file():
        return Target.load(path)
    vectors = sample_vectors(teacher, train.crops, cfg.target_crops, cfg.seed)
    target = Target.fit(vectors, cfg.centre, cfg.dim)
    target.save(path)
    log.info(
        "target: the %s teacher's vectors, centre %.2f, %d-D, fitted on %d training crops",
        cfg.teacher,
        cfg.centre,
        cfg.dim,
        len(vectors),
    )
    return target


def sample_vectors(teacher: AnyTeacher, crops: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The teacher's unit vectors of up to ``count`` of ``crops`` (uint8), drawn with ``seed``,
    not augmented: what a :class:`Target` is fitted on."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(crops), min(count, len(crops)), replace=False))
    return np.concatenate(
        [teacher.vectors(teacher.inputs(normalise(crops[pick[i : i + 64]]))) for i in range(0, len(pick), 64)]
    )


class Feeder(Prefetcher):
    """Augmented batches as the student's body takes them (dlib's plan: chips cut from the
    crops; MobileFaceNet's: the crops), with the teacher's vectors made into the ``target``
    (dlib's narrow cone spread out, :func:`facetags.train.data.centre`; projected to the
    student's dimension where it has fewer) and the teacher's taps.

    ``mirror``: the target vector is made from the mean of the teacher's vectors for the input
    and its mirror image (a better teacher than either alone; the taps stay the input's own)."""

    def __init__(
        self,
        crops: np.ndarray,
        sampler: PKSampler,
        teacher: AnyTeacher,
        target: Target,
        strength: float,
        seed: int,
        mix: float = 0.0,
        mirror: bool = False,
    ) -> None:
        self.crops, self.sampler, self.teacher, self.strength = crops, sampler, teacher, strength
        self.target, self.mix, self.mirror = target, mix, mirror
        self.rng = np.random.default_rng(seed)
        super().__init__(depth=3)

    def make(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
        idx = self.sampler.batch()
        x = normalise(augment_batch(self.crops[idx], self.rng, self.strength))
        if self.mix:  # the teacher describes the blends as they are
            x = mix_faces(x, self.rng, self.mix)
        inputs = self.teacher.inputs(x)
        vectors, taps = self.teacher(inputs)
        if self.mirror:
            vectors = (vectors + self.teacher.vectors(inputs[:, :, ::-1])) / 2
        return inputs, self.target(vectors), taps, self.sampler.labels[idx]


#: crops the teacher describes for its mean vector when the cache holds no vectors
MEAN_SAMPLE = 2048


def teacher_mean(train: CropSet, teacher: Teacher, seed: int, sample: int = MEAN_SAMPLE) -> np.ndarray:
    """The teacher's mean vector over the training crops: from the cached vectors, or, for a
    cache built with ``--teacher none``, the teacher's vectors of ``sample`` training crops
    (drawn with ``seed``; their chips cut from the crops, as every batch's are)."""
    if train.teacher is not None:
        return np.asarray(train.teacher.mean(axis=0), np.float32)
    vectors = sample_vectors(teacher, train.crops, sample, seed)
    log.info("teacher mean vector from %d training crops (the cache holds no vectors)", len(vectors))
    return vectors.astype(np.float64).mean(axis=0).astype(np.float32)


def split_held_out(cfg: BlockwiseConfig, data: CropSet) -> tuple[CropSet, CropSet]:
    """(training crops, held-out validation crops) of a run: the people of ``val_names_file``,
    else 150 people drawn with the run's seed."""
    if cfg.val_names_file:
        names = set(json.loads(Path(cfg.val_names_file).read_text(encoding="utf-8")))
        return data.split_people(names)
    return split_validation(data, 150, cfg.seed)


STATE_FILE = "state.npz"


def _save_state(out: Path, epoch: int, step: int, scales: list[float], optimizers: list[Any]) -> None:
    """The optimizers' variables (step counters, moments) and the taps' loss scales after
    checkpoint ``epoch``, replaced atomically: a run killed at any moment resumes from a
    consistent epoch."""
    arrays: dict[str, np.ndarray] = {
        "epoch": np.asarray(epoch),
        "step": np.asarray(step),
        "scales": np.asarray(scales, np.float64),
    }
    for i, opt in enumerate(optimizers):
        for j, var in enumerate(opt.variables):
            arrays[f"opt{i}_{j}"] = np.asarray(var.numpy())
    save_npz_atomic(out / STATE_FILE, **arrays)


def _read_state(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / STATE_FILE) as state:
        return {key: state[key] for key in state.files}


def _restore(state: dict[str, np.ndarray], optimizers: list[Any]) -> None:
    """Put the optimizers' variables saved by :func:`_save_state` back."""
    for i, opt in enumerate(optimizers):
        for j, var in enumerate(opt.variables):
            var.assign(state[f"opt{i}_{j}"])


def read_config(run: Path) -> BlockwiseConfig:
    """The settings a blockwise run was started with (its ``config.json``)."""
    if not (run / "config.json").is_file():
        raise ConfigError(f"{run} is not a 'train blocks' run (no config.json)")
    raw = json.loads((run / "config.json").read_text())
    raw["expand"] = tuple(raw["expand"])
    raw.setdefault("centre", 1.0)  # runs started before --centre existed were fully centred
    return BlockwiseConfig(**raw)  # runs from before --teacher: dlib's plan (the defaults)


def fit_blockwise(
    cfg: BlockwiseConfig, data: CropSet | None = None, *, resume: bool = False, stop_at: int = 0
) -> dict[str, Any]:
    """Train; checkpoints, ``history.json`` (a row per epoch), ``state.npz`` (the optimizers,
    for ``resume``) and ``config.json`` go to ``cfg.out``. Returns the summary with the trained
    ``student`` and the ``history``.

    ``resume``: continue the run in ``cfg.out`` (started with the same ``cfg``) from its last
    complete checkpoint, with its weights, optimizer moments and learning-rate schedule; the
    batches drawn after it differ from those of an uninterrupted run. ``stop_at``: stop after
    the checkpoint at this step (0: at the end), to be resumed later.
    """
    if cfg.mix and cfg.triplet_weight:
        raise ConfigError("a blended face (--mix) has no identity for the triplet term: use one or the other")
    if not 0.0 <= cfg.mix <= 1.0:
        raise ConfigError(f"--mix is a fraction of the batch (0 to 1), not {cfg.mix}")
    if not 0.0 <= cfg.centre <= 1.0:
        raise ConfigError(f"--centre is a fraction of the teacher's mean vector (0 to 1), not {cfg.centre}")
    if stop_at % cfg.steps_per_epoch:
        raise ConfigError(f"stop at a checkpoint step (a multiple of {cfg.steps_per_epoch}), not {stop_at}")
    if cfg.teacher not in TEACHERS:
        raise ConfigError(f"unknown teacher {cfg.teacher!r} (known: {', '.join(TEACHERS)})")
    if not 2 <= cfg.dim <= TEACHER_DIMS[cfg.teacher]:
        raise ConfigError(
            f"--dim {cfg.dim}: from 2 to the {cfg.teacher} teacher's {TEACHER_DIMS[cfg.teacher]} dimensions"
        )
    if cfg.teacher == "mobilefacenet" and len(cfg.expand) != len(DEFAULT_EXPAND):
        raise ConfigError(
            f"--expand {','.join(map(str, cfg.expand))}: the MobileFaceNet plan takes {len(DEFAULT_EXPAND)} "
            "expansions (its runs of blocks: 56->28, 28x28, 28->14, 14x14, 14->7, 7x7)"
        )
    set_seeds(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state: dict[str, np.ndarray] = {}
    if resume:
        if read_config(out) != cfg:
            raise ConfigError(f"{out} was started with other settings (its config.json)")
        if not (out / STATE_FILE).is_file():
            raise ConfigError(
                f"{out} has no {STATE_FILE} (no checkpoint yet, or an older run): nothing to resume"
            )
        state = _read_state(out)
    else:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    start = int(state["step"]) if state else 0
    if 0 < stop_at <= start:
        raise ConfigError(f"the run is already at step {start}: nothing to do before step {stop_at}")
    if data is None:
        data = load_cache(Path(cfg.cache), limit_shards=cfg.limit_shards or None)
    train, held = split_held_out(cfg, data)
    refuse_held_out(train.names, cfg.cache)
    pairs, same = validation_pairs(held.labels, cfg.val_pairs, cfg.seed)
    teacher = make_teacher(cfg.teacher)
    student = make_student(cfg, teacher.plan())
    log.info("student: %d parameters, %d blocks", student.params(), len(student.blocks))
    if cfg.init_from and not resume:
        student.model.load_weights(cfg.init_from)
    # centre the teacher's vectors (dlib's narrow cone) with the mean over the training crops
    # (a fraction of it: taking all of it off costs the target itself accuracy, see the model
    # card); a teacher with more dimensions than the student: projected (Target)
    target = run_target(cfg, teacher, train, out, resume)
    # a resumed run draws new batches (seeded by its step), not the first ones again
    sampler = PKSampler(train.labels, cfg.p, cfg.k, cfg.u, cfg.seed + start)
    feeder = Feeder(
        train.crops, sampler, teacher, target, cfg.augment, cfg.seed + start, cfg.mix, cfg.mirror_target
    )
    if state:
        scales = [float(v) for v in state["scales"]]
    else:
        _, _, taps, _ = feeder.get()
        scales = [float(np.mean(t**2)) for t in taps]
    n_pk = cfg.p * cfg.k
    total = cfg.blockwise_steps + cfg.chained_steps

    def schedule(lr: float, steps: int) -> Any:
        warm = min(200, max(1, steps // 10))
        return keras.optimizers.schedules.CosineDecay(
            lr * 0.05, steps, alpha=0.02, warmup_target=lr, warmup_steps=warm
        )

    opt1 = keras.optimizers.AdamW(
        schedule(cfg.lr, max(1, cfg.blockwise_steps)), weight_decay=cfg.weight_decay
    )
    opt2 = keras.optimizers.AdamW(
        schedule(cfg.chained_lr, max(1, cfg.chained_steps)), weight_decay=cfg.weight_decay
    )
    variables = student.model.trainable_variables
    opt1.build(variables)
    opt2.build(variables)
    history: list[dict[str, float]] = []
    if state:
        _restore(state, [opt1, opt2])
        epoch = int(state["epoch"])
        student.model.load_weights(weights_file(out, f"epoch_{epoch:03d}"))
        history = read_history(out)[:epoch]
        log.info("resuming %s at step %d (epoch %d)", out, start, epoch)
    triplet = TRIPLET["batch-hard"]

    def tap_losses(acts: list[tf.Tensor], targets: list[tf.Tensor]) -> tf.Tensor:
        return tf.add_n(
            [tf.reduce_mean(tf.square(a - t)) / s for a, t, s in zip(acts, targets, scales, strict=True)]
        ) / len(scales)

    @tf.function(reduce_retracing=True)
    def step_blockwise(
        chips: tf.Tensor, vec: tf.Tensor, targets: list[tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            acts = [student.stem(chips, training=True)]
            acts += [b(targets[i], training=True) for i, b in enumerate(student.blocks)]
            emb = student.head(targets[-1], training=True)
            taps_loss = tap_losses(acts, targets)
            distill = cosine_distill(emb, vec)
            loss = cfg.tap_weight * taps_loss + cfg.distill_weight * distill
        opt1.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return taps_loss, distill

    @tf.function(reduce_retracing=True)
    def step_chained(
        chips: tf.Tensor, vec: tf.Tensor, targets: list[tf.Tensor], labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            acts, emb = student.chained(chips, training=True)
            taps_loss = tap_losses(acts, targets)
            distill = cosine_distill(emb, vec) + cfg.relational_weight * relational_distill(emb, vec)
            trip = triplet(emb[:n_pk], labels[:n_pk], cfg.margin)
            loss = cfg.tap_weight * taps_loss + cfg.distill_weight * distill + cfg.triplet_weight * trip
        opt2.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return taps_loss, distill, trip

    best = max((row["val_accuracy"] for row in history), default=-1.0)
    sums: dict[str, float] = {}
    started = time.time() - (history[-1]["minutes"] * 60 if history else 0.0)
    try:
        for step in range(start + 1, total + 1):
            chips, vec, taps, labels = feeder.get()
            targets = [tf.constant(t) for t in taps]
            if step <= cfg.blockwise_steps:
                tl, dl = step_blockwise(tf.constant(chips), tf.constant(vec), targets)
                parts = {"taps": float(tl), "distill": float(dl)}
            else:
                tl, dl, tr = step_chained(tf.constant(chips), tf.constant(vec), targets, tf.constant(labels))
                parts = {"taps": float(tl), "distill": float(dl), "triplet": float(tr)}
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            if step % cfg.steps_per_epoch == 0 or step == total:
                n = cfg.steps_per_epoch if step % cfg.steps_per_epoch == 0 else step % cfg.steps_per_epoch
                acc, _ = pair_accuracy(embed(student.model, held.crops), pairs, same)
                row = {"step": step, "val_accuracy": acc, "minutes": (time.time() - started) / 60}
                row.update({k: v / n for k, v in sums.items()})
                history.append(row)
                sums = {}
                epoch = len(history)
                improved = acc > best
                if improved:
                    best = acc
                # history first: it may run ahead of state.npz (resume cuts it back), never behind
                save_checkpoint(student.model, out, epoch, improved, history)
                _save_state(out, epoch, step, scales, [opt1, opt2])
                log.info("epoch %d (step %d): %s", epoch, step, json.dumps(row))
                if step == stop_at:
                    break
    finally:
        feeder.close()
    return {
        "best_val_accuracy": best,
        "epochs": len(history),
        "parameters": student.params(),
        "history": history,
        "student": student,
    }


def load_blockwise(run: Path, which: str = "best") -> tuple[Student | MfnStudent, BlockwiseConfig]:
    """A blockwise run's student with the weights of checkpoint ``which`` (best, last, epoch_NNN)."""
    cfg = read_config(run)
    student = make_student(cfg, make_teacher(cfg.teacher).plan())
    student.model.load_weights(weights_file(run, which))
    return student, cfg


def best_epoch(history: list[dict[str, Any]]) -> int:
    """The epoch (1-based) whose weights ``best.weights.h5`` holds: the first with the highest
    validation accuracy, as :func:`fit_blockwise` saves only on a strict improvement."""
    accs = [row["val_accuracy"] for row in history]
    return accs.index(max(accs)) + 1


def is_blockwise_run(run: Path) -> bool:
    config = run / "config.json"
    return config.is_file() and "blockwise_steps" in json.loads(config.read_text())
