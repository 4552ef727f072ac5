"""TFLite's post-processed SSD layout (``TFLite_Detection_PostProcess``: boxes, classes,
scores, count), as TF1 and TF2 object detection exports and pycoral's models have it; see
:mod:`apps.camera.decoders` for how classes and scores are told apart."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from apps.camera.decoders import (Decoder, DecoderError, OutputSpecs, corners_ordered, input_scale, named_output,
                                  shapes_text)
from edge_runtime.metadata import Preprocess


class SsdDecoder(Decoder):
    """TFLite's post-processed SSD outputs (boxes, classes, scores, count); the model did NMS."""

    name = "ssd"
    default_score = 0.5

    def __init__(self, boxes: str, classes: str, scores: str, count: str, labels: Sequence[str] = ()):
        super().__init__(labels)
        self.keys = (boxes, classes, scores, count)
        self.settled = False  # classes and scores told apart by their values (see _settle)

    def _settle(self, keys: tuple[str, str, str, str], classes: np.ndarray,
                scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class ids are whole numbers and scores (here, detections' scores) are not: on the first
        frame where exactly one of the two holds only whole numbers, that one is the classes. The
        names chose before; a model that named them the other way round is corrected, once.
        ``keys`` are those this frame was read with, so settling twice sets the same keys."""
        whole = [bool(np.all(np.abs(a - np.rint(a)) < 1e-4)) for a in (classes, scores)]
        if whole[0] != whole[1]:
            boxes, classes_key, scores_key, count = keys
            if whole[1]:
                self.keys = (boxes, scores_key, classes_key, count)
                classes, scores = scores, classes
            self.settled = True
        return classes, scores

    def default_preprocess(self) -> Preprocess:
        """RGB stretched to the input, in [-1, 1]: the TF Object Detection API's MobileNet SSD recipe."""
        return Preprocess(kind="image", color="rgb", scale=1 / 127.5, mean=(1.0,), resize="stretch")

    def __call__(self, outputs, geometry, score, iou):
        keys = self.keys
        boxes_key, classes_key, scores_key, count_key = keys
        count = int(np.asarray(outputs[count_key]).reshape(-1)[0])
        boxes = np.asarray(outputs[boxes_key]).reshape(-1, 4)[:count]
        classes = np.asarray(outputs[classes_key]).reshape(-1)[:count].astype(np.float32)
        scores = np.asarray(outputs[scores_key]).reshape(-1)[:count].astype(np.float32)
        if not self.settled and count:
            classes, scores = self._settle(keys, classes, scores)
        keep = scores >= score
        yxyx = boxes[keep].astype(np.float32)
        xyxy = yxyx[:, [1, 0, 3, 2]] * input_scale(geometry)
        xyxy = corners_ordered(xyxy)
        return self._finish(xyxy, scores[keep], np.rint(classes[keep]).astype(np.int64), geometry, None)


def ssd_decoder(specs: OutputSpecs, labels) -> SsdDecoder:
    """The SSD decoder for ``specs``, each output found by shape and, for classes and scores, by name."""
    if len(specs) != 4:
        raise DecoderError(f"ssd layout expects four outputs (boxes, classes, scores, count); the model has {shapes_text(specs)}")
    boxes = [n for n, s in specs if len(s) == 3 and s[-1] == 4]
    count = [n for n, s in specs if int(np.prod(s)) == 1]
    pair = [n for n, s in specs if n not in boxes + count]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        raise DecoderError(f"ssd layout expects boxes [1, M, 4], classes [1, M], scores [1, M], count [1]; "
                           f"the model has {shapes_text(specs)}")
    classes, scores = named_output(specs, "class"), named_output(specs, "score")
    if not (classes in pair and scores in pair and classes != scores):
        # TF1's TFLite_Detection_PostProcess numbers its outputs :0 boxes, :1 classes, :2 scores,
        # :3 count; a TF2 object detection export (StatefulPartitionedCall) :0 count, :1 scores,
        # :2 classes, :3 boxes. Anything else: a first guess, which the first detections check.
        suffix = {n.rsplit(":", 1)[-1]: n for n in pair if ":" in n}
        classes, scores = sorted(pair)
        if set(suffix) == {"1", "2"}:
            tf2 = boxes[0].endswith(":3") or count[0].endswith(":0")
            classes, scores = (suffix["2"], suffix["1"]) if tf2 else (suffix["1"], suffix["2"])
    return SsdDecoder(boxes[0], classes, scores, count[0], labels)
