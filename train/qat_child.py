"""The tf_keras side of ``--qat`` (see :mod:`train.qat`): ``python -m train.qat_child job.json``.

Started with ``TF_USE_LEGACY_KERAS=1``. Reads the job, rebuilds the architecture with tf_keras,
loads the float weights by layer name, applies tfmot's fake quantization, fine-tunes, and writes
a full-integer TFLite model (int8 input and output) to ``job["out"]``. For a keyword spotter
(kind ``kws``) it writes the fine-tuned float weights instead: the model that ships is the
streaming form, which the parent builds from them and converts (:mod:`train.kws.qat`).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np


def read_weights(source) -> dict[str, list[np.ndarray]]:
    """Layer weights saved as ``"<layer>:<index>"`` arrays in an .npz (a path or a file object),
    as ``{layer: [arrays in order]}``: the one format both sides of ``--qat`` write."""
    with np.load(source, allow_pickle=False) as archive:
        saved: dict[str, dict[int, np.ndarray]] = {}
        for key in archive.files:
            name, index = key.rsplit(":", 1)
            saved.setdefault(name, {})[int(index)] = archive[key]
    return {name: [arrays[i] for i in sorted(arrays)] for name, arrays in saved.items()}


def _load_weights(model, path: str, reshape: bool = False) -> None:
    """Set every layer's weights from ``path`` by layer name; ``reshape``: the saved arrays may
    differ in shape but not in size (a 1-D convolution's kernel into its 2-D twin)."""
    saved = read_weights(path)
    for layer in model.layers:
        if layer.weights:
            if layer.name not in saved:
                raise ValueError(f"QAT: the float model has no weights for layer {layer.name!r}")
            arrays = saved[layer.name]
            if reshape:
                arrays = [a.reshape(w.shape) for a, w in zip(arrays, layer.get_weights())]
            layer.set_weights(arrays)


def _save_float_weights(qat, path: str) -> None:
    """The fine-tuned float weights of each layer inside tfmot's wrappers, by the layer's own
    name (the quantizers' ranges are left out: the caller converts from its own graph)."""
    arrays = {}
    for wrapper in qat.layers:
        layer = getattr(wrapper, "layer", wrapper)
        # a wrapper holds the layer's kernel itself (the layer sees its fake-quantized form); the
        # layer's own variables are named "<layer>/...", the quantizers' "quant_<layer>/..."
        own = [v for v in wrapper.weights if v.name.startswith(f"{layer.name}/")]
        for i, variable in enumerate(own):
            arrays[f"{layer.name}:{i}"] = variable.numpy()
    np.savez(path, **arrays)


def _annotated(tfmot, tf_keras, model, keep_float: type | None):
    """Annotate every layer tfmot supports; leave ``keep_float`` layers (custom ones) in float."""
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def clone(layer):
        if keep_float is not None and isinstance(layer, keep_float):
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, (tf_keras.layers.Reshape, tf_keras.layers.Concatenate)):
            return layer.__class__.from_config(layer.get_config())
        return annotate(layer.__class__.from_config(layer.get_config()))

    annotated = tf_keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    job = json.loads(open(argv[0]).read())
    from train.allocator import tune_allocator

    tune_allocator()
    from convert.quiet import import_tensorflow, quiet_stderr

    tf = import_tensorflow()  # without its start-up lines, as in the parent (EDGEPILOT_VERBOSE passes down)
    with quiet_stderr():
        import tensorflow_model_optimization as tfmot
        import tf_keras

    from train import architectures

    tf_keras.utils.set_random_seed(job["seed"])
    data = np.load(job["data"], allow_pickle=False)
    if job["kind"] == "classifier":
        model = architectures.classifier(tf_keras, tuple(job["input_shape"]), job["classes"], job["width"])
        _load_weights(model, job["weights"])
        qat = tfmot.quantization.keras.quantize_model(model)
        qat.compile(tf_keras.optimizers.Adam(job["lr"]), "sparse_categorical_crossentropy", metrics=["accuracy"])
        qat.fit(data["x"], data["y"], batch_size=job["batch_size"], epochs=job["epochs"],
                validation_data=(data["x_val"], data["y_val"]), verbose=2)
        representative = data["x"][:200]
    elif job["kind"] == "policy":
        from train.policy.bc import BCConfig, build_mlp

        config = BCConfig(hidden=tuple(job["hidden"]), activation=job["activation"])
        model = build_mlp(job["obs_size"], job["action_size"], config, keras=tf_keras)
        _load_weights(model, job["weights"])
        qat = tfmot.quantization.keras.quantize_model(model)
        qat.compile(tf_keras.optimizers.Adam(job["lr"]), loss="mse")
        qat.fit(data["x"], data["y"], batch_size=job["batch_size"], epochs=job["epochs"], shuffle=True, verbose=2)
        representative = data["calib"]
    elif job["kind"] == "kws":
        from train.kws.architecture import KwsArchitecture, build_qat_twin

        arch = KwsArchitecture(**dict(job["arch"], block_kernels=tuple(job["arch"]["block_kernels"])))
        model = build_qat_twin(tf_keras, arch, job["classes"])
        _load_weights(model, job["weights"], reshape=True)
        qat = tfmot.quantization.keras.quantize_model(model)
        qat.compile(tf_keras.optimizers.Adam(job["lr"]), "sparse_categorical_crossentropy", metrics=["accuracy"])
        qat.fit(data["x"], data["y"], batch_size=job["batch_size"], epochs=job["epochs"], shuffle=True,
                validation_data=(data["x_val"], data["y_val"]), verbose=2)
        _save_float_weights(qat, job["out"])  # the parent builds and converts the streaming form
        return 0
    else:
        from train.detection_loss import detection_loss, training_view
        from train.layers import decode_factory, grid_decode_class

        spec = architectures.DetectorSpec(tuple(job["input_size"]), job["classes"], job["width"], job["head"])
        model = architectures.detector(tf_keras, spec, decode_factory(tf_keras))
        _load_weights(model, job["weights"])
        custom = grid_decode_class(tf_keras)
        with tfmot.quantization.keras.quantize_scope({"GridDecode": custom}):
            qat = tfmot.quantization.keras.quantize_apply(_annotated(tfmot, tf_keras, model, custom))
        trainer = training_view(tf_keras, qat)
        x = data["x"].astype(np.float32)
        # decayed to 0 over the fine-tuning (cosine): the float training ends at a learning rate
        # near 0, and a constant lr/10 after it can move the weights off that optimum. With the
        # constant rate the bench's QAT int8 fell 2.4 points below float; with the decay (and a
        # larger model, so one run, not a controlled comparison) it matched float
        steps = max(1, int(np.ceil(len(x) / job["batch_size"])) * job["epochs"])
        schedule = tf_keras.optimizers.schedules.CosineDecay(job["lr"], steps)
        trainer.compile(tf_keras.optimizers.Adam(schedule), loss=detection_loss)
        trainer.fit(x, data["targets"].astype(np.float32), batch_size=job["batch_size"], epochs=job["epochs"],
                    verbose=2, shuffle=False)
        representative = x[:200]
        # batch 1, as `convert --batch 1` writes the float detector: with an open batch every
        # Reshape (the heads' and the FPN upsampling's) gains SHAPE/STRIDED_SLICE/PACK nodes that
        # XNNPACK and the Edge TPU do not take, splitting the graph; the app and eval run one image
        image = tf_keras.Input((*spec.input_size, 3), batch_size=1, name="image")
        qat = tf_keras.Model(image, qat(image))

    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # fake-quant layers carry the learned ranges; the samples only range the layers left in float
    converter.representative_dataset = lambda: ([representative[i:i + 1].astype(np.float32)]
                                                for i in range(len(representative)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with open(job["out"], "wb") as f:
        f.write(converter.convert())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
