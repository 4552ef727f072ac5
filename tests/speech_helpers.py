"""Helpers for the keyword-spotting app tests: speech from real TTS engines (espeak-ng, flite),
and tiny edgepilot keyword models built as ONNX with onnx.helper (no TensorFlow)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from conftest import require_system

RATE = 16000


def tts(text: str, engine: str = "espeak-ng", voice: str | None = None) -> np.ndarray:
    """``text`` spoken by a real TTS engine, as int16 mono 16 kHz (resampled with soxr)."""
    from apps.speech.audio import read_wav

    require_system(shutil.which(engine) is not None, f"the TTS engine {engine!r} (Debian package {engine})")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "say.wav"
        if engine == "espeak-ng":
            cmd = ["espeak-ng", *(["-v", voice] if voice else []), "-w", str(out), text]
        elif engine == "flite":
            cmd = ["flite", *(["-voice", voice] if voice else []), "-t", text, "-o", str(out)]
        else:
            raise ValueError(f"unknown TTS engine {engine!r}")
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return read_wav(out).mono16k()


def trim(x: np.ndarray, level: int = 300) -> np.ndarray:
    """``x`` without the near-silence TTS engines put before and after the speech."""
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > level)
    return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.int16)


def stream(parts: list) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Concatenate (name, samples) parts; returns the audio and each part's (name, start_s, end_s)."""
    pieces, spans, at = [], [], 0
    for name, samples in parts:
        pieces.append(samples)
        spans.append((name, at / RATE, (at + len(samples)) / RATE))
        at += len(samples)
    return np.concatenate(pieces).astype(np.int16), spans


def kws_onnx(path, words=("beep",), window_frames: int = 12, stride_frames: int = 3, streaming: bool = False,
             gain: float = 0.6, bias: float = 6.0, thresholds=None, smoothing_steps: int = 2, task="keyword_spotting"):
    """A tiny edgepilot keyword model in ONNX: logit of every word = gain x (mean feature over the
    frames it sees) - bias, ``_silence_`` 0, ``_unknown_`` -10, softmax over the labels. Loud
    audio makes the words likely, silence does not. ``streaming`` makes the [1, stride, 40]
    variant (stateless), else the [1, window, 40] window model. Metadata as ``train kws`` writes it."""
    from onnx import TensorProto, helper

    from apps.speech.frontend import SETTINGS
    from convert.metadata_io import embed_onnx
    from edge_runtime.metadata import ModelMetadata, Preprocess

    labels = ("_silence_", "_unknown_", *words)
    frames = stride_frames if streaming else window_frames
    weight = np.zeros((40, len(labels)), np.float32)
    weight[:, 2:] = gain / 40
    offset = np.array([0.0, -10.0] + [-bias] * len(words), np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["features"], ["pooled"], axes=[1], keepdims=0),
         helper.make_node("MatMul", ["pooled", "W"], ["logits0"]),
         helper.make_node("Add", ["logits0", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "kws", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, frames, 40])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(labels)])],
        [helper.make_tensor("W", TensorProto.FLOAT, weight.shape, weight.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, offset.shape, offset)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    metadata = ModelMetadata(
        task=task, labels=labels, input_layout="NTC", preprocess=Preprocess(kind="audio", sample_rate_hz=RATE),
        thresholds=dict(thresholds or {}), variant="onnx_fp32",
        extra={"frontend": json.dumps(SETTINGS), "stride_frames": str(stride_frames),
               "window_frames": str(window_frames), "streaming": "true" if streaming else "false",
               "smoothing_steps": str(smoothing_steps), "refractory_s": "1.0", "words": json.dumps(list(words))})
    Path(path).write_bytes(embed_onnx(model.SerializeToString(), metadata))
    return Path(path)


def noise_burst(seconds: float, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """White noise at ``level`` of full scale, int16 16 kHz: loud to the tiny models."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal(int(seconds * RATE)) * level * 32767, -32768, 32767).astype(np.int16)
