"""The detector's loss, on the targets of :mod:`train.detection_targets`.

Training sees one tensor per image, ``[N, 4 + C]``: the predicted corners then the class scores
(:func:`training_view` joins the two outputs), against targets ``[N, 5 + C]`` (corners, a
positive flag, one-hot class). Two terms, each divided by the number of positive cells:

* **Quality focal loss** for the scores (Generalized Focal Loss, Li et al. 2020): a positive
  cell's target is not 1 but the IoU its own predicted box reaches with the object. A cell's
  score then ranks how good its box is, so NMS keeps the best-placed box and mAP, which ranks by
  score, rewards it; plain focal loss lets a badly placed box outscore a good one. Background
  cells aim at 0, weighted by ``|target - p|^2`` so the flood of easy ones does not drown the few
  that hold objects.
* **GIoU loss** (1 - generalized IoU) for the boxes of positive cells, weighted 2 as in
  FCOS/YOLOX practice: scale-free, so small and large objects count alike.

Written with TensorFlow ops so Keras 3 and tf_keras (QAT) share it. Keras averages a per-sample
loss over the batch; this returns per-sample sums scaled so that the average is the batch sum
divided by its positive cells.
"""
from __future__ import annotations

QFL_BETA, BOX_WEIGHT = 2.0, 2.0
EPS = 1e-7


def iou_and_giou(tf, a, b):
    """IoU and generalized IoU of corner boxes ``a`` and ``b`` ([..., 4]), elementwise."""
    ax1, ay1, ax2, ay2 = tf.unstack(a, axis=-1)
    bx1, by1, bx2, by2 = tf.unstack(b, axis=-1)
    area_a = tf.maximum(ax2 - ax1, 0.0) * tf.maximum(ay2 - ay1, 0.0)
    area_b = tf.maximum(bx2 - bx1, 0.0) * tf.maximum(by2 - by1, 0.0)
    iw = tf.maximum(tf.minimum(ax2, bx2) - tf.maximum(ax1, bx1), 0.0)
    ih = tf.maximum(tf.minimum(ay2, by2) - tf.maximum(ay1, by1), 0.0)
    inter = iw * ih
    union = area_a + area_b - inter
    iou = inter / (union + EPS)
    hull = (tf.maximum(ax2, bx2) - tf.minimum(ax1, bx1)) * (tf.maximum(ay2, by2) - tf.minimum(ay1, by1))
    return iou, iou - (hull - union) / (hull + EPS)


def detection_loss(y_true, y_pred):
    import tensorflow as tf

    y_true, y_pred = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
    target_boxes, positive, onehot = y_true[..., :4], y_true[..., 4], y_true[..., 5:]
    boxes, p = y_pred[..., :4], tf.clip_by_value(y_pred[..., 4:], EPS, 1.0 - EPS)
    iou, giou = iou_and_giou(tf, boxes, target_boxes)
    quality = onehot * tf.stop_gradient(iou * positive)[..., None]
    bce = -(quality * tf.math.log(p) + (1.0 - quality) * tf.math.log(1.0 - p))
    scores = tf.reduce_sum(tf.pow(tf.abs(quality - p), QFL_BETA) * bce, axis=[1, 2])
    box = tf.reduce_sum((1.0 - giou) * positive, axis=1)
    batch = tf.cast(tf.shape(y_true)[0], tf.float32)
    return (scores + BOX_WEIGHT * box) * batch / tf.maximum(tf.reduce_sum(positive), 1.0)


def training_view(k, model):
    """The same model (shared weights) with its two outputs joined as ``[B, N, 4 + C]``."""
    out = model.output
    boxes, scores = (out["boxes"], out["scores"]) if isinstance(out, dict) else tuple(out)
    return k.Model(model.input, k.layers.Concatenate(axis=-1, name="train_view")([boxes, scores]))
