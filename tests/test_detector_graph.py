"""The detector recipe's parts that need no training run: the targets each box gives the grid
cells, augmentation that keeps boxes on their objects, and the graph (its size, its decoding inside
the graph, the two head designs, and the ops XNNPACK and the Edge TPU take)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import has

needs_tf = pytest.mark.skipif(not has("tensorflow"), reason="needs TensorFlow")


# ----- targets (numpy only) ------------------------------------------------------------------

def _anchors(size=(96, 128), classes=3):
    from train.architectures import DetectorSpec
    from train.detection_targets import AnchorPoints

    return AnchorPoints(DetectorSpec(size, classes))


def test_every_box_gets_cells_inside_it_on_the_level_that_reaches_it():
    anchors = _anchors()
    boxes = np.array([[10, 10, 34, 30], [40, 20, 110, 90], [60, 60, 63, 63]], np.float32)  # small, large, tiny
    box_t, cls_t = anchors.encode(boxes, np.array([0, 1, 2]))
    positive = box_t[:, 4] > 0
    scale = np.array([128, 96, 128, 96])
    owners = [np.flatnonzero(positive & np.all(np.isclose(box_t[:, :4] * scale, b, atol=1e-3), axis=1)) for b in boxes]
    assert all(len(o) > 0 for o in owners), "a labelled box was left without a cell"
    for box, cells in zip(boxes[:2], owners[:2]):  # centres inside the box (the tiny one gets its nearest cell)
        centers = anchors.centers[cells]
        assert np.all((centers[:, 0] > box[0]) & (centers[:, 0] < box[2]) & (centers[:, 1] > box[1]) & (centers[:, 1] < box[3]))
    assert set(anchors.strides[owners[0]]) <= {8.0, 16.0}  # farthest edge <= 24 px: the fine levels
    assert 16.0 in set(anchors.strides[owners[1]])  # farthest edge up to ~50 px: the next level takes it too
    assert cls_t[owners[1]][:, 1].all() and cls_t[positive].sum(axis=1).max() == 1  # one class per cell
    assert box_t[~positive].sum() == 0 and cls_t[~positive].sum() == 0


def test_a_cell_claimed_by_two_boxes_learns_the_smaller_one():
    anchors = _anchors()
    big, small = np.array([20, 20, 100, 80.0]), np.array([50, 40, 70, 60.0])
    box_t, cls_t = anchors.encode(np.stack([big, small]), np.array([0, 1]))
    shared = [i for i, (x, y) in enumerate(anchors.centers) if 50 < x < 70 and 40 < y < 60 and box_t[i, 4] > 0
              and anchors.strides[i] == 8]
    assert shared and all(cls_t[i, 1] == 1 and cls_t[i, 0] == 0 for i in shared)


def test_an_image_without_boxes_has_no_positive_cells():
    box_t, cls_t = _anchors().encode(np.zeros((0, 4)), np.zeros(0, np.int64))
    assert box_t.sum() == 0 and cls_t.sum() == 0


def test_augmentation_keeps_boxes_on_their_objects():
    from train.detection_pipeline import augment

    image = np.zeros((96, 128, 3), np.uint8)
    image[30:50, 40:80] = 255  # one white object
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, boxes, classes = augment(rng, image, np.array([[40, 30, 80, 50]], np.float32), np.array([1]), 114)
        if len(boxes) == 0:
            continue  # cropped away: that copy has no object
        # brightness jitter keeps the white object above 255 * 0.65; the padding (114) stays below 160
        bright = out.max(axis=-1) > 160
        ys, xs = np.nonzero(bright)
        visible = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(boxes[0], visible, atol=2.0)


# ----- graph ---------------------------------------------------------------------------------

@needs_tf
def test_detector_graph_is_small_and_decodes_inside_the_graph():
    import keras

    from train.architectures import DetectorSpec, detector
    from train.layers import decode_factory, grid_constants

    spec = DetectorSpec((256, 256), 80)
    model = detector(keras, spec, decode_factory(keras))
    assert model.count_params() < 2_000_000
    out = model(np.zeros((1, 256, 256, 3), np.float32))
    assert out["boxes"].shape == (1, spec.num_anchors, 4) and out["scores"].shape == (1, spec.num_anchors, 80)
    layer = model.get_layer("decode8")
    logits = np.random.default_rng(0).normal(size=(1, 32, 32, 4)).astype(np.float32)
    centers, scale = grid_constants(32, 32, 64, (256, 256))
    expected = np.clip(1 / (1 + np.exp(-logits.reshape(1, -1, 4))) * scale + centers, 0, 1)
    np.testing.assert_allclose(np.asarray(layer(logits)), expected, atol=1e-6)


def test_a_decoupled_head_gives_boxes_and_classes_their_own_block_with_the_same_outputs():
    import keras

    from train.architectures import DetectorSpec, detector
    from train.layers import decode_factory

    shared = detector(keras, DetectorSpec((96, 128), 3), decode_factory(keras))
    decoupled = detector(keras, DetectorSpec((96, 128), 3, head="decoupled"), decode_factory(keras))
    names = {layer.name for layer in decoupled.layers}
    assert {"boxhead8_dw", "clshead8_dw", "boxhead32_pw", "clshead32_pw"} <= names and "head8_dw" not in names
    # the class logits hang off the class block only, the box distances off the box block only
    def feeding(layer: str) -> str:
        return decoupled.get_layer(layer).input._keras_history[0].name  # the layer whose output it takes

    assert (feeding("cls16"), feeding("box16")) == ("clshead16_add", "boxhead16_add")
    extra = decoupled.count_params() - shared.count_params()
    assert 0 < extra < 0.25 * shared.count_params()
    x = np.random.default_rng(0).random((1, 96, 128, 3), np.float32)
    a, b = shared(x), decoupled(x)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    with pytest.raises(ValueError, match="detector head must be one of"):
        DetectorSpec((96, 128), 3, head="split")


@needs_tf
def test_detector_converts_to_ops_xnnpack_and_the_edge_tpu_take(tmp_path):
    """Upsampling is Concatenate + Reshape with UpSampling2D's values, not TILE (which neither XNNPACK
    nor the Edge TPU takes), and the box clip a fused ReLU6, not MINIMUM + RELU (which XNNPACK does
    not take in int8): XNNPACK takes the whole graph in one partition, fp32 and int8."""
    import keras

    import edge_runtime
    from tflite_files import fp32_and_int8
    from train.architectures import DetectorSpec, detector
    from train.layers import decode_factory

    model = detector(keras, DetectorSpec((96, 128), 3), decode_factory(keras))
    p5 = np.random.default_rng(0).normal(size=(1, 3, 4, 64)).astype(np.float32)
    up = keras.Model(model.get_layer("up5_w").input[0], model.get_layer("up5_h_flat").output)
    np.testing.assert_array_equal(np.asarray(up(p5)), np.repeat(np.repeat(p5, 2, axis=1), 2, axis=2))

    for path in fp32_and_int8(model, (96, 128, 3), tmp_path, "det").values():
        delegation = edge_runtime.load(path, device="cpu").delegation
        assert delegation.full and delegation.partitions == 1, str(delegation)
