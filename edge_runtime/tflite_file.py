"""A small, bounds-checked reader for the parts of a TFLite flatbuffer the runtime needs.

It reads the structure without any TFLite package: the operator codes (to find custom ops such
as ``edgetpu-custom-op``), the subgraphs' tensor and operator tables, and the metadata entries.
Every offset is checked against the file size, so a truncated or corrupted file raises
:class:`TFLiteFormatError` instead of reaching an interpreter that may trust it blindly.
tflite-runtime 2.14 builds its interpreter without verifying the flatbuffer (LiteRT verifies
it first), so a bad offset there is a segmentation fault: every table, vector and string the
interpreter builder reads is checked here, the way the flatbuffers verifier does.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

IDENTIFIER = b"TFL3"
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_MAX_ELEMENTS = 1 << 26  # no real model has a vector this long; a corrupted length does

# Vectors and strings inside builtin options tables, by options type: (field, element size).
_OPTION_VECTORS = {
    3: ((1, 4), (2, 4)),  # ConcatEmbeddingsOptions
    17: ((0, 4),),  # ReshapeOptions.new_shape
    30: ((0, 4),),  # SqueezeOptions.squeeze_dims
    111: ((0, 1), (1, 1)),  # VarHandleOptions.container, shared_name
    115: ((0, 4),),  # BucketizeOptions.boundaries
}
_OPTION2_VECTORS = {  # builtin_options_2 (StableHLO ops)
    2: ((0, 8),), 3: ((0, 8), (1, 8), (2, 8)),
    4: ((0, 8), (1, 8), (2, 8), (3, 8), (4, 1), (7, 8), (10, 8), (13, 8), (16, 4)),
    5: ((0, 1), (2, 1), (4, 4), (5, 1)), 6: ((0, 8),), 7: ((1, 8), (2, 8), (3, 8)), 9: ((0, 8),),
    10: ((0, 8), (1, 8), (2, 8)), 12: ((0, 8), (1, 8), (2, 8), (3, 8), (4, 4)),
    13: ((0, 8), (1, 8), (2, 8), (3, 8), (4, 8)), 16: ((0, 8), (1, 8), (2, 8), (4, 8)), 17: ((0, 8),),
    21: ((0, 1), (2, 1)), 23: ((0, 4),),
}
_INDEX_VECTOR_FORMATS = {1: "i", 2: "H", 3: "B"}  # sparsity index vectors: Int32Vector, Uint16Vector, Uint8Vector
_ELEMENT_SIZES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}


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
class TensorSize:
    """A tensor's name, shape and the bytes its shape needs."""

    name: str
    shape: tuple[int, ...]
    bytes: int


@dataclass(frozen=True)
class TFLiteFileInfo:
    """What the flatbuffer itself says, before any interpreter sees it. ``largest_tensor`` is the
    tensor whose fixed shape needs the most bytes (None when no tensor has a fixed-size type)."""

    schema_version: int
    description: str
    operator_codes: tuple[OperatorCode, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    metadata: dict[str, bytes]
    largest_tensor: TensorSize | None = None

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
        return self.table(self._unpack("<I", 0, "root offset"), "model table")

    def table(self, pos: int, what: str = "table") -> int:
        """``pos``, once the table there, its vtable and every field the vtable lists are
        known to lie inside the file."""
        vtable = pos - self._unpack("<i", pos, what)
        vt_size = self._unpack("<H", vtable, f"{what} vtable")
        if vt_size < 4 or vt_size % 2:
            raise TFLiteFormatError(f"{what} at byte {pos} has a {vt_size}-byte vtable: corrupted")
        self._check(vtable, vt_size, f"{what} vtable")
        size = self._unpack("<H", vtable + 2, f"{what} vtable")
        self._check(pos, size, what)
        for entry in range(4, vt_size, 2):
            rel = self._unpack("<H", vtable + entry, f"{what} vtable")
            if rel and not 4 <= rel < size:
                raise TFLiteFormatError(f"{what} at byte {pos} has a field at +{rel}, outside its {size} bytes: corrupted")
        return pos

    def subtable(self, table: int, field: int, what: str) -> int:
        """The checked table a field points at, or 0 when the field is absent."""
        pos = self.indirect(table, field)
        return self.table(pos, what) if pos else 0

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

    def tables(self, table: int, field: int, what: str = "table") -> list[int]:
        start, length = self.vector(table, field, 4)
        return [self.table(start + 4 * i + self._unpack("<I", start + 4 * i, "table offset"), what) for i in range(length)]

    def string(self, table: int, field: int) -> str:
        pos = self.indirect(table, field)
        if not pos:
            return ""
        length = self._unpack("<I", pos, "string length")
        self._check(pos + 4, length + 1, "string")  # + its 0 terminator, which C++ readers rely on
        return bytes(self.data[pos + 4 : pos + 4 + length]).decode("utf-8", errors="replace")

    def span(self, table: int, offset_field: int, size_field: int, what: str) -> None:
        """Check data stored outside the flatbuffer (buffers of models over 2 GB, large custom
        options): an absolute offset and size that must lie inside the file."""
        offset, size = self.scalar(table, offset_field, "<Q"), self.scalar(table, size_field, "<Q")
        if offset > 1:
            self._check(offset, size, what)

    def values(self, table: int, field: int, fmt: str) -> tuple:
        """The elements of a vector of scalars (``fmt`` one struct letter); () when absent."""
        start, length = self.vector(table, field, struct.calcsize(fmt))
        return struct.unpack_from(f"<{length}{fmt}", self.data, start) if length else ()

    def bytes_vector(self, table: int, field: int) -> bytes:
        start, length = self.vector(table, field, 1)
        return bytes(self.data[start : start + length])


def _check_tensor(r: _Reader, t: int, buffer_size: int) -> None:
    """The parts of a Tensor table the interpreter builder reads besides shape and buffer."""
    r.string(t, 3)  # name
    r.vector(t, 7, 4)  # shape_signature
    quant = r.subtable(t, 4, "quantization table")
    if quant:
        for field, size in ((0, 4), (1, 4), (2, 4), (3, 8)):  # min, max, scale, zero_point
            r.vector(quant, field, size)
        custom = r.subtable(quant, 5, "custom quantization table") if r.scalar(quant, 4, "<B") == 1 else 0
        if custom:
            r.vector(custom, 0, 1)
    sparsity = r.subtable(t, 6, "sparsity table")
    if sparsity:
        _check_sparsity(r, t, sparsity, buffer_size)
    for variant in r.tables(t, 9, "variant tensor table"):
        r.vector(variant, 0, 4)


# bytes per element of the TensorType enum (schema.fbs) for the types whose constant buffers
# TFLite requires to be exactly shape x size; strings, resources, variants and packed 4/2-bit
# types are left out, as TFLite leaves them out of the same check
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}


def _tensor_bytes(r: _Reader, t: int) -> int | None:
    """The bytes a tensor's shape needs; None for dynamic shapes and types without a fixed size."""
    element = _ELEMENT_BYTES.get(r.scalar(t, 1, "<b"))
    shape = r.values(t, 0, "i")
    return None if element is None or any(d < 0 for d in shape) else math.prod(shape) * element


def _check_constant_size(r: _Reader, t: int, index: int, need: int | None, buffer_size: int) -> None:
    """A constant tensor's buffer must hold exactly the ``need`` bytes its shape needs (TFLite's own rule)."""
    if need is not None and need != buffer_size:
        shape = r.values(t, 0, "i")
        raise TFLiteFormatError(f"constant tensor {index} ({r.string(t, 3)!r}) has shape {list(shape)}, "
                                f"{need:,} bytes, but its buffer holds {buffer_size:,} bytes: corrupted")


def _check_sparsity(r: _Reader, t: int, sparsity: int, buffer_size: int) -> None:
    """A sparse constant is densified when the model loads, by code (in tflite-runtime and LiteRT
    alike) that trusts every index in it: check them the way it walks them."""
    shape = r.values(t, 0, "i")
    order, block_map = r.values(sparsity, 0, "i"), r.values(sparsity, 1, "i")
    dims = r.tables(sparsity, 2, "sparsity dimension table")
    levels = []
    for dim in dims:
        segments = indices = ()
        if r.scalar(dim, 0, "<b") == 1:  # SPARSE_CSR
            for type_field in (2, 4):  # array_segments, array_indices
                fmt = _INDEX_VECTOR_FORMATS.get(r.scalar(dim, type_field, "<B"))
                index_table = r.subtable(dim, type_field + 1, "sparsity index table") if fmt else 0
                if not index_table:
                    raise TFLiteFormatError(f"a sparse dimension of the tensor at byte {t} lacks its index vectors: corrupted")
                if type_field == 2:
                    segments = r.values(index_table, 0, fmt)
                else:
                    indices = r.values(index_table, 0, fmt)
        levels.append((r.scalar(dim, 0, "<b"), r.scalar(dim, 1, "<i"), segments, indices))
    rank = len(shape)
    problem = ""
    if len(order) != len(levels) or sorted(order) != list(range(len(levels))) or len(levels) != rank + len(block_map):
        problem = f"traversal order {list(order)[:8]} does not fit {len(levels)} dimensions of shape {list(shape)}"
    blocked = list(shape)
    for i, d in enumerate(block_map if not problem else ()):
        block = levels[rank + i][1]
        if not 0 <= d < rank or block <= 0 or blocked[d] % block:
            problem = f"block map {list(block_map)} does not fit shape {list(shape)}"
            break
        blocked[d] //= block
    positions = 1
    for level, (fmt, dense_size, segments, indices) in enumerate(levels if not problem else ()):
        size = blocked[order[level]] if order[level] < rank else levels[order[level]][1]
        if fmt == 0:  # DENSE
            if not 0 <= dense_size <= size:
                problem = f"dense size {dense_size} of level {level} exceeds its dimension ({size})"
                break
            positions *= dense_size
            continue
        used = segments[: positions + 1]
        if len(used) < positions + 1 or min(used) < 0 or max(used) > len(indices):
            problem = f"level {level} has {len(segments)} segments for {positions} positions and {len(indices)} indices"
            break
        walked = indices[: max(used)]
        if walked and (min(walked) < 0 or max(walked) >= size):
            problem = f"an index of level {level} lies outside its dimension ({size})"
            break
        positions = max(used)
    element = _ELEMENT_SIZES.get(r.scalar(t, 1, "<b"))
    if not problem and element and positions * element > buffer_size:
        problem = f"it lists {positions} values but its buffer holds {buffer_size} bytes"
    if problem:
        raise TFLiteFormatError(f"sparse tensor {r.string(t, 3)!r}: {problem}: corrupted")


def _check_operator(r: _Reader, op: int) -> None:
    """The vectors and options tables of an Operator table."""
    for field, size in ((1, 4), (2, 4), (5, 1), (7, 1), (8, 4)):  # inputs, outputs, custom options, mutating, intermediates
        r.vector(op, field, size)
    r.span(op, 9, 10, "large custom options")
    for type_field, known in ((3, _OPTION_VECTORS), (11, _OPTION2_VECTORS)):
        options = r.subtable(op, type_field + 1, "operator options table")
        if options:
            for field, size in known.get(r.scalar(op, type_field, "<B"), ()):
                r.vector(options, field, size)


def _check_signatures(r: _Reader, model: int, num_subgraphs: int) -> None:
    for signature in r.tables(model, 7, "signature table"):
        r.string(signature, 2)  # signature_key
        r.string(signature, 3)  # deprecated_tag
        index = r.scalar(signature, 4, "<I")
        if index >= num_subgraphs:
            raise TFLiteFormatError(
                f"a signature names subgraph {index} but the model has {num_subgraphs} subgraphs: corrupted"
            )
        for field in (0, 1):
            for tensor_map in r.tables(signature, field, "signature tensor table"):
                if not r.field_pos(tensor_map, 0):
                    raise TFLiteFormatError(f"a signature tensor at byte {tensor_map} has no name: corrupted")
                r.string(tensor_map, 0)


def has_identifier(data: bytes) -> bool:
    return len(data) >= 8 and bytes(data[4:8]) == IDENTIFIER


def read_tflite(data: bytes) -> TFLiteFileInfo:
    """Parse and bounds-check a TFLite flatbuffer; raise :class:`TFLiteFormatError` if malformed."""
    if not has_identifier(data):
        raise TFLiteFormatError("no 'TFL3' file identifier at byte 4: not a TFLite flatbuffer")
    r = _Reader(data)
    model = r.root()
    codes = []
    for code in r.tables(model, 1, "operator code table"):
        deprecated = r.scalar(code, 0, "<b")
        builtin = max(deprecated, r.scalar(code, 3, "<i"))
        codes.append(OperatorCode(builtin, r.string(code, 1), r.scalar(code, 2, "<i", 1)))
    buffers = r.tables(model, 4, "buffer table")
    buffer_sizes = [0]  # buffer 0 is the empty one by convention
    for buffer in buffers:
        r.span(buffer, 1, 2, "buffer data")
        inline = r.vector(buffer, 0, 1)[1]
        buffer_sizes.append(r.scalar(buffer, 2, "<Q") if r.scalar(buffer, 1, "<Q") > 1 else inline)
    buffer_sizes = buffer_sizes[1:] or [0]
    subgraphs, largest = [], None
    for sg in r.tables(model, 2, "subgraph table"):
        tensors = r.tables(sg, 0, "tensor table")
        r.vector(sg, 1, 4)  # inputs
        r.vector(sg, 2, 4)  # outputs
        variable = sum(1 for t in tensors if r.scalar(t, 5, "<B"))
        constants = set()
        for i, t in enumerate(tensors):
            r.vector(t, 0, 4)  # shape: bounds-checked
            if r.scalar(t, 2, "<I") >= max(len(buffers), 1):
                raise TFLiteFormatError(
                    f"a tensor points at buffer {r.scalar(t, 2, '<I')} but the model has {len(buffers)} buffers: corrupted"
                )
            size = buffer_sizes[r.scalar(t, 2, "<I")]
            _check_tensor(r, t, size)
            need = _tensor_bytes(r, t)
            if size and not r.subtable(t, 6, "sparsity table"):
                _check_constant_size(r, t, i, need, size)
            if need is not None and (largest is None or need > largest.bytes):
                largest = TensorSize(r.string(t, 3), tuple(r.values(t, 0, "i")), need)
            if size and not r.scalar(t, 5, "<B"):
                constants.add(i)
        opcode_indices, written = [], set()
        for op in r.tables(sg, 3, "operator table"):
            _check_operator(r, op)
            index = r.scalar(op, 0, "<I")
            if index >= len(codes):
                raise TFLiteFormatError(
                    f"operator uses opcode index {index} but the model declares {len(codes)} operator codes: corrupted"
                )
            outputs = [o for o in r.values(op, 2, "i") if o >= 0]
            twice = constants.intersection(outputs) or written.intersection(outputs)
            if twice or len(set(outputs)) < len(outputs):
                raise TFLiteFormatError(
                    f"operator {len(opcode_indices)} writes to tensor {min(twice or outputs)}, a constant or "
                    "another operator's output: corrupted"
                )
            written.update(outputs)
            opcode_indices.append(index)
        subgraphs.append(SubgraphInfo(r.string(sg, 4), len(tensors), len(opcode_indices), tuple(opcode_indices), variable))
    r.vector(model, 5, 4)  # metadata_buffer
    _check_signatures(r, model, len(subgraphs))
    metadata = {}
    for entry in r.tables(model, 6, "metadata table"):
        name, buffer_index = r.string(entry, 0), r.scalar(entry, 1, "<I")
        if buffer_index < len(buffers):
            metadata[name] = r.bytes_vector(buffers[buffer_index], 0)
    if not subgraphs:
        raise TFLiteFormatError("the model has no subgraphs")
    return TFLiteFileInfo(r.scalar(model, 0, "<I"), r.string(model, 3), tuple(codes), tuple(subgraphs), metadata,
                          largest)
