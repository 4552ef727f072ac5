"""What a model to convert is, found from the file itself, and how it becomes a SavedModel.

Keras 3 and tf_keras files do not load across the two, and tf2onnx cannot read Keras 3
models directly, so every Keras input is first exported to a SavedModel (in a child process)
and every converter reads that."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

KINDS = ("keras3", "tf_keras", "saved_model", "tflite")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class SourceError(ValueError):
    """The model to convert is missing or of a kind edgepilot cannot read."""


@dataclass(frozen=True)
class TensorFacts:
    name: str
    shape: tuple  # -1 for an open dimension
    dtype: str


@dataclass(frozen=True)
class ModelFacts:
    """What the exported SavedModel's serving signature takes and gives."""

    inputs: tuple[TensorFacts, ...]
    outputs: tuple[TensorFacts, ...]
    recurrent: bool = False

    @property
    def input_shape(self) -> tuple:
        return self.inputs[0].shape


def detect(path: str | Path) -> str:
    """``keras3``, ``tf_keras``, ``saved_model`` or ``tflite``, from the content."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such model file or directory")
    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return "saved_model"
        raise SourceError(f"{p}: a directory but not a SavedModel (no saved_model.pb inside)")
    head = p.read_bytes()[:8] if p.stat().st_size >= 8 else b""
    if head[4:8] == b"TFL3":
        return "tflite"
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as archive:
                meta = json.loads(archive.read("metadata.json"))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{p}: a zip file without a readable metadata.json: not a .keras model ({exc})") from exc
        return _by_version(p, str(meta.get("keras_version", "")))
    if head == _HDF5_MAGIC:
        import h5py

        with h5py.File(p, "r") as handle:
            version = handle.attrs.get("keras_version", "")
        return _by_version(p, version.decode() if isinstance(version, bytes) else str(version))
    raise SourceError(
        f"{p}: not a model edgepilot can convert: expected a SavedModel directory, a .keras or .h5 "
        f"Keras file, or a .tflite file (the file starts with {head!r})"
    )


def _by_version(path: Path, version: str) -> str:
    if version.startswith("3"):
        return "keras3"
    if version.startswith("2"):
        return "tf_keras"
    raise SourceError(f"{path}: cannot tell which Keras wrote it (keras_version {version!r}); expected 2.x or 3.x")


def _facts(signature) -> ModelFacts:
    def facts(name, spec):
        return TensorFacts(name, tuple(-1 if d is None else int(d) for d in spec.shape), spec.dtype.name)

    _, kwargs = signature.structured_input_signature
    inputs = tuple(facts(n, s) for n, s in sorted(kwargs.items()))
    outputs = tuple(facts(n, s) for n, s in sorted(signature.structured_outputs.items()))
    return ModelFacts(inputs, outputs)


def export_saved_model(path: str, kind: str, out_dir: str, batch: int | None = None) -> ModelFacts:
    """Child-process step: load the model and save it as a SavedModel with a serving signature.
    ``batch`` fixes the batch dimension (traced from the Keras model itself, which is what lets
    the TFLite converter fuse recurrent layers); None keeps it open."""
    import tensorflow as tf

    if kind == "saved_model":
        if batch is not None:
            return fix_batch(path, out_dir, batch)
        loaded = tf.saved_model.load(path)
        signature = loaded.signatures["serving_default"]
        tf.saved_model.save(loaded, out_dir, signatures={"serving_default": signature})
    elif kind == "keras3":
        import keras

        model = keras.models.load_model(path, compile=False)
        specs = [tf.TensorSpec([batch] + list(t.shape[1:]), t.dtype, name=_input_name(t)) for t in model.inputs]
        # Keras' own export tracks the model's variables so that converters see initialized weights
        model.export(out_dir, format="tf_saved_model", verbose=False,
                     input_signature=specs if len(specs) > 1 else specs[:1])
    elif kind == "tf_keras":
        import tf_keras

        model = tf_keras.models.load_model(path, compile=False)
        specs = [tf.TensorSpec([batch] + list(t.shape[1:]), t.dtype, name=_input_name(t)) for t in model.inputs]
        function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0]), input_signature=specs)
        tf.saved_model.save(model, out_dir, signatures={"serving_default": function.get_concrete_function()})
    else:
        raise SourceError(f"cannot export a {kind} model to a SavedModel")
    signature = tf.saved_model.load(out_dir).signatures["serving_default"]
    facts = _facts(signature)
    recurrent = any(op.type in ("While", "StatelessWhile", "TensorListReserve")
                    for f in [signature.graph, *_inner_graphs(signature.graph)] for op in f.get_operations())
    return ModelFacts(facts.inputs, facts.outputs, recurrent)


def _input_name(tensor) -> str:
    name = getattr(tensor, "name", "") or "input"
    return name.split(":")[0].replace("/", "_")


def _inner_graphs(graph) -> list:
    functions = getattr(graph, "_functions", {}) or {}
    return [f.graph for f in functions.values() if hasattr(f, "graph")]


def fix_batch(saved_model_dir: str, out_dir: str, batch: int = 1) -> ModelFacts:
    """Child-process step: the same SavedModel with every open dimension of the inputs fixed
    (batch to ``batch``), for converters that need static shapes (recurrent models)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures["serving_default"]
    _, kwargs = signature.structured_input_signature
    specs = {n: tf.TensorSpec([batch if d is None else d for d in s.shape], s.dtype, name=n) for n, s in kwargs.items()}
    if any(None in spec.shape[1:] for spec in specs.values()):
        raise SourceError(f"{saved_model_dir}: inputs have open dimensions besides the batch: {specs}")
    names = sorted(specs)

    @tf.function(input_signature=[specs[n] for n in names])
    def serve(*args):
        return signature(**dict(zip(names, args)))

    module = tf.Module()
    module.model = loaded
    tf.saved_model.save(module, out_dir, signatures={"serving_default": serve.get_concrete_function()})
    return _facts(tf.saved_model.load(out_dir).signatures["serving_default"])


def reference_outputs(saved_model_dir: str, x_path: str, out_path: str, batch: int = 64,
                      all_path: str | None = None) -> None:
    """Child-process step: the float model's output with the first signature key (sorted, as
    :class:`ModelFacts` lists them) on the samples in ``x_path`` (.npy); with ``all_path``, every
    output, by signature key, in an .npz there too (detectors need boxes and scores)."""
    import numpy as np
    import tensorflow as tf

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    _, kwargs = signature.structured_input_signature
    (name, spec), = kwargs.items()
    x = np.load(x_path)
    fixed = spec.shape[0] is not None
    step = int(spec.shape[0]) if fixed else batch
    outputs, every = [], {}
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if fixed and len(chunk) < step:  # pad the last chunk of a fixed-batch model
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), axis=0)])
        result = signature(**{name: tf.constant(chunk, dtype=spec.dtype)})
        first = result[sorted(result)[0]].numpy()
        outputs.append(first[: min(step, len(x) - start)])
        for key, value in result.items():
            every.setdefault(key, []).append(value.numpy()[: min(step, len(x) - start)])
    np.save(out_path, np.concatenate(outputs))
    if all_path is not None:
        np.savez(all_path, **{key: np.concatenate(parts) for key, parts in every.items()})
