"""What each conversion step produced, and how a failure is told to the user: :class:`Produced`
(a variant file, or why there is none), :func:`summarize` (a readable reason instead of the
converter's MLIR dump) and :func:`advice_for` (what to do about it)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from convert.isolation import StepFailed


@dataclass(frozen=True)
class Produced:
    """A variant file in the work folder, or why it could not be made."""

    target: str
    path: Path | None
    reason: str = ""
    advice: str = ""
    float_layers: tuple[str, ...] = ()
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.path is not None


def summarize(failure: StepFailed) -> str:
    """A readable reason: converter errors are long MLIR dumps; name the ops instead."""
    text = f"{failure.reason}\n{failure.log_tail}"
    unsupported = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    if unsupported:
        return (f"TFLite's built-in kernels cannot run TensorFlow op(s) {', '.join(unsupported)} "
                "(neither a builtin, a custom nor a flex op)")
    static = re.search(r"'tf\.(\w+)' op requires (.+?) to be static", text)
    if static:
        return f"'{static.group(1)}' needs a static {static.group(2)} (dynamic shapes in a recurrent layer)"
    return failure.reason


def advice_for(reason: str) -> str:
    """What to do about a conversion failure, from its message."""
    text = reason.lower()
    if "crashed the process" in text:
        return ("the TensorFlow Lite converter itself crashed on this graph; the other variants were still "
                "produced. For recurrent layers try tflite_dynamic or tflite_fp16, or unroll the RNN")
    if "select tf ops" in text or "built-in kernels cannot run" in text or "flex op" in text:
        return ("the graph uses TensorFlow ops that TFLite's built-in kernels cannot run; replace those "
                "layers with supported ones (see TFLite's op compatibility list) or export with fixed shapes")
    if "tensorlist" in text or "while" in text:
        return "recurrent layers need static shapes: the batch was fixed to 1 and it still failed; unroll the RNN"
    if "quantiz" in text:
        return "an op cannot be quantized; keep it in float with --auto-fix --budget B, or use tflite_dynamic"
    if "no op registered" in text:
        return ("the converter kept an op the runtime does not implement; replace that layer, or check the "
                "converter's support table (tf2onnx: opset 17)")
    if "tf2onnx" in text:
        return "tf2onnx could not lower an op at opset 17; check tf2onnx's support table or simplify the layer"
    if "timed out" in text:
        return "the converter took too long; try fewer calibration samples (--calib-samples)"
    return ""
