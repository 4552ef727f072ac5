"""``edgepilot convert DIR`` on a folder that ``edgepilot train`` wrote: the model, its metadata and
its calibration / evaluation data are found there, so the user passes nothing else.

A training folder holds ``saved_model/`` (converted; it needs no Python code to load) with its
sidecar ``saved_model.json``, and either ``calib.npz`` (samples already in the model's input form)
or, in ``training.json``, ``calibration`` / ``evaluation`` entries naming the data set the recipe
read (a YOLO data.yaml, a COCO folder, fashion-mnist ...), which convert reads again through the
model's own preprocessing. Explicit ``--calib`` / ``--eval`` / metadata options win.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.metadata import METADATA_KEY, ModelMetadata, sidecar_metadata


@dataclass(frozen=True)
class TrainingFolder:
    folder: Path
    model: Path
    metadata: ModelMetadata | None
    calib: str | None
    eval: str | None
    task: str


def stored_metadata(model: Path) -> ModelMetadata | None:
    """The metadata in the sidecar ``<model>.json`` of a SavedModel folder or Keras file."""
    sidecar = sidecar_metadata(model)
    if METADATA_KEY not in sidecar:
        return None
    try:
        return ModelMetadata.from_json(json.dumps(sidecar[METADATA_KEY]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{model.with_suffix('.json')}: unreadable edgepilot metadata: {exc}") from None


def find(path: str | Path) -> TrainingFolder | None:
    """The training folder at ``path``, or None when ``path`` is not one."""
    folder = Path(path)
    saved = folder / "saved_model"
    if not (folder.is_dir() and saved.is_dir() and (folder / "training.json").is_file()):
        return None
    try:
        record = json.loads((folder / "training.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder / 'training.json'}: cannot read it ({exc}); expected the JSON that "
                         f"edgepilot train writes") from None
    calib = folder / "calib.npz"
    calibration = str(calib) if calib.is_file() else (record.get("calibration") or {}).get("data")
    evaluation = folder / "eval.npz"
    eval_data = str(evaluation) if evaluation.is_file() else (record.get("evaluation") or {}).get("data")
    return TrainingFolder(folder, saved, stored_metadata(saved), calibration, eval_data, str(record.get("task", "")))
