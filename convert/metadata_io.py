"""Putting :class:`~edge_runtime.metadata.ModelMetadata` inside model files: a TFLite metadata
entry named ``edgepilot`` (next to the converter's own entries), or ONNX ``metadata_props``."""
from __future__ import annotations

import json

import numpy as np

from edge_runtime.metadata import METADATA_KEY, ModelMetadata


def embed_tflite(content: bytes, metadata: ModelMetadata) -> bytes:
    """Return ``content`` with an ``edgepilot`` metadata entry holding the JSON (replacing an
    earlier one). Uses the TFLite schema's object API that LiteRT ships."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_KEY, METADATA_KEY.encode())] + [entry]
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def embed_onnx(content: bytes, metadata: ModelMetadata) -> bytes:
    import onnx

    model = onnx.load_model_from_string(content)
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=METADATA_KEY, value=metadata.to_json())
    return model.SerializeToString()


def sidecar_json(metadata: ModelMetadata) -> str:
    """The sidecar ``<model stem>.json`` that edge_runtime reads when a file carries none."""
    return json.dumps({METADATA_KEY: json.loads(metadata.to_json())}, indent=2, sort_keys=True) + "\n"
