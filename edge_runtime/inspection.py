"""``inspect``: what a model file holds and what the chosen device would run."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from edge_runtime.loader import load
from edge_runtime.model import Fallback
from edge_runtime.tensors import TensorSpec


@dataclass(frozen=True)
class Inspection:
    path: str
    format: str
    size_bytes: int
    runtime: str
    accelerator: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ops: dict[str, int]
    metadata: dict[str, str]
    sidecar: dict
    placement: str
    stateful: bool
    fallbacks: tuple[Fallback, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        def tensor(s: TensorSpec) -> dict:
            q = s.quantization
            return {"name": s.name, "shape": list(s.shape), "dtype": s.dtype.name,
                    "quantization": None if q is None else {"scales": list(q.scales)[:16], "zero_points": list(q.zero_points)[:16],
                                                            "axis": q.axis, "per_axis": q.per_axis}}
        return {
            "path": self.path, "format": self.format, "size_bytes": self.size_bytes, "runtime": self.runtime,
            "accelerator": self.accelerator, "inputs": [tensor(s) for s in self.inputs],
            "outputs": [tensor(s) for s in self.outputs], "ops": self.ops, "metadata": self.metadata,
            "sidecar": self.sidecar, "placement": self.placement, "stateful": self.stateful,
            "fallbacks": [str(f) for f in self.fallbacks], "warnings": list(self.warnings),
        }

    def render(self) -> str:
        lines = [
            f"{self.path}",
            f"  format      {self.format}, {self.size_bytes / 1024:.1f} KiB{', stateful' if self.stateful else ''}",
            f"  runtime     {self.runtime}",
            f"  accelerator {self.accelerator}",
            f"  placement   {self.placement}",
        ]
        lines += [f"  fallback    {f}" for f in self.fallbacks]
        lines += [f"  warning     {w}" for w in self.warnings]
        lines += [f"  input       {s.describe()}" for s in self.inputs]
        lines += [f"  output      {s.describe()}" for s in self.outputs]
        total = sum(self.ops.values())
        lines.append(f"  ops         {total} nodes, {len(self.ops)} kinds")
        for name, count in sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"    {count:5d}  {name}")
        for key, value in self.metadata.items():
            lines.append(f"  metadata    {key} = {value[:120]}")
        for key, value in self.sidecar.items():
            lines.append(f"  sidecar     {key} = {str(value)[:120]}")
        return "\n".join(lines)


def inspect_model(path: str, device: str = "auto", threads: int | None = None,
                  shapes: dict[str, tuple] | None = None, **load_options) -> Inspection:
    from edge_runtime.bench import example_inputs
    from edge_runtime.errors import InferenceError
    from edge_runtime.metadata import sidecar_metadata

    model = load(path, device=device, threads=threads, **load_options)
    if model.delegation is not None:
        placement = str(model.delegation)
    else:
        try:
            counts = model.node_placement(example_inputs(model, shapes=shapes))
            placement = ", ".join(f"{provider}: {n} nodes" for provider, n in counts.most_common()) or "unknown"
        except InferenceError as exc:
            placement = f"unknown: the profiling run failed; give input shapes with --shape NAME=D1xD2 ({exc})"
    return Inspection(
        path=model.path, format=model.format, size_bytes=os.path.getsize(model.path), runtime=model.runtime,
        accelerator=model.accelerator, inputs=model.inputs, outputs=model.outputs, ops=dict(model.op_histogram()),
        metadata=model.metadata, sidecar=sidecar_metadata(model.path), placement=placement,
        stateful=model.stateful, fallbacks=model.fallbacks, warnings=model.warnings,
    )
