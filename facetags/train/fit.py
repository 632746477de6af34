"""The training loop: P x K batches, triplet + distillation losses, per-epoch checkpoints.

With ``views`` (``facetags train views``), every batch also holds consistent-teaching views: the
teacher's vector for exactly that image, used for the distillation terms only.

Every epoch ends with a validation pass **in inference mode** (moving BatchNorm statistics,
exactly what the exported ONNX computes) on identities held out of training, and writes
``epoch_NNN.weights.h5``, ``last.weights.h5``, ``best.weights.h5`` and ``history.json`` to
the run folder, so a long run that is stopped can still be exported.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from facetags.train.checkpoints import read_history, save_checkpoint, weights_file
from facetags.train.data import (
    CropSet,
    PKSampler,
    augment_batch,
    built_shards,
    centre,
    format_shards,
    load_cache,
    parse_shards,
    refuse_held_out,
    split_validation,
    validation_pairs,
)
from facetags.train.losses import TRIPLET, cosine_distill, relational_distill
from facetags.train.model import MEAN, STD, ModelConfig, _all_layers, build_model
from facetags.train.views import OnlineViews, load_views, view_shards

log = logging.getLogger(__name__)
#: what needs the cached teacher vectors, for the error a crops-only cache gives
FIT = "'train fit'"


@dataclass
class FitConfig:
    cache: str
    out: str
    epochs: int = 40
    steps_per_epoch: int = 0  # 0: one pass over the crops' count
    p: int = 16
    k: int = 4
    u: int = 64  # crops drawn from anywhere (incl. no-identity faces) for the distillation term
    loss: str = "batch-hard"
    margin: float = 0.3
    triplet_weight: float = 1.0
    distill_weight: float = 1.0
    relational_weight: float = 1.0
    lr: float = 2e-3
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    seed: int = 0
    augment: float = 1.0
    val_people: int = 150
    centre_teacher: bool = True  # dlib's vectors sit in a narrow cone (mean norm ~0.91): centre them
    limit_shards: int = 0  # tests: read only the first N cache shards
    shards: str = ""  # exactly these cache shards ("0-76,80"); "" = every shard built
    val_names_file: str = ""  # hold out exactly these people (json list), e.g. a first stage's
    init_from: str = ""  # start from these weights (a previous run's .weights.h5): a second stage
    grow: bool = False  # pick up shards a concurrent 'train prepare' adds, at each epoch start
    views: str = ""  # consistent-teaching views folder ('train views'); re-read at each epoch start
    view_batch: int = 0  # views per batch (distillation only, not augmented again)
    online_views: int = 0  # fresh views per batch, described by the teacher as they are made
    consistent_teacher: bool = False  # the teacher describes each augmented crop, not the clean one
    model: ModelConfig = field(default_factory=ModelConfig)


def set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.keras.utils.set_random_seed(seed)


def normalise(crops: np.ndarray) -> np.ndarray:
    return (crops.astype(np.float32) - MEAN) / STD


def embed(model: tf.keras.Model, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    """Inference-mode embeddings (moving BN statistics), as the exported model computes them."""
    out = [
        model(normalise(crops[i : i + batch]), training=False).numpy() for i in range(0, len(crops), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


def pair_accuracy(emb: np.ndarray, pairs: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(best-threshold accuracy, threshold) of cosine similarity over the pairs."""
    sims = np.sum(emb[pairs[:, 0]] * emb[pairs[:, 1]], axis=1)
    best, thr = 0.0, 0.0
    for t in np.unique(sims):
        acc = float(np.mean((sims >= t) == same))
        if acc > best:
            best, thr = acc, float(t)
    return best, thr


def recalibrate_bn(
    model: tf.keras.Model, crops: np.ndarray, batches: int = 50, batch: int = 128, seed: int = 0
) -> None:
    """Re-estimate every BatchNorm's moving statistics as the plain average over ``batches``
    training batches (momentum i/(i+1) at step i), leaving the weights untouched."""
    rng = np.random.default_rng(seed)
    bns = [layer for layer in _all_layers(model) if isinstance(layer, tf.keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    try:
        for i in range(batches):
            for layer in bns:
                layer.momentum = i / (i + 1.0)
            idx = rng.integers(0, len(crops), batch)
            model(normalise(crops[idx]), training=True)
    finally:
        for layer, m in zip(bns, saved, strict=True):
            layer.momentum = m


class Prefetcher:
    """Makes batches in a background thread (numpy, PIL and onnxruntime release the GIL) into a
    queue of ``depth``; subclasses set their fields, then call this ``__init__``, and define
    :meth:`make`."""

    def __init__(self, depth: int) -> None:
        self.q: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def make(self) -> Any:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.make()
            while not self._stop.is_set():
                try:
                    self.q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def get(self) -> Any:
        return self.q.get()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class BatchFeeder(Prefetcher):
    """Augmented P x K batches (with views, online views or the teacher on each augmented crop)."""

    def __init__(
        self,
        data: CropSet,
        sampler: PKSampler,
        strength: float,
        seed: int,
        depth: int = 4,
        views: tuple[np.ndarray, np.ndarray] | None = None,
        view_batch: int = 0,
        online: OnlineViews | None = None,
        online_batch: int = 0,
        consistent: bool = False,
    ) -> None:
        self.data, self.sampler, self.strength = data, sampler, strength
        self.views, self.view_batch = views, view_batch
        self.online, self.online_batch = online, online_batch
        # with ``consistent``, the teacher describes each augmented crop (else: the cache's vector)
        self.teach_augmented = online if consistent else None
        self.rng = np.random.default_rng(seed + 1)
        super().__init__(depth)

    def make(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.sampler.batch()
        augmented = augment_batch(self.data.crops[idx], self.rng, self.strength)
        x = normalise(augmented)
        labels = self.data.labels[idx].copy()
        labels[self.sampler.p * self.sampler.k :] = -1  # extra crops: distillation only
        teach = self.teach_augmented
        teacher = teach.describe(augmented) if teach is not None else self.data.vectors(FIT)[idx]
        views = self.views  # swapped whole by set_views() while this thread runs
        if views is not None and self.view_batch and len(views[0]):
            # views carry the teacher's answer for exactly that view: no further augmentation
            pick = self.rng.integers(0, len(views[0]), self.view_batch)
            x = np.concatenate([x, normalise(views[0][pick])])
            teacher = np.concatenate([teacher, views[1][pick]])
            labels = np.concatenate([labels, np.full(self.view_batch, -1, labels.dtype)])
        if self.online is not None and self.online_batch:
            crops, vectors = self.online.make(self.online_batch, self.rng)
            x = np.concatenate([x, normalise(crops)])
            teacher = np.concatenate([teacher, vectors])
            labels = np.concatenate([labels, np.full(self.online_batch, -1, labels.dtype)])
        return x, teacher, labels

    def set_views(self, views: tuple[np.ndarray, np.ndarray]) -> None:
        self.views = views


def fit(cfg: FitConfig, data: CropSet | None = None) -> dict[str, object]:
    """Train; returns the summary written to ``<out>/history.json``."""
    set_seeds(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        if not cfg.shards:
            cfg.shards = format_shards(built_shards(Path(cfg.cache))[: cfg.limit_shards or None])
        data = load_cache(Path(cfg.cache), shards=parse_shards(cfg.shards))
    data.vectors(FIT)  # a cache without the teacher's vectors: one clear error, before any work
    n_crops = len(data)
    if cfg.val_names_file:
        train, val = data.split_people(set(json.loads(Path(cfg.val_names_file).read_text())))
    elif cfg.val_people:
        train, val = split_validation(data, cfg.val_people, cfg.seed)
    else:
        train, val = data, None
    refuse_held_out(train.names, cfg.cache)
    if val is not None:
        (out / "val_people.json").write_text(json.dumps(val.names))
    if cfg.centre_teacher:
        teacher_mean = train.vectors(FIT).mean(axis=0)
        train.teacher = centre(train.vectors(FIT), teacher_mean)
        if val is not None:
            val.teacher = centre(val.vectors(FIT), teacher_mean)
    log.info(
        "training on %d crops (%d people), validating on %d crops (%d people)",
        len(train),
        len(train.names),
        len(val) if val else 0,
        len(val.names) if val else 0,
    )
    sampler = PKSampler(train.labels, cfg.p, cfg.k, cfg.u, seed=cfg.seed)
    batch_size = cfg.p * cfg.k + cfg.u + (cfg.view_batch if cfg.views else 0) + cfg.online_views
    steps = cfg.steps_per_epoch or sampler.steps_per_epoch(len(train))
    total = steps * cfg.epochs
    warmup = min(int(cfg.warmup_epochs * steps), max(total - 1, 0))
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr * 0.05 if warmup else cfg.lr,
        decay_steps=max(total - warmup, 1),
        alpha=0.01,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = tf.keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay)
    model = build_model(cfg.model)
    if cfg.init_from:
        model.load_weights(cfg.init_from)
        log.info("starting from %s", cfg.init_from)
    triplet_fn = TRIPLET[cfg.loss]
    n_lab = cfg.p * cfg.k
    tw, dw, rw = float(cfg.triplet_weight), float(cfg.distill_weight), float(cfg.relational_weight)

    @tf.function
    def step(x: tf.Tensor, teacher: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            trip = triplet_fn(emb[:n_lab], labels[:n_lab], cfg.margin) if tw else tf.constant(0.0)
            dist = (
                cosine_distill(emb, teacher) + rw * relational_distill(emb, teacher)
                if dw
                else tf.constant(0.0)
            )
            loss = tw * trip + dw * dist
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, trip, dist

    if val is not None and len(val.names) >= 2:
        pairs, same = validation_pairs(val.labels, 600, cfg.seed)
    else:
        pairs, same = np.zeros((0, 2), np.int64), np.zeros(0, bool)
    history: list[dict[str, float]] = []
    best = -1.0
    summary: dict[str, object] = {
        "config": asdict(cfg),
        "batch_size": batch_size,
        "steps_per_epoch": steps,
        "crops": n_crops,
    }
    if cfg.centre_teacher:
        summary["teacher_mean"] = [float(v) for v in teacher_mean]
    views_used: list[int] = []

    def read_views() -> tuple[np.ndarray, np.ndarray]:
        """The views built so far (a concurrent 'train views' may still be adding shards)."""
        nonlocal views_used
        crops, vecs, numbers = load_views(Path(cfg.views))
        if cfg.centre_teacher and len(vecs):
            vecs = centre(vecs, teacher_mean)
        if numbers != views_used:
            views_used = numbers
            summary["view_shards"] = format_shards(numbers)
            log.info("%d consistent-teaching views (%d shards)", len(crops), len(numbers))
        return crops, vecs

    views = read_views() if cfg.views and cfg.view_batch else None
    online = None
    if cfg.online_views or cfg.consistent_teacher:  # held-out people are not in ``train``
        online = OnlineViews(train.crops, teacher_mean if cfg.centre_teacher else None)

    def make_feeder(sampler: PKSampler, seed: int) -> BatchFeeder:
        return BatchFeeder(
            train, sampler, cfg.augment, seed, views=views, view_batch=cfg.view_batch,
            online=online, online_batch=cfg.online_views, consistent=cfg.consistent_teacher,
        )  # fmt: skip

    feeder = make_feeder(sampler, cfg.seed)
    used = parse_shards(cfg.shards) if cfg.shards else []
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.time()
            if cfg.grow and cfg.cache and epoch > 1:
                new = sorted(set(built_shards(Path(cfg.cache))) - set(used))
                if new:
                    extra = load_cache(Path(cfg.cache), shards=new)
                    if cfg.centre_teacher:
                        extra.teacher = centre(extra.vectors(FIT), teacher_mean)
                    held_names = set(val.names) if val is not None else set()
                    train = merge(train, extra, exclude=held_names)
                    used = sorted(set(used) | set(new))
                    cfg.shards = format_shards(used)
                    summary["config"] = asdict(cfg)
                    grown = summary.setdefault("grown", [])
                    assert isinstance(grown, list)
                    grown.append({"epoch": epoch, "shards": format_shards(new)})
                    log.info(
                        "epoch %d: +%d shards, now %d crops (%d people)",
                        epoch,
                        len(new),
                        len(train),
                        len(train.names),
                    )
                    feeder.close()
                    sampler = PKSampler(train.labels, cfg.p, cfg.k, cfg.u, seed=cfg.seed + epoch)
                    feeder = make_feeder(sampler, cfg.seed + epoch)
            if views is not None and epoch > 1 and view_shards(Path(cfg.views)) != views_used:
                views = read_views()
                feeder.set_views(views)
            sums = np.zeros(3)
            for _ in range(steps):
                x, teacher, labels = feeder.get()
                sums += [float(v) for v in step(x, teacher, labels)]
            row: dict[str, float] = {
                "epoch": epoch,
                "loss": sums[0] / steps,
                "triplet": sums[1] / steps,
                "distill": sums[2] / steps,
                "seconds": time.time() - t0,
            }
            if len(pairs):
                emb = embed(model, val.crops)  # type: ignore[union-attr]
                row["val_acc"], row["val_thr"] = pair_accuracy(emb, pairs, same)
                row["val_teacher_cos"] = float(np.mean(np.sum(emb * val.teacher, axis=1)))  # type: ignore[union-attr]
            history.append(row)
            log.info("epoch %d: %s", epoch, " ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
            score = row.get("val_acc", -row["loss"])
            improved = score >= best
            if improved:
                best = score
                summary["best_epoch"] = epoch
            summary["history"] = history
            save_checkpoint(model, out, epoch, improved, summary)
    finally:
        feeder.close()
    summary["model"] = model
    return summary


def merge(a: CropSet, b: CropSet, exclude: set[str]) -> CropSet:
    """``a`` + ``b`` with identities matched by name; people in ``exclude`` dropped from ``b``."""
    keep = np.asarray([not (it.identity and it.identity in exclude) for it in b.items], bool)
    b = b.subset(keep)
    names = sorted(set(a.names) | set(b.names))
    lookup = {n: k for k, n in enumerate(names)}

    def relabel(c: CropSet) -> np.ndarray:
        return np.asarray([lookup[c.names[v]] if v >= 0 else -1 for v in c.labels], np.int32)

    return CropSet(
        np.concatenate([a.crops, b.crops]),
        np.concatenate([a.vectors(FIT), b.vectors(FIT)]),
        np.concatenate([relabel(a), relabel(b)]),
        names,
        a.items + b.items,
    )


def average_checkpoints(model: tf.keras.Model, run: Path, last: int, count: int) -> list[int]:
    """Load into ``model`` the mean of the weights of epochs ``last - count + 1 .. last`` (an
    average of the end of the run's trajectory; BatchNorm statistics need re-estimating after).
    Returns the epochs averaged."""
    epochs = [e for e in range(last - count + 1, last + 1) if weights_file(run, f"epoch_{e:03d}").is_file()]
    if not epochs:
        raise FileNotFoundError(f"{run}: no epoch checkpoints up to {last}")
    total: list[np.ndarray] | None = None
    for e in epochs:
        model.load_weights(weights_file(run, f"epoch_{e:03d}"))
        weights = [w.astype(np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights, strict=True)]
    assert total is not None
    model.set_weights([(t / len(epochs)).astype(np.float32) for t in total])
    return epochs


def load_trained(run: Path, which: str = "best") -> tuple[tf.keras.Model, FitConfig]:
    """Rebuild the model of a run folder and load its ``best``/``last``/``epoch_NNN`` weights."""
    meta = read_history(run)
    conf = dict(meta["config"])
    conf["model"] = ModelConfig(**conf["model"])
    cfg = FitConfig(**conf)
    model = build_model(cfg.model)
    model.load_weights(weights_file(run, which))
    return model, cfg
