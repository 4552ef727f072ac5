"""Writing a calibrated operating point where ``edgepilot listen`` reads it.

- An edgepilot keyword model: its metadata gets ``thresholds`` {keyword: p},
  ``extra["smoothing_steps"]`` and ``extra["calibration"]`` (a JSON string: target, figures, data,
  date), both inside the file (TFLite metadata entry / ONNX ``metadata_props``, which is what
  edge_runtime reads first) and in the sidecar ``<stem>.json``. For a training folder every model
  file and sidecar of the folder is updated (``model.json``, ``saved_model.json``, the streaming
  .tflite files, converted window models), so whichever file ``listen`` opens uses the point.
- A microWakeWord model: its manifest ``NAME.json`` (the file pymicro-wakeword, ESPHome and
  ``listen`` read) gets ``micro.probability_cutoff`` and ``micro.sliding_window_size``, and a
  ``calibration`` object beside ``micro``.

Every file is checked before any is written, and each is replaced atomically. A model that was
calibrated before is refused unless ``force``. Uses convert's TFLite/ONNX embedding helpers,
which need flatbuffers (LiteRT's dependency) and, for ONNX files, the ``onnx`` package, never
TensorFlow."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from convert.files import write_atomic
from edge_runtime.metadata import METADATA_KEY, ModelMetadata


@dataclass(frozen=True)
class Target:
    """A file to update: ``kind`` "tflite", "onnx", "sidecar" or "manifest"."""

    path: Path
    kind: str
    metadata: ModelMetadata | None
    content: bytes | dict


def _embedded(path: Path) -> tuple[ModelMetadata | None, bytes]:
    data = path.read_bytes()
    if path.suffix == ".tflite":
        from edge_runtime.tflite_file import read_tflite

        text = read_tflite(data).metadata.get(METADATA_KEY)
    else:
        from edge_runtime.onnx_file import read_onnx

        text = read_onnx(data).metadata.get(METADATA_KEY)
    if text is None:
        return None, data
    return ModelMetadata.from_json(text), data


def _sidecar(path: Path) -> Target | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(METADATA_KEY), dict):
        return None
    return Target(path, "sidecar", ModelMetadata.from_json(json.dumps(data[METADATA_KEY])), data)


def targets(model_path, spec) -> list[Target]:
    """The files holding ``spec``'s model's operating point (see the module doc)."""
    given = Path(model_path).expanduser()
    resolved = Path(spec.path)
    if spec.kind == "micro":
        manifest = resolved.with_suffix(".json")
        return [Target(manifest, "manifest", None, json.loads(manifest.read_text(encoding="utf-8")))]
    if given.is_dir():
        files = sorted(p for p in given.iterdir() if p.suffix in (".tflite", ".onnx", ".json") and p.is_file())
    else:
        files = [resolved] + ([resolved.with_suffix(".json")] if resolved.with_suffix(".json").is_file() else [])
    found = []
    for p in files:
        if p.suffix == ".json":
            target = _sidecar(p)
        else:
            meta, data = _embedded(p)
            target = Target(p, p.suffix[1:], meta, data) if meta is not None else None
        if target is None or target.metadata.task != "keyword_spotting":
            continue
        words = json.loads(target.metadata.extra.get("words", "[]")) or list(target.metadata.labels[2:])
        if tuple(words) != tuple(spec.keywords):
            raise ValueError(f"{p}: its keywords {words} differ from the calibrated model's {list(spec.keywords)}; "
                             "calibrate that file on its own")
        found.append(target)
    if not found:
        raise ValueError(f"{given}: no keyword-spotting metadata found to write the operating point into")
    return found


def calibrated_before(target: Target) -> str | None:
    """The date of an earlier calibration recorded in ``target``, or None."""
    if target.kind == "manifest":
        record = target.content.get("calibration")
    else:
        text = target.metadata.extra.get("calibration")
        record = json.loads(text) if text else None
    if not record:
        return None
    return str(record.get("date", "an earlier run")) if isinstance(record, dict) else "an earlier run"


def write(model_path, spec, point, calibration: dict, force: bool = False) -> list[str]:
    """Write ``point`` (an :class:`~apps.speech.calibrate.OperatingPoint`) into every target;
    the paths written."""
    found = targets(model_path, spec)
    if not force:
        for t in found:
            when = calibrated_before(t)
            if when:
                raise ValueError(f"{t.path}: already calibrated ({when}); pass --force to replace its operating point")
    if any(t.kind == "onnx" for t in found):
        try:
            import onnx  # noqa: F401
        except ImportError:
            names = [t.path.name for t in found if t.kind == "onnx"]
            raise RuntimeError(f"writing the operating point into {names} needs the onnx package "
                               "(pip install onnx)") from None
    thresholds = {k: round(float(v), 6) for k, v in point.thresholds.items()}
    record = json.dumps(calibration, sort_keys=True)
    written = []
    for t in found:
        if t.kind == "manifest":
            data = dict(t.content)
            micro = dict(data.get("micro") or {})
            (word,) = spec.keywords
            micro.update(probability_cutoff=thresholds[word], sliding_window_size=int(point.smoothing_steps))
            data.update(micro=micro, calibration=calibration)
            write_atomic(t.path, json.dumps(data, indent=2) + "\n", force=True)
        else:
            meta = replace(t.metadata, thresholds={**t.metadata.thresholds, **thresholds},
                           extra={**t.metadata.extra, "smoothing_steps": str(int(point.smoothing_steps)),
                                  "calibration": record})
            if t.kind == "sidecar":
                data = dict(t.content)
                data[METADATA_KEY] = json.loads(meta.to_json())
                write_atomic(t.path, json.dumps(data, indent=2, sort_keys=True) + "\n", force=True)
            elif t.kind == "tflite":
                from convert.metadata_io import embed_tflite

                write_atomic(t.path, embed_tflite(t.content, meta), force=True)
            else:
                from convert.metadata_io import embed_onnx

                write_atomic(t.path, embed_onnx(t.content, meta), force=True)
        written.append(str(t.path))
    return written
