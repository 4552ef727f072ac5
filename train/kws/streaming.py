"""The streaming model files ``train kws`` writes, made by the project's own converter, and the
measurements that need them: accuracy of a streaming .tflite on held-out clips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from train.kws.architecture import BINS, KwsArchitecture, stream_steps

STREAM_STEM = "kws_stream"  # kws_stream_fp32.tflite, kws_stream_int8.tflite
QAT_STEM = "kws_stream_qat"  # kws_stream_qat_int8.tflite (--qat)


def clip_steps(features: np.ndarray, arch: KwsArchitecture) -> np.ndarray:
    """One clip's last ``window_frames`` frames as streaming steps, with the few frames in front
    that align the last step's window with the clip's (they fall outside what it sees)."""
    window = features[-arch.window_frames:]
    pad = (-arch.window_frames) % arch.stride_frames
    return stream_steps(np.concatenate([np.zeros((pad, BINS), np.float32), window]), arch)


def streaming_accuracy(path: str | Path, features: np.ndarray, labels: np.ndarray, arch: KwsArchitecture) -> dict:
    """Top-1 of a streaming model on clips: each clip streamed from a reset state, the last
    step's output taken (its window is exactly the clip's)."""
    import edge_runtime

    model = edge_runtime.load(str(path), device="cpu", threads=1, xnnpack=False)
    predictions = np.empty(len(features), np.int64)
    for i, clip in enumerate(features):
        model.reset()
        out = None
        for step in clip_steps(clip, arch):
            out = model.run(step[None])[0]
        predictions[i] = int(np.argmax(out))
    return {"top1": float((predictions == labels).mean() * 100), "clips": len(labels),
            "predictions": predictions}


def convert_streaming(saved_model: Path, out: Path, calib_steps: np.ndarray, metadata, work: Path,
                      qat: bool = False) -> dict[str, Path]:
    """``kws_stream_fp32.tflite`` and ``kws_stream_int8.tflite`` (full integer, resource variables
    quantized too; calibrated on ``calib_steps``, consecutive steps of real streams), each with its
    metadata embedded and in a sidecar. Conversion runs in a child process, as convert's does.
    ``qat``: the QAT model, int8 only: ``kws_stream_qat_int8.tflite``, variant ``tflite_int8_qat``."""
    from convert.files import write_atomic
    from convert.isolation import run_isolated
    from convert.metadata_io import embed_tflite, sidecar_json
    from convert.tflite_variants import convert_tflite

    calib_path = work / "stream_calib.npy"
    np.save(calib_path, calib_steps.astype(np.float32))
    written = {}
    stem, variants = (QAT_STEM, ("int8",)) if qat else (STREAM_STEM, ("fp32", "int8"))
    for variant in variants:
        content = run_isolated(f"streaming tflite_{variant}{'_qat' if qat else ''}", convert_tflite, str(saved_model), variant,
                               str(calib_path) if variant == "int8" else None, io_type="int8",
                               log_path=work / "logs" / f"{stem}_{variant}.log")
        meta = metadata.with_variant(f"tflite_{variant}" + ("_qat" if qat else ""))
        path = out / f"{stem}_{variant}.tflite"
        write_atomic(path, embed_tflite(content, meta), force=True)
        write_atomic(path.with_suffix(".json"), sidecar_json(meta), force=True)
        written[variant] = path
    return written


def kws_metadata(words: tuple[str, ...], classes: tuple[str, ...], arch: KwsArchitecture, *, streaming: bool,
                 thresholds: dict[str, float] | None = None, smoothing_steps: int = 3, refractory_s: float = 1.0):
    from apps.speech import frontend
    from edge_runtime.metadata import ModelMetadata, Preprocess

    return ModelMetadata(
        task="keyword_spotting", labels=tuple(classes), input_layout="NTC",
        preprocess=Preprocess(kind="audio", sample_rate_hz=frontend.SAMPLE_RATE_HZ),
        thresholds=dict(thresholds or {w: 0.5 for w in words}),
        extra={"frontend": json.dumps(frontend.SETTINGS, sort_keys=True), "stride_frames": str(arch.stride_frames),
               "window_frames": str(arch.window_frames), "streaming": "true" if streaming else "false",
               "smoothing_steps": str(smoothing_steps), "refractory_s": str(refractory_s),
               "words": json.dumps(list(words))})
