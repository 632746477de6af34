"""The student embedder: MobileNet (built from scratch) + Dense(128) + L2 normalisation.

TensorFlow is imported here and only under ``facetags/train``. The model takes float32 NHWC
input already normalised as ``(pixel - 127.5) / 128`` (what the exported spec records).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

keras: Any = tf.keras

INPUT_SIZE = 112
MEAN = 127.5
STD = 127.5  # insightface model_zoo normalises with (x - 127.5) / 127.5: identical input


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "v2"  # "v2" (MobileNetV2) or "v3s" (MobileNetV3-Small)
    alpha: float = 0.5
    dim: int = 128
    head: str = "gap"  # "gap" (global average pooling) or "gdc" (global depthwise conv)
    bn_momentum: float = 0.99
    dropout: float = 0.0


def set_bn_momentum(model: Any, momentum: float) -> int:
    """Lower Keras' default BatchNorm momentum (0.999): its moving statistics lag far behind."""
    n = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            n += 1
    return n


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def build_model(cfg: ModelConfig | None = None) -> Any:
    cfg = cfg or ModelConfig()
    shape = (INPUT_SIZE, INPUT_SIZE, 3)
    if cfg.arch == "v2":
        backbone = keras.applications.MobileNetV2(
            input_shape=shape, alpha=cfg.alpha, include_top=False, weights=None
        )
    elif cfg.arch == "v3s":
        backbone = keras.applications.MobileNetV3Small(
            input_shape=shape,
            alpha=cfg.alpha,
            include_top=False,
            weights=None,
            include_preprocessing=False,
            minimalistic=False,
        )
    else:
        raise ValueError(f"unknown arch {cfg.arch!r}")
    inputs = keras.Input(shape=shape, name="input")
    x = backbone(inputs)
    if cfg.head == "gdc":
        k = int(x.shape[1])
        x = keras.layers.DepthwiseConv2D(k, use_bias=False, name="gdc")(x)
        x = keras.layers.BatchNormalization(name="gdc_bn")(x)
        x = keras.layers.Flatten()(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
    if cfg.dropout > 0:
        x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.Dense(cfg.dim, use_bias=False, name="embedding")(x)
    x = keras.layers.BatchNormalization(name="embedding_bn")(x)
    x = keras.layers.UnitNormalization(axis=-1, name="l2")(x)
    model = keras.Model(inputs, x, name=f"facetags_mobilenet_{cfg.arch}")
    set_bn_momentum(model, cfg.bn_momentum)
    return model
