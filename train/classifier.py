"""``edgepilot train classifier``: the MobileNet-style classifier on the user's images.

    from train.classifier import train_classifier
    from train.options import TrainOptions
    result = train_classifier(TrainOptions(data="photos/", out="runs/cls", epochs=20))
    result.metrics["top1"]  # percent, on the held-out split

DATA: a folder with one sub-folder of images per class (what ``image_dataset_from_directory``
reads; with ``train/``, ``val/`` (or ``valid/``, ``validation/``) and ``test/`` sub-folders of that
form, those splits are used), an
``.npz`` with ``x`` and ``y`` (optional ``x_val``/``y_val``, ``x_test``/``y_test`` and ``labels``;
uint8 pixels are scaled by 1/255, float values are taken as they are), or ``fashion-mnist``.
Without a validation split, ``val_fraction`` of the training samples is held out (stratified).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.metadata import ModelMetadata, Preprocess
from train.options import TrainOptions
from train.outputs import TrainResult, save_outputs

DEFAULT_FOLDER_INPUT = (96, 96)


@dataclass(frozen=True)
class ClassificationData:
    """Arrays ready for the model (float32, preprocessed) and the recipe that made them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    labels: tuple[str, ...]
    preprocess: Preprocess
    test_name: str  # which split the final figure is on


def _holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): ``fraction`` of each class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        val.extend(rng.permutation(members)[:max(1, int(round(len(members) * fraction)))])
    val = np.sort(np.asarray(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def load_classification_data(options: TrainOptions) -> ClassificationData:
    data = str(options.data)
    if data.lower().replace("_", "-") == "fashion-mnist":
        from train.datasets import FASHION_MNIST_LABELS, load_fashion_mnist

        x, y = load_fashion_mnist("train", limit=options.limit)
        x_test, y_test = load_fashion_mnist("test")
        pre = Preprocess(kind="image", size=(28, 28), color="gray", scale=1 / 255)
        train, val = _holdout(y, options.val_fraction, options.seed)
        scale = lambda a: pre.normalize(a[..., None])  # noqa: E731
        return ClassificationData(scale(x[train]), y[train], scale(x[val]), y[val], scale(x_test), y_test,
                                  FASHION_MNIST_LABELS, pre, "test")
    path = Path(data)
    if path.suffix.lower() == ".npz":
        return _from_npz(path, options)
    if path.is_dir():
        return _from_folder(path, options)
    raise ValueError(f"--data {data}: expected a folder of class sub-folders, an .npz with x and y, or "
                     f"'fashion-mnist'")


def _from_npz(path: Path, options: TrainOptions) -> ClassificationData:
    from convert.data import DataError

    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"--data {path}: cannot read it as an .npz archive: {exc}") from None
    with archive:
        arrays = {k: archive[k] for k in archive.files if k != "labels"}
        labels = tuple(str(s) for s in archive["labels"]) if "labels" in archive.files else ()
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"--data {path}: the archive has no array {key!r} (it holds {sorted(arrays)}); save it "
                            f"with np.savez(path, x=images, y=class_indices)")
    x = arrays["x"]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"--data {path}: x must be images [N, height, width(, channels)], got shape {x.shape}")
    uint8 = x.dtype == np.uint8
    pre = Preprocess(kind="image", size=x.shape[1:3], color="gray" if x.shape[3] == 1 else "rgb",
                     scale=1 / 255 if uint8 else 1.0)

    def prep(key_x: str, key_y: str):
        if key_x not in arrays:
            return None, None
        xs = arrays[key_x][..., None] if arrays[key_x].ndim == 3 else arrays[key_x]
        ys = np.asarray(arrays[key_y]).reshape(-1).astype(np.int64)
        if len(xs) != len(ys):
            raise DataError(f"--data {path}: {key_x} has {len(xs)} samples but {key_y} has {len(ys)} labels")
        return pre.normalize(xs), ys

    x_all, y_all = prep("x", "y")
    if options.limit:
        x_all, y_all = x_all[:options.limit], y_all[:options.limit]
    x_test, y_test = prep("x_test", "y_test")
    if "x_val" in arrays:
        x_val, y_val = prep("x_val", "y_val")
        x_train, y_train = x_all, y_all
    else:
        train, val = _holdout(y_all, options.val_fraction, options.seed)
        x_train, y_train, x_val, y_val = x_all[train], y_all[train], x_all[val], y_all[val]
    classes = int(max(y_all.max(), y_val.max())) + 1
    labels = labels or tuple(str(i) for i in range(classes))
    return ClassificationData(x_train, y_train, x_val, y_val, x_test, y_test, labels, pre,
                              "test" if x_test is not None else "validation")


def _from_folder(path: Path, options: TrainOptions) -> ClassificationData:
    from convert.data import load_dataset
    from convert.data_files import VALIDATION_FOLDERS, split_folders

    size = options.input_size or DEFAULT_FOLDER_INPUT
    pre = Preprocess(kind="image", size=tuple(size), color="rgb", scale=1 / 255)
    shape = (*size, 3)
    splits = split_folders(path)  # train/ val/ test/ of class folders, numbered by all their classes
    if "train" in splits:
        train = load_dataset(path, shape, pre, limit=options.limit, seed=options.seed, what="training", split="train")
        has_val = any(s in splits for s in VALIDATION_FOLDERS)
        val = load_dataset(path, shape, pre, what="validation", split="val") if has_val else None  # or valid/, validation/
        test = load_dataset(path, shape, pre, what="test", split="test") if "test" in splits else None
    elif splits:
        raise ValueError(f"--data {path}: has the splits {list(splits)} but no train/; expected train/ with one "
                         f"sub-folder per class")
    else:
        train, val, test = load_dataset(path, shape, pre, limit=options.limit, seed=options.seed, what="training"), None, None
    if train.y is None:
        raise ValueError(f"--data {path}: the images need one sub-folder per class (the folder name is the label)")
    missing = [name for i, name in enumerate(train.labels) if not np.any(train.y == i)]
    if missing:  # an empty class folder, one that only another split has, or one --limit drew nothing from
        drawn = f" among the {options.limit} that --limit drew" if options.limit else ""
        raise ValueError(f"--data {path}: class {missing[0]!r} has no training images{drawn}; every class "
                         f"needs some (a class folder only in val/ or test/, or an empty one, has none)")
    x_train, y_train = train.x, train.y
    if val is None:
        keep, held = _holdout(y_train, options.val_fraction, options.seed)
        x_val, y_val, x_train, y_train = x_train[held], y_train[held], x_train[keep], y_train[keep]
    else:
        x_val, y_val = val.x, val.y
    return ClassificationData(x_train, y_train, x_val, y_val, test.x if test else None, test.y if test else None,
                              train.labels, pre, "test" if test else "validation")


EVAL_BYTES = 64 << 20  # eval.npz is written when the held-out images take at most this much


def _write_convert_data(out: Path, data: ClassificationData, seed: int) -> None:
    """``calib.npz`` (200 training samples) and ``eval.npz`` (the held-out split, up to 2000
    samples) in the model's input form, which ``edgepilot convert DIR`` picks up."""
    import io

    from convert.files import write_atomic

    def npz(x, y) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y, labels=np.array(data.labels))
        return buffer.getvalue()

    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(data.x_train), size=min(200, len(data.x_train)), replace=False))
    write_atomic(out / "calib.npz", npz(data.x_train[pick], data.y_train[pick]), force=True)
    x, y = (data.x_test, data.y_test) if data.x_test is not None else (data.x_val, data.y_val)
    keep = np.sort(rng.choice(len(x), size=min(2000, len(x)), replace=False))
    if x[keep].nbytes <= EVAL_BYTES:
        write_atomic(out / "eval.npz", npz(x[keep], y[keep]), force=True)


def _augmenter(keras, shape, flip: bool):
    """Random shifts (up to 8% of each side), a little zoom, and horizontal flips when ``flip``."""
    layers = [keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
              keras.layers.RandomZoom(0.08, fill_mode="constant")]
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    return keras.Sequential(layers, name="augment")


def train_classifier(options: TrainOptions, progress=print) -> TrainResult:
    import keras
    import tensorflow as tf

    from train import fit
    from train.architectures import classifier, synchronized_bn
    from train.metrics import classification_metrics

    fit.check_out(options)  # nothing is written until the data has loaded
    keras.utils.set_random_seed(options.seed)
    data = load_classification_data(options)
    shape = data.x_train.shape[1:]
    progress(f"classifier: {len(data.x_train)} training images, {len(data.x_val)} validation, "
             f"{len(data.labels)} classes, input {'x'.join(map(str, shape))}")
    strategy = fit.make_strategy(options.distribute)
    fit.prepare_out(options, progress)  # the data loaded, the cluster joined: now --out may change
    replicas = strategy.num_replicas_in_sync
    global_batch = options.batch_size * replicas
    steps = max(1, len(data.x_train) // global_batch)
    train_ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
    train_ds = train_ds.shuffle(len(data.x_train), seed=options.seed, reshuffle_each_iteration=True)
    train_ds = train_ds.batch(global_batch, drop_remainder=True)
    if options.augment:
        augment = _augmenter(keras, shape, options.flip)
        train_ds = train_ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).batch(256)
    with strategy.scope():
        with synchronized_bn(replicas > 1):
            model = classifier(keras, shape, len(data.labels), options.width)
        model.compile(keras.optimizers.AdamW(fit.learning_rate(keras, options, steps), weight_decay=1e-4),
                      keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    progress(f"classifier: {model.count_params():,} parameters, {replicas} replica(s) ({fit.strategy_name(strategy)}), "
             f"global batch {global_batch}")
    fit.build_for_strategy(model, strategy, (data.x_train[:global_batch], data.y_train[:global_batch]))
    timer = fit.Timer(options)
    fit.fit_model(keras, model, train_ds, options, fit.callbacks(keras, options, "val_accuracy"),
                  validation_data=val_ds, epochs=options.epochs, verbose=options.verbose)
    history = fit.read_history(options)
    epochs_run = len(next(iter(history.values()), [])) or options.epochs
    x_final, y_final = (data.x_test, data.y_test) if data.x_test is not None else (data.x_val, data.y_val)
    predicted = model.predict(x_final, batch_size=256, verbose=0).argmax(axis=-1)
    metrics = classification_metrics(predicted, y_final, data.labels)
    progress(f"classifier: {data.test_name} top-1 {metrics.top1:.2f}%")
    meta = ModelMetadata(task="classification", labels=data.labels, input_layout="NHWC", preprocess=data.preprocess)
    calibration = {"data": str(options.data), "split": "train"}
    record = {"task": "classification", "data": str(options.data), "final_split": data.test_name,
              "metrics": metrics.to_dict(), "parameters": int(model.count_params()), "epochs_run": epochs_run,
              **timer.record(len(data.x_train), epochs_run),
              "replicas": replicas, "strategy": fit.strategy_name(strategy), "options": options.to_dict(),
              "calibration": calibration}
    result = save_outputs(model, meta, options, record, history)
    if fit.is_chief():
        _write_convert_data(options.out, data, options.seed)
    if options.qat:
        from train.qat import qat_classifier

        result = qat_classifier(result, options, data, progress)
    return result
