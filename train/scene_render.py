"""One scene: Fashion-MNIST items recoloured, scaled, rotated and pasted onto a background.

:func:`render_scene` is the drawing half of the scene maker (:mod:`train.scenes` picks the
backgrounds and items and writes the data set). Each item is recoloured (a random hue times the
item's own texture, some with inverted brightness), scaled so its longest side is uniform in
``object_size_px``, rotated by up to +-MAX_ROTATION_DEG and pasted with a soft alpha mask fully
inside the image. Later items may cover earlier ones, but never so much that an earlier item
keeps less than MIN_VISIBLE of its area (the new item is moved elsewhere, and after
PLACEMENT_TRIES tries left out).

Exact boxes: a pixel belongs to object i when i contributes more than VISIBLE_ALPHA of its final
colour (its alpha times the transparency of everything pasted above it; at most one object can
own a pixel). A box is the tight box of the object's owned pixels, in pixel edges.
"""
from __future__ import annotations

import colorsys
import math
from typing import NamedTuple, Sequence

import numpy as np

from train.scene_backgrounds import ScenesError

VISIBLE_ALPHA = 0.5  # a pixel belongs to an object whose visible alpha exceeds this
MIN_VISIBLE = 0.6  # an object keeps at least this fraction of its own (alpha > 0.5) area
MAX_ROTATION_DEG = 20.0
PLACEMENT_TRIES = 20
INVERT_PROBABILITY = 0.35  # share of items drawn with inverted brightness (dark on light)


class RenderedScene(NamedTuple):
    """One scene and its ground truth; objects in pasting order (later ones on top)."""

    image: np.ndarray  # [H, W, 3] uint8, BGR (OpenCV's order, as the background)
    boxes_px: np.ndarray  # [N, 4] int: x0, y0, x1, y1 pixel edges (x1, y1 exclusive)
    class_ids: np.ndarray  # [N] int64
    visible_masks: np.ndarray  # [N, H, W] bool: pixels each object owns in the final image
    alphas: np.ndarray  # [N, H, W] float32: each object's own alpha as pasted, before occlusion


class _Placed:
    """An object on the canvas: its window, alpha, colour and current visible weight."""

    __slots__ = ("class_id", "y0", "x0", "alpha", "bgr", "visible", "area")

    def __init__(self, class_id, y0, x0, alpha, bgr):
        self.class_id, self.y0, self.x0, self.alpha, self.bgr = class_id, y0, x0, alpha, bgr
        self.visible = alpha.copy()
        self.area = int(np.count_nonzero(alpha > VISIBLE_ALPHA))


def _item_layers(item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, texture) of a 28x28 item, cropped to its silhouette. Fashion-MNIST items are
    light on black, but dark parts of a garment (stripes, a black sole) are near zero too, so
    alpha cannot be the intensity alone: the silhouette (outer contour of pixels >= 10, filled)
    is opaque, and its outermost pixel ring fades with intensity (a soft edge)."""
    import cv2

    solid = np.zeros(item.shape, np.uint8)
    contours, _ = cv2.findContours((item >= 10).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(solid, contours, -1, 1, thickness=-1)
    inner = cv2.erode(solid, np.ones((3, 3), np.uint8), borderValue=0)
    alpha = np.maximum(inner.astype(np.float32), np.clip(item.astype(np.float32) / 48.0, 0, 1) * solid)
    ys, xs = np.nonzero(solid)
    if len(ys) == 0:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    texture = item[y0:y1, x0:x1].astype(np.float32) / max(1.0, float(item.max()))
    return alpha[y0:y1, x0:x1], texture


def _warp(layer: np.ndarray, scale: float, angle_deg: float, size: tuple[int, int]) -> np.ndarray:
    """``layer`` scaled and rotated about its centre into the centre of a ``size`` (w, h) canvas."""
    import cv2

    h, w = layer.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
    m[0, 2] += (size[0] - w) / 2
    m[1, 2] += (size[1] - h) / 2
    return cv2.warpAffine(layer, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _make_object(rng, item, object_size_px):
    """(alpha, BGR image) of one recoloured, scaled and rotated item; None for an empty one."""
    alpha, texture = _item_layers(item)
    if alpha.size == 0:
        return None
    length = rng.uniform(*object_size_px)
    angle = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.2, 1.0), rng.uniform(0.45, 1.0)
    invert = rng.random() < INVERT_PROBABILITY
    scale = length / max(alpha.shape)
    rad = math.radians(angle)
    cos, sin = abs(math.cos(rad)), abs(math.sin(rad))
    h, w = alpha.shape[0] * scale, alpha.shape[1] * scale
    size = (math.ceil(w * cos + h * sin) + 4, math.ceil(w * sin + h * cos) + 4)
    alpha, texture = _warp(alpha, scale, angle, size), _warp(texture, scale, angle, size)
    shade = 0.25 + 0.75 * np.clip(1.0 - texture if invert else texture, 0, 1)
    colour = np.array(colorsys.hsv_to_rgb(hue, sat, val)[::-1], np.float32) * 255.0  # BGR
    if not np.any(alpha > VISIBLE_ALPHA):  # a faint item (no pixel would be labelled): leave it out
        return None
    return np.clip(alpha, 0, 1), shade[..., None] * colour


def _occlusion_update(placed: list[_Placed], y0: int, x0: int, alpha: np.ndarray):
    """The new visible weights of the objects a new alpha at (y0, x0) would cover, or None if
    one of them would keep less than MIN_VISIBLE of its area."""
    h, w = alpha.shape
    updates = []
    for obj in placed:
        oh, ow = obj.alpha.shape
        ty, tx = max(y0, obj.y0), max(x0, obj.x0)
        by, bx = min(y0 + h, obj.y0 + oh), min(x0 + w, obj.x0 + ow)
        if ty >= by or tx >= bx:
            continue
        own = (slice(ty - obj.y0, by - obj.y0), slice(tx - obj.x0, bx - obj.x0))
        new = obj.visible[own] * (1.0 - alpha[ty - y0:by - y0, tx - x0:bx - x0])
        lost = np.count_nonzero(obj.visible[own] > VISIBLE_ALPHA) - np.count_nonzero(new > VISIBLE_ALPHA)
        if np.count_nonzero(obj.visible > VISIBLE_ALPHA) - lost < MIN_VISIBLE * obj.area:
            return None
        updates.append((obj, own, new))
    return updates


def render_scene(rng: np.random.Generator, background: np.ndarray, items: Sequence[tuple[int, np.ndarray]], *,
                 object_size_px: tuple[float, float] = (28, 110)) -> RenderedScene:
    """Paste ``items`` ((class id, 28x28 uint8 Fashion-MNIST image) pairs, in order) onto a
    copy of ``background`` ([H, W, 3] uint8, already cropped to size). Items that find no
    place within PLACEMENT_TRIES (too much occlusion) are left out of the image and the labels."""
    height, width = background.shape[:2]
    placed: list[_Placed] = []
    for class_id, item in items:
        made = _make_object(rng, item, object_size_px)
        if made is None:
            continue
        alpha, bgr = made
        if alpha.shape[0] > height or alpha.shape[1] > width:
            raise ScenesError(f"object_size_px={tuple(object_size_px)}: a rotated item of {alpha.shape[1]}x"
                              f"{alpha.shape[0]} px does not fit in a {width}x{height} image; use smaller objects")
        for _ in range(PLACEMENT_TRIES):
            y0 = int(rng.integers(0, height - alpha.shape[0] + 1))
            x0 = int(rng.integers(0, width - alpha.shape[1] + 1))
            updates = _occlusion_update(placed, y0, x0, alpha)
            if updates is not None:
                for obj, own, new in updates:
                    obj.visible[own] = new
                placed.append(_Placed(int(class_id), y0, x0, alpha, bgr))
                break
    canvas = background.astype(np.float32)
    n = len(placed)
    boxes, masks = np.zeros((n, 4), np.int64), np.zeros((n, height, width), bool)
    alphas = np.zeros((n, height, width), np.float32)
    for i, obj in enumerate(placed):
        h, w = obj.alpha.shape
        window = (slice(obj.y0, obj.y0 + h), slice(obj.x0, obj.x0 + w))
        a = obj.alpha[..., None]
        canvas[window] = canvas[window] * (1.0 - a) + obj.bgr * a
        alphas[i][window] = obj.alpha
        masks[i][window] = obj.visible > VISIBLE_ALPHA
        ys, xs = np.nonzero(masks[i])
        boxes[i] = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return RenderedScene(image, boxes, np.array([o.class_id for o in placed], np.int64), masks, alphas)
