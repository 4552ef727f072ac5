"""A dependency-free look at an ONNX file's top level (a ``ModelProto`` protobuf).

It walks the top-level fields only: enough to tell an ONNX model from other bytes, and to read
``metadata_props``, the producer and the opset without the ``onnx`` package (absent on devices).
"""
from __future__ import annotations

from dataclasses import dataclass

# ModelProto field numbers -> wire types (0 varint, 2 length-delimited)
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_GRAPH, _OPSET, _METADATA = 7, 8, 14


class ONNXFormatError(ValueError):
    """The bytes are not a well-formed ONNX ModelProto."""


@dataclass(frozen=True)
class ONNXFileInfo:
    ir_version: int
    producer: str
    opsets: dict[str, int]
    metadata: dict[str, str]
    graph_bytes: int


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ONNXFormatError(f"varint at byte {pos} runs past the end: truncated or corrupted")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes, known: dict[int, int] | None = None):
    """Yield (field number, wire type, value) over one message; length-delimited values are
    returned as bytes. Unknown wire types or (with ``known``) unknown fields raise."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if known is not None and known.get(number) != wire:
            raise ONNXFormatError(f"unexpected field {number} (wire type {wire}) at byte {pos}: not an ONNX ModelProto")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ONNXFormatError(f"field {number} claims {length} bytes at byte {pos}, past the end of the file: truncated")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ONNXFormatError(f"invalid protobuf wire type {wire} at byte {pos}")
        yield number, wire, value


def _string_pairs(message: bytes, key_field: int, value_field: int) -> tuple[str, str]:
    key = value = ""
    for number, wire, value_bytes in _fields(message):
        if wire == 2 and number == key_field:
            key = bytes(value_bytes).decode("utf-8", errors="replace")
        elif wire == 2 and number == value_field:
            value = bytes(value_bytes).decode("utf-8", errors="replace")
    return key, value


def read_onnx(data: bytes) -> ONNXFileInfo:
    """Check the top level of an ONNX file and read its header fields."""
    ir_version, producer, graph_bytes = 0, "", 0
    opsets: dict[str, int] = {}
    metadata: dict[str, str] = {}
    for number, _wire, value in _fields(data, _MODEL_FIELDS):
        if number == 1:
            ir_version = value
        elif number == 2:
            producer = bytes(value).decode("utf-8", errors="replace")
        elif number == _GRAPH:
            graph_bytes = len(value)
        elif number == _OPSET:
            domain, version = "", 0
            for n, w, v in _fields(value):
                if n == 1 and w == 2:
                    domain = bytes(v).decode("utf-8", errors="replace")
                elif n == 2 and w == 0:
                    version = v
            opsets[domain or "ai.onnx"] = version
        elif number == _METADATA:
            key, text = _string_pairs(value, 1, 2)
            metadata[key] = text
    if not graph_bytes or not ir_version:
        raise ONNXFormatError("no graph or no ir_version: not an ONNX model")
    return ONNXFileInfo(ir_version, producer, opsets, metadata, graph_bytes)
