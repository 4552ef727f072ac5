"""What a training run leaves in ``--out DIR``, in the form ``edgepilot convert`` takes as it is:

    DIR/model.keras        the Keras 3 model (detectors: ``import train.layers`` before loading)
    DIR/model.json         its metadata sidecar ({"edgepilot": {...}}: task, labels, preprocessing,
                           decoder layout, thresholds), which convert stores in every variant
    DIR/saved_model/       a SavedModel with a ``serving_default`` signature (no Python needed)
    DIR/saved_model.json   the same metadata, as the SavedModel's sidecar
    DIR/training.json      options, curves, final metrics, throughput, calibration data source
    DIR/training.png       the curves
    DIR/checkpoints/       what --resume continues from

In a multi-worker cluster every worker saves (saving may involve all of them): the chief into
DIR, worker *i* into ``DIR/worker-<i>/`` (its own copy of the same weights, on a shared or a local
disk), which holds its model files and its own ``checkpoints/`` (each worker resumes from its
own; see :func:`train.fit.checkpoint_dir`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from convert.files import write_atomic
from convert.metadata_io import sidecar_json
from edge_runtime.metadata import ModelMetadata
from train import fit
from train.qat import QAT_FILE
from train.options import TrainOptions


@dataclass(frozen=True)
class TrainResult:
    """Where a recipe wrote its model and what it measured (``metrics`` as in training.json)."""

    out: Path
    keras_path: Path
    saved_model: Path
    metadata: ModelMetadata
    metrics: dict
    record: dict = field(default_factory=dict)
    extra_files: tuple[Path, ...] = ()

    def summary(self) -> str:
        return f"{self.out}: {metrics_text(self.metrics)}"


def metrics_text(metrics: dict) -> str:
    """``"top1 92.1, images 10000"``-style text of a metrics dict's float values."""
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))


STAGING = ".saved_model.tmp"  # the SavedModel is exported here, then renamed to saved_model/
# every file and folder a run writes into --out (here, train.qat, the classifier's convert data):
# --force removes them all (train.fit.prepare_out), so nothing of the earlier run is left beside
# the new one; interrupted atomic writes (".NAME.*.tmp") go too
RUN_FILES = ("model.keras", "model.json", "saved_model", "saved_model.json", "training.json", "training.png",
             QAT_FILE, Path(QAT_FILE).with_suffix(".json").name, "calib.npz", "eval.npz", STAGING,
             ".model.keras.tmp.keras")


def save_outputs(model, meta: ModelMetadata, options: TrainOptions, record: dict,
                 history: dict[str, list[float]]) -> TrainResult:
    chief = fit.is_chief()
    out = fit.worker_folder(options.out)
    out.mkdir(parents=True, exist_ok=True)
    keras_path, saved = out / "model.keras", out / "saved_model"
    _save_keras(model, keras_path)
    staging = out / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    model.export(str(staging), format="tf_saved_model", verbose=False)
    shutil.rmtree(saved, ignore_errors=True)
    staging.rename(saved)
    if chief:
        write_atomic(out / "model.json", sidecar_json(meta), force=True)
        write_atomic(out / "saved_model.json", sidecar_json(meta), force=True)
        fit.write_record(out, record, history)
    # where this process saved: a worker's own copy in a cluster (QAT on that worker reads it)
    return TrainResult(out, keras_path, saved, meta, record.get("metrics", {}), record)


def _save_keras(model, path: Path) -> None:
    """model.save through a temporary name, so an interrupted save leaves the old file whole."""
    tmp = path.with_name(f".{path.name}.tmp.keras")  # in RUN_FILES for model.keras
    model.save(str(tmp))
    tmp.replace(path)
