"""The :class:`Model` every backend is wrapped in: named or positional inputs, float in and
float out for quantized tensors, shape checks, and an honest account of what runs it."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.tensors import TensorSpec


@dataclass(frozen=True)
class Fallback:
    """A device ``load(device="auto")`` tried and could not use, and why."""

    device: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device}: {self.reason}"


class Outputs(Mapping):
    """A model's outputs: ``out["scores"]`` by name, ``out[0]`` or ``out.ordered`` in the
    model's order. Immutable."""

    __slots__ = ("_names", "_values", "_index")

    def __init__(self, names: tuple[str, ...], values: tuple[np.ndarray, ...], index: dict[str, int] | None = None):
        self._names, self._values = names, values
        self._index = index if index is not None else {n: i for i, n in enumerate(names)}

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._values[key]
        try:
            return self._values[self._index[key]]
        except KeyError:
            raise KeyError(f"no output named {key!r}; the outputs are {list(self._names)}") from None

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    @property
    def ordered(self) -> tuple[np.ndarray, ...]:
        return self._values

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: {v.dtype}{list(v.shape)}" for n, v in zip(self._names, self._values))
        return f"Outputs({shapes})"


class Model:
    """A loaded model. Make one with :func:`edge_runtime.load`.

    ``run`` takes inputs positionally (in ``inputs`` order) or by name and returns
    :class:`Outputs`. Quantized tensors are quantized / dequantized with the model's own scale
    and zero point unless ``raw=True``, which passes the integer tensors through.
    """

    def __init__(self, backend, path: str, metadata: dict[str, str], fallbacks: tuple[Fallback, ...] = (),
                 stateful: bool = False):
        self._backend = backend
        self.path = path
        self.metadata = metadata
        self.fallbacks = fallbacks
        self.stateful = stateful
        self.inputs: tuple[TensorSpec, ...] = backend.inputs
        self.outputs: tuple[TensorSpec, ...] = backend.outputs
        self._input_index = {s.name: i for i, s in enumerate(self.inputs)}
        self._output_names = tuple(s.name for s in self.outputs)
        self._output_index = {n: i for i, n in enumerate(self._output_names)}
        self._dequantize = [s.quantization if s.quantized else None for s in self.outputs]
        # per input, precomputed for the hot path: (spec, exact shape the backend holds now, quantization)
        self._plans = [(s, tuple(s.shape) if s.fixed_shape else None, s.quantization if s.quantized else None)
                       for s in self.inputs]

    # ----- what runs it ------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self._backend.format

    @property
    def runtime(self) -> str:
        """The package that runs the model (``ai_edge_litert``, ``tflite_runtime``, ``onnxruntime``...)."""
        return self._backend.runtime

    @property
    def accelerator(self) -> str:
        """What really runs the model, e.g. ``cpu/xnnpack x2 threads``."""
        return self._backend.accelerator

    @property
    def device(self) -> str:
        return str(self._backend.device)

    @property
    def threads(self) -> int:
        return self._backend.threads

    @property
    def delegation(self):
        """How many nodes a delegate took (TFLite), or None."""
        return self._backend.delegation

    def op_histogram(self) -> Counter:
        return self._backend.op_histogram()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What is known to make this model run slower than it should here (e.g. an interpreter
        release with a slow kernel for one of its ops), one sentence each; empty when nothing is."""
        return tuple(getattr(self._backend, "warnings", ()))

    @property
    def info(self):
        """The :class:`~edge_runtime.metadata.ModelMetadata` edgepilot stored in the file (or in
        the sidecar ``<stem>.json``), or None for a model that carries none."""
        from edge_runtime.metadata import METADATA_KEY, ModelMetadata, sidecar_metadata

        text = self.metadata.get(METADATA_KEY)
        if text is None:
            sidecar = sidecar_metadata(self.path)
            if METADATA_KEY not in sidecar:
                return None
            text = json.dumps(sidecar[METADATA_KEY])
        return ModelMetadata.from_json(text)

    def output_name(self, key: str) -> str:
        """The output tensor for a signature output ``key`` (as the SavedModel / Keras model
        named it), or the tensor named ``key``."""
        if key in self._output_index:
            return key
        mapping = self._backend.signature_outputs()
        if key in mapping:
            return mapping[key]
        raise KeyError(f"{self.path}: no output for key {key!r}; outputs {list(self._output_names)}, "
                       f"signature keys {sorted(mapping)}")

    def node_placement(self, sample: list[np.ndarray]) -> Counter:
        """Execution provider -> node count for ONNX models, from one profiled run on ``sample``."""
        if not hasattr(self._backend, "node_placement"):
            raise NotImplementedError("node placement is read from ONNX Runtime profiles; TFLite models report .delegation")
        prepared = [self._prepare(spec, value, False) for spec, value in zip(self.inputs, sample)]
        return self._backend.node_placement(prepared)

    # ----- running -----------------------------------------------------------------------
    def run(self, *arrays, raw: bool = False, raw_inputs: bool = False, **named) -> Outputs:
        """``raw_inputs=True``: the inputs are already the quantized integer codes (as with
        ``raw=True``) but the outputs are dequantized as usual (e.g. codes from a lookup table)."""
        if named or len(arrays) != len(self._plans) or (arrays and isinstance(arrays[0], Mapping)):
            arrays = self._gather(arrays, named)
        codes_in = raw or raw_inputs
        prepared = []
        for (spec, fixed, quantization), value in zip(self._plans, arrays):
            # fast path: an array of the exact fixed shape and dtype, or a float for a quantized input
            if fixed is not None and isinstance(value, np.ndarray) and value.shape == fixed:
                if quantization is None or codes_in:
                    if value.dtype == spec.dtype:
                        prepared.append(value)
                        continue
                elif value.dtype.kind == "f":
                    try:
                        prepared.append(quantization.quantize(value, spec.dtype))
                    except ValueError as exc:
                        raise InputError(f"{self.path}: input '{spec.name}': {exc}") from None
                    continue
            prepared.append(self._prepare(spec, value, codes_in))
        self._backend.ensure_shapes([a.shape for a in prepared])
        results = self._backend.run(prepared)
        if not raw:
            results = [r if q is None else q.dequantize(r) for q, r in zip(self._dequantize, results)]
        return Outputs(self._output_names, tuple(results), self._output_index)

    __call__ = run

    def reset(self) -> None:
        """Forget the state a stateful model (variable ops) keeps between calls."""
        self._backend.reset()

    def _gather(self, arrays: tuple, named: dict) -> list:
        expected = len(self.inputs)
        if arrays and named:
            raise InputError(f"{self.path}: give inputs either positionally or by name, not both")
        if named:
            unknown = sorted(set(named) - set(self._input_index))
            missing = [s.name for s in self.inputs if s.name not in named]
            if unknown or missing:
                raise InputError(
                    f"{self.path}: inputs by name must be exactly {[s.name for s in self.inputs]}; "
                    f"unknown {unknown}, missing {missing}"
                )
            return [named[s.name] for s in self.inputs]
        if len(arrays) == 1 and isinstance(arrays[0], Mapping):
            return self._gather((), dict(arrays[0]))
        if len(arrays) == 1 and expected > 1 and isinstance(arrays[0], (list, tuple)):
            arrays = tuple(arrays[0])
        if len(arrays) != expected:
            raise InputError(
                f"{self.path}: expected {expected} input(s) {[s.name for s in self.inputs]}, got {len(arrays)}"
            )
        return list(arrays)

    def _prepare(self, spec: TensorSpec, value, raw: bool) -> np.ndarray:
        array = np.asarray(value)
        if not spec.accepts_shape(array.shape):
            raise InputError(
                f"{self.path}: input '{spec.name}' expects shape {_dims(spec.shape)}, got {list(array.shape)}"
                + ("" if any(d < 0 for d in spec.shape if isinstance(d, int)) else
                   " (this model has a fixed shape; re-convert it with a dynamic batch dimension to batch)")
            )
        if spec.quantized and not raw:
            if array.dtype.kind not in "fiub":
                raise InputError(f"{self.path}: input '{spec.name}' expects real numbers, got dtype {array.dtype}")
            try:
                return spec.quantization.quantize(array, spec.dtype)
            except ValueError as exc:
                raise InputError(f"{self.path}: input '{spec.name}': {exc}") from None
        if array.dtype == spec.dtype:
            return array
        if raw and spec.quantized:
            raise InputError(
                f"{self.path}: input '{spec.name}' given as quantized codes (raw=True or raw_inputs=True) must be "
                f"{spec.dtype}, got {array.dtype}"
            )
        if not np.can_cast(array.dtype, spec.dtype, casting="same_kind"):
            raise InputError(
                f"{self.path}: input '{spec.name}' expects dtype {spec.dtype.name}, got {array.dtype.name} "
                "(which would not convert without losing meaning)"
            )
        return array.astype(spec.dtype)

    def __repr__(self) -> str:
        ins = ", ".join(s.describe() for s in self.inputs)
        return f"<Model {self.path} [{self.format}] on {self.accelerator}: {ins}>"


def _dims(shape: tuple) -> str:
    return "[" + ", ".join("?" if not isinstance(d, int) or d < 0 else str(d) for d in shape) + "]"
