"""Which detector cells learn which box: the training targets of the edgepilot detector.

Every cell of every level has a centre (its anchor point). A ground-truth box is learned by the
cells that (FCOS and YOLOX's centre sampling):

* lie inside the box and within 2.5 strides of its centre,
* belong to a level whose reach covers the box: the farthest box edge from the cell is at most
  ``8 * stride`` pixels (what :class:`train.layers.GridDecode` can express), and more than a quarter
  of that, so small boxes go to fine levels and large ones to coarse levels (neighbouring levels
  overlap, which gives mid-size boxes more positive cells).

A cell claimed by two boxes learns the smaller one. A box with no such cell (smaller than one
stride) is given the finest-level cell nearest its centre, so no labelled box is ever ignored.

Targets, per image: ``boxes [N, 5]`` (x1, y1, x2, y2 as fractions of the input, then 1 for a
positive cell, 0 otherwise) and ``scores [N, C]`` (1 for the positive cell's class).
"""
from __future__ import annotations

import numpy as np

from train.architectures import REACH_CELLS, DetectorSpec

CENTER_RADIUS = 2.5  # strides


class AnchorPoints:
    """The centre (pixels), stride and reach of every output cell, in output order."""

    def __init__(self, spec: DetectorSpec):
        self.spec = spec
        centers, strides = [], []
        for stride, rows, cols in spec.grids():
            ys, xs = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride, indexing="ij")
            centers.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full(rows * cols, stride, np.float64))
        self.centers = np.concatenate(centers)  # [N, 2] x, y pixels
        self.strides = np.concatenate(strides)  # [N]
        self.reach = self.strides * REACH_CELLS
        self.finest = self.strides == self.strides.min()

    def __len__(self) -> int:
        return len(self.centers)

    def encode(self, boxes_px: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets for one image: boxes ``[n, 4]`` x1, y1, x2, y2 in input pixels, classes ``[n]``."""
        h, w = self.spec.input_size
        n_cells, c = len(self), self.spec.num_classes
        box_t = np.zeros((n_cells, 5), np.float32)
        cls_t = np.zeros((n_cells, c), np.float32)
        boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return box_t, cls_t
        cx, cy = self.centers[:, 0:1], self.centers[:, 1:2]  # [N, 1]
        x1, y1, x2, y2 = (boxes[:, i][None, :] for i in range(4))  # [1, n]
        left, top, right, bottom = cx - x1, cy - y1, x2 - cx, y2 - cy
        inside = np.minimum(np.minimum(left, top), np.minimum(right, bottom)) > 0
        radius = (CENTER_RADIUS * self.strides)[:, None]
        near = (np.abs(cx - (x1 + x2) / 2) < radius) & (np.abs(cy - (y1 + y2) / 2) < radius)
        farthest = np.maximum(np.maximum(left, top), np.maximum(right, bottom))
        reach = self.reach[:, None]
        fits = (farthest <= reach) & ((farthest > reach / 4) | self.finest[:, None])
        candidate = inside & near & fits  # [N, n]
        area = ((x2 - x1) * (y2 - y1))[0]
        cost = np.where(candidate, area[None, :], np.inf)
        owner = cost.argmin(axis=1)
        positive = np.isfinite(cost.min(axis=1))
        for j in np.flatnonzero(~candidate.any(axis=0)):  # boxes no cell took: nearest finest cell
            d = np.hypot(cx[:, 0] - (x1[0, j] + x2[0, j]) / 2, cy[:, 0] - (y1[0, j] + y2[0, j]) / 2)
            d[~self.finest | positive] = np.inf
            if np.isfinite(d.min()):
                k = int(d.argmin())
                owner[k], positive[k] = j, True
        cells = np.flatnonzero(positive)
        scale = np.array([w, h, w, h], np.float64)
        box_t[cells, :4] = boxes[owner[cells]] / scale
        box_t[cells, 4] = 1.0
        cls_t[cells, np.asarray(classes, np.int64)[owner[cells]]] = 1.0
        return box_t, cls_t
