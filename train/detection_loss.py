"""The detector's losses, on the targets of :mod:`train.detection_targets`.

* ``scores``: sigmoid focal loss (RetinaNet: alpha 0.25, gamma 2) over every cell and class,
  divided by the number of positive cells: most cells are background, and focal loss keeps them
  from drowning the few that hold objects.
* ``boxes``: 1 - generalized IoU (GIoU) between predicted and target corners on positive cells,
  divided by the number of positive cells, weighted 2 as in FCOS/YOLOX practice. IoU-based box
  losses are scale-free, so small and large objects count alike.

Both work on what the model outputs (probabilities and normalized corners), written with
TensorFlow ops so they serve Keras 3 and tf_keras (QAT) alike. Keras averages a per-sample loss
over the batch; each returns per-sample sums scaled so that average is the sum over the batch
divided by its positive cells.
"""
from __future__ import annotations

FOCAL_ALPHA, FOCAL_GAMMA, BOX_WEIGHT = 0.25, 2.0, 2.0
EPS = 1e-7


def _per_positive(tf, per_sample, positives):
    batch = tf.cast(tf.shape(per_sample)[0], per_sample.dtype)
    return per_sample * batch / tf.maximum(tf.reduce_sum(positives), 1.0)


def focal_loss(y_true, y_pred):
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.float32)
    p = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPS, 1.0 - EPS)
    bce = -(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p))
    p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
    alpha_t = y_true * FOCAL_ALPHA + (1.0 - y_true) * (1.0 - FOCAL_ALPHA)
    loss = alpha_t * tf.pow(1.0 - p_t, FOCAL_GAMMA) * bce
    positives = tf.reduce_max(y_true, axis=-1)
    return _per_positive(tf, tf.reduce_sum(loss, axis=[1, 2]), positives)


def giou(tf, a, b):
    """Generalized IoU of corner boxes ``a`` and ``b`` ([..., 4]), elementwise."""
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
    return iou - (hull - union) / (hull + EPS)


def box_loss(y_true, y_pred):
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.float32)
    positives = y_true[..., 4]
    loss = (1.0 - giou(tf, tf.cast(y_pred, tf.float32), y_true[..., :4])) * positives
    return BOX_WEIGHT * _per_positive(tf, tf.reduce_sum(loss, axis=1), positives)


LOSSES = {"boxes": box_loss, "scores": focal_loss}
