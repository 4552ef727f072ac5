"""``edgepilot eval MODEL --data DATA``: top-1 for classifiers, COCO mAP for detectors, on any model.

Files (.tflite, .onnx) run through ``edge_runtime`` (detectors through the camera app's
:class:`apps.camera.detector.Detector`, so evaluation sees exactly what the app does); Keras
files and SavedModels run in TensorFlow. Preprocessing comes from the model's metadata (inside
the file, or the sidecar ``model.json`` / ``saved_model.json`` that ``edgepilot train`` writes).

Detections are ranked for mAP as COCO evaluation expects: every box scoring at least 0.001
after NMS at IoU 0.6 (Ultralytics' validation uses 0.001 / 0.7), at most 100 per image, with
every class above that score a candidate for each anchor (``multi_label``, as Ultralytics'
validation, torchvision and MMDetection do; the live app keeps each anchor's best class).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.metadata import ModelMetadata

EVAL_SCORE, EVAL_IOU, MAX_PER_IMAGE = 0.001, 0.6, 100
FILE_SUFFIXES = (".tflite", ".onnx")


def stored_metadata(path: str | Path) -> ModelMetadata | None:
    """The metadata of a model: inside a .tflite/.onnx file, else its sidecar (``model.json`` next
    to ``model.keras``, ``saved_model.json`` next to ``saved_model/``), else None."""
    path = Path(path)
    if path.suffix.lower() in FILE_SUFFIXES and path.is_file():
        import edge_runtime

        return edge_runtime.load(path, device="cpu").info
    from convert.training_folder import stored_metadata as from_sidecar

    return from_sidecar(path)


def ranked(d) -> tuple:
    """(boxes, scores, class ids) of :class:`apps.camera.detections.Detections`, best first, cut
    to the detections COCO evaluation counts per image."""
    return d.xyxy[:MAX_PER_IMAGE], d.scores[:MAX_PER_IMAGE], d.class_ids[:MAX_PER_IMAGE]


def evaluation_detector(path, device: str = "cpu", threads: int | None = None):
    """The :class:`apps.camera.detector.Detector` that every mAP figure of a model file uses:
    score 0.001, IoU 0.6, every class a candidate (see the module's docstring)."""
    from apps.camera.detector import Detector

    return Detector(path, score=EVAL_SCORE, iou=EVAL_IOU, device=device, threads=threads, multi_label=True)


def file_predictions(detector, dataset, progress=None) -> list[tuple]:
    """:func:`ranked` detections of an :func:`evaluation_detector` on every image of a DetectionSet."""
    predictions = []
    for i in range(len(dataset)):
        predictions.append(ranked(detector.detect(dataset.read_image(i)[..., ::-1])))  # Detector takes BGR
        if progress:
            progress(i + 1, len(dataset))
    return predictions


def predictions_from_outputs(outputs: dict, geometries, metadata: ModelMetadata | None):
    """Per-image (boxes in original pixels, scores, class ids) from batched detector outputs."""
    from apps.camera.decoders import make_decoder

    specs = [(name, (1, *np.shape(value)[1:])) for name, value in outputs.items()]
    decoder = make_decoder("auto", specs, metadata, multi_label=True)
    results = []
    for i, geometry in enumerate(geometries):
        one = {name: np.asarray(value)[i:i + 1] for name, value in outputs.items()}
        results.append(ranked(decoder(one, geometry, EVAL_SCORE, EVAL_IOU)))
    return results


def detection_metrics_from_outputs(dataset, outputs: dict, geometries, metadata: ModelMetadata | None = None):
    """COCO mAP of batched edgepilot-layout outputs ``{"boxes", "scores"}`` over ``dataset``."""
    from train.metrics import detection_map

    if metadata is None:
        from train.detector import detector_metadata

        metadata = detector_metadata(dataset.names, (geometries[0].input_h, geometries[0].input_w))
    return detection_map(dataset, predictions_from_outputs(dict(outputs), geometries, metadata))


def _task(metadata: ModelMetadata | None, data: str) -> str:
    if metadata is not None and metadata.task in ("detection", "classification"):
        return metadata.task
    from train.detection_data import detection_format

    return "detection" if detection_format(data) else "classification"


def evaluate(model: str | Path, data: str, split: str | None = None, limit: int | None = None,
             device: str = "cpu", threads: int | None = None, progress=None) -> dict:
    """Evaluate ``model`` on ``data`` (every form ``edgepilot train`` reads); the JSON-ready result."""
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model file or folder; expected a .tflite, .onnx, .keras file "
                                f"or a SavedModel folder")
    metadata = stored_metadata(path)
    task = _task(metadata, data)
    if task == "detection":
        result = _evaluate_detector(path, metadata, data, split, limit, device, threads, progress)
    else:
        result = _evaluate_classifier(path, metadata, data, split, limit, device, threads)
    return {"model": str(path), **result}


def _evaluate_detector(path: Path, metadata, data, split, limit, device, threads, progress) -> dict:
    from train.detection_data import load_detection_set
    from train.metrics import detection_map

    dataset = load_detection_set(data, split)
    if limit:
        dataset = dataset.subset(range(min(limit, len(dataset))))
    predictions = []
    if path.suffix.lower() in FILE_SUFFIXES:
        detector = evaluation_detector(path, device, threads)
        # the file's own metadata (embedded, or an Ultralytics export's) where there is no sidecar
        mismatch = _label_mismatch(path, metadata or detector.metadata, dataset.names, data)
        predictions = file_predictions(detector, dataset, progress)
        how = {"decoder": detector.decoder_name, "resize": detector.resize, "accelerator": detector.model.accelerator}
    else:
        mismatch = _label_mismatch(path, metadata, dataset.names, data)
        if metadata is None or metadata.preprocess.size is None:
            raise ValueError(f"{path}: a Keras or SavedModel detector needs its metadata (the sidecar "
                             f"{path.with_suffix('.json').name} that edgepilot train writes) to know its input")
        from train.detection_data import fit_image

        pre = metadata.preprocess
        run = _tensorflow_runner(path)
        for start in range(0, len(dataset), 16):
            items = [fit_image(dataset.read_image(i), pre) for i in range(start, min(start + 16, len(dataset)))]
            outputs = run(np.stack([x for x, _ in items]))
            predictions += predictions_from_outputs(outputs, [g for _, g in items], metadata)
        how = {"decoder": (metadata.extra or {}).get("decoder", "auto"), "resize": pre.resize, "accelerator": "tensorflow"}
    metrics = detection_map(dataset, predictions)
    return {**metrics.to_dict(), "split": dataset.split, "data": str(data), **how, **mismatch}


def _label_mismatch(path: Path, metadata, names, data) -> dict:
    """Detections are matched to boxes by class id: a model with another number of classes than
    the data set is refused, and one whose labels differ in name (or order) is evaluated but says
    so in the result (``label_mismatch``), which the CLI prints as a warning."""
    labels = tuple(metadata.labels) if metadata is not None and metadata.labels else None
    if labels is None or labels == tuple(names):
        return {}
    if len(labels) != len(names):
        raise ValueError(f"{path}: the model has {len(labels)} classes ({_some(labels)}) but {data} names "
                         f"{len(names)} ({_some(names)}); expected the data set the model was trained for")
    return {"label_mismatch": {"model": list(labels), "data": list(names)}}


def _some(names, shown: int = 8) -> str:
    """The first names, for a message; an id without a name (a label file's ``???``) shows as ???."""
    text = ["???" if name is None else str(name) for name in names[:shown]]
    return ", ".join(text) + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")


def _evaluate_classifier(path: Path, metadata, data, split, limit, device, threads) -> dict:
    from convert.data import load_dataset
    from train.metrics import classification_metrics

    if path.suffix.lower() in FILE_SUFFIXES:
        import edge_runtime

        model = edge_runtime.load(path, device=device, threads=threads)
        shape = tuple(model.inputs[0].shape[1:])
        run = lambda x: model.run(x).ordered[0]  # noqa: E731
        accelerator = model.accelerator
    else:
        runner = _tensorflow_runner(path)
        shape = runner.input_shape
        run = lambda x: next(iter(runner(x).values()))  # noqa: E731
        accelerator = "tensorflow"
    pre = metadata.preprocess if metadata is not None else None
    dataset = load_dataset(data, shape, pre, limit=limit, what="evaluation", split=split)
    if dataset.y is None:
        raise ValueError(f"{data}: evaluation of a classifier needs labels (class sub-folders, y in the .npz, or a "
                         f"named data set); this data has none")
    mismatch = _label_mismatch(path, metadata, dataset.labels, data) if dataset.labels else {}
    batch = 1 if path.suffix.lower() in FILE_SUFFIXES and model.inputs[0].shape[0] == 1 else 64
    scores = np.concatenate([run(chunk.x) for chunk in dataset.batches(batch)])
    labels = tuple(metadata.labels) if metadata is not None and metadata.labels else dataset.labels
    metrics = classification_metrics(scores.argmax(axis=-1), dataset.y, labels)
    return {**metrics.to_dict(), "data": str(data), "accelerator": accelerator, **mismatch}


def _tensorflow_runner(path: Path):
    """A callable ``x -> {output name: array}`` for a Keras file or SavedModel folder."""
    from convert.quiet import import_tensorflow

    tf = import_tensorflow()

    if path.is_dir():
        signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        name, spec = next(iter(signature.structured_input_signature[1].items()))

        def run(x):
            return {k: v.numpy() for k, v in signature(**{name: tf.constant(x, spec.dtype)}).items()}

        run.input_shape = tuple(spec.shape[1:])
        return run
    import keras

    import train.layers

    train.layers.register()
    model = keras.models.load_model(path, compile=False)

    def run(x):
        out = model.predict(x, verbose=0)
        return dict(out) if isinstance(out, dict) else {"output_0": out}

    run.input_shape = tuple(model.inputs[0].shape[1:])
    return run


