"""BlazeFace (MediaPipe's short-range face detector, a real model made elsewhere) on real photos."""
from __future__ import annotations

import numpy as np
import pytest

from apps.camera.blazeface import SHORT_RANGE, ssd_anchors
from apps.camera.detector import Detector

cv2 = pytest.importorskip("cv2")
skimage_data = pytest.importorskip("skimage.data")

# The astronaut's face, boxed by eye on the 512x512 photo (forehead to chin, ear to ear).
ASTRONAUT_FACE = [175, 78, 272, 178]
OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"


@pytest.fixture(scope="module")
def blazeface(asset):
    return Detector(asset("blazeface_short_range.tflite"))


def bgr(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def test_anchors_as_mediapipe_generates_them():
    anchors = ssd_anchors(SHORT_RANGE)
    assert anchors.shape == (896, 4)
    # stride 8: a 16x16 grid, 2 anchors per cell; then the three stride-16 layers merged: 8x8 x 6
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(anchors[512:518], np.tile([0.5 / 8, 0.5 / 8, 1, 1], (6, 1)))
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8, 1, 1])


def test_astronaut_has_one_face_where_we_see_it(blazeface):
    assert (blazeface.decoder_name, blazeface.resize) == ("blazeface", "letterbox")
    dets = blazeface.detect(bgr(skimage_data.astronaut()))
    assert len(dets) == 1 and dets.labels == ("face",)
    assert dets.scores[0] > 0.8
    assert dets.iou(np.array([ASTRONAUT_FACE]))[0, 0] >= 0.5
    x1, y1, x2, y2 = dets.xyxy[0]
    right_eye, left_eye, nose = dets.keypoints[0, :3]
    # the eyes lie in the upper half of the box, the subject's right eye on the image's left
    assert x1 < right_eye[0] < left_eye[0] < x2 and y1 < right_eye[1] < (y1 + y2) / 2
    assert right_eye[0] < nose[0] < left_eye[0] and nose[1] > right_eye[1]


@pytest.mark.parametrize("height, width, top, left", [(512, 640, 0, 64), (700, 512, 188, 0)], ids=["wide", "tall"])
def test_the_face_is_found_in_wide_and_tall_frames(blazeface, height, width, top, left):
    """Letterboxing both ways: the astronaut pasted into a larger black frame gives the same
    box, shifted (the short-range model wants faces over ~15% of the frame, so not much larger)."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[top:top + 512, left:left + 512] = bgr(skimage_data.astronaut())
    dets = blazeface.detect(frame)
    assert len(dets) == 1 and dets.image_size == (height, width)
    assert dets.iou(np.array([ASTRONAUT_FACE]) + [left, top, left, top])[0, 0] >= 0.5


@pytest.mark.parametrize("name", ["rocket", f"{OPENCV_DATA}/fruits.jpg", f"{OPENCV_DATA}/building.jpg"])
def test_no_face_on_photos_without_faces(blazeface, name):
    """A rocket on its launch pad, fruit, an office building: looked at, no faces in them."""
    image = bgr(getattr(skimage_data, name)()) if "/" not in name else cv2.imread(name)
    assert image is not None, f"{name} is missing (Debian package opencv-doc)"
    assert len(blazeface.detect(image)) == 0
