"""ONNX models written as protobuf bytes, without the ``onnx`` package.

facetags builds MTCNN's and dlib's networks in memory (:mod:`facetags.vision.mtcnn`,
:mod:`facetags.vision.dlib_onnx`) and hands them to onnxruntime, which reads the serialised
``ModelProto``. Importing ``onnx`` to build them cost ~0.7 s of CPU in every process that loads
the detector (nearly all of it ``ml_dtypes``, which ``onnx.helper`` imports); writing the few
messages those builders need takes a page.

The API follows ``onnx.helper``: :func:`node`, :func:`tensor`, :func:`value_info`, :func:`graph`
and :func:`model` each return the serialised message as bytes, and each one's fields are written
in field-number order, repeated scalars unpacked (``onnx.proto`` is proto2 and declares none of
the fields used here packed), so the bytes equal what ``onnx.helper`` + ``SerializeToString()``
give for the same graph (``tests/test_onnxgraph.py`` checks it). Only what the builders use is
here: node attributes of type int, float, string, ints and floats; float32 and int64
initializers as ``raw_data``; tensor value infos with fixed and symbolic dimensions.

Field numbers are those of onnx's ``onnx/onnx.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NewType

import numpy as np

Node = NewType("Node", bytes)
Tensor = NewType("Tensor", bytes)
ValueInfo = NewType("ValueInfo", bytes)
Graph = NewType("Graph", bytes)

#: ``TensorProto.DataType`` values
FLOAT = 1
INT64 = 7
_DATA_TYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.int64): INT64}

# ``AttributeProto.AttributeType`` values
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 6, 7

AttributeValue = int | float | str | Sequence[int] | Sequence[float]

_VARINT, _FIXED32, _LENGTH = 0, 5, 2  # protobuf wire types


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # an int64 below zero is written as its 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _int(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(value)


def _float(field: int, value: float) -> bytes:
    return _key(field, _FIXED32) + struct.pack("<f", value)


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, _LENGTH) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def _attribute(name: str, value: AttributeValue) -> bytes:
    """An ``AttributeProto``: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20."""
    head = _str(1, name)
    if isinstance(value, bool):
        raise TypeError(f"attribute {name}: write a bool as 0 or 1")
    if isinstance(value, int):
        return head + _int(3, value) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return head + _float(2, value) + _int(20, _ATTR_FLOAT)
    if isinstance(value, str):
        return head + _str(4, value) + _int(20, _ATTR_STRING)
    items = list(value)
    if items and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return head + b"".join(_int(8, int(v)) for v in items) + _int(20, _ATTR_INTS)
    if items and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        return head + b"".join(_float(7, float(v)) for v in items) + _int(20, _ATTR_FLOATS)
    raise TypeError(f"attribute {name}: {value!r} is not an int, float, string or a list of numbers")


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attributes: AttributeValue) -> Node:
    """A ``NodeProto`` (input 1, output 2, op_type 4, attribute 5), attributes sorted by name as
    ``onnx.helper.make_node`` sorts them."""
    return Node(
        b"".join(_str(1, name) for name in inputs)
        + b"".join(_str(2, name) for name in outputs)
        + _str(4, op_type)
        + b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attributes.items()))
    )


def tensor(name: str, array: np.ndarray) -> Tensor:
    """A ``TensorProto`` (dims 1, data_type 2, name 8, raw_data 9) holding ``array``, float32 or
    int64, as little-endian ``raw_data``."""
    data_type = _DATA_TYPES.get(array.dtype.newbyteorder("="))
    if data_type is None:
        raise TypeError(f"initializer {name}: dtype {array.dtype} (only float32 and int64 are written)")
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return Tensor(
        b"".join(_int(1, d) for d in array.shape) + _int(2, data_type) + _str(8, name) + _bytes(9, raw)
    )


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> ValueInfo:
    """A ``ValueInfoProto`` (name 1, type 2) for a tensor of ``elem_type`` (``TypeProto.Tensor``:
    elem_type 1, shape 2); each dimension a size (``dim_value`` 1) or a name (``dim_param`` 2)."""
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return ValueInfo(_str(1, name) + _bytes(2, _bytes(1, tensor_type)))


def graph(
    nodes: Sequence[Node],
    name: str,
    inputs: Sequence[ValueInfo],
    outputs: Sequence[ValueInfo],
    initializer: Sequence[Tensor] = (),
) -> Graph:
    """A ``GraphProto``: node 1, name 2, initializer 5, input 11, output 12."""
    return Graph(
        b"".join(_bytes(1, n) for n in nodes)
        + _str(2, name)
        + b"".join(_bytes(5, t) for t in initializer)
        + b"".join(_bytes(11, v) for v in inputs)
        + b"".join(_bytes(12, v) for v in outputs)
    )


def model(graph: Graph, *, opset: int, ir_version: int, producer_name: str) -> bytes:
    """A serialised ``ModelProto`` (ir_version 1, producer_name 2, graph 7, opset_import 8) that
    imports the default domain ``""`` at ``opset`` (``OperatorSetIdProto``: domain 1, version 2)."""
    return (
        _int(1, ir_version)
        + _str(2, producer_name)
        + _bytes(7, graph)
        + _bytes(8, _str(1, "") + _int(2, opset))
    )
