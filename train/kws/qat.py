"""``edgepilot train kws --qat``: quantization-aware fine-tuning of the keyword spotter.

tensorflow-model-optimization wraps only tf_keras models with 2-D convolutions, so the trained
network's weights go to its 2-D twin (:func:`train.kws.architecture.build_qat_twin`) in a
tf_keras child process (:mod:`train.qat_child`, kind ``kws``). The child fine-tunes the twin
with fake quantization for ``qat_epochs`` at a tenth of the learning rate, on the same training
windows as the float model. Its weights come back by layer name into a copy of the Keras
model, and the streaming form of that copy is converted like the float one: full integer,
calibrated on the same training streams. The result is ``kws_stream_qat_int8.tflite``, measured
on the held-out voices next to the post-training int8 model.

The streaming graph (resource variables, one step at a time) is not the graph QAT trained, so
its activation ranges come from calibration. What QAT brings is weights fine-tuned under int8
fake quantization. tfmot's default scheme quantizes each convolution's kernel before batch norm
is folded into it, so the rounding it trains against is close to, not exactly, the deployed
kernel's. The fine-tuning runs without the float run's SpecAugment masks.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np


def qat_fine_tune(model, arch, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                  *, epochs: int, lr: float, batch_size: int, seed: int, progress=print):
    """A copy of the Keras ``model`` with the weights QAT fine-tuned (``model`` is unchanged)."""
    import keras

    from train.qat import _run_child, _save_weights
    from train.qat_child import read_weights

    with tempfile.TemporaryDirectory(prefix="edgepilot-kws-qat-") as tmp:
        work = Path(tmp)
        _save_weights(model, work / "weights.npz")
        np.savez(work / "data.npz", x=x_train, y=y_train, x_val=x_val, y_val=y_val)
        arch_dict = dict(arch.to_dict(), block_kernels=list(arch.block_kernels))
        job = {"kind": "kws", "weights": str(work / "weights.npz"), "data": str(work / "data.npz"),
               "out": str(work / "qat_weights.npz"), "epochs": epochs, "lr": lr, "batch_size": batch_size,
               "arch": arch_dict, "classes": int(model.output_shape[-1]), "seed": seed}
        saved = read_weights(io.BytesIO(_run_child(job, work, progress)))
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer in copy.layers:
        current = layer.get_weights()
        if not current:
            continue
        if layer.name not in saved or len(saved[layer.name]) != len(current):
            raise RuntimeError(f"QAT: the fine-tuned twin has no matching weights for layer {layer.name!r}")
        layer.set_weights([a.reshape(w.shape) for a, w in zip(saved[layer.name], current)])
    return copy
