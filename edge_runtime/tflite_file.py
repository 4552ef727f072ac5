"""A small, bounds-checked reader for the parts of a TFLite flatbuffer the runtime needs.

It reads the structure without any TFLite package: the operator codes (to find custom ops such
as ``edgetpu-custom-op``), the subgraphs' tensor and operator tables, and the metadata entries.
Every offset is checked against the file size, so a truncated or corrupted file raises
:class:`TFLiteFormatError` instead of reaching an interpreter that may trust it blindly.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_MAX_ELEMENTS = 1 << 26  # no real model has a vector this long; a corrupted length does


class TFLiteFormatError(ValueError):
    """The bytes are not a well-formed TFLite flatbuffer."""


@dataclass(frozen=True)
class OperatorCode:
    builtin_code: int
    custom_code: str
    version: int


@dataclass(frozen=True)
class SubgraphInfo:
    name: str
    num_tensors: int
    num_operators: int
    opcode_indices: tuple[int, ...]
    variable_tensors: int


@dataclass(frozen=True)
class TFLiteFileInfo:
    """What the flatbuffer itself says, before any interpreter sees it."""

    schema_version: int
    description: str
    operator_codes: tuple[OperatorCode, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    metadata: dict[str, bytes]

    @property
    def custom_ops(self) -> tuple[str, ...]:
        return tuple(sorted({c.custom_code for c in self.operator_codes if c.custom_code}))

    @property
    def edgetpu_compiled(self) -> bool:
        return EDGETPU_CUSTOM_OP in self.custom_ops

    @property
    def stateful(self) -> bool:
        """True for models that keep state between invocations (variable tensors or resource
        variables: VAR_HANDLE = builtin 142)."""
        uses_var_handle = any(c.builtin_code == 142 for c in self.operator_codes)
        return uses_var_handle or any(s.variable_tensors for s in self.subgraphs)


class _Reader:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.size = len(data)

    def _check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise TFLiteFormatError(
                f"{what} at byte {pos} (+{length}) lies outside the file ({self.size} bytes): truncated or corrupted"
            )

    def _unpack(self, fmt: str, pos: int, what: str):
        n = struct.calcsize(fmt)
        self._check(pos, n, what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def root(self) -> int:
        return self._unpack("<I", 0, "root offset")

    def field_pos(self, table: int, field: int) -> int:
        """Absolute position of ``field`` in ``table``, or 0 when the field is absent."""
        vtable = table - self._unpack("<i", table, "table")
        vt_size = self._unpack("<H", vtable, "vtable")
        entry = 4 + 2 * field
        if entry + 2 > vt_size:
            return 0
        rel = self._unpack("<H", vtable + entry, "vtable entry")
        return table + rel if rel else 0

    def scalar(self, table: int, field: int, fmt: str, default=0):
        pos = self.field_pos(table, field)
        return self._unpack(fmt, pos, "scalar field") if pos else default

    def indirect(self, table: int, field: int) -> int:
        pos = self.field_pos(table, field)
        return pos + self._unpack("<I", pos, "offset field") if pos else 0

    def vector(self, table: int, field: int, elem_size: int) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        pos = self.indirect(table, field)
        if not pos:
            return 0, 0
        length = self._unpack("<I", pos, "vector length")
        if length > _MAX_ELEMENTS:
            raise TFLiteFormatError(f"vector at byte {pos} claims {length} elements: corrupted")
        self._check(pos + 4, length * elem_size, "vector")
        return pos + 4, length

    def tables(self, table: int, field: int) -> list[int]:
        start, length = self.vector(table, field, 4)
        return [start + 4 * i + self._unpack("<I", start + 4 * i, "table offset") for i in range(length)]

    def string(self, table: int, field: int) -> str:
        pos = self.indirect(table, field)
        if not pos:
            return ""
        length = self._unpack("<I", pos, "string length")
        self._check(pos + 4, length, "string")
        return bytes(self.data[pos + 4 : pos + 4 + length]).decode("utf-8", errors="replace")

    def bytes_vector(self, table: int, field: int) -> bytes:
        start, length = self.vector(table, field, 1)
        return bytes(self.data[start : start + length])


def has_identifier(data: bytes) -> bool:
    return len(data) >= 8 and bytes(data[4:8]) == IDENTIFIER


def read_tflite(data: bytes) -> TFLiteFileInfo:
    """Parse and bounds-check a TFLite flatbuffer; raise :class:`TFLiteFormatError` if malformed."""
    if not has_identifier(data):
        raise TFLiteFormatError("no 'TFL3' file identifier at byte 4: not a TFLite flatbuffer")
    r = _Reader(data)
    model = r.root()
    codes = []
    for code in r.tables(model, 1):
        deprecated = r.scalar(code, 0, "<b")
        builtin = max(deprecated, r.scalar(code, 3, "<i"))
        codes.append(OperatorCode(builtin, r.string(code, 1), r.scalar(code, 2, "<i", 1)))
    buffers = r.tables(model, 4)
    subgraphs = []
    for sg in r.tables(model, 2):
        tensors = r.tables(sg, 0)
        variable = sum(1 for t in tensors if r.scalar(t, 5, "<B"))
        opcode_indices = []
        for op in r.tables(sg, 3):
            index = r.scalar(op, 0, "<I")
            if index >= len(codes):
                raise TFLiteFormatError(
                    f"operator uses opcode index {index} but the model declares {len(codes)} operator codes: corrupted"
                )
            opcode_indices.append(index)
        for t in tensors:
            r.vector(t, 0, 4)  # shape: bounds-checked
            if r.scalar(t, 2, "<I") >= max(len(buffers), 1):
                raise TFLiteFormatError(
                    f"a tensor points at buffer {r.scalar(t, 2, '<I')} but the model has {len(buffers)} buffers: corrupted"
                )
        subgraphs.append(SubgraphInfo(r.string(sg, 4), len(tensors), len(opcode_indices), tuple(opcode_indices), variable))
    metadata = {}
    for entry in r.tables(model, 6):
        name, buffer_index = r.string(entry, 0), r.scalar(entry, 1, "<I")
        if buffer_index < len(buffers):
            metadata[name] = r.bytes_vector(buffers[buffer_index], 0)
    if not subgraphs:
        raise TFLiteFormatError("the model has no subgraphs")
    return TFLiteFileInfo(r.scalar(model, 0, "<I"), r.string(model, 3), tuple(codes), tuple(subgraphs), metadata)
