"""``edgepilot detect`` in Python: object detection from any camera or stream (docs/camera.md).

    >>> from apps.camera import Detector, DetectOptions, run, detect_stream
    >>> Detector("model.tflite").detect(frame_bgr).to_dicts()
    >>> summary = run("model.tflite", "clip.mp4", DetectOptions(save="out.mp4"))
    >>> for result in detect_stream("model.tflite", "rtsp://cam/stream", track=True):
    ...     print(result.frame.index, result.detections, result.events)

Names are imported on first use, so ``import apps.camera.cli`` stays light.
"""
from __future__ import annotations

from apps.common.lazy import lazy_exports

_EXPORTS = {
    "Detections": "apps.camera.detections", "box_iou": "apps.camera.detections",
    "Detector": "apps.camera.detector",
    "DetectOptions": "apps.camera.runner", "RunSummary": "apps.camera.runner", "run": "apps.camera.runner",
    "detect_stream": "apps.camera.runner",
    "Result": "apps.camera.pipeline", "Pipeline": "apps.camera.pipeline",
    "parse_source": "apps.camera.sources", "open_source": "apps.camera.sources", "SourceError": "apps.camera.sources",
    "IouTracker": "apps.camera.tracker", "TrackEvent": "apps.camera.tracker",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
