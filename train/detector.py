"""``edgepilot train detector``: a small int8-friendly single-shot detector on a YOLO or COCO set.

    from train.detector import train_detector
    from train.options import TrainOptions
    result = train_detector(TrainOptions(data="scenes/data.yaml", out="runs/det", epochs=40))
    result.metrics["map50"]

The architecture and its int8 choices are in :mod:`train.architectures`, the targets in
:mod:`train.detection_targets`, the losses in :mod:`train.detection_loss`. Validation mAP (COCO's,
through pycocotools) is measured after every epoch on the validation split; early stopping and
the kept weights follow it. The final figures are on the test split when the set has one.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_runtime.metadata import DETECTOR_LAYOUT, ModelMetadata, Preprocess
from train.architectures import DetectorSpec
from train.options import TrainOptions
from train.outputs import TrainResult, save_outputs

DEFAULT_INPUT = (256, 256)
SCORE_THRESHOLD, IOU_THRESHOLD = 0.25, 0.5  # what the camera app uses by default
PIXEL_SCALE = 1 / 255
# --average-weights keeps an exponential moving average of the trained weights (Polyak averaging,
# like Ultralytics' ModelEMA, of the trainable weights; batch normalization keeps its own running
# statistics) over the last ~200 steps (about 3 epochs of the built-in scenes); validation mAP,
# early stopping, checkpoints and the saved model then all see the average (Keras'
# SwapEMAWeights swaps it in at each epoch's end and out before the next epoch). It is off by
# default: with the cosine schedule, which already ends at a small learning rate, the two runs of
# the benchmark recipe with it scored test mAP@0.5 0.819 (50 epochs) and 0.811 (40 + 20) against
# 0.843 without it (docs/benchmarks.md).
AVERAGE_STEPS = 200


def averaging_momentum(total_steps: int) -> float:
    """The moving average's momentum for a run of ``total_steps`` optimizer steps: it spans
    AVERAGE_STEPS steps, or a tenth of a short run (a test's, the demo's), which would otherwise
    end close to its random initial weights; 0 (no averaging) for a run of 10 steps or fewer."""
    span = min(AVERAGE_STEPS, total_steps / 10)
    return 1.0 - 1.0 / span if span > 1 else 0.0


def detector_metadata(names, input_size, head: str = "shared") -> ModelMetadata:
    return ModelMetadata(
        task="detection", labels=tuple(names), input_layout="NHWC",
        preprocess=Preprocess(kind="image", size=tuple(input_size), color="rgb", scale=PIXEL_SCALE,
                              resize="letterbox", pad_value=114.0),
        thresholds={"score": SCORE_THRESHOLD, "iou": IOU_THRESHOLD},
        extra={"decoder": DETECTOR_LAYOUT, "box_format": "xyxy_normalized", "architecture": "edgepilot-ssd-fpn-lite",
               "head": head})


def _splits(data: str) -> tuple[str, str | None, str | None]:
    """(train, validation, test) split names of a detection set (validation/test may be None)."""
    from train.detection_data import detection_splits

    splits = detection_splits(data)
    train = next((s for s in splits if s.startswith("train")), None)
    if train is None:
        raise ValueError(f"{data}: the data set has no training split (it has {list(splits)}); expected 'train'")
    val = next((s for s in splits if s.startswith("val")), None)
    test = next((s for s in splits if s.startswith("test")), None)
    return train, val, test


class ValidationMAP:
    """Keras callback factory: mAP@0.5 and mAP@0.5:0.95 on the validation images after each
    epoch, added to the logs as ``val_map50`` / ``val_map50_95`` (before early stopping reads them)."""

    def __new__(cls, keras, model, dataset, fitted, pre, batch_size):
        from train.evaluate import detection_metrics_from_outputs

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                x = np.stack([pre.normalize(image) for image in fitted.images])
                outputs = model.predict(x, batch_size=batch_size, verbose=0)  # the two-output model
                metrics = detection_metrics_from_outputs(dataset, outputs, fitted.geometries)
                if logs is not None:
                    logs["val_map50"], logs["val_map50_95"] = metrics.map50, metrics.map50_95
                print(f" - val_map50: {metrics.map50:.4f} - val_map50_95: {metrics.map50_95:.4f}", flush=True)

        return _Callback()


class AveragedWeights:
    """Keras callback factory: ``SwapEMAWeights(swap_on_epoch=True)``, which also knows that a
    ``--resume`` checkpoint (written at an epoch's end, after the swap) holds the average in the
    model and the trained weights in the optimizer, and swaps them back before training on.

    A checkpoint whose optimizer state Keras could not load (one written before the average was
    kept) would swap in an average of zeros: that is refused, naming ``checkpoints``."""

    def __new__(cls, keras, checkpoints=None):
        class _Callback(keras.callbacks.SwapEMAWeights):
            def on_epoch_begin(self, epoch, logs=None):
                if not getattr(self, "_begun", False) and epoch > 0:  # resumed at this epoch
                    if int(self.model.optimizer.iterations) == 0:
                        raise ValueError(f"{checkpoints}: --resume could not load the optimizer state of this "
                                         f"checkpoint (Keras warned above; it was written by an earlier edgepilot "
                                         f"or another optimizer); pass --force to start over")
                    self._ema_weights_in_model = True
                self._begun = True
                super().on_epoch_begin(epoch, logs)

        return _Callback(swap_on_epoch=True)


RUN_CHOICES = "run.json"  # in checkpoints/: the options a checkpoint depends on, written when a run starts


def _run_choices(options: TrainOptions) -> dict:
    return {"average_weights": options.average_weights, "head": options.head, "width": options.width}


def _record_choices(options: TrainOptions) -> None:
    """A new run writes the choices :func:`_check_resume_choices` reads into ``checkpoints/run.json``."""
    from convert.files import write_atomic
    from train import fit

    if not options.resume:
        path = fit.checkpoint_dir(options.out) / RUN_CHOICES
        write_atomic(path, json.dumps(_run_choices(options), indent=2) + "\n", force=True)


def _check_resume_choices(options: TrainOptions) -> None:
    """A --resume must keep the choices its checkpoint depends on: --average-weights (the
    checkpoint holds the average in the model only when the run kept one) and --head / --width
    (the graph). They are read from ``checkpoints/run.json``, which a run writes when it starts
    (:func:`_record_choices`), so an interrupted run is checked too; runs from before that file
    fall back to training.json."""
    from train import fit

    path = fit.checkpoint_dir(options.out) / RUN_CHOICES
    now = _run_choices(options)
    if not options.resume:
        return
    if path.is_file():
        before = json.loads(path.read_text())
    else:  # an earlier edgepilot: only a finished run says what it chose
        before = {k: v for k, v in fit.read_record(options.out).get("options", {}).items() if k in now}
    if "average_weights" in before and bool(before["average_weights"]) != options.average_weights:
        flag = "with" if before["average_weights"] else "without"
        raise ValueError(f"{options.out}: --resume: this run was trained {flag} --average-weights; "
                         f"resume it {flag} the option too")
    for option in ("head", "width"):
        if option in before and before[option] != now[option]:
            raise ValueError(f"{options.out}: --resume: this run was trained with --{option} {before[option]}; "
                             f"resume it with --{option} {before[option]} (got {now[option]})")


def train_detector(options: TrainOptions, progress=print) -> TrainResult:
    import keras

    from train import fit
    from train.detection_data import load_detection_set
    from train.detection_loss import detection_loss, training_view
    from train.detection_pipeline import FittedImages, batches_of
    from train.detection_targets import AnchorPoints
    from train.layers import decode_factory
    from train.architectures import detector, synchronized_bn

    fit.check_out(options)  # before the data, which may take a while; nothing is written until prepare_out
    _check_resume_choices(options)
    keras.utils.set_random_seed(options.seed)
    train_split, val_split, test_split = _splits(options.data)
    train_set = load_detection_set(options.data, train_split)
    if options.limit:
        train_set = train_set.subset(range(min(options.limit, len(train_set))))
    if val_split:
        val_set = load_detection_set(options.data, val_split)
    else:  # hold out a fraction of the training images
        order = np.random.default_rng(options.seed).permutation(len(train_set))
        cut = max(1, int(round(len(train_set) * options.val_fraction)))
        val_set, train_set = train_set.subset(sorted(order[:cut])), train_set.subset(sorted(order[cut:]))
    test_set = load_detection_set(options.data, test_split) if test_split else None
    for other in (val_set, test_set):  # COCO splits name their classes each in its own file
        if other is not None and other.names != train_set.names:
            raise ValueError(f"{options.data}: split {other.split!r} has the classes {list(other.names)} but "
                             f"{train_set.split!r} has {list(train_set.names)}; expected the same classes in "
                             f"every split, in the same order")
    size = options.input_size or DEFAULT_INPUT
    spec = DetectorSpec(size, len(train_set.names), options.width, options.head)
    meta = detector_metadata(train_set.names, size, options.head)
    pre = meta.preprocess
    progress(f"detector: {len(train_set)} training images ({train_set.num_boxes} boxes), {len(val_set)} validation, "
             f"{len(train_set.names)} classes, input {size[0]}x{size[1]}")
    fitted_train = FittedImages(train_set, pre)
    fitted_val = FittedImages(val_set, pre)
    anchors = AnchorPoints(spec)

    strategy = fit.make_strategy(options.distribute)
    replicas = strategy.num_replicas_in_sync
    global_batch = options.batch_size * replicas
    shard = (fit.worker_index(), 1)  # each worker augments with its own random stream
    # the images decoded, the cluster joined: only now may --out change
    fit.prepare_out(options, progress)
    _record_choices(options)
    train_batches = batches_of(keras, fitted_train, anchors, pre, global_batch, options.seed, train=options.augment,
                               flip=options.flip, shard=shard)
    with strategy.scope():
        with synchronized_bn(replicas > 1):
            model = detector(keras, spec, decode_factory(keras))
        trainer = training_view(keras, model)  # same weights, outputs joined for the loss
        schedule = fit.learning_rate(keras, options, len(train_batches))
        momentum = averaging_momentum(options.epochs * len(train_batches)) if options.average_weights else 0.0
        trainer.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4, global_clipnorm=10.0,
                                                         use_ema=momentum > 0, ema_momentum=momentum or 0.99),
                        loss=detection_loss)
    progress(f"detector: {model.count_params():,} parameters, {anchors.spec.num_anchors} cells, "
             f"{replicas} replica(s) ({fit.strategy_name(strategy)}), global batch {global_batch}")
    extra = [ValidationMAP(keras, model, val_set, fitted_val, pre, options.batch_size)]
    if momentum > 0:  # first: everything after it sees the average
        extra.insert(0, AveragedWeights(keras, fit.checkpoint_dir(options.out)))
    fit.build_for_strategy(trainer, strategy, train_batches[0])
    timer = fit.Timer(options)
    fit.fit_model(keras, trainer, train_batches, options, fit.callbacks(keras, options, "val_map50", extra),
                  epochs=options.epochs, verbose=options.verbose)
    history = fit.read_history(options)
    epochs_run = len(next(iter(history.values()), [])) or options.epochs
    final_set = test_set if test_set is not None else val_set
    final_fit = fitted_val if final_set is val_set else FittedImages(final_set, pre)
    outputs = model.predict(np.stack([pre.normalize(i) for i in final_fit.images]), batch_size=options.batch_size,
                            verbose=0)
    from train.evaluate import detection_metrics_from_outputs

    metrics = detection_metrics_from_outputs(final_set, outputs, final_fit.geometries)
    progress(f"detector: {test_split or val_split or 'validation'} mAP@0.5 {metrics.map50:.3f}, "
             f"mAP@0.5:0.95 {metrics.map50_95:.3f}")
    data_path = str(Path(options.data).resolve())  # convert DIR may run from another folder
    record = {"task": "detection", "data": data_path, "splits": {"train": train_split, "val": val_split,
              "test": test_split}, "final_split": test_split or val_split or "held-out", "metrics": metrics.to_dict(),
              "parameters": int(model.count_params()), "epochs_run": epochs_run,
              **timer.record(len(fitted_train), epochs_run),
              "replicas": replicas, "strategy": fit.strategy_name(strategy), "options": options.to_dict(),
              "calibration": {"data": data_path, "split": train_split},
              "evaluation": {"data": data_path, "split": test_split or val_split}}
    result = save_outputs(model, meta, options, record, history)
    if options.qat:
        from train.qat import qat_detector

        result = qat_detector(result, options, spec, fitted_train, anchors, pre, final_set, final_fit, progress)
    return result
