"""``edgepilot listen`` in Python: keyword spotting on files or a microphone (docs/speech.md).

    >>> from apps.speech import open_model, Spotter
    >>> spotter = Spotter(open_model("runs/digits"))       # a train kws folder, .tflite/.onnx, microWakeWord
    >>> for block in blocks:                                # 16 kHz mono, int16 or float, any size
    ...     for d in spotter.process(block):                # Detection(keyword, score, t)
    ...         print(d.keyword, d.score, d.t)
    >>> summary = listen("runs/digits", WavFiles(["a.wav"]), ListenOptions(json=True))

Names are imported on first use, so ``import apps.speech.cli`` stays light.
"""
from __future__ import annotations

from apps.common.lazy import lazy_exports

_EXPORTS = {
    "open_model": "apps.speech.models", "KeywordModel": "apps.speech.models",
    "NotAKeywordModel": "apps.speech.models",
    "Spotter": "apps.speech.spotter", "Detection": "apps.speech.spotter", "SpotterStats": "apps.speech.spotter",
    "listen": "apps.speech.runner", "ListenOptions": "apps.speech.runner",
    "WavFiles": "apps.speech.sources", "Microphone": "apps.speech.sources",
    "read_wav": "apps.speech.audio",
    "StreamingFrontend": "apps.speech.frontend", "features": "apps.speech.frontend",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
