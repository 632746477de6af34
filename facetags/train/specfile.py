"""The one writer of a trained model's spec json (``<file stem>.json`` beside the ONNX file).

Every training step that writes a model file ('train export', 'quantize', 'restem', the
MobileFaceNet teacher) calls :func:`write_spec`: the file's name, hash and size always come from
the file itself.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from facetags.vision.specs import ModelSpec, sha256_file


def write_spec(path: Path, spec: ModelSpec, extra: dict[str, object]) -> ModelSpec:
    """``spec`` for the model file ``path`` with ``extra``, its name, sha256 and ``file_bytes``
    taken from the file, written beside it; returns what was written."""
    spec = replace(
        spec, file=path.name, sha256=sha256_file(path), extra={**extra, "file_bytes": path.stat().st_size}
    )
    path.with_suffix(".json").write_text(spec.to_json(), encoding="utf-8")
    return spec
