"""``edgepilot detect``: object detection from any camera or stream (see docs/camera.md).

    >>> from apps.camera import Detector
    >>> Detector("model.tflite").detect(frame_bgr).to_dicts()
"""
from apps.camera.detections import Detections, box_iou
from apps.camera.detector import Detector

__all__ = ["Detections", "Detector", "box_iou"]
