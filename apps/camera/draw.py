"""Annotated frames: boxes, labels, scores, track ids, keypoints and an FPS line, with OpenCV."""
from __future__ import annotations

import numpy as np

from apps.camera.detections import Detections

# Distinct, readable colours (BGR), picked per track id (or class id when untracked).
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203))


def annotate(image: np.ndarray, detections: Detections, fps: float | None = None, text: str | None = None) -> np.ndarray:
    """A copy of ``image`` (BGR) with ``detections`` drawn on it and, top left, the FPS and ``text``."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    font = 0.4 + min(h, w) / 1500
    for i in range(len(detections)):
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        track = int(detections.track_ids[i]) if detections.track_ids is not None else -1
        key = track if track > 0 else int(detections.class_ids[i])
        colour = PALETTE[key % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        label = detections.labels[i] if detections.labels[i] is not None else str(int(detections.class_ids[i]))
        caption = f"{'#%d ' % track if track > 0 else ''}{label} {detections.scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(out, caption, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        if detections.keypoints is not None:
            for x, y in detections.keypoints[i]:
                cv2.circle(out, (int(round(x)), int(round(y))), thickness + 1, colour, -1, cv2.LINE_AA)
    banner = " | ".join(s for s in (f"{fps:.1f} FPS" if fps else None, text) if s)
    if banner:
        (tw, th), base = cv2.getTextSize(banner, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 6), (0, 0, 0), -1)
        cv2.putText(out, banner, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
    return out
