"""The one checkpoint writer of a training run ('train fit' and 'train blocks').

A run folder holds ``epoch_NNN.weights.h5`` for every epoch, ``last.weights.h5``,
``best.weights.h5`` and ``history.json`` (what each kind of run records of its epochs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from facetags.train.data import replace_atomically

HISTORY_FILE = "history.json"


def weights_file(run: Path, which: str) -> Path:
    """Checkpoint ``which`` (best, last or epoch_NNN) of ``run``."""
    return run / f"{which}.weights.h5"


def save_checkpoint(model: Any, run: Path, epoch: int, best: bool, history: object) -> None:
    """Checkpoint ``epoch`` of ``model`` (a tf.keras.Model): its weights as ``epoch_NNN`` and
    ``last`` (and ``best`` when it is the best so far), then ``history`` as ``history.json``,
    replaced atomically after the weights: a run killed at any moment leaves a whole history
    that never names a checkpoint not written yet."""
    model.save_weights(weights_file(run, f"epoch_{epoch:03d}"))
    model.save_weights(weights_file(run, "last"))
    if best:
        model.save_weights(weights_file(run, "best"))
    replace_atomically(run / HISTORY_FILE, lambda tmp: tmp.write_text(json.dumps(history, indent=1)))


def read_history(run: Path) -> Any:
    """What ``run``'s ``history.json`` holds (a dict for 'train fit', a list of rows for
    'train blocks')."""
    return json.loads((run / HISTORY_FILE).read_text())
