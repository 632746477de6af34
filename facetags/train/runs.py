"""Export a training run: load its checkpoint ('train fit' or 'train blocks'), its training and
held-out crops, re-estimate BatchNorm, write the ONNX file and spec, and check the file.

``facetags train export`` and ``train all`` call :func:`export_run`; TensorFlow is imported only
when a run is loaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facetags.train.checkpoints import read_history
from facetags.train.data import CropSet


@dataclass(frozen=True)
class ExportPlan:
    """What to export from a run, and how."""

    out: Path  # folder for the ONNX file and its spec json
    model_id: str
    which: str = "best"  # best, last or epoch_NNN
    recalibrate: int = 100  # BatchNorm re-estimation batches (0: off)
    flip: bool = False  # flip test-time augmentation inside the graph
    average: int = 1  # average this many epoch checkpoints ending at ``which``
    fp16: bool = False  # float16 weights


@dataclass
class LoadedRun:
    """A run's model at one checkpoint, the crops it trained and validated on, and what the
    spec records of it."""

    model: Any  # a tf.keras.Model
    train_set: CropSet
    val_set: CropSet
    record: dict[str, object]
    seed: int


@dataclass(frozen=True)
class ExportResult:
    """The exported file's id and hash, how far onnxruntime is from TensorFlow, and its accuracy
    on the run's held-out validation pairs (None without held-out people)."""

    model: str
    sha256: str
    max_abs_diff_vs_tf: float
    val_acc: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def epoch_of(which: str, rows: list[dict[str, Any]], best_epoch: int) -> int:
    """The epoch number (1-based) of checkpoint ``which`` of a run with these history rows."""
    if which == "best":
        return best_epoch
    if which.startswith("epoch_"):
        return int(which.removeprefix("epoch_"))
    return len(rows)


def load_fit_run(run: Path, which: str, average: int = 1) -> LoadedRun:
    """A 'train fit' run's model (``average``: weights averaged over checkpoints), its training
    and held-out crops, and what the spec records of it."""
    from facetags.train.data import load_cache, parse_shards, split_validation
    from facetags.train.fit import average_checkpoints, load_trained

    model, cfg = load_trained(run, which)
    history = read_history(run)
    averaged: list[int] = []
    if average > 1:
        rows = history.get("history", [])
        averaged = average_checkpoints(model, run, epoch_of(which, rows, int(history["best_epoch"])), average)
    # the same shards the run trained on (a cache may have grown since)
    data = load_cache(Path(cfg.cache), shards=parse_shards(cfg.shards) if cfg.shards else None)
    held_file = run / "val_people.json"
    if held_file.is_file():
        train_set, val_set = data.split_people(set(json.loads(held_file.read_text())))
    else:
        train_set, val_set = split_validation(data, cfg.val_people, cfg.seed)
    arch = "V3-Small" if cfg.model.arch == "v3s" else "V2"
    record = {
        "architecture": f"MobileNet{arch} alpha {cfg.model.alpha}, {cfg.model.head} head, Dense128+BN+L2",
        "epochs": len(history.get("history", [])),
        **({"averaged_epochs": averaged} if averaged else {}),
        "training": {k: v for k, v in history["config"].items() if k not in ("cache", "out")},
    }
    return LoadedRun(model, train_set, val_set, record, cfg.seed)


def load_blockwise_run(run: Path, which: str, average: int = 1) -> LoadedRun:
    """A 'train blocks' run's student (``average``: weights averaged over checkpoints), its
    training and held-out crops, and what the spec records of it."""
    from facetags.train.blockwise import best_epoch, load_blockwise, split_held_out
    from facetags.train.data import load_cache
    from facetags.train.fit import average_checkpoints

    student, cfg = load_blockwise(run, which)
    history = read_history(run)
    averaged: list[int] = []
    if average > 1:
        last = epoch_of(which, history, best_epoch(history))
        averaged = average_checkpoints(student.model, run, last, average)
    data = load_cache(Path(cfg.cache), limit_shards=cfg.limit_shards or None)
    train_set, val_set = split_held_out(cfg, data)
    if cfg.teacher == "mobilefacenet":
        architecture = (
            f"MobileNetV2 inverted residuals (3x3 depthwise, ReLU) on MobileFaceNet's plan: stem "
            f"({cfg.stem_width} channels), 15 blocks (expansions {','.join(map(str, cfg.expand))}), "
            f"1x1 to 512, global depthwise 7x7, Dense{cfg.dim}, L2"
        )
    else:
        architecture = (
            "MobileNetV2 inverted residuals (5x5 depthwise) on dlib's ResNet plan: fixed 112->150 "
            f"chip resampling, stem, 14 blocks, GAP, Dense{cfg.dim}, L2"
        )
    record = {
        "architecture": architecture,
        "epochs": len(history),
        **({"averaged_epochs": averaged} if averaged else {}),
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("cache", "out")},
    }
    return LoadedRun(student.model, train_set, val_set, record, cfg.seed)


def load_run(run: Path, which: str, average: int = 1) -> LoadedRun:
    """Either kind of run, told apart by its files."""
    from facetags.train.blockwise import is_blockwise_run

    if is_blockwise_run(run):
        return load_blockwise_run(run, which, average)
    return load_fit_run(run, which, average)


def write_model(loaded: LoadedRun, plan: ExportPlan) -> ExportResult:
    """Re-estimate BatchNorm statistics, export, check onnxruntime against TensorFlow, and measure
    the exported file on the run's held-out validation pairs."""
    from facetags.train.data import validation_pairs
    from facetags.train.export import export, exported_embedder, max_abs_diff
    from facetags.train.fit import pair_accuracy, recalibrate_bn

    model = loaded.model
    if plan.recalibrate:
        recalibrate_bn(model, loaded.train_set.crops, batches=plan.recalibrate, seed=loaded.seed)
    extra = {
        **loaded.record,
        "parameters": int(model.count_params()),
        "checkpoint": plan.which,
        "bn_recalibrated_batches": plan.recalibrate,
    }
    out = Path(plan.out)
    spec = export(model, out, plan.model_id, extra=extra, flip=plan.flip, fp16_weights=plan.fp16)
    diff = max_abs_diff(model, out / spec.file, loaded.train_set.crops[:64], flip=plan.flip)
    val_acc = None
    val_set = loaded.val_set
    if len(val_set):  # the exported file on the same held-out pairs as the run's validation
        runtime = exported_embedder(out, spec)
        pairs, same = validation_pairs(val_set.labels, 600, loaded.seed)
        val_acc = pair_accuracy(runtime.embed(val_set.crops), pairs, same)[0]
    return ExportResult(spec.id, spec.sha256, diff, val_acc)


def export_run(run: Path, plan: ExportPlan) -> ExportResult:
    """Load ``run`` at ``plan.which`` and export it as ``plan`` says."""
    return write_model(load_run(run, plan.which, plan.average), plan)
