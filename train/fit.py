"""What every recipe's training run shares: the distribution strategy, the learning-rate schedule,
callbacks (checkpoints for ``--resume``, early stopping, TensorBoard, CSV curves), and the
``training.json`` + ``training.png`` record.

Scaling out uses TensorFlow's own engine: ``MirroredStrategy`` over the local GPUs (or logical
CPU devices), ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` describes a cluster. Under a
strategy, ``batch_size`` is per replica and the global batch is ``batch_size * replicas``.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from train.options import TrainOptions

CHECKPOINTS = "checkpoints"
WORKER_FOLDER = re.compile(r"worker-(\d+)")  # a non-chief worker's own folder in --out (see worker_folder)


def cluster_spec() -> dict | None:
    """The parsed ``TF_CONFIG`` when it describes more than one worker, else None."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"] + config["cluster"].get("chief", [])
        task = config["task"]
        str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"TF_CONFIG: expected JSON like {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
                         f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}; could not read it ({exc!r})") from None
    return config if len(workers) > 1 else None


def make_strategy(mode: str):
    """The tf.distribute strategy for ``--distribute`` (auto: multi-worker when TF_CONFIG names a
    cluster, mirrored when there are several GPUs, else the default one-device strategy)."""
    import tensorflow as tf

    cluster = cluster_spec()
    if mode == "multiworker" or (mode == "auto" and cluster):
        if cluster is None:
            raise ValueError("--distribute multiworker needs TF_CONFIG describing at least two workers "
                             "(see docs/training.md, 'Training on several machines')")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if mode == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if mode == "auto" and len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build_for_strategy(model, strategy, sample_batch) -> None:
    """Work around Keras 3.15 under MultiWorkerMirroredStrategy: ``fit`` first builds the model
    from a batch it averages across workers with ``strategy.reduce`` on an (x, y) tuple, which
    collective all-reduce refuses ("Attempt to convert a value (PerReplica...) to a Tensor").
    Building the model, loss and metrics from one local batch first (shapes are all it reads)
    and skipping that step on this model instance only gives the same model; every gradient is
    still all-reduced by the strategy. Other strategies are left alone."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    with strategy.scope():
        model._symbolic_build(data_batch=sample_batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    _scalar_logs_reduce_fix()


def _scalar_logs_reduce_fix() -> None:
    """Keras 3.15 averages each step's logs across workers with ``strategy.reduce("MEAN", v,
    axis=0)``, which fails for the scalar loss and metrics ("Invalid reduction dimension 0 for
    input with 0 dimensions"). Scalars are averaged with ``axis=None`` instead; everything else
    goes through Keras' own function unchanged."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer
    from keras.src import tree

    original = getattr(trainer.reduce_per_replica, "__wrapped__", trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(values, strategy, reduction)

        def one(v):
            local = strategy.experimental_local_results(v)[0] if hasattr(v, "values") else v
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return original(v, strategy, reduction)

        return tree.map_structure(one, values)

    reduce_per_replica.__wrapped__ = original
    trainer.reduce_per_replica = reduce_per_replica


def strategy_name(strategy) -> str:
    """The strategy's public name (MultiWorkerMirroredStrategy's own class is named
    CollectiveAllReduceStrategy; the default one is "_DefaultDistributionStrategy")."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__.lstrip("_")


def is_chief() -> bool:
    """True in a single process and on the cluster's chief (worker 0 when there is no chief)."""
    cluster = cluster_spec()
    if cluster is None:
        return True
    task = cluster["task"]
    has_chief = bool(cluster["cluster"].get("chief"))
    return task["type"] == "chief" or (not has_chief and task["type"] == "worker" and int(task["index"]) == 0)


def cluster_size() -> int:
    """Processes in the cluster (1 in a single process)."""
    cluster = cluster_spec()
    return 1 if cluster is None else len(cluster["cluster"]["worker"]) + len(cluster["cluster"].get("chief", []))


def worker_folder(out: Path) -> Path:
    """Where this process keeps what is its own: ``out`` for the chief (and a single process),
    ``out/worker-<n>/`` for worker *n*, so workers sharing one --out (a shared file system) never
    write the same file, and a worker's folder is never another's to clear."""
    return out if is_chief() else out / f"worker-{worker_index()}"


def checkpoint_dir(out: Path) -> Path:
    """This process's checkpoints, curves and run choices: ``checkpoints/`` in its
    :func:`worker_folder`. Each worker resumes from its own (BackupAndRestore restores every
    worker; a worker that found the chief's, or another run's, would skip epochs the others
    train and leave the cluster's collective operations out of step)."""
    return worker_folder(out) / CHECKPOINTS


def worker_index() -> int:
    """This process's position in the cluster (0 in a single process, the chief first)."""
    cluster = cluster_spec()
    if cluster is None:
        return 0
    task = cluster["task"]
    has_chief = bool(cluster["cluster"].get("chief"))
    return int(task["index"]) + (1 if has_chief and task["type"] == "worker" else 0)


def learning_rate(keras, options: TrainOptions, steps_per_epoch: int):
    """Peak ``options.lr`` with the chosen schedule, in optimizer steps."""
    total = max(1, options.epochs * steps_per_epoch)
    if options.schedule == "constant":
        return options.lr
    if options.schedule == "step":
        third = max(1, total // 3)
        return keras.optimizers.schedules.PiecewiseConstantDecay([third, 2 * third],
                                                                  [options.lr, options.lr / 2, options.lr / 4])
    warmup = min(int(options.warmup_epochs * steps_per_epoch), total // 2)
    return keras.optimizers.schedules.CosineDecay(
        options.lr / 10 if warmup else options.lr, total - warmup, alpha=0.01,
        warmup_target=options.lr if warmup else None, warmup_steps=warmup)


def callbacks(keras, options: TrainOptions, monitor: str, extra=()) -> list:
    """``extra`` callbacks first (they compute the monitored metric), then checkpoints for
    ``--resume``, early stopping on ``monitor`` (restoring the best weights), the CSV of the
    curves and TensorBoard."""
    backup = checkpoint_dir(options.out)
    result = list(extra)
    result.append(keras.callbacks.BackupAndRestore(str(backup / "backup"), delete_checkpoint=False))
    if options.patience:
        result.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=options.patience,
                                                    restore_best_weights=True, verbose=1))
    result.append(keras.callbacks.CSVLogger(str(backup / "history.csv"), append=options.resume))
    if options.tensorboard is not None:
        result.append(keras.callbacks.TensorBoard(log_dir=str(options.tensorboard)))
    return result


def fit_model(keras, model, data, options: TrainOptions, callback_list: list, **kwargs):
    """``model.fit(data, callbacks=callback_list, **kwargs)``, with a one-line error naming the
    checkpoint folder when ``--resume`` cannot load it into this model (it was saved by a model of
    another shape), instead of Keras' error about one variable."""
    restored = []

    class Restored(keras.callbacks.Callback):  # runs right after BackupAndRestore has loaded
        def on_train_begin(self, logs=None):
            restored.append(True)

    after = next((i + 1 for i, c in enumerate(callback_list) if isinstance(c, keras.callbacks.BackupAndRestore)), 0)
    callback_list = [*callback_list[:after], Restored(), *callback_list[after:]]
    try:
        return model.fit(data, callbacks=callback_list, **kwargs)
    except ValueError as exc:
        if not options.resume or restored:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"{checkpoint_dir(options.out)}: --resume cannot load this checkpoint into the model ({first}); "
                         f"it was saved by a model of another shape (another --width, --head, --input-size or "
                         f"class count, or an earlier edgepilot); pass --force to start over in {options.out}") from None


def check_out(options: TrainOptions) -> None:
    """Refuse to train over an earlier run without --resume or --force; writes nothing, so a run
    that fails on its data or options afterwards leaves --out as it was."""
    out = options.out
    if out.is_symlink() and not out.exists():
        raise NotADirectoryError(f"{out}: --out is a broken symbolic link; expected a folder for the run")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out is a file; expected a folder for the run")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise NotADirectoryError(f"{out}: --out lies under {parent}, which is a file; expected a folder for the run")
    if out.exists() and any(out.iterdir()) and not (options.resume or options.force):
        raise FileExistsError(f"{out}: the output folder is not empty; pass --resume to continue its training, "
                              f"--force to start over in it, or choose another --out")
    if options.resume and not checkpoint_dir(out).is_dir():
        raise FileNotFoundError(f"{out}: --resume found no {checkpoint_dir(out).relative_to(out)}/ folder of an "
                                "earlier run to continue")
    done = epochs_done(options) if options.resume else 0
    if done >= options.epochs:
        raise ValueError(f"{out}: --resume: this run has already trained {done} epochs; pass --epochs larger "
                         f"than {done} to train it on")


def prepare_out(options: TrainOptions, progress=print) -> None:
    """Make --out ready once :func:`check_out` has passed (the recipes check before loading their
    data and do not check again: in a cluster sharing one folder the chief may have started in it
    by now). With --force (and no --resume) each process clears only what is its own: a worker its
    ``worker-<n>/`` folder; the chief the earlier run's checkpoints and files
    (:data:`train.outputs.RUN_FILES`) and the folders of workers this cluster does not have. So
    workers sharing one --out never clear each other's new files. Anything else in the folder
    stays, named on ``progress``, since it may have been made from the earlier model (a converted
    folder, say)."""
    import shutil

    from train.outputs import RUN_FILES

    out = options.out
    if options.force and not options.resume and out.is_dir():
        if is_chief():
            workers = [(p, WORKER_FOLDER.fullmatch(p.name)) for p in out.iterdir()]
            gone = [out / name for name in (CHECKPOINTS, *RUN_FILES)] + sorted(out.glob(".*.tmp")) + sorted(
                p for p, match in workers if match and int(match.group(1)) >= cluster_size())
        else:
            gone = [worker_folder(out)]
        for path in gone:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        kept = sorted(p.name for p in out.iterdir() if not WORKER_FOLDER.fullmatch(p.name))
        if kept and is_chief():
            progress(f"{out}: --force kept {', '.join(kept)} (not files of the training run itself; anything "
                     f"made from the earlier model is now stale)")
    checkpoint_dir(out).mkdir(parents=True, exist_ok=True)


def read_history(options: TrainOptions) -> dict[str, list[float]]:
    """All epochs' metrics so far (across resumed runs), from the CSV log."""
    import csv

    path = checkpoint_dir(options.out) / "history.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in keys}


def epochs_done(options: TrainOptions) -> int:
    """How many epochs the run in ``options.out`` has trained so far (0 before its first)."""
    return len(next(iter(read_history(options).values()), []))


class Timer:
    """Wall time of fitting, across resumed runs. Started right before ``fit``: a ``--resume`` run
    counts the epochs already in the curves and adds the seconds the earlier run recorded (an
    interrupted run recorded none), so the totals cover the whole run while images per second
    divides only this process's epochs by its own time."""

    def __init__(self, options: TrainOptions):
        self.start = time.perf_counter()
        self.earlier_seconds, self.earlier_epochs = 0.0, 0
        if options.resume:
            self.earlier_epochs = epochs_done(options)
            self.earlier_seconds = float(read_record(options.out).get("seconds") or 0.0)

    def seconds(self) -> float:
        """This process's fitting time."""
        return time.perf_counter() - self.start

    def record(self, samples_per_epoch: int, epochs_run: int) -> dict:
        """``{"seconds": whole run, "images_per_s": this process's}`` for ``training.json``."""
        seconds, epochs = self.seconds(), epochs_run - self.earlier_epochs
        return {"seconds": self.earlier_seconds + seconds,
                "images_per_s": samples_per_epoch * epochs / seconds if seconds and epochs > 0 else None}


def read_record(out: Path) -> dict:
    """The ``training.json`` an earlier run in ``out`` wrote; {} when there is none (an interrupted run)."""
    path = out / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_record(out: Path, record: dict, history: dict[str, list[float]]) -> None:
    """``training.json`` (curves and final metrics) and ``training.png`` (the curves)."""
    from convert.files import write_atomic

    record = dict(record, history=history)
    write_atomic(out / "training.json", json.dumps(record, indent=2, sort_keys=True) + "\n", force=True)
    if history:
        write_atomic(out / "training.png", _plot(history, record.get("task", "")), force=True)


def update_record(out: Path, **fields) -> None:
    """Set ``fields`` in the ``training.json`` :func:`write_record` wrote (a later step's results,
    such as ``--qat``'s), keeping everything else in it."""
    from convert.files import write_atomic

    path = out / "training.json"
    record = json.loads(path.read_text())
    record.update(fields)
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n", force=True)


def _plot(history: dict[str, list[float]], title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [k for k in history if k.endswith("loss") and k != "lr"]
    metrics = [k for k in history if k not in losses and k not in ("lr", "learning_rate")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in losses:
        axes[0].plot(range(1, len(history[key]) + 1), history[key], label=key)
    for key in metrics:
        axes[1].plot(range(1, len(history[key]) + 1), history[key], label=key)
    for ax, name in zip(axes, ("loss", "metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(f"edgepilot train {title}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
