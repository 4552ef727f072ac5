"""``Detections``: the one result type of the camera app, shaped after supervision's.

Everything that finds objects in a frame (every decoder, the tracker, the outputs) passes this
container around. It is immutable (its arrays are read-only) and checked when built, so a
consumer never has to wonder whether boxes are normalized, which axis is which, or whether the
labels line up with the boxes:

    >>> dets = detector.detect(frame)
    >>> dets.xyxy            # float32 [N, 4]: x1, y1, x2, y2 in pixels of the original frame
    >>> dets.normalized()    # the same boxes as fractions of the frame's width and height
    >>> dets[dets.scores > 0.5].to_dicts()
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy (a view would let the caller change the container through the original)."""
    array = np.array(array, copy=True, order="C")
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one frame.

    Attributes:
        xyxy: float32 [N, 4], ``x1, y1, x2, y2`` in pixels of the original frame (x1 <= x2, y1 <= y2).
        scores: float32 [N], confidence in [0, 1].
        class_ids: int64 [N], index into the model's labels.
        labels: N class names (``None`` where the model carries no names).
        image_size: (height, width) of the frame the boxes refer to, in pixels.
        keypoints: optional float32 [N, K, 2], ``x, y`` pixels (BlazeFace's eyes, nose, mouth, ears).
        track_ids: optional int64 [N], set by the tracker; the same object keeps its id over frames.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str | None, ...]
    image_size: tuple[int, int]
    keypoints: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"Detections.xyxy must have shape [N, 4], got {list(xyxy.shape)}")
        n = len(xyxy)
        if not np.isfinite(xyxy).all():
            raise ValueError("Detections.xyxy holds NaN or infinite coordinates")
        if (xyxy[:, 2] < xyxy[:, 0]).any() or (xyxy[:, 3] < xyxy[:, 1]).any():
            raise ValueError("Detections.xyxy must hold x1 <= x2 and y1 <= y2 (corners, not x, y, w, h)")
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids).reshape(-1)
        if class_ids.size and not np.issubdtype(class_ids.dtype, np.integer):
            if not np.all(np.mod(class_ids, 1) == 0):
                raise ValueError(f"Detections.class_ids must be whole numbers, got {class_ids[:5]}")
        class_ids = class_ids.astype(np.int64)
        labels = tuple(self.labels)
        for name, values in (("scores", scores), ("class_ids", class_ids), ("labels", labels)):
            if len(values) != n:
                raise ValueError(f"Detections.{name} has {len(values)} entries for {n} boxes")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"Detections.image_size must be (height, width) > 0, got {self.image_size}")
        keypoints = self.keypoints
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float32)
            if keypoints.size == 0 and n == 0:
                keypoints = keypoints.reshape(0, keypoints.shape[1] if keypoints.ndim == 3 else 0, 2)
            if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 2:
                raise ValueError(f"Detections.keypoints must have shape [{n}, K, 2], got {list(keypoints.shape)}")
            keypoints = _frozen(keypoints)
        track_ids = self.track_ids
        if track_ids is not None:
            track_ids = np.asarray(track_ids).reshape(-1).astype(np.int64)
            if len(track_ids) != n:
                raise ValueError(f"Detections.track_ids has {len(track_ids)} entries for {n} boxes")
            track_ids = _frozen(track_ids)
        object.__setattr__(self, "xyxy", _frozen(xyxy))
        object.__setattr__(self, "scores", _frozen(scores))
        object.__setattr__(self, "class_ids", _frozen(class_ids))
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "track_ids", track_ids)

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> "Detections":
        """No objects in a frame of ``image_size`` (height, width)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), (), image_size)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> "Detections":
        """``dets[mask]``, ``dets[[0, 2]]``, ``dets[1:3]``: the same as :meth:`filter`."""
        return self.filter(index)

    def filter(self, index) -> "Detections":
        """The detections selected by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, slice):
            picked = np.arange(len(self))[index]
        else:
            index = np.asarray(index)
            if index.dtype == bool:
                if index.shape != (len(self),):
                    raise ValueError(f"a boolean mask for {len(self)} detections must have shape [{len(self)}], "
                                     f"got {list(index.shape)}")
                picked = np.flatnonzero(index)
            else:
                picked = index.astype(np.int64).reshape(-1)
        return Detections(
            self.xyxy[picked], self.scores[picked], self.class_ids[picked],
            tuple(self.labels[i] for i in picked), self.image_size,
            None if self.keypoints is None else self.keypoints[picked],
            None if self.track_ids is None else self.track_ids[picked],
        )

    def with_track_ids(self, track_ids) -> "Detections":
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64))

    # ----- geometry ---------------------------------------------------------------------
    def normalized(self) -> np.ndarray:
        """Boxes as fractions of the frame: float32 [N, 4] ``x1/w, y1/h, x2/w, y2/h``."""
        h, w = self.image_size
        return self.xyxy / np.array([w, h, w, h], dtype=np.float32)

    @property
    def area(self) -> np.ndarray:
        """Box areas in square pixels, float32 [N]."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    @property
    def centers(self) -> np.ndarray:
        """Box centres in pixels, float32 [N, 2]."""
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2

    def iou(self, other: "Detections | np.ndarray") -> np.ndarray:
        """Intersection over union of every box here with every box of ``other`` (Detections or
        an [M, 4] xyxy array in the same pixels): float32 [N, M]."""
        return box_iou(self.xyxy, other.xyxy if isinstance(other, Detections) else other)

    # ----- conversions ------------------------------------------------------------------
    def to_dicts(self) -> list[dict]:
        """The JSON form: one dict per object, ``label``, ``class_id``, ``score``, ``box``
        ``[x1, y1, x2, y2]`` in pixels of the original frame (0.01 px), plus ``track_id`` and
        ``keypoints`` ``[[x, y], ...]`` when present."""
        rows = []
        for i in range(len(self)):
            row = {
                "label": self.labels[i],
                "class_id": int(self.class_ids[i]),
                "score": round(float(self.scores[i]), 4),
                "box": [round(float(v), 2) for v in self.xyxy[i]],
            }
            if self.track_ids is not None:
                row["track_id"] = int(self.track_ids[i])
            if self.keypoints is not None:
                row["keypoints"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints[i]]
            rows.append(row)
        return rows

    def count_by_label(self) -> Counter:
        """Objects per class name (the class id as text where there is no name)."""
        return Counter(label if label is not None else str(int(c)) for label, c in zip(self.labels, self.class_ids))

    def __repr__(self) -> str:
        h, w = self.image_size
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.count_by_label().items()))
        return f"Detections({len(self)} in {w}x{h}{': ' + counts if counts else ''})"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [N, 4] and ``b`` [M, 4] (x1, y1, x2, y2): float32 [N, M]; 0 where
    both boxes are empty."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0).astype(np.float32)
