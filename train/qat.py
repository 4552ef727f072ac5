"""``--qat``: quantization-aware fine-tuning after float training, then an int8 model that uses
the ranges it learned.

tensorflow-model-optimization only wraps tf_keras models (Keras 2), so QAT runs in a child
process started with ``TF_USE_LEGACY_KERAS=1`` (the switch must be set before TensorFlow loads):
the child rebuilds the same architecture with tf_keras from :mod:`train.architectures`, takes the
float weights by layer name, inserts fake quantization (``quantize_model``; the detector's
GridDecode layer is left in float during training and quantized by the converter from
calibration data), fine-tunes for ``qat_epochs`` at a tenth of the learning rate, and converts
to a full-integer TFLite model with int8 input and output. The parent embeds the metadata and
measures it through edge_runtime on the same held-out split as the float model.

Writes ``DIR/model_qat_int8.tflite`` (+ its sidecar ``.json``) and adds ``qat`` to training.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from convert.files import write_atomic
from convert.metadata_io import embed_tflite, sidecar_json

QAT_FILE = "model_qat_int8.tflite"


def _save_weights(model, path: Path) -> None:
    arrays = {}
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            arrays[f"{layer.name}:{i}"] = w
    np.savez(path, **arrays)


def _run_child(job: dict, work: Path, progress) -> bytes:
    spec = work / "job.json"
    spec.write_text(json.dumps(job))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    progress(f"qat: fine-tuning with fake quantization for {job['epochs']} epoch(s) (tf_keras, child process)")
    # the child's own output (tf_keras' epoch lines) goes to stderr (fd 2): stdout carries --json
    done = subprocess.run([sys.executable, "-m", "train.qat_child", str(spec)], env=env, cwd=root, stdout=2)
    if done.returncode != 0:
        raise RuntimeError(f"quantization-aware training failed (child exit code {done.returncode}); "
                           f"its output is above")
    return Path(job["out"]).read_bytes()


def _finish(result, content: bytes, metrics: dict, progress):
    from train.fit import is_chief, update_record
    from train.outputs import metrics_text

    meta = replace(result.metadata, variant="tflite_int8_qat", source=str(result.keras_path))
    path = result.out / QAT_FILE
    if is_chief():
        write_atomic(path, embed_tflite(content, meta), force=True)
        write_atomic(path.with_suffix(".json"), sidecar_json(meta), force=True)
        update_record(result.out, qat=metrics)
    record = dict(result.record, qat=metrics)
    progress(f"qat: wrote {path} ({metrics_text(metrics)})")
    return replace(result, record=record, extra_files=result.extra_files + (path,))


def qat_classifier(result, options, data, progress=print):
    """QAT of a trained classifier; int8 top-1 on the same split as the float figure."""
    import keras

    import edge_runtime
    from train.metrics import classification_metrics

    with tempfile.TemporaryDirectory(prefix="edgepilot-qat-") as tmp:
        work = Path(tmp)
        _save_weights(keras.models.load_model(result.keras_path, compile=False), work / "weights.npz")
        np.savez(work / "data.npz", x=data.x_train, y=data.y_train, x_val=data.x_val, y_val=data.y_val)
        job = {"kind": "classifier", "weights": str(work / "weights.npz"), "data": str(work / "data.npz"),
               "out": str(work / "model.tflite"), "epochs": options.qat_epochs, "lr": options.lr / 10,
               "batch_size": options.batch_size, "input_shape": list(data.x_train.shape[1:]),
               "classes": len(data.labels), "width": options.width, "seed": options.seed}
        content = _run_child(job, work, progress)
        (work / "q.tflite").write_bytes(content)
        model = edge_runtime.load(work / "q.tflite", device="cpu")
        x, y = (data.x_test, data.y_test) if data.x_test is not None else (data.x_val, data.y_val)
        scores = np.concatenate([model.run(x[i:i + 1]).ordered[0] for i in range(len(x))])
    qat = classification_metrics(scores.argmax(axis=-1), y, data.labels)
    return _finish(result, content, {"top1": qat.top1, "float_top1": result.metrics.get("top1"),
                                     "epochs": options.qat_epochs, "split": data.test_name}, progress)


def qat_detector(result, options, spec, fitted_train, anchors, pre, final_set, final_fit, progress=print):
    """QAT of a trained detector; int8 mAP on the same split as the float figure."""
    import keras

    from train.detection_pipeline import batches_of
    from train.evaluate import evaluation_detector, file_predictions
    from train.metrics import detection_map

    with tempfile.TemporaryDirectory(prefix="edgepilot-qat-") as tmp:
        work = Path(tmp)
        _save_weights(keras.models.load_model(result.keras_path, compile=False), work / "weights.npz")
        # one augmented pass per QAT epoch, made here so the child needs no data code
        batches = batches_of(keras, fitted_train, anchors, pre, options.batch_size, options.seed + 1, train=True,
                             flip=options.flip)
        xs, targets = [], []
        for epoch in range(options.qat_epochs):
            for i in range(len(batches)):
                x, y = batches[i]
                xs.append(x.astype(np.float16))
                targets.append(y.astype(np.float16))
            batches.on_epoch_end()
        np.savez(work / "data.npz", x=np.concatenate(xs), targets=np.concatenate(targets))
        job = {"kind": "detector", "weights": str(work / "weights.npz"), "data": str(work / "data.npz"),
               "out": str(work / "model.tflite"), "epochs": 1, "lr": options.lr / 10,
               "batch_size": options.batch_size, "input_size": list(spec.input_size),
               "classes": spec.num_classes, "width": spec.width, "head": spec.head, "seed": options.seed}
        content = _run_child(job, work, progress)
        path = work / "q.tflite"
        path.write_bytes(embed_tflite(content, replace(result.metadata, variant="tflite_int8_qat")))
        detector = evaluation_detector(path)
        predictions = file_predictions(detector, final_set)
    metrics = detection_map(final_set, predictions)
    return _finish(result, content, {"map50": metrics.map50, "map50_95": metrics.map50_95,
                                     "float_map50": result.metrics.get("map50"), "epochs": options.qat_epochs,
                                     "split": final_set.split}, progress)


def qat_policy(model, config, x: np.ndarray, y: np.ndarray, calib: np.ndarray, epochs: int,
               progress=print) -> bytes:
    """QAT of a behaviour-cloned MLP (:mod:`train.policy`) on its aggregated DAgger data, in the
    model's input and output form (standardized observations, actions scaled to [-1, 1]).
    Returns the full-integer TFLite bytes; the caller embeds the metadata and measures the
    closed-loop return."""
    with tempfile.TemporaryDirectory(prefix="edgepilot-qat-") as tmp:
        work = Path(tmp)
        _save_weights(model, work / "weights.npz")
        np.savez(work / "data.npz", x=x.astype(np.float32), y=y.astype(np.float32), calib=calib.astype(np.float32))
        job = {"kind": "policy", "weights": str(work / "weights.npz"), "data": str(work / "data.npz"),
               "out": str(work / "model.tflite"), "epochs": epochs, "lr": config.learning_rate / 10,
               "batch_size": config.batch_size, "hidden": list(config.hidden), "activation": config.activation,
               "obs_size": int(x.shape[1]), "action_size": int(y.shape[1]), "seed": config.seed}
        return _run_child(job, work, progress)
