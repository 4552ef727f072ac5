"""Detector training data: images fitted to the model input once, then augmented per batch.

Images are decoded and fitted to the input size (letterbox or stretch, exactly as
:meth:`edge_runtime.metadata.Preprocess.geometry` says and the camera app does at run time) once,
into one uint8 array, so an epoch costs only augmentation and training. Augmentation (OpenCV and
numpy, seeded): random scale and translation, horizontal flip, hue/saturation/brightness jitter.
A box the random crop cuts below 40% of its area is left out of that one augmented copy (the
object is mostly outside the picture); the data set itself is never changed.
"""
from __future__ import annotations

import math

import numpy as np

from edge_runtime.metadata import Preprocess
from train.detection_data import fit_pixels
from train.detection_targets import AnchorPoints

KEEP_FRACTION = 0.4


class FittedImages:
    """A detection set's images fitted to the model input, with boxes in input pixels."""

    def __init__(self, dataset, pre: Preprocess, progress=None):
        n = len(dataset)
        h, w = pre.size
        self.images = np.empty((n, h, w, 3), np.uint8)
        self.boxes, self.classes, self.geometries = [], [], []
        for i in range(n):
            self.images[i], geometry = fit_pixels(dataset.read_image(i), pre)
            self.boxes.append(geometry.to_input(dataset.boxes[i]).astype(np.float32).reshape(-1, 4))
            self.classes.append(np.asarray(dataset.classes[i], np.int64))
            self.geometries.append(geometry)
            if progress is not None:
                progress(i + 1, n)
        self.pad_value = int(round(pre.pad_value))

    def __len__(self) -> int:
        return len(self.images)


def _hsv_jitter(rng, image: np.ndarray) -> np.ndarray:
    import cv2

    gains = rng.uniform(-1, 1, 3) * (0.015, 0.5, 0.35) + 1  # hue, saturation, value (YOLO's defaults)
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def augment(rng: np.random.Generator, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, pad_value: int,
            flip: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random affine (scale 0.6-1.4, shift up to 15%), flip and colour jitter of an image."""
    import cv2

    h, w = image.shape[:2]
    scale = rng.uniform(0.6, 1.4)
    tx, ty = rng.uniform(-0.15, 0.15) * w, rng.uniform(-0.15, 0.15) * h
    # scale about the centre, then shift
    m = np.array([[scale, 0, (1 - scale) * w / 2 + tx], [0, scale, (1 - scale) * h / 2 + ty]], np.float64)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(pad_value,) * 3)
    b = boxes.astype(np.float64).reshape(-1, 4) * scale + np.array([m[0, 2], m[1, 2], m[0, 2], m[1, 2]])
    before = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b = np.clip(b, 0, [w, h, w, h])
    after = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = (after >= KEEP_FRACTION * before) & (b[:, 2] - b[:, 0] >= 2) & (b[:, 3] - b[:, 1] >= 2)
    b, c = b[keep], classes[keep]
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
        b = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
    return _hsv_jitter(rng, np.ascontiguousarray(out)), b.astype(np.float32), c


def batches_of(keras, fitted: FittedImages, anchors: AnchorPoints, pre: Preprocess, batch_size: int, seed: int,
               train: bool, flip: bool = True, shard: tuple[int, int] = (0, 1)):
    """A ``keras.utils.PyDataset`` of (x, targets ``[B, N, 5 + C]``) batches; augmented and reshuffled
    every epoch when ``train``. ``shard`` = (index, count) gives a worker its own random stream."""

    class DetectionBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.arange(len(fitted))
            self._reshuffle()

        def _reshuffle(self):
            if train:
                rng = np.random.default_rng([seed, shard[0], self.epoch])
                self.order = rng.permutation(len(fitted))

        def __len__(self):
            return math.ceil(len(fitted) / batch_size) if not train else max(1, len(fitted) // batch_size)

        def __getitem__(self, index):
            picks = self.order[index * batch_size:(index + 1) * batch_size]
            rng = np.random.default_rng([seed, shard[0], self.epoch, index])
            xs, box_t, cls_t = [], [], []
            for i in picks:
                image, boxes, classes = fitted.images[i], fitted.boxes[i], fitted.classes[i]
                if train:
                    image, boxes, classes = augment(rng, image, boxes, classes, fitted.pad_value, flip)
                b, c = anchors.encode(boxes, classes)
                xs.append(pre.normalize(image))
                box_t.append(b)
                cls_t.append(c)
            return np.stack(xs), np.concatenate([np.stack(box_t), np.stack(cls_t)], axis=-1)

        def on_epoch_end(self):
            self.epoch += 1
            self._reshuffle()

    return DetectionBatches()
